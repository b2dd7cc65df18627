//! PostgreSQL catalogs, through `tokio-postgres` behind the synchronous [`Backend`] seam.
//!
//! # Threading
//!
//! The catalog reader is synchronous (DuckDB and SQLite are blocking libraries), while
//! `tokio-postgres` is async. Each [`PgClient`] therefore owns one small current-thread tokio
//! runtime on a dedicated thread, which drives the connection; callers hand it SQL over a channel
//! and wait for the answer. Calling `Runtime::block_on` in the caller's thread instead would
//! panic whenever the caller is itself inside a runtime, and a panic in the daemon is worse
//! than a thread per open catalog. A call still *blocks* its thread until the server answers, so
//! async code should call the reader from `spawn_blocking`, as it does for DuckDB and SQLite.
//!
//! # Values
//!
//! Queries go over the simple-query protocol, which returns every value in PostgreSQL's own text
//! form, and every non-NULL value becomes [`Value::Text`]. That is deliberate: the reader's SQL
//! casts UUIDs, timestamps and inlined values to `VARCHAR` anyway, the [`Row`] accessors parse
//! integers from text and accept PostgreSQL's `t`/`f` booleans, and text needs no per-type
//! binary decoding (numeric, timestamptz, uuid would each need a decoder or an extra crate
//! feature). The simple protocol also prepares nothing on the server, so it works through
//! connection poolers in transaction mode. Only SQL built by warmlake is sent, never user text
//! (the reader interpolates validated identifiers and integers, and escapes literals).
//!
//! # Schemas
//!
//! The DuckLake extension can keep a PostgreSQL catalog in a schema of its own (its
//! `METADATA_SCHEMA` option). The reader names catalog tables unqualified, so they are found
//! through the session's `search_path`: put `options=-csearch_path=SCHEMA` in the connection
//! string (URL form: `?options=-csearch_path%3DSCHEMA`). Tables are listed from
//! `current_schema()`, the first schema of the search path that exists.
//!
//! TLS is not available in this build (no TLS connector is linked): `sslmode=prefer`, the
//! default, connects in plain text, and `sslmode=require` fails with a clear error.

use std::sync::mpsc;
use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use super::backend::{Backend, BackendError, ColumnTypes, TableColumns, group_columns};
use super::row::{Row, Value};

/// How long connecting (TCP or socket, startup, authentication, session settings) may take when
/// the connection string sets no `connect_timeout`. A catalog server that is down must show up
/// as an unreachable catalog within seconds, not hang a refresh.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Session settings for reading: timestamps printed in UTC and ISO form, as DuckDB prints them,
/// so the same catalog reads back the same text from every backend; and a read-only session, so
/// warmlake can never change the lake's metadata (the DuckDB and SQLite files are opened
/// read-only for the same reason).
const READ_SESSION: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
                            SET default_transaction_read_only = on";

/// One request to the client thread: SQL, and where to send the rows.
struct Request {
    sql: String,
    reply: mpsc::SyncSender<Result<Vec<Row>, BackendError>>,
}

/// A blocking PostgreSQL session: one connection, driven by its own thread (see the module
/// documentation). Dropping it closes the connection and joins the thread.
pub(crate) struct PgClient {
    requests: Option<tokio::sync::mpsc::UnboundedSender<Request>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl PgClient {
    /// Connects with a libpq connection string or URL and runs `session_sql` (settings) once.
    ///
    /// Errors never contain the password: they come from the driver, which does not echo the
    /// connection string.
    pub(crate) fn connect(conn: &str, session_sql: &str) -> Result<Self, BackendError> {
        let mut config: tokio_postgres::Config = conn.parse()?;
        let timeout = config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        config.connect_timeout(timeout);
        if config.get_application_name().is_none() {
            config.application_name("warmlake");
        }
        let (requests, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let session_sql = session_sql.to_string();
        let worker = std::thread::Builder::new()
            .name("warmlake-postgres".into())
            .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(serve(config, timeout, session_sql, ready_tx, inbox)),
                Err(e) => {
                    let _ = ready_tx
                        .send(Err(BackendError::Other(format!("cannot start the PostgreSQL client runtime: {e}"))));
                }
            })
            .map_err(|e| BackendError::Other(format!("cannot start the PostgreSQL client thread: {e}")))?;
        let client = PgClient { requests: Some(requests), worker: Some(worker) };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            // The thread ended without a word: it panicked. Dropping `client` reaps it.
            Err(_) => Err(closed()),
        }
    }

    /// Runs SQL (one statement, or several separated by `;`) and returns the rows of all of them.
    pub(crate) fn query(&self, sql: &str) -> Result<Vec<Row>, BackendError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let requests = self.requests.as_ref().ok_or_else(closed)?;
        requests.send(Request { sql: sql.to_string(), reply }).map_err(|_| closed())?;
        answer.recv().map_err(|_| closed())?
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; it is idle (no call is in flight while
        // we hold `&mut self`), so the join returns as soon as the connection is closed.
        self.requests = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn closed() -> BackendError {
    BackendError::Other("the PostgreSQL connection is closed".into())
}

/// The client thread: connect, report readiness, then answer requests until the channel closes.
async fn serve(
    config: tokio_postgres::Config,
    timeout: Duration,
    session_sql: String,
    ready: mpsc::SyncSender<Result<(), BackendError>>,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Request>,
) {
    // The driver's `connect_timeout` covers only opening the socket; a server that accepts and
    // then says nothing is caught by this outer limit on the whole handshake.
    let setup = async {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %pg_message(&e), "PostgreSQL catalog connection failed");
            }
        });
        client.batch_execute(&session_sql).await?;
        Ok::<_, tokio_postgres::Error>((client, driver))
    };
    let (client, driver) = match tokio::time::timeout(timeout, setup).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
        Err(_) => {
            let _ = ready.send(Err(BackendError::Other(format!(
                "no answer from the PostgreSQL server within {} s (connect_timeout)",
                timeout.as_secs_f32()
            ))));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    while let Some(request) = inbox.recv().await {
        let result = client.simple_query(&request.sql).await.map(text_rows).map_err(BackendError::from);
        let _ = request.reply.send(result);
    }
    drop(client);
    let _ = driver.await;
}

/// The data rows of a simple-query answer, every value as text (see the module documentation).
fn text_rows(messages: Vec<SimpleQueryMessage>) -> Vec<Row> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some(Row((0..r.len()).map(|i| r.get(i).map_or(Value::Null, |s| Value::Text(s.to_string()))).collect()))
            }
            _ => None,
        })
        .collect()
}

/// A driver error with its cause: `tokio_postgres::Error` displays only its kind ("db error",
/// "error connecting to server"); the server's message or the I/O error is its source.
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" ({detail})"));
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A catalog in a PostgreSQL database, read through a read-only session.
pub struct PostgresBackend {
    client: PgClient,
}

impl PostgresBackend {
    /// Connects with a libpq connection string (`host=... dbname=...`) or URL
    /// (`postgresql://user@host/db`). See the module documentation for schemas and timeouts.
    pub fn connect(conn: &str) -> Result<Self, BackendError> {
        Ok(PostgresBackend { client: PgClient::connect(conn, READ_SESSION)? })
    }
}

impl Backend for PostgresBackend {
    fn query(&self, sql: &str) -> Result<Vec<Row>, BackendError> {
        self.client.query(sql)
    }

    fn table_columns(&self) -> Result<(TableColumns, ColumnTypes), BackendError> {
        let rows = self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name LIKE 'ducklake\\_%' ESCAPE '\\' \
             ORDER BY table_name, ordinal_position",
        )?;
        Ok(group_columns(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_connection_string_is_an_error_not_a_panic() {
        let err = PgClient::connect("host=/tmp port=notaport", READ_SESSION).err().expect("refused");
        assert!(err.to_string().contains("invalid connection string"), "{err}");
    }
}
