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

/// Why a table's view could not be generated. The message leaves the table's name to the
/// caller, which says it once ([`unreadable_view`]).
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Type(#[from] TypeError),
    #[error("file {key} is encrypted, which warmlake cannot read yet")]
    Encrypted { key: String },
    /// The catalog's rows for the table cannot be used ([`TableDef::unreadable`]).
    #[error("{0}")]
    Catalog(String),
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
    if let Some(reason) = &table.unreadable {
        return Err(ViewError::Catalog(reason.clone()));
    }
    let cols: Vec<Col<'_>> =
        table.columns.iter().map(|def| Ok(Col { def, sql_type: def.sql_type()? })).collect::<Result<_, ViewError>>()?;
    let mut branches = Vec::new();

    if !table.files.is_empty() {
        if let Some(f) = table.files.iter().find(|f| f.encryption_key.is_some()) {
            return Err(ViewError::Encrypted { key: f.key.to_string() });
        }
        // Every default is given as text: the map's values must share one struct type (a
        // VARCHAR default beside a DOUBLE one cannot be unified), and the Parquet reader casts
        // a default to its column's type, as the extension casts `initial_default`.
        let mut schema = String::new();
        for c in &cols {
            let default = match &c.def.initial_default {
                Some(v) if v != "NULL" => literal(v),
                _ => "CAST(NULL AS VARCHAR)".to_string(),
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
        let _ = write!(
            schema,
            "{SNAPSHOT_FIELD_ID}: {{name: '__snapshot', type: 'BIGINT', default_value: CAST(NULL AS VARCHAR)}}"
        );
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
                    return Err(ViewError::Encrypted { key: d.key.to_string() });
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

/// A lake's views as DuckDB statements: what `lake.sql` holds, and what the SQL socket runs one
/// statement at a time, so that a view DuckDB refuses (a file gone from the store, a file it
/// cannot read) is replaced by one naming the table and why, and every other view publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// The first line of `lake.sql`: which snapshot the views are at.
    pub header: String,
    pub statements: Vec<Statement>,
}

/// One statement of a [`Script`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    /// The view the statement creates, so that it can be replaced ([`unreadable_view`]).
    pub view: Option<ViewTarget>,
    /// Why the table cannot be read, when `sql` creates a view that only says so.
    pub unreadable: Option<String>,
}

/// A table's view: its qualified name and its columns with their DuckDB types, as far as
/// they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewTarget {
    pub schema: String,
    pub name: String,
    pub columns: Vec<(String, String)>,
}

impl ViewTarget {
    /// `schema.name`, as status and errors name tables.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

impl Script {
    /// The script as DuckDB runs it (`duckdb -init lake.sql`): the header, each unreadable
    /// table's reason as a comment, the statements one per line.
    pub fn text(&self) -> String {
        let mut out = format!("-- {}\n", comment_text(&self.header));
        for s in &self.statements {
            if let (Some(view), Some(reason)) = (&s.view, &s.unreadable) {
                let _ =
                    writeln!(out, "-- cannot be read: {}: {}", comment_text(&view.qualified()), comment_text(reason));
            }
            let _ = writeln!(out, "{};", s.sql);
        }
        out
    }

    /// `other`'s statements after these (time-travel schemas after the current ones).
    pub fn append(&mut self, other: Script) {
        self.statements.extend(other.statements);
    }

    /// The tables whose views only say why they cannot be read: `(schema.table, reason)`.
    pub fn unreadable(&self) -> Vec<(String, String)> {
        self.statements.iter().filter_map(|s| Some((s.view.as_ref()?.qualified(), s.unreadable.clone()?))).collect()
    }
}

/// A view of a table that cannot be read: it has the table's columns (VARCHAR where a type is
/// unknown), and reading any row of it fails with `warmlake: table S.T cannot be read: why`,
/// so a query names the table instead of finding no such table. The error is in the filter as
/// well as the values, so `count(*)` and filters over it fail too; `LIMIT 0` still describes it.
pub fn unreadable_view(view: &ViewTarget, reason: &str) -> Statement {
    let error =
        format!("error({})", literal(&format!("warmlake: table {} cannot be read: {reason}", view.qualified())));
    let columns: Vec<String> = if view.columns.is_empty() {
        vec![format!("CAST({error} AS VARCHAR) AS \"error\"")]
    } else {
        view.columns.iter().map(|(name, ty)| format!("CAST({error} AS {ty}) AS {}", ident(name))).collect()
    };
    Statement {
        sql: format!(
            "CREATE OR REPLACE VIEW {}.{} AS SELECT {} FROM range(1) WHERE {error} IS NULL",
            ident(&view.schema),
            ident(&view.name),
            columns.join(", ")
        ),
        view: Some(view.clone()),
        unreadable: Some(reason.to_string()),
    }
}

/// The views of `lake` at the snapshot it was read at, one schema per lake schema and one view
/// per table; a table that cannot be expressed gets an [`unreadable_view`].
pub fn lake_views(lake: &LakeSnapshot, url: FileUrl<'_>) -> Script {
    let header = format!(
        "warmlake: DuckLake views at snapshot {} ({}); generated, do not edit.",
        lake.snapshot.id, lake.snapshot.time
    );
    let mut statements: Vec<Statement> = lake
        .schemas
        .iter()
        .map(|schema| Statement {
            sql: format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema)),
            view: None,
            unreadable: None,
        })
        .collect();
    for table in &lake.tables {
        let columns =
            table.columns.iter().map(|c| (c.name.clone(), c.sql_type().unwrap_or_else(|_| "VARCHAR".into()))).collect();
        let target = ViewTarget { schema: table.schema.clone(), name: table.name.clone(), columns };
        statements.push(match table_select(table, lake.snapshot.id, url) {
            Ok(select) => Statement {
                sql: format!("CREATE OR REPLACE VIEW {}.{} AS {select}", ident(&table.schema), ident(&table.name)),
                view: Some(target),
                unreadable: None,
            },
            Err(e) => unreadable_view(&target, &e.to_string()),
        });
    }
    Script { header, statements }
}

/// [`lake_views`] as text: a DuckDB script, so `duckdb -init lake.sql` answers as the lake does.
pub fn lake_script(lake: &LakeSnapshot, url: FileUrl<'_>) -> String {
    lake_views(lake, url).text()
}
