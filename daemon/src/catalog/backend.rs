//! The seam between the catalog reader and the database that holds the catalog.
//!
//! A backend runs a SQL query and returns [`Row`]s, and lists the catalog's tables with their
//! columns in order. The reader never sees a backend's own value types.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::Path;

use super::row::{Row, Value};

/// A failure inside a catalog backend (driver error text, with the backend named). Driver
/// errors are boxed: they are large, and every catalog `Result` carries this type.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("duckdb: {0}")]
    DuckDb(Box<duckdb::Error>),
    #[error("sqlite: {0}")]
    Sqlite(Box<rusqlite::Error>),
    #[error("postgres: {}", super::postgres::pg_message(.0))]
    Postgres(Box<tokio_postgres::Error>),
    #[error("{0}")]
    Other(String),
}

impl From<duckdb::Error> for BackendError {
    fn from(e: duckdb::Error) -> Self {
        BackendError::DuckDb(Box::new(e))
    }
}

impl From<tokio_postgres::Error> for BackendError {
    fn from(e: tokio_postgres::Error) -> Self {
        BackendError::Postgres(Box::new(e))
    }
}

impl From<rusqlite::Error> for BackendError {
    fn from(e: rusqlite::Error) -> Self {
        BackendError::Sqlite(Box::new(e))
    }
}

/// Tables of a catalog, each with its columns in declaration order.
pub type TableColumns = BTreeMap<String, Vec<String>>;

/// `(table, column)` → the column's data type as the catalog's database names it (`BIGINT`,
/// `bytea`, or nothing for an untyped SQLite column).
pub type ColumnTypes = HashMap<(String, String), String>;

/// What [`Backend::query_each`] calls with each row; `Break` stops the query early.
pub type RowSink<'a> = &'a mut dyn FnMut(&Row) -> ControlFlow<()>;

/// One catalog database connection.
pub trait Backend: Send {
    /// Runs a query and returns all of its rows.
    fn query(&self, sql: &str) -> Result<Vec<Row>, BackendError>;
    /// Runs a query and hands its rows to `each` one at a time, never holding more than one:
    /// the mirror copies millions of rows this way. Default: all rows read first (a backend
    /// whose driver cannot stream).
    fn query_each(&self, sql: &str, each: RowSink<'_>) -> Result<(), BackendError> {
        for row in self.query(sql)? {
            if each(&row).is_break() {
                break;
            }
        }
        Ok(())
    }
    /// Every table whose name starts with `ducklake_`, with its columns in order, and their
    /// data types.
    fn table_columns(&self) -> Result<(TableColumns, ColumnTypes), BackendError>;
}

/// Every row of `sql`, gathered from a backend that streams them (`query_each`).
fn collect_rows(backend: &impl Backend, sql: &str) -> Result<Vec<Row>, BackendError> {
    let mut out = Vec::new();
    backend.query_each(sql, &mut |row| {
        out.push(row.clone());
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// A DuckDB-file catalog, opened read-only so warmlake can never change the lake's metadata.
pub struct DuckDbBackend {
    conn: duckdb::Connection,
}

impl DuckDbBackend {
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        if !path.exists() {
            return Err(BackendError::Other(format!("{} does not exist", path.display())));
        }
        let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?;
        Ok(DuckDbBackend { conn: duckdb::Connection::open_with_flags(path, config)? })
    }
}

fn duck_value(v: duckdb::types::Value) -> Value {
    use duckdb::types::Value as D;
    match v {
        D::Null => Value::Null,
        D::Boolean(b) => Value::Bool(b),
        D::TinyInt(i) => Value::Int(i.into()),
        D::SmallInt(i) => Value::Int(i.into()),
        D::Int(i) => Value::Int(i.into()),
        D::BigInt(i) => Value::Int(i),
        D::UTinyInt(i) => Value::Int(i.into()),
        D::USmallInt(i) => Value::Int(i.into()),
        D::UInt(i) => Value::Int(i.into()),
        D::UBigInt(i) => i64::try_from(i).map(Value::Int).unwrap_or_else(|_| Value::Text(i.to_string())),
        D::HugeInt(i) => i64::try_from(i).map(Value::Int).unwrap_or_else(|_| Value::Text(i.to_string())),
        D::Float(f) => Value::Float(f.into()),
        D::Double(f) => Value::Float(f),
        D::Text(s) => Value::Text(s),
        // inlined BLOB values, which the mirror copies as they are
        D::Blob(b) => Value::Bytes(b),
        // The reader casts everything else to VARCHAR (and types its NULLs: the duckdb crate
        // cannot return a value of the untyped NULL type); a value of another type here
        // is kept visible rather than silently dropped.
        other => Value::Text(format!("{other:?}")),
    }
}

impl Backend for DuckDbBackend {
    fn query(&self, sql: &str) -> Result<Vec<Row>, BackendError> {
        collect_rows(self, sql)
    }

    fn query_each(&self, sql: &str, each: RowSink<'_>) -> Result<(), BackendError> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        let mut values = Row(Vec::new());
        while let Some(row) = rows.next()? {
            values.0.clear();
            for i in 0..row.as_ref().column_count() {
                values.0.push(duck_value(row.get::<_, duckdb::types::Value>(i)?));
            }
            if each(&values).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn table_columns(&self) -> Result<(TableColumns, ColumnTypes), BackendError> {
        let rows = self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns \
             WHERE table_name LIKE 'ducklake\\_%' ESCAPE '\\' AND table_catalog = current_database() \
             ORDER BY table_name, ordinal_position",
        )?;
        Ok(group_columns(rows))
    }
}

/// A SQLite-file catalog, opened read-only.
pub struct SqliteBackend {
    conn: rusqlite::Connection,
}

impl SqliteBackend {
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(path, flags)?;
        // A writer may be committing a new snapshot right now: wait for its lock briefly
        // instead of failing the whole refresh.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteBackend { conn })
    }
}

impl Backend for SqliteBackend {
    fn query(&self, sql: &str) -> Result<Vec<Row>, BackendError> {
        collect_rows(self, sql)
    }

    fn query_each(&self, sql: &str, each: RowSink<'_>) -> Result<(), BackendError> {
        let mut stmt = self.conn.prepare(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut values = Row(Vec::with_capacity(n));
        while let Some(row) = rows.next()? {
            values.0.clear();
            for i in 0..n {
                use rusqlite::types::ValueRef as S;
                values.0.push(match row.get_ref(i)? {
                    S::Null => Value::Null,
                    S::Integer(v) => Value::Int(v),
                    S::Real(v) => Value::Float(v),
                    S::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    S::Blob(b) => Value::Bytes(b.to_vec()),
                });
            }
            if each(&values).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn table_columns(&self) -> Result<(TableColumns, ColumnTypes), BackendError> {
        let rows = self.query(
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name LIKE 'ducklake\\_%' ESCAPE '\\' ORDER BY m.name, p.cid",
        )?;
        Ok(group_columns(rows))
    }
}

/// Rows of `(table, column, data type)` as the tables' columns in order and their types.
pub(super) fn group_columns(rows: Vec<Row>) -> (TableColumns, ColumnTypes) {
    let (mut columns, mut types) = (TableColumns::new(), ColumnTypes::new());
    for row in rows {
        if let (Ok(table), Ok(column)) = (row.text(0), row.text(1)) {
            if let Ok(Some(t)) = row.opt_text(2) {
                types.insert((table.clone(), column.clone()), t);
            }
            columns.entry(table).or_default().push(column);
        }
    }
    (columns, types)
}
