//! One client session: a DuckDB connection owned by a thread of its own, fed statements over
//! a channel, answering with a bounded stream of encoded rows. DuckDB never runs on the async
//! runtime, and a result is never held whole: the thread blocks while the client is slower
//! than DuckDB, with at most [`BATCHES_IN_FLIGHT`] batches (a DuckDB vector each, 2048 rows)
//! between them.

use std::sync::{Arc, Mutex};

use duckdb::core::LogicalTypeId;
use duckdb::types::Value;
use duckdb::{Connection, InterruptHandle};
use pgwire::api::results::FieldFormat;
use pgwire::messages::data::DataRow;
use tokio::sync::mpsc;

use super::encode::{self, Column};
use super::error::{CancelReason, QueryError};

/// Encoded batches queued between the session thread and the client connection.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Which wire format each result column uses (from the client's Bind).
#[derive(Debug, Clone)]
pub enum ResultFormats {
    Text,
    Binary,
    Each(Vec<i16>),
}

impl ResultFormats {
    fn get(&self, idx: usize) -> FieldFormat {
        match self {
            ResultFormats::Text => FieldFormat::Text,
            ResultFormats::Binary => FieldFormat::Binary,
            ResultFormats::Each(v) if v.len() == 1 => FieldFormat::from(v[0]),
            ResultFormats::Each(v) => v.get(idx).map_or(FieldFormat::Text, |f| FieldFormat::from(*f)),
        }
    }
}

/// What the session thread reports for one statement, in order: `Columns`, any number of
/// `Rows`, then `Done` — or `Failed` at any point.
#[derive(Debug)]
pub enum Event {
    Columns(Vec<Column>),
    Rows(Vec<DataRow>),
    Done,
    Failed(QueryError),
}

/// A statement for the session thread.
struct Job {
    sql: String,
    params: Vec<Value>,
    formats: ResultFormats,
    /// Only the columns are wanted (Describe): the query runs with `LIMIT 0` when it is a
    /// plain query, so nothing is computed.
    describe_only: bool,
    reply: mpsc::Sender<Event>,
}

/// Who is running now and why it was interrupted; shared with the cancel registry.
#[derive(Default)]
struct RunState {
    running: bool,
    canceled: Option<CancelReason>,
}

/// Interrupts a session's running statement (from a CancelRequest or a timeout).
#[derive(Clone)]
pub struct Canceler {
    interrupt: Arc<InterruptHandle>,
    state: Arc<Mutex<RunState>>,
}

impl Canceler {
    /// Interrupts the running statement, if any; between statements this does nothing,
    /// as in PostgreSQL.
    pub fn cancel(&self, reason: CancelReason) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.running {
            // the first reason is reported; every request interrupts again, in case an earlier
            // one reached DuckDB before the statement began (DuckDB clears it when one begins)
            state.canceled.get_or_insert(reason);
            self.interrupt.interrupt();
        }
    }

    /// Re-delivers a cancel that arrived before DuckDB began the statement.
    fn began(&self) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.canceled.is_some() {
            self.interrupt.interrupt();
        }
    }
}

/// The async side's handle on a session thread. Dropping it ends the thread once the
/// running statement (if any) stops.
pub struct Session {
    jobs: std::sync::mpsc::Sender<Job>,
    canceler: Canceler,
}

impl Session {
    /// Starts the session thread on `conn` (a clone of the engine's connection).
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let state = Arc::new(Mutex::new(RunState::default()));
        let canceler = Canceler { interrupt: conn.interrupt_handle(), state: state.clone() };
        let own = canceler.clone();
        std::thread::Builder::new().name("warmlake-sql-session".into()).spawn(move || {
            while let Ok(job) = rx.recv() {
                set_running(&state, true);
                let result = run(&conn, &job, || own.began());
                let canceled = set_running(&state, false);
                let event = match result {
                    Ok(()) => Event::Done,
                    Err(QueryError::DuckDb(_)) if canceled.is_some() => {
                        Event::Failed(QueryError::Canceled(canceled.unwrap_or(CancelReason::User)))
                    }
                    Err(e) => Event::Failed(e),
                };
                // the client may be gone; nothing more to do for this statement then
                let _ = job.reply.blocking_send(event);
            }
        })?;
        Ok(Self { jobs, canceler })
    }

    pub fn canceler(&self) -> Canceler {
        self.canceler.clone()
    }

    /// Runs `sql` and returns its events; the receiver is bounded, so the session thread
    /// waits while the receiver is not drained. Dropping the receiver stops the statement
    /// at its next batch.
    pub fn execute(
        &self,
        sql: String,
        params: Vec<Value>,
        formats: ResultFormats,
        describe_only: bool,
    ) -> Result<mpsc::Receiver<Event>, QueryError> {
        let (reply, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        self.jobs.send(Job { sql, params, formats, describe_only, reply }).map_err(|_| QueryError::SessionGone)?;
        Ok(rx)
    }
}

/// Marks the session running or idle; returns why the last statement was interrupted.
fn set_running(state: &Mutex<RunState>, running: bool) -> Option<CancelReason> {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.running = running;
    if running {
        s.canceled = None;
        None
    } else {
        s.canceled.take()
    }
}

/// Whether `sql` is a plain query that can be wrapped as a subquery (for `LIMIT 0`).
fn wrappable(sql: &str) -> bool {
    let first = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "SELECT" | "WITH" | "VALUES" | "FROM" | "TABLE")
}

/// Runs one job; `began` is called once DuckDB has begun the statement (before any row).
fn run(conn: &Connection, job: &Job, began: impl Fn()) -> Result<(), QueryError> {
    let sql = if job.describe_only && wrappable(&job.sql) {
        format!("SELECT * FROM ({}\n) LIMIT 0", job.sql)
    } else {
        job.sql.clone()
    };
    let mut stmt = conn.prepare(&sql)?;
    // DuckDB's own types (UUID, JSON, unsigned) are known before execution; Arrow's after
    let logical: Vec<LogicalTypeId> = (0..stmt.column_count()).map(|i| stmt.column_logical_type(i).id()).collect();
    let mut stream = stmt.stream_arrow(duckdb::params_from_iter(job.params.iter()))?;
    began();
    let schema = stream.get_schema();
    let columns: Vec<Column> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Column {
            name: f.name().clone(),
            pg_type: encode::pg_type(logical.get(i).copied().unwrap_or(LogicalTypeId::Invalid), f.data_type()),
            format: job.formats.get(i),
        })
        .collect();
    if job.reply.blocking_send(Event::Columns(columns.clone())).is_err() || job.describe_only {
        return Ok(());
    }
    for batch in &mut stream {
        let batch = batch?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        encode::encode_batch(&batch, &columns, |r| rows.push(r)).map_err(QueryError::Encode)?;
        if job.reply.blocking_send(Event::Rows(rows)).is_err() {
            // the client went away or stopped reading this result
            return Ok(());
        }
    }
    Ok(())
}
