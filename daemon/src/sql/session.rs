//! One client session: a DuckDB connection owned by a thread of its own, fed statements over
//! a channel, answering with a bounded stream of encoded rows. DuckDB never runs on the async
//! runtime, and a result is never held whole: the thread blocks while the client is slower
//! than DuckDB, with at most [`BATCHES_IN_FLIGHT`] batches (a DuckDB vector each, 2048 rows)
//! between them.
//!
//! A result the client reads in parts (a portal executed with a row limit, as pgjdbc does with
//! a fetch size) stays open while the client runs other statements, so it cannot hold the
//! session's thread: it runs as a *cursor*, on a connection and thread of its own that end
//! with it (at most [`MAX_CURSORS`] open at once).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use duckdb::core::LogicalTypeId;
use duckdb::types::Value;
use duckdb::{Connection, InterruptHandle};
use pgwire::api::results::FieldFormat;
use tokio::sync::mpsc;

use super::encode::{self, Column, Frames};
use super::engine::Engine;
use super::error::{CancelReason, QueryError};

/// Encoded batches queued between the session thread and the client connection.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Cursors one session may hold open (each is a DuckDB connection, a thread and up to
/// [`BATCHES_IN_FLIGHT`] batches).
pub const MAX_CURSORS: usize = 16;

/// Where a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On the session's thread: the result is read to its end (or dropped) before the next
    /// statement runs.
    Session,
    /// As a cursor: the result may stay open while other statements run.
    Cursor,
}

/// Which wire format each result column uses (from the client's Bind).
#[derive(Debug, Clone, PartialEq)]
pub enum ResultFormats {
    Text,
    Binary,
    Each(Vec<i16>),
}

impl ResultFormats {
    /// The format of result column `idx`.
    pub fn get(&self, idx: usize) -> FieldFormat {
        match self {
            ResultFormats::Text => FieldFormat::Text,
            ResultFormats::Binary => FieldFormat::Binary,
            ResultFormats::Each(v) if v.len() == 1 => FieldFormat::from(v[0]),
            ResultFormats::Each(v) => v.get(idx).map_or(FieldFormat::Text, |f| FieldFormat::from(*f)),
        }
    }
}

/// What the session thread reports for one statement, in order: `Columns`, any number of
/// `Rows` (or `Batch`es), then `Done` — or `Failed` at any point.
#[derive(Debug)]
pub enum Event {
    Columns(Vec<Column>),
    Rows(Frames),
    Batch(RecordBatch),
    Done,
    Failed(QueryError),
}

/// What a statement answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Its rows, encoded in these formats.
    Rows(ResultFormats),
    /// Only its columns, announced in these formats (Describe): a plain query runs with
    /// `LIMIT 0`, so nothing is computed.
    Columns(ResultFormats),
    /// Its rows as DuckDB's Arrow batches, encoded later in whatever format each read asks
    /// for (a SQL cursor: each FETCH names its own formats).
    Batches,
}

/// A statement for the session thread.
struct Job {
    sql: String,
    params: Vec<Value>,
    answer: Answer,
    reply: mpsc::Sender<Event>,
}

/// Who is running now and why it was interrupted; shared with the cancel registry.
#[derive(Default)]
struct RunState {
    running: bool,
    canceled: Option<CancelReason>,
}

/// Interrupts one connection's running statement (from a CancelRequest or a timeout).
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

/// The async side's handle on a session. Dropping it ends its threads once their running
/// statements (if any) stop.
pub struct Session {
    thread: Worker,
    engine: Arc<Engine>,
    /// The statement started last: what a CancelRequest interrupts.
    latest: Arc<Mutex<Canceler>>,
    /// Cursors whose threads are still running.
    cursors: Arc<AtomicUsize>,
}

impl Session {
    /// Starts the session's thread on `conn` (a clone of `engine`'s connection); cursors get
    /// connections of their own from `engine`.
    pub fn start(engine: Arc<Engine>, conn: Connection) -> std::io::Result<Self> {
        let thread = Worker::start(conn, None)?;
        let latest = Arc::new(Mutex::new(thread.canceler.clone()));
        Ok(Self { thread, engine, latest, cursors: Arc::default() })
    }

    /// Counts publishes of the lake's views (see [`Engine::generation`]).
    pub fn views_generation(&self) -> u64 {
        self.engine.generation()
    }

    /// Makes `canceler`'s statement the one a CancelRequest interrupts (a cursor being read).
    pub fn running(&self, canceler: &Canceler) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = canceler.clone();
    }

    /// Interrupts whichever statement the session started or resumed last (a CancelRequest's
    /// target).
    pub fn canceler(&self) -> SessionCanceler {
        SessionCanceler(self.latest.clone())
    }

    /// Runs `sql` at `place` and returns its events, and what interrupts it; the receiver is
    /// bounded, so DuckDB waits while the receiver is not drained. Dropping the receiver stops
    /// the statement at its next batch.
    pub async fn execute(
        &self,
        sql: String,
        params: Vec<Value>,
        answer: Answer,
        place: Place,
    ) -> Result<(mpsc::Receiver<Event>, Canceler), QueryError> {
        let (reply, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let job = Job { sql, params, answer, reply };
        let canceler = match place {
            Place::Session => {
                self.thread.jobs.send(job).map_err(|_| QueryError::SessionGone)?;
                self.thread.canceler.clone()
            }
            Place::Cursor => {
                let guard = CursorGuard::take(&self.cursors).ok_or(QueryError::TooManyCursors(MAX_CURSORS))?;
                let engine = self.engine.clone();
                let conn = tokio::task::spawn_blocking(move || engine.connect())
                    .await
                    .map_err(|_| QueryError::SessionGone)?
                    .map_err(|e| QueryError::CursorOpen(e.to_string()))?;
                // the worker's thread runs this one job: its sender is dropped here
                let worker = Worker::start(conn, Some(guard)).map_err(|e| QueryError::CursorOpen(e.to_string()))?;
                worker.jobs.send(job).map_err(|_| QueryError::SessionGone)?;
                worker.canceler
            }
        };
        self.running(&canceler);
        Ok((rx, canceler))
    }
}

/// What a CancelRequest reaches: the statement its session started last, as in PostgreSQL,
/// where a cancel interrupts what the backend is running.
#[derive(Clone)]
pub struct SessionCanceler(Arc<Mutex<Canceler>>);

impl SessionCanceler {
    pub fn cancel(&self, reason: CancelReason) {
        let latest = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        latest.cancel(reason);
    }
}

/// A DuckDB connection on a thread of its own, running the jobs sent to it until its sender
/// is dropped.
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
    canceler: Canceler,
}

impl Worker {
    /// Starts the thread; a cursor's `guard` is released when the thread ends.
    fn start(conn: Connection, guard: Option<CursorGuard>) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let state = Arc::new(Mutex::new(RunState::default()));
        let canceler = Canceler { interrupt: conn.interrupt_handle(), state: state.clone() };
        let own = canceler.clone();
        std::thread::Builder::new().name("warmlake-sql-session".into()).spawn(move || {
            let _guard = guard;
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
}

/// One open cursor of a session, counted while its thread runs.
struct CursorGuard(Arc<AtomicUsize>);

impl CursorGuard {
    /// Counts a new cursor, or None when the session has [`MAX_CURSORS`] open.
    fn take(open: &Arc<AtomicUsize>) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_CURSORS).then_some(n + 1)).ok()?;
        Some(Self(open.clone()))
    }
}

impl Drop for CursorGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
    let describe_only = matches!(job.answer, Answer::Columns(_));
    let sql = if describe_only && wrappable(&job.sql) {
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
        .map(|(i, f)| {
            let format = match &job.answer {
                Answer::Rows(formats) | Answer::Columns(formats) => formats.get(i),
                Answer::Batches => FieldFormat::Text,
            };
            let logical = logical.get(i).copied().unwrap_or(LogicalTypeId::Invalid);
            Column::of(f.name().clone(), logical, f.data_type(), format)
        })
        .collect();
    if job.reply.blocking_send(Event::Columns(columns.clone())).is_err() || describe_only {
        return Ok(());
    }
    for batch in &mut stream {
        let batch = batch?;
        let event = if job.answer == Answer::Batches {
            Event::Batch(batch)
        } else {
            Event::Rows(encode::encode_batch(&batch, &columns).map_err(QueryError::Encode)?)
        };
        if job.reply.blocking_send(event).is_err() {
            // the client went away or stopped reading this result
            return Ok(());
        }
    }
    Ok(())
}
