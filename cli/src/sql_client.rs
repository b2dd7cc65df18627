//! Talking to the SQL socket as a real PostgreSQL client would (`warmlake query`, the demo),
//! and printing results as aligned tables (also `warmlake dev query`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use warmlake_daemon::local_query::TextResult;

/// The socket's folder and port, from its libpq name `<dir>/.s.PGSQL.<port>`.
pub fn psql_target(socket: &Path) -> anyhow::Result<(PathBuf, u16)> {
    let port = socket
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(".s.PGSQL."))
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("{} is not a PostgreSQL socket name", socket.display()))?;
    let dir = socket.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((dir, port))
}

/// A query's answer as text, with SQL NULL kept apart from the string `'NULL'`.
#[derive(Debug)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryResult {
    /// For [`render_table`]: NULL printed as `NULL`, as psql's `\pset null NULL` would.
    pub fn text(self) -> TextResult {
        let rows = self.rows.into_iter().map(|r| r.into_iter().map(|v| v.unwrap_or_else(|| "NULL".into())).collect());
        TextResult { columns: self.columns, rows: rows.collect() }
    }
}

/// Runs `sql` through the SQL socket `<dir>/.s.PGSQL.<port>` with tokio-postgres (simple
/// query protocol, text results). Several statements answer with the last one's rows.
pub async fn sql_query(dir: &Path, port: u16, sql: &str) -> anyhow::Result<QueryResult> {
    let mut config = tokio_postgres::Config::new();
    config.host_path(dir).port(port).dbname("lake").user("warmlake");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.context("connecting to the SQL socket")?;
    let driver = tokio::spawn(connection);
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let messages = client.simple_query(sql).await.map_err(|e| match e.as_db_error() {
        // The server's own message (with its hint) is what the user needs, not the wrapper's.
        Some(db) => anyhow::anyhow!("{}: {}", db.severity(), db.message()),
        None => anyhow::Error::new(e).context("querying the SQL socket"),
    })?;
    for message in messages {
        match message {
            tokio_postgres::SimpleQueryMessage::RowDescription(cols) => {
                columns = cols.iter().map(|c| c.name().to_string()).collect();
                rows.clear();
            }
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                rows.push((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect());
            }
            _ => {}
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(QueryResult { columns, rows })
}

/// Renders a result as an aligned text table.
pub fn render_table(result: &TextResult) -> String {
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &result.rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(&result.columns);
    out.push_str(&format!("{}\n", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")));
    for row in &result.rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!("({} rows)\n", result.rows.len()));
    out
}
