//! DuckDB SQL that reads a DuckLake table at a snapshot with exact DuckLake semantics.
//!
//! Without the DuckLake extension, a table at snapshot `S` is:
//! - the data files valid at `S`, read with `read_parquet(..., schema = MAP {field_id: ...})`
//!   so columns are matched by Parquet field id (renames and added columns resolve, and a
//!   column a file lacks takes its `initial_default`);
//! - minus rows a merged file holds for snapshots after `S` (`_ducklake_internal_snapshot_id`,
//!   field id 2147483539, present only in such files) or beyond the row limit an older catalog's
//!   `partial_file_info` gives;
//! - minus positions listed in the delete files valid at `S` (their own
//!   `_ducklake_internal_snapshot_id` filtered the same way) and in inlined deletes;
//! - plus the inlined rows valid at `S`, cast from text to the column types.
//!
//! Inner columns are named `__c<field id>` and renamed in the outer SELECT, so no user column
//! can collide with `filename` / `file_row_number` that the scan adds.

use std::fmt::Write as _;

use crate::catalog::{ColumnDef, LakeSnapshot, Partial, TableDef, TypeError};
use crate::lake_path::LakeKey;

/// Parquet field id DuckLake gives `_ducklake_internal_snapshot_id`.
const SNAPSHOT_FIELD_ID: i64 = 2_147_483_539;
/// Parquet field id of `pos` in DuckLake / Iceberg positional delete files.
const POS_FIELD_ID: i64 = 2_147_483_645;

/// A view could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("table {table}: {source}")]
    Type { table: String, source: TypeError },
    #[error("table {table}: file {key} is encrypted, which warmlake cannot read yet")]
    Encrypted { table: String, key: String },
}

/// Quotes an identifier for DuckDB.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for DuckDB.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Maps a file key to the path or URL DuckDB should read (the mount, the cache, or the store).
pub type FileUrl<'a> = &'a dyn Fn(&LakeKey) -> String;

struct Col<'a> {
    def: &'a ColumnDef,
    sql_type: String,
}

impl Col<'_> {
    fn default_expr(&self) -> String {
        match &self.def.initial_default {
            Some(v) if v != "NULL" => format!("CAST({} AS {})", literal(v), self.sql_type),
            _ => format!("CAST(NULL AS {})", self.sql_type),
        }
    }
}

/// A `SELECT` returning `table` as it was at `snapshot`, columns in catalog order.
pub fn table_select(table: &TableDef, snapshot: i64, url: FileUrl<'_>) -> Result<String, ViewError> {
    let type_err = |source| ViewError::Type { table: format!("{}.{}", table.schema, table.name), source };
    let cols: Vec<Col<'_>> = table
        .columns
        .iter()
        .map(|def| Ok(Col { def, sql_type: def.sql_type().map_err(type_err)? }))
        .collect::<Result<_, ViewError>>()?;
    let mut branches = Vec::new();

    if !table.files.is_empty() {
        if let Some(f) = table.files.iter().find(|f| f.encryption_key.is_some()) {
            return Err(ViewError::Encrypted { table: table.name.clone(), key: f.key.to_string() });
        }
        let mut schema = String::new();
        for c in &cols {
            let default = match &c.def.initial_default {
                Some(v) if v != "NULL" => format!("CAST({} AS {})", literal(v), c.sql_type),
                _ => "NULL".to_string(),
            };
            let _ = write!(
                schema,
                "{}: {{name: {}, type: {}, default_value: {}}}, ",
                c.def.id,
                literal(&format!("__c{}", c.def.id)),
                literal(&c.sql_type),
                default
            );
        }
        let _ = write!(schema, "{SNAPSHOT_FIELD_ID}: {{name: '__snapshot', type: 'BIGINT', default_value: NULL}}");
        let list: Vec<String> = table.files.iter().map(|f| literal(&url(&f.key))).collect();
        let scan = format!(
            "read_parquet([{}], hive_partitioning = false, filename = true, file_row_number = true, schema = MAP {{{schema}}})",
            list.join(", ")
        );
        let mut conditions = vec![format!("(d.__snapshot IS NULL OR d.__snapshot <= {snapshot})")];
        for f in &table.files {
            if let Some(Partial::RowsBySnapshot(limits)) = &f.partial {
                let limit = limits.iter().filter(|(s, _)| *s <= snapshot).map(|(_, n)| *n).next_back().unwrap_or(0);
                conditions
                    .push(format!("NOT (d.filename = {} AND d.file_row_number >= {limit})", literal(&url(&f.key))));
            }
        }
        let mut deletes = Vec::new();
        for f in &table.files {
            for d in &f.deletes {
                if d.encryption_key.is_some() {
                    return Err(ViewError::Encrypted { table: table.name.clone(), key: d.key.to_string() });
                }
                // Delete files that hold several snapshots' deletes carry field ids and a
                // snapshot column; plain ones may have neither (files from Iceberg imports
                // have no field ids), so they are read by column name.
                let (scan, filter) = match d.partial_max {
                    Some(_) => (
                        format!(
                            "read_parquet([{}], schema = MAP {{{POS_FIELD_ID}: {{name: 'pos', type: 'BIGINT', default_value: NULL}}, \
                             {SNAPSHOT_FIELD_ID}: {{name: '__snapshot', type: 'BIGINT', default_value: NULL}}}})",
                            literal(&url(&d.key))
                        ),
                        format!(" WHERE __snapshot IS NULL OR __snapshot <= {snapshot}"),
                    ),
                    None => (format!("read_parquet([{}])", literal(&url(&d.key))), String::new()),
                };
                deletes.push(format!("SELECT {} AS filename, pos FROM {scan}{filter}", literal(&url(&f.key))));
            }
        }
        let inlined_deletes: Vec<String> = table
            .inlined_deletes
            .iter()
            .filter_map(|(file_id, pos)| {
                table.files.iter().find(|f| f.id == *file_id).map(|f| format!("({}, {pos})", literal(&url(&f.key))))
            })
            .collect();
        if !inlined_deletes.is_empty() {
            deletes.push(format!("SELECT * FROM (VALUES {}) AS v(filename, pos)", inlined_deletes.join(", ")));
        }
        let mut inner = format!("SELECT * FROM {scan} AS d WHERE {}", conditions.join(" AND "));
        if !deletes.is_empty() {
            inner = format!(
                "SELECT d.* FROM ({inner}) AS d ANTI JOIN ({}) AS x ON d.filename = x.filename AND d.file_row_number = x.pos",
                deletes.join(" UNION ALL ")
            );
        }
        let outer: Vec<String> =
            cols.iter().map(|c| format!("{} AS {}", ident(&format!("__c{}", c.def.id)), ident(&c.def.name))).collect();
        branches.push(format!("SELECT {} FROM ({inner})", outer.join(", ")));
    }

    for block in &table.inlined {
        let values: Vec<String> = block
            .rows
            .iter()
            .map(|row| {
                let vals: Vec<String> =
                    row.iter().map(|v| v.as_deref().map(literal).unwrap_or_else(|| "NULL".into())).collect();
                format!("({})", vals.join(", "))
            })
            .collect();
        let names: Vec<String> = (1..=block.column_ids.len()).map(|i| format!("v{i}")).collect();
        let projection: Vec<String> = cols
            .iter()
            .map(|c| {
                let expr = match block.column_ids.iter().position(|id| *id == Some(c.def.id)) {
                    Some(i) => format!("CAST(v{} AS {})", i + 1, c.sql_type),
                    None => c.default_expr(),
                };
                format!("{expr} AS {}", ident(&c.def.name))
            })
            .collect();
        branches.push(format!(
            "SELECT {} FROM (VALUES {}) AS t({})",
            projection.join(", "),
            values.join(", "),
            names.join(", ")
        ));
    }

    if branches.is_empty() {
        let empty: Vec<String> =
            cols.iter().map(|c| format!("CAST(NULL AS {}) AS {}", c.sql_type, ident(&c.def.name))).collect();
        branches.push(format!("SELECT {} WHERE false", empty.join(", ")));
    }
    Ok(branches.join(" UNION ALL "))
}

/// `lake` with every schema renamed `<schema>@<snapshot id>`: the same views, for time travel
/// (`SELECT * FROM "sales@42".orders`) beside the current ones.
pub fn at_snapshot(lake: &LakeSnapshot) -> LakeSnapshot {
    let id = lake.snapshot.id;
    let mut renamed = lake.clone();
    for schema in &mut renamed.schemas {
        *schema = format!("{schema}@{id}");
    }
    for table in &mut renamed.tables {
        table.schema = format!("{}@{id}", table.schema);
    }
    renamed
}

/// `text` made safe inside a `--` comment: the catalog's strings (snapshot times, names in
/// error messages) are not ours, and a line break in one would end the comment and run the
/// rest as SQL. Every control character becomes a space.
fn comment_text(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A DuckDB script that creates one schema per lake schema and one view per table, at the
/// snapshot `lake` was read at: `duckdb -init lake.sql` then answers as the lake does.
/// Tables that cannot be expressed are left out with a comment saying why.
pub fn lake_script(lake: &LakeSnapshot, url: FileUrl<'_>) -> String {
    let mut out = format!(
        "-- warmlake: DuckLake views at snapshot {} ({}); generated, do not edit.\n",
        lake.snapshot.id,
        comment_text(&lake.snapshot.time)
    );
    for schema in &lake.schemas {
        let _ = writeln!(out, "CREATE SCHEMA IF NOT EXISTS {};", ident(schema));
    }
    for table in &lake.tables {
        match table_select(table, lake.snapshot.id, url) {
            Ok(select) => {
                let _ = writeln!(
                    out,
                    "CREATE OR REPLACE VIEW {}.{} AS {select};",
                    ident(&table.schema),
                    ident(&table.name)
                );
            }
            Err(e) => {
                let _ = writeln!(out, "-- skipped: {}", comment_text(&e.to_string()));
            }
        }
    }
    out
}
