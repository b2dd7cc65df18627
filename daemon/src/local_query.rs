//! Running SQL over a lake snapshot in an embedded DuckDB, reading files straight from a local
//! data root. Used by the demo and by `warmlake dev query`; the SQL socket builds on the same
//! views.

use crate::catalog::LakeSnapshot;
use crate::view_sql;

/// A query result rendered as text, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The query failed (in DuckDB, or because the lake is not on local disk).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the lake's data root {0} is not a local folder")]
    NotLocal(String),
    #[error("{0}")]
    DuckDb(#[from] duckdb::Error),
}

/// Runs `sql` against views of every table in `lake` (deletes applied, inlined rows included),
/// reading the files directly from the lake's local data root (a folder, or a `file://` store).
pub fn query_text(lake: &LakeSnapshot, sql: &str) -> Result<TextResult, QueryError> {
    let root = lake.data_root.strip_prefix("file://").unwrap_or(&lake.data_root).to_string();
    if root.contains("://") {
        return Err(QueryError::NotLocal(lake.data_root.clone()));
    }
    let script = view_sql::lake_script(lake, &|k| format!("{root}{k}"));
    script_query_text(&script, sql)
}

/// Runs a `lake.sql`-style script (for example the one in the mount), then `sql`.
pub fn script_query_text(script: &str, sql: &str) -> Result<TextResult, QueryError> {
    let db = duckdb::Connection::open_in_memory()?;
    db.execute_batch(script)?;
    // Cast every column to text in DuckDB itself, so values print exactly as DuckDB shows them.
    let mut stmt = db.prepare(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})"))?;
    let mut result = stmt.query([])?;
    let columns = result.as_ref().map(|s| s.column_names()).unwrap_or_default();
    let mut rows = Vec::new();
    while let Some(row) = result.next()? {
        let values = (0..columns.len())
            .map(|i| row.get::<_, Option<String>>(i).map(|v| v.unwrap_or_else(|| "NULL".into())))
            .collect::<Result<Vec<String>, _>>()?;
        rows.push(values);
    }
    Ok(TextResult { columns, rows })
}
