//! The generator's state machine: one method per kind of DuckLake commit.
//!
//! Parquet files are written as operations run; catalog statements are collected as plain SQL
//! that DuckDB and SQLite both accept (`true`/`false`, text UUIDs and timestamps), and replayed
//! into each catalog database in one transaction at the end.
//!
//! The Parquet files, and their names, depend only on the [`LakeSpec`] (and the DuckDB build):
//! the same spec makes byte-identical files under the same keys wherever they are written (a
//! local folder or a staging folder uploaded to an object store). Snapshot times and schema and table UUIDs
//! still differ between runs, as they would between two lakes made by the extension.

use std::path::{Path, PathBuf};

use super::{GenerateError, LakeSpec};
use crate::catalog::CatalogLocation;
use crate::catalog::postgres::PgClient;
use crate::view_sql::{ident, literal};

/// The DuckLake 1.0 catalog DDL, as the DuckLake extension writes it.
pub const CATALOG_DDL: &str = include_str!("ducklake_1_0.sql");

/// Field ids DuckLake gives the columns of positional delete files.
const DELETE_FILE_PATH_FIELD_ID: i64 = 2_147_483_646;
const DELETE_POS_FIELD_ID: i64 = 2_147_483_645;

struct Col {
    id: i64,
    name: String,
    ducklake_type: &'static str,
    duck_type: &'static str,
    /// SQL over the row number `i` that produces this column's values.
    expr: String,
}

struct FileRec {
    id: i64,
    /// Path relative to the table folder (as stored in the catalog).
    rel: String,
    abs: PathBuf,
    live: bool,
}

struct Table {
    id: i64,
    schema: String,
    name: String,
    cols: Vec<Col>,
    next_col_id: i64,
    next_row_id: i64,
    record_count: i64,
    bytes: i64,
    files: Vec<FileRec>,
    /// The inlined-data table for the current schema version, once one exists.
    inlined: Option<String>,
}

pub(super) struct Builder {
    /// Where Parquet files are written: the lake's `data/` folder, or a staging folder whose
    /// files are uploaded to the data store afterwards.
    data_dir: PathBuf,
    spec: LakeSpec,
    duck: duckdb::Connection,
    sql: Vec<String>,
    /// The snapshot the next commit creates.
    next_snapshot: i64,
    schema_version: i64,
    next_catalog_id: i64,
    next_file_id: i64,
    tables: Vec<Table>,
    start: chrono::DateTime<chrono::Utc>,
    /// Keys (paths relative to the data folder) of every Parquet file written, data and
    /// delete files, in the order they were written.
    written: Vec<String>,
    bytes_written: u64,
}

fn duck_err(doing: impl Into<String>) -> impl FnOnce(duckdb::Error) -> GenerateError {
    let doing = doing.into();
    move |source| GenerateError::DuckDb { doing, source }
}

impl Builder {
    pub(super) fn new(data_dir: &Path, spec: LakeSpec) -> Result<Self, GenerateError> {
        let duck = duckdb::Connection::open_in_memory().map_err(duck_err("starting"))?;
        Ok(Builder {
            data_dir: data_dir.to_path_buf(),
            spec,
            duck,
            sql: Vec::new(),
            next_snapshot: 0,
            schema_version: 0,
            next_catalog_id: 0,
            next_file_id: 0,
            tables: Vec::new(),
            start: chrono::Utc::now() - chrono::Duration::hours(1),
            written: Vec::new(),
            bytes_written: 0,
        })
    }

    pub(super) fn latest_snapshot(&self) -> i64 {
        self.next_snapshot - 1
    }

    /// Keys of every Parquet file written, relative to the data folder.
    pub(super) fn written(&self) -> &[String] {
        &self.written
    }

    pub(super) fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The demo lake's history. Each call below is one snapshot, as in DuckLake.
    pub(super) fn write_history(&mut self) -> Result<(), GenerateError> {
        self.init()?;
        self.create_schema("sales")?;
        self.create_schema("web")?;

        let orders = self.create_table("sales", "orders", orders_columns())?;
        let batch = 2_000u64;
        for b in 0..self.spec.order_batches.max(1) {
            self.append(orders, &[(b * batch, (b + 1) * batch)])?;
        }
        self.delete_where(orders, "id % 10 = 3")?;
        self.rename_column(orders, "note", "comment")?;
        self.add_column(orders, "channel", "varchar", "VARCHAR", "web", "'app'")?;
        let start = self.spec.order_batches.max(1) * batch;
        self.append(orders, &[(start, start + batch)])?;

        let customers = self.create_table("sales", "customers", customers_columns())?;
        self.append(customers, &[(0, 97)])?;
        self.tag_table(customers, "owner", "crm-team")?;
        self.tag_column(customers, "email", "pii", "true")?;

        let events = self.create_table("web", "events", events_columns())?;
        let (rows, files) = (self.spec.events_rows, self.spec.events_files.max(1));
        let ranges: Vec<(u64, u64)> = (0..files).map(|f| (rows * f / files, rows * (f + 1) / files)).collect();
        self.append(events, &ranges)?;

        let returns = self.create_table("sales", "returns", returns_columns())?;
        self.inline_insert(returns, &["1, 17, 'damaged', 12.50", "2, 4242, 'wrong size', 30.00"])?;
        self.inline_insert(returns, &["3, 9001, 'late', 5.25"])?;

        let scratch = self.create_table("web", "scratch", vec![col(1, "x", "int64", "BIGINT", "i")])?;
        self.append(scratch, &[(0, 20)])?;
        self.drop_table(scratch)?;
        self.write_table_stats();
        Ok(())
    }

    fn now_literal(&self) -> String {
        let t = self.start + chrono::Duration::milliseconds(self.next_snapshot * 1_000);
        literal(&timestamp_text(t))
    }

    fn uuid(&self) -> Result<String, GenerateError> {
        self.duck.query_row("SELECT uuidv7()::VARCHAR", [], |r| r.get(0)).map_err(duck_err("making a uuid"))
    }

    fn commit(&mut self, changes: &str) {
        let s = self.next_snapshot;
        self.sql.push(format!(
            "INSERT INTO ducklake_snapshot VALUES ({s}, {}, {}, {}, {})",
            self.now_literal(),
            self.schema_version,
            self.next_catalog_id,
            self.next_file_id
        ));
        self.sql.push(format!(
            "INSERT INTO ducklake_snapshot_changes VALUES ({s}, {}, NULL, NULL, NULL)",
            literal(changes)
        ));
        self.next_snapshot += 1;
    }

    /// The global `ducklake_metadata` rows. `data_path` is the one value that differs between
    /// catalogs of the same lake: relative (`data/`) in a catalog file beside the data, absolute
    /// in a PostgreSQL catalog, which has no file to be relative to.
    fn metadata_sql(data_path: &str) -> Vec<String> {
        let version = concat!("warmlake ", env!("CARGO_PKG_VERSION"));
        [("version", "1.0"), ("created_by", version), ("data_path", data_path), ("encrypted", "false")]
            .iter()
            .map(|(k, v)| format!("INSERT INTO ducklake_metadata VALUES ({}, {}, NULL, NULL)", literal(k), literal(v)))
            .collect()
    }

    /// The whole catalog as one transaction: DDL, metadata, then every commit's statements.
    fn catalog_script(&self, begin: &str, data_path: &str) -> String {
        let metadata = Self::metadata_sql(data_path).join(";\n");
        format!("{begin};\n{CATALOG_DDL}\n{metadata};\n{};\nCOMMIT;", self.sql.join(";\n"))
    }

    fn init(&mut self) -> Result<(), GenerateError> {
        let uuid = self.uuid()?;
        self.sql.push(format!(
            "INSERT INTO ducklake_schema VALUES (0, {}, 0, NULL, 'main', 'main/', true)",
            literal(&uuid)
        ));
        self.next_catalog_id = 1;
        self.commit("created_schema:\"main\"");
        Ok(())
    }

    fn create_schema(&mut self, name: &str) -> Result<(), GenerateError> {
        let id = self.next_catalog_id;
        self.next_catalog_id += 1;
        self.schema_version += 1;
        let uuid = self.uuid()?;
        self.sql.push(format!(
            "INSERT INTO ducklake_schema VALUES ({id}, {}, {}, NULL, {}, {}, true)",
            literal(&uuid),
            self.next_snapshot,
            literal(name),
            literal(&format!("{name}/"))
        ));
        self.commit(&format!("created_schema:\"{name}\""));
        Ok(())
    }

    fn schema_id(&self, name: &str) -> i64 {
        match name {
            "main" => 0,
            "sales" => 1,
            _ => 2,
        }
    }

    fn insert_column(&mut self, table_id: i64, c: &Col, order: usize, default: Option<&str>) {
        let d = default.map(literal).unwrap_or_else(|| "NULL".into());
        let dv = default.map(literal).unwrap_or_else(|| "'NULL'".into());
        self.sql.push(format!(
            "INSERT INTO ducklake_column VALUES ({}, {}, NULL, {table_id}, {order}, {}, {}, {d}, {dv}, true, NULL, 'literal', 'duckdb')",
            c.id,
            self.next_snapshot,
            literal(&c.name),
            literal(c.ducklake_type)
        ));
    }

    fn create_table(&mut self, schema: &str, name: &str, cols: Vec<Col>) -> Result<usize, GenerateError> {
        let id = self.next_catalog_id;
        self.next_catalog_id += 1;
        self.schema_version += 1;
        let uuid = self.uuid()?;
        self.sql.push(format!(
            "INSERT INTO ducklake_table VALUES ({id}, {}, {}, NULL, {}, {}, {}, true)",
            literal(&uuid),
            self.next_snapshot,
            self.schema_id(schema),
            literal(name),
            literal(&format!("{name}/"))
        ));
        for (i, c) in cols.iter().enumerate() {
            self.insert_column(id, c, i + 1, None);
        }
        self.sql.push(format!(
            "INSERT INTO ducklake_schema_versions VALUES ({}, {}, {id})",
            self.next_snapshot, self.schema_version
        ));
        let next_col_id = cols.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        std::fs::create_dir_all(self.table_dir(schema, name))
            .map_err(|source| GenerateError::Io { path: self.table_dir(schema, name), source })?;
        self.tables.push(Table {
            id,
            schema: schema.to_string(),
            name: name.to_string(),
            cols,
            next_col_id,
            next_row_id: 0,
            record_count: 0,
            bytes: 0,
            files: Vec::new(),
            inlined: None,
        });
        self.commit(&format!("created_table:\"{schema}\".\"{name}\""));
        Ok(self.tables.len() - 1)
    }

    fn table_dir(&self, schema: &str, name: &str) -> PathBuf {
        self.data_dir.join(schema).join(name)
    }

    fn parquet_options(&self, field_ids: &str) -> String {
        let encoding = if self.spec.plain {
            "COMPRESSION uncompressed, DICTIONARY_SIZE_LIMIT 1, STRING_DICTIONARY_PAGE_SIZE_LIMIT 1"
        } else {
            "COMPRESSION zstd"
        };
        format!(
            "FORMAT parquet, ROW_GROUP_SIZE {}, {encoding}, FIELD_IDS {{{field_ids}}}",
            self.spec.row_group_rows.max(1)
        )
    }

    /// Writes one data file per `[start, end)` range of row numbers, in one snapshot.
    fn append(&mut self, t: usize, ranges: &[(u64, u64)]) -> Result<(), GenerateError> {
        for &(start, end) in ranges {
            let file_id = self.next_file_id;
            self.next_file_id += 1;
            let rel = format!("ducklake-{}.parquet", self.file_uuid(file_id));
            let table = &self.tables[t];
            let abs = self.table_dir(&table.schema, &table.name).join(&rel);
            let select: Vec<String> = table
                .cols
                .iter()
                .map(|c| format!("CAST({} AS {}) AS {}", c.expr, c.duck_type, ident(&c.name)))
                .collect();
            let ids: Vec<String> = table.cols.iter().map(|c| format!("{}: {}", ident(&c.name), c.id)).collect();
            let copy = format!(
                "COPY (SELECT {} FROM range({start}, {end}) t(i)) TO {} ({})",
                select.join(", "),
                literal(&abs.to_string_lossy()),
                self.parquet_options(&ids.join(", "))
            );
            self.duck.execute_batch(&copy).map_err(duck_err(format!("writing {}", abs.display())))?;
            let (size, footer) = self.record_written(t, &rel, &abs)?;
            let rows = (end - start) as i64;
            let row_id_start = self.tables[t].next_row_id;
            self.sql.push(format!(
                "INSERT INTO ducklake_data_file VALUES ({file_id}, {}, {}, NULL, NULL, {}, true, 'parquet', {rows}, {size}, {footer}, {row_id_start}, NULL, NULL, NULL, NULL)",
                self.tables[t].id,
                self.next_snapshot,
                literal(&rel)
            ));
            self.column_stats(t, file_id, &abs)?;
            let table = &mut self.tables[t];
            table.next_row_id += rows;
            table.record_count += rows;
            table.bytes += size;
            table.files.push(FileRec { id: file_id, rel, abs, live: true });
        }
        let id = self.tables[t].id;
        self.commit(&format!("inserted_into_table:{id}"));
        Ok(())
    }

    /// Per-column statistics of a written file, as `ducklake_file_column_stats` rows.
    fn column_stats(&mut self, t: usize, file_id: i64, path: &Path) -> Result<(), GenerateError> {
        let table = &self.tables[t];
        let aggs: Vec<String> = table
            .cols
            .iter()
            .map(|c| {
                let n = ident(&c.name);
                format!("min({n})::VARCHAR, max({n})::VARCHAR, count({n}), count(*) - count({n})")
            })
            .collect();
        let file = literal(&path.to_string_lossy());
        let sql = format!("SELECT {} FROM read_parquet({file})", aggs.join(", "));
        let doing = format!("reading statistics of {}", path.display());
        let stats: Vec<(Option<String>, Option<String>, i64, i64)> = self
            .duck
            .query_row(&sql, [], |r| {
                (0..table.cols.len())
                    .map(|i| Ok((r.get(4 * i)?, r.get(4 * i + 1)?, r.get(4 * i + 2)?, r.get(4 * i + 3)?)))
                    .collect()
            })
            .map_err(duck_err(doing.clone()))?;
        let mut sizes = self
            .duck
            .prepare(&format!(
                "SELECT path_in_schema, sum(total_compressed_size)::BIGINT FROM parquet_metadata({file}) GROUP BY 1"
            ))
            .map_err(duck_err(doing.clone()))?;
        let sizes: Vec<(String, i64)> = sizes
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(duck_err(doing.clone()))?
            .collect::<Result<_, _>>()
            .map_err(duck_err(doing))?;
        let table_id = table.id;
        let rows: Vec<String> = table
            .cols
            .iter()
            .zip(stats)
            .map(|(c, (min, max, values, nulls))| {
                let size = sizes.iter().find(|(p, _)| *p == c.name).map(|(_, s)| *s).unwrap_or(0);
                let opt = |v: Option<String>| v.map(|v| literal(&v)).unwrap_or_else(|| "NULL".into());
                format!(
                    "INSERT INTO ducklake_file_column_stats VALUES ({file_id}, {table_id}, {}, {size}, {}, {nulls}, {}, {}, NULL, NULL)",
                    c.id,
                    values + nulls,
                    opt(min),
                    opt(max)
                )
            })
            .collect();
        self.sql.extend(rows);
        Ok(())
    }

    /// Deletes the rows matching `predicate` with one positional delete file per data file.
    fn delete_where(&mut self, t: usize, predicate: &str) -> Result<(), GenerateError> {
        let live: Vec<(i64, PathBuf, String)> =
            self.tables[t].files.iter().filter(|f| f.live).map(|f| (f.id, f.abs.clone(), f.rel.clone())).collect();
        let mut deleted = 0i64;
        for (data_file_id, abs, rel) in live {
            let table = &self.tables[t];
            // Predicates are written against the table's current column names; the file holds
            // the names it was written with, so read it by field id.
            let map: Vec<String> = table
                .cols
                .iter()
                .map(|c| {
                    format!(
                        "{}: {{name: {}, type: {}, default_value: NULL}}",
                        c.id,
                        literal(&c.name),
                        literal(c.duck_type)
                    )
                })
                .collect();
            let data_path = format!("data/{}/{}/{rel}", table.schema, table.name);
            // Named after the id it gets if it is written (ids are only taken by written files).
            let del_rel = format!("ducklake-{}-delete.parquet", self.file_uuid(self.next_file_id));
            let del_abs = self.table_dir(&table.schema, &table.name).join(&del_rel);
            let count: i64 = self
                .duck
                .query_row(
                    &format!(
                        "SELECT count(*) FROM read_parquet({}, schema = MAP {{{}}}) WHERE {predicate}",
                        literal(&abs.to_string_lossy()),
                        map.join(", ")
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(duck_err("counting deletes"))?;
            if count == 0 {
                continue;
            }
            let copy = format!(
                "COPY (SELECT {} AS file_path, file_row_number AS pos FROM read_parquet({}, file_row_number = true, schema = MAP {{{}}}) \
                 WHERE {predicate} ORDER BY pos) TO {} ({})",
                literal(&data_path),
                literal(&abs.to_string_lossy()),
                map.join(", "),
                literal(&del_abs.to_string_lossy()),
                self.parquet_options(&format!("file_path: {DELETE_FILE_PATH_FIELD_ID}, pos: {DELETE_POS_FIELD_ID}"))
            );
            self.duck.execute_batch(&copy).map_err(duck_err(format!("writing {}", del_abs.display())))?;
            let (size, footer) = self.record_written(t, &del_rel, &del_abs)?;
            let id = self.next_file_id;
            self.next_file_id += 1;
            self.sql.push(format!(
                "INSERT INTO ducklake_delete_file VALUES ({id}, {}, {}, NULL, {data_file_id}, {}, true, 'parquet', {count}, {size}, {footer}, NULL, NULL)",
                self.tables[t].id,
                self.next_snapshot,
                literal(&del_rel)
            ));
            deleted += count;
        }
        self.tables[t].record_count -= deleted;
        let id = self.tables[t].id;
        self.commit(&format!("deleted_from_table:{id}"));
        Ok(())
    }

    fn bump_table_schema(&mut self, t: usize) {
        self.schema_version += 1;
        self.sql.push(format!(
            "INSERT INTO ducklake_schema_versions VALUES ({}, {}, {})",
            self.next_snapshot, self.schema_version, self.tables[t].id
        ));
        self.tables[t].inlined = None;
    }

    fn rename_column(&mut self, t: usize, from: &str, to: &str) -> Result<(), GenerateError> {
        let table_id = self.tables[t].id;
        let Some(pos) = self.tables[t].cols.iter().position(|c| c.name == from) else {
            return Ok(());
        };
        let col_id = self.tables[t].cols[pos].id;
        self.sql.push(format!(
            "UPDATE ducklake_column SET end_snapshot = {} WHERE table_id = {table_id} AND column_id = {col_id} AND end_snapshot IS NULL",
            self.next_snapshot
        ));
        self.tables[t].cols[pos].name = to.to_string();
        let c = &self.tables[t].cols[pos];
        let c = Col {
            id: c.id,
            name: c.name.clone(),
            ducklake_type: c.ducklake_type,
            duck_type: c.duck_type,
            expr: c.expr.clone(),
        };
        self.insert_column(table_id, &c, pos + 1, None);
        self.bump_table_schema(t);
        self.commit(&format!("altered_table:{table_id}"));
        Ok(())
    }

    /// Adds a column whose old rows read `default` and whose new rows are made by `expr`.
    fn add_column(
        &mut self,
        t: usize,
        name: &str,
        ducklake_type: &'static str,
        duck_type: &'static str,
        default: &str,
        expr: &str,
    ) -> Result<(), GenerateError> {
        let table_id = self.tables[t].id;
        let c = Col { id: self.tables[t].next_col_id, name: name.into(), ducklake_type, duck_type, expr: expr.into() };
        self.tables[t].next_col_id += 1;
        let order = self.tables[t].cols.len() + 1;
        self.insert_column(table_id, &c, order, Some(default));
        self.tables[t].cols.push(c);
        self.bump_table_schema(t);
        self.commit(&format!("altered_table:{table_id}"));
        Ok(())
    }

    /// Inserts rows into the catalog itself (DuckLake data inlining), not into a file. Each
    /// row is a list of SQL literals in column order.
    fn inline_insert(&mut self, t: usize, rows: &[&str]) -> Result<(), GenerateError> {
        let table_id = self.tables[t].id;
        let name = match &self.tables[t].inlined {
            Some(n) => n.clone(),
            None => {
                let name = format!("ducklake_inlined_data_{table_id}_{}", self.schema_version);
                let cols: Vec<String> =
                    self.tables[t].cols.iter().map(|c| format!("{} {}", ident(&c.name), c.duck_type)).collect();
                self.sql.push(format!(
                    "CREATE TABLE {name}(row_id BIGINT, begin_snapshot BIGINT, end_snapshot BIGINT, {})",
                    cols.join(", ")
                ));
                self.sql.push(format!(
                    "INSERT INTO ducklake_inlined_data_tables VALUES ({table_id}, {}, {})",
                    literal(&name),
                    self.schema_version
                ));
                self.tables[t].inlined = Some(name.clone());
                name
            }
        };
        for row in rows {
            let row_id = self.tables[t].next_row_id;
            self.sql.push(format!("INSERT INTO {name} VALUES ({row_id}, {}, NULL, {row})", self.next_snapshot));
            self.tables[t].next_row_id += 1;
            self.tables[t].record_count += 1;
        }
        self.commit(&format!("inlined_insert:{table_id}"));
        Ok(())
    }

    fn tag_table(&mut self, t: usize, key: &str, value: &str) -> Result<(), GenerateError> {
        let table_id = self.tables[t].id;
        self.sql.push(format!(
            "INSERT INTO ducklake_tag VALUES ({table_id}, {}, NULL, {}, {})",
            self.next_snapshot,
            literal(key),
            literal(value)
        ));
        self.commit(&format!("altered_table:{table_id}"));
        Ok(())
    }

    fn tag_column(&mut self, t: usize, column: &str, key: &str, value: &str) -> Result<(), GenerateError> {
        let table_id = self.tables[t].id;
        let Some(col_id) = self.tables[t].cols.iter().find(|c| c.name == column).map(|c| c.id) else {
            return Ok(());
        };
        self.sql.push(format!(
            "INSERT INTO ducklake_column_tag VALUES ({table_id}, {col_id}, {}, NULL, {}, {})",
            self.next_snapshot,
            literal(key),
            literal(value)
        ));
        self.commit(&format!("altered_table:{table_id}"));
        Ok(())
    }

    fn drop_table(&mut self, t: usize) -> Result<(), GenerateError> {
        let table_id = self.tables[t].id;
        let s = self.next_snapshot;
        for table in ["ducklake_table", "ducklake_column", "ducklake_data_file", "ducklake_delete_file", "ducklake_tag"]
        {
            let id_col = if table == "ducklake_tag" { "object_id" } else { "table_id" };
            self.sql.push(format!(
                "UPDATE {table} SET end_snapshot = {s} WHERE {id_col} = {table_id} AND end_snapshot IS NULL"
            ));
        }
        for f in &mut self.tables[t].files {
            f.live = false;
        }
        self.schema_version += 1;
        self.commit(&format!("dropped_table:{table_id}"));
        Ok(())
    }

    fn write_table_stats(&mut self) {
        let rows: Vec<String> = self
            .tables
            .iter()
            .map(|t| {
                format!(
                    "INSERT INTO ducklake_table_stats VALUES ({}, {}, {}, {})",
                    t.id, t.record_count, t.next_row_id, t.bytes
                )
            })
            .collect();
        self.sql.extend(rows);
    }

    pub(super) fn write_duckdb_catalog(&self, path: &Path, data_path: &str) -> Result<(), GenerateError> {
        let conn = duckdb::Connection::open(path).map_err(duck_err(format!("creating {}", path.display())))?;
        let script = self.catalog_script("BEGIN TRANSACTION", data_path);
        conn.execute_batch(&script).map_err(duck_err(format!("writing {}", path.display())))
    }

    pub(super) fn write_sqlite_catalog(&self, path: &Path, data_path: &str) -> Result<(), GenerateError> {
        let err = |source| GenerateError::Sqlite { path: path.to_path_buf(), source };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.execute_batch(&self.catalog_script("BEGIN", data_path)).map_err(err)
    }

    /// Writes the catalog into the PostgreSQL database `conn` names (tables go to the first
    /// schema of its search path), in one transaction: a failure leaves no partial catalog.
    pub(super) fn write_postgres_catalog(&self, conn: &str, data_path: &str) -> Result<(), GenerateError> {
        let err =
            |source| GenerateError::Postgres { location: CatalogLocation::Postgres(conn.into()).to_string(), source };
        // Timestamps in the script carry their offset; UTC only keeps the server's notices calm.
        let client = PgClient::connect(conn, "SET TimeZone = 'UTC'").map_err(err)?;
        client.query(&self.catalog_script("BEGIN", data_path)).map_err(err)?;
        Ok(())
    }

    /// The UUID in the name of the file that gets catalog id `file_id`: a version 8 (custom)
    /// UUID hashed from the spec and the id, where the extension uses a random UUIDv7. Names
    /// then depend only on the spec, like the files' bytes, so the same lake written to a
    /// folder and to an object store is the same set of objects (delete files hold their data
    /// file's name, so random names would make them differ too).
    fn file_uuid(&self, file_id: i64) -> String {
        use sha2::{Digest, Sha256};
        let LakeSpec { events_rows, events_files, row_group_rows, order_batches, plain } = &self.spec;
        let seed = format!("{events_rows}/{events_files}/{row_group_rows}/{order_batches}/{plain}/{file_id}");
        let mut b = [0u8; 16];
        b.copy_from_slice(&Sha256::digest(seed.as_bytes())[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }

    /// Records a Parquet file just written to `abs` (key: the table folder plus `rel`) and
    /// returns its size and footer size for the catalog row.
    fn record_written(&mut self, t: usize, rel: &str, abs: &Path) -> Result<(i64, i64), GenerateError> {
        let (size, footer) = file_sizes(abs)?;
        let table = &self.tables[t];
        self.written.push(format!("{}/{}/{rel}", table.schema, table.name));
        self.bytes_written += size as u64;
        Ok((size, footer))
    }
}

/// A timestamp as DuckDB and PostgreSQL print a `TIMESTAMP WITH TIME ZONE` in UTC: microseconds
/// without trailing zeros. SQLite keeps the text it was given, so anything else would make the
/// same snapshot's time read back differently from a SQLite catalog.
fn timestamp_text(t: chrono::DateTime<chrono::Utc>) -> String {
    let micros = t.format("%6f").to_string();
    let fraction = micros.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!("{}{dot}{fraction}+00", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Size of a Parquet file and of its footer (the metadata length stored before `PAR1`),
/// reading only the last 8 bytes: data files of a benchmark lake can be gigabytes.
fn file_sizes(path: &Path) -> Result<(i64, i64), GenerateError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| GenerateError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut tail = [0u8; 4];
    if len >= 8 {
        file.seek(SeekFrom::Start(len - 8)).map_err(io)?;
        file.read_exact(&mut tail).map_err(io)?;
    }
    Ok((len as i64, i64::from(u32::from_le_bytes(tail))))
}

fn col(id: i64, name: &str, ducklake_type: &'static str, duck_type: &'static str, expr: &str) -> Col {
    Col { id, name: name.into(), ducklake_type, duck_type, expr: expr.into() }
}

fn orders_columns() -> Vec<Col> {
    vec![
        col(1, "id", "int64", "BIGINT", "i"),
        col(2, "customer_id", "int32", "INTEGER", "(i * 7) % 97"),
        col(3, "region", "varchar", "VARCHAR", "['eu', 'us', 'apac'][1 + (i % 3)::INTEGER]"),
        col(4, "amount", "decimal(12,2)", "DECIMAL(12,2)", "((i * 37) % 1000) / 4.0"),
        col(5, "ordered_at", "timestamp", "TIMESTAMP", "TIMESTAMP '2026-01-01 00:00:00' + to_minutes(i::BIGINT)"),
        col(6, "note", "varchar", "VARCHAR", "'note ' || i"),
    ]
}

fn customers_columns() -> Vec<Col> {
    vec![
        col(1, "customer_id", "int32", "INTEGER", "i"),
        col(2, "name", "varchar", "VARCHAR", "'Customer ' || i"),
        col(3, "email", "varchar", "VARCHAR", "'user' || i || '@example.com'"),
        col(4, "region", "varchar", "VARCHAR", "['eu', 'us', 'apac'][1 + (i % 3)::INTEGER]"),
    ]
}

fn returns_columns() -> Vec<Col> {
    vec![
        col(1, "return_id", "int64", "BIGINT", "i"),
        col(2, "order_id", "int64", "BIGINT", "i"),
        col(3, "reason", "varchar", "VARCHAR", "'reason'"),
        col(4, "refund", "decimal(10,2)", "DECIMAL(10,2)", "0"),
    ]
}

/// A web-analytics events table: 20 columns of the shapes dashboards read.
fn events_columns() -> Vec<Col> {
    vec![
        col(1, "event_id", "int64", "BIGINT", "i"),
        col(2, "ts", "timestamp", "TIMESTAMP", "TIMESTAMP '2026-02-01' + to_seconds(i::BIGINT)"),
        col(3, "user_id", "int64", "BIGINT", "(i * 2654435761) % 100000"),
        col(4, "session_id", "int64", "BIGINT", "i // 20"),
        col(5, "kind", "varchar", "VARCHAR", "['view', 'view', 'view', 'click', 'click', 'buy'][1 + (i % 6)::INTEGER]"),
        col(6, "page", "varchar", "VARCHAR", "'/p/' || ((i * 31) % 500)"),
        col(7, "referrer", "varchar", "VARCHAR", "['google', 'direct', 'newsletter', 'social'][1 + (i % 4)::INTEGER]"),
        col(8, "country", "varchar", "VARCHAR", "['DE', 'US', 'FR', 'JP', 'BR', 'IN', 'GB'][1 + (i % 7)::INTEGER]"),
        col(9, "device", "varchar", "VARCHAR", "['desktop', 'mobile', 'tablet'][1 + (i % 3)::INTEGER]"),
        col(
            10,
            "browser",
            "varchar",
            "VARCHAR",
            "['firefox', 'chrome', 'safari', 'edge'][1 + ((i // 3) % 4)::INTEGER]",
        ),
        col(
            11,
            "os",
            "varchar",
            "VARCHAR",
            "['linux', 'windows', 'macos', 'ios', 'android'][1 + ((i // 5) % 5)::INTEGER]",
        ),
        col(12, "duration_ms", "int32", "INTEGER", "(i * 7919) % 60000"),
        col(13, "scroll_pct", "int16", "SMALLINT", "(i * 13) % 101"),
        col(
            14,
            "revenue",
            "decimal(12,2)",
            "DECIMAL(12,2)",
            "CASE WHEN i % 6 = 5 THEN ((i * 37) % 10000) / 100.0 ELSE 0 END",
        ),
        col(15, "is_bot", "boolean", "BOOLEAN", "i % 97 = 0"),
        col(16, "campaign", "varchar", "VARCHAR", "CASE WHEN i % 5 = 0 THEN 'spring-' || (i % 12) ELSE NULL END"),
        col(17, "experiment", "varchar", "VARCHAR", "['A', 'B'][1 + (i % 2)::INTEGER]"),
        col(18, "latency_ms", "float64", "DOUBLE", "((i * 104729) % 100000) / 100.0"),
        col(19, "day", "date", "DATE", "DATE '2026-02-01' + (i // 86400)::INTEGER"),
        col(20, "payload", "varchar", "VARCHAR", "'{\"v\":' || (i % 1000) || '}'"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_drop_trailing_zeros_like_duckdb_and_postgres() {
        let at = |micros: i64| {
            chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("time") + chrono::Duration::microseconds(micros)
        };
        assert_eq!(timestamp_text(at(123_450)), "2026-05-28 20:26:40.12345+00");
        assert_eq!(timestamp_text(at(500_000)), "2026-05-28 20:26:40.5+00");
        assert_eq!(timestamp_text(at(0)), "2026-05-28 20:26:40+00");
        assert_eq!(timestamp_text(at(7)), "2026-05-28 20:26:40.000007+00");
    }
}
