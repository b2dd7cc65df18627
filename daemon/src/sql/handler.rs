//! The pgwire side of one client connection: startup (peer check, cancel key), the simple and
//! extended query protocols, and session commands. Statements go to the connection's
//! [`Session`] thread; rows come back as a stream of framed rows written as they arrive.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use duckdb::types::Value;
use futures::{Sink, SinkExt, Stream, StreamExt, stream};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_describe_response, send_query_response, send_ready_for_query,
};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::extendedquery::{Describe, Execute, TARGET_TYPE_BYTE_PORTAL};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::mpsc;

use super::auth::{self, CancelKeys, ScramPassword};
use super::copy::{self, CopyOut};
use super::cursor::{CursorError, CursorStatement, Cursors, OpenCursor};
use super::described::{self, Described};
use super::encode::{Column, Frames};
use super::error::{CancelReason, QueryError, fatal};
use super::params;
use super::pg_compat;
use super::reply::{Reply, Rows, send_reply};
use super::savepoint::{SavepointStatement, Savepoints};
use super::session::{Answer, Canceler, Event, Place, ResultFormats, Session, SessionCanceler};
use super::settings::Settings;
use super::statement::{self, Statement};
use super::wire::RawRows;

/// Sessions that a CancelRequest can reach, by (pid, secret key).
#[derive(Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<(i32, Vec<u8>), SessionCanceler>>,
}

impl CancelRegistry {
    fn insert(&self, key: (i32, Vec<u8>), canceler: SessionCanceler) {
        self.lock().insert(key, canceler);
    }

    fn remove(&self, key: &(i32, Vec<u8>)) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, Vec<u8>), SessionCanceler>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl CancelHandler for CancelRegistry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let canceler = self.lock().get(&key).cloned();
        if let Some(c) = canceler {
            c.cancel(CancelReason::User);
        }
    }
}

/// What every connection shares.
pub struct Shared {
    pub cancels: Arc<CancelRegistry>,
    pub pids: Arc<RandomPidSecretKeyGenerator>,
    /// `statement_timeout` of a new session (None: no limit).
    pub statement_timeout: Option<Duration>,
    /// The snapshot sessions currently see, for `SHOW warmlake.snapshot`.
    pub snapshot: Arc<std::sync::atomic::AtomicI64>,
}

/// A connection's cancel key, once startup has handed it out.
type CancelKey = Arc<Mutex<Option<(i32, Vec<u8>)>>>;

/// One connection's handlers. `session` is the refusal when the peer was refused: startup then
/// answers with a FATAL error and the connection ends before any query.
pub struct ClientHandler {
    shared: Arc<Shared>,
    session: Result<Session, String>,
    settings: Mutex<Settings>,
    described: Mutex<Described>,
    cursors: Mutex<Cursors>,
    savepoints: Mutex<Savepoints>,
    /// What interrupts the query of each portal read in parts, by portal name (until its
    /// transaction ends, as the portals do).
    portals: Mutex<HashMap<String, Canceler>>,
    cancel_key: CancelKey,
    /// Rows on their way to this connection's socket.
    raw: RawRows,
    /// Hands out the cancel key and registers it (None when there is no session to cancel).
    keys: Option<Arc<dyn PidSecretKeyGenerator>>,
    /// SCRAM-SHA-256 for TCP connections; None on the Unix socket, where the peer's uid was
    /// checked instead.
    scram: Option<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
}

impl ClientHandler {
    /// `password`: the connection came over TCP and must authenticate with it.
    pub fn new(shared: Arc<Shared>, session: Result<Session, String>, password: Option<Arc<ScramPassword>>) -> Self {
        let settings = Settings::new(shared.statement_timeout);
        let cancel_key = CancelKey::default();
        let keys = session.as_ref().ok().map(|s| -> Arc<dyn PidSecretKeyGenerator> {
            let (registry, canceler, slot) = (shared.cancels.clone(), s.canceler(), cancel_key.clone());
            Arc::new(CancelKeys {
                generator: shared.pids.clone(),
                on_key: move |pid: i32, secret: &SecretKey| {
                    let key = (pid, secret.to_bytes().to_vec());
                    registry.insert(key.clone(), canceler.clone());
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
                },
            })
        });
        let scram = keys.clone().zip(password).map(|(keys, password)| auth::scram_handler(password, keys));
        Self {
            shared,
            session,
            settings: Mutex::new(settings),
            described: Mutex::default(),
            cursors: Mutex::default(),
            savepoints: Mutex::default(),
            portals: Mutex::default(),
            cancel_key,
            raw: RawRows::default(),
            keys,
            scram,
        }
    }

    /// Where this connection's rows are queued for its socket.
    pub fn raw_rows(&self) -> RawRows {
        self.raw.clone()
    }

    /// Remembers the client's `application_name` for `SHOW`; nothing to validate.
    fn remember_application_name(&self, client: &impl ClientInfo) {
        if let Some(name) = client.metadata().get("application_name").cloned() {
            let _ = self.settings().set("application_name", Some(&name));
        }
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session(&self) -> Result<&Session, QueryError> {
        self.session.as_ref().map_err(|_| QueryError::SessionGone)
    }

    /// Runs one classified statement (a query at `place`; `in_transaction`: inside a
    /// transaction block) and says how to answer it.
    async fn respond(
        &self,
        stmt: &Statement,
        params: Vec<Value>,
        formats: ResultFormats,
        place: Place,
        in_transaction: bool,
    ) -> PgWireResult<Reply> {
        let other = |response| Ok(Reply::Other(response));
        match stmt {
            Statement::Query(sql) => Ok(Reply::Rows(self.query(sql, params, formats, place).await?)),
            Statement::Cursor(c) => self.cursor_statement(c, params, formats, in_transaction).await,
            Statement::Begin => other(Response::TransactionStart(Tag::new("BEGIN"))),
            Statement::Commit | Statement::Rollback => {
                self.cursors().end_transaction();
                self.portals().clear();
                self.savepoints().clear();
                let tag = if *stmt == Statement::Commit { "COMMIT" } else { "ROLLBACK" };
                other(Response::TransactionEnd(Tag::new(tag)))
            }
            Statement::BadCursor(e) => Err(e.clone().into()),
            Statement::Savepoint(s) => {
                if !in_transaction {
                    return Err(QueryError::OutsideTransaction(s.keyword()).into());
                }
                let tag = Tag::new(self.savepoints().apply(s)?);
                match s {
                    SavepointStatement::RollbackTo(_) => Ok(Reply::Recovered(tag)),
                    _ => other(Response::Execution(tag)),
                }
            }
            Statement::Set { name, value } => {
                self.settings().set(name, value.as_deref())?;
                other(Response::Execution(Tag::new("SET")))
            }
            Statement::Show(name) => {
                let snapshot = self.shared.snapshot.load(std::sync::atomic::Ordering::SeqCst);
                let value = self.settings().show(name, snapshot)?;
                Ok(Reply::Rows(Rows::single_text(name, &value)?))
            }
            Statement::Ignored(tag) => other(Response::Execution(Tag::new(tag))),
            Statement::CopyOut(c) => other(self.copy_out(c).await?),
            Statement::BadCopy(e) => Err(QueryError::from(e.clone()).into()),
            Statement::Refused(keyword) => Err(QueryError::Refused { keyword: keyword.clone() }.into()),
        }
    }

    /// The columns of a FETCH in `formats`: its cursor's.
    fn fetch_fields(&self, name: &str, formats: &ResultFormats) -> Result<Vec<FieldInfo>, QueryError> {
        Ok(self.cursors().get(name)?.fields(formats))
    }

    fn portals(&self) -> std::sync::MutexGuard<'_, HashMap<String, Canceler>> {
        self.portals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An Execute with a row limit (pgjdbc's fetch size): the client may run other statements
    /// between reads, so the portal's query runs as a cursor, started here so that what
    /// interrupts it is known. Each such Execute is then a read of it, timed by
    /// `statement_timeout` and reached by a CancelRequest; pgwire sends the rows and suspends
    /// the portal.
    async fn execute_in_parts<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let portal = match client.portal_store().get_portal(&name) {
            Some(Entry::Value(portal)) if matches!(client.state(), PgWireConnectionState::ReadyForQuery) => portal,
            _ => return self._on_execute(client, message).await,
        };
        if matches!(*portal.state().lock().await, PortalExecutionState::Initial) {
            client.set_state(PgWireConnectionState::QueryInProgress);
            let reply = self.run_portal(client, &portal, Place::Cursor).await;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            match reply? {
                Reply::Rows(rows) => {
                    self.remember_portal(client.portal_store(), &name, rows.source.clone());
                    portal.start(rows.into_query_response()).await;
                }
                // not rows: answered as pgwire's Execute would, the portal left as it was
                other => return send_reply(client, &self.raw, other, false).await,
            }
        }
        let _timer = self.reading_portal(&name)?;
        self._on_execute(client, message).await
    }

    /// Runs `portal`'s statement at `place`, with the portal's parameters and result formats.
    async fn run_portal(
        &self,
        client: &impl ClientInfo,
        portal: &Portal<Statement>,
        place: Place,
    ) -> PgWireResult<Reply> {
        let (params, formats) = (params::values(portal)?, result_formats(&portal.result_column_format));
        self.respond(&portal.statement.statement, params, formats, place, in_transaction(client)).await
    }

    /// Remembers what interrupts portal `name`'s query (`source`), forgetting portals closed or
    /// replaced meanwhile (named portals outside a transaction live until closed, so the end of
    /// a transaction is not the only place they go).
    fn remember_portal(&self, store: &impl PortalStore, name: &str, source: Option<Canceler>) {
        let mut portals = self.portals();
        portals.retain(|n, _| n != name && store.get_portal(n).is_some());
        if let Some(source) = source {
            portals.insert(name.to_owned(), source);
        }
    }

    /// An Execute is about to read portal `name`'s rows: [`ClientHandler::reading`] its query,
    /// if it was started in parts.
    fn reading_portal(&self, name: &str) -> Result<Option<TimerGuard>, QueryError> {
        let source = self.portals().get(name).cloned();
        Ok(source.map(|s| self.reading(&s)).transpose()?.flatten())
    }

    fn savepoints(&self) -> std::sync::MutexGuard<'_, Savepoints> {
        self.savepoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cursors(&self) -> std::sync::MutexGuard<'_, Cursors> {
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// DECLARE, FETCH, MOVE or CLOSE (see [`super::cursor`]).
    async fn cursor_statement(
        &self,
        statement: &CursorStatement,
        params: Vec<Value>,
        formats: ResultFormats,
        in_transaction: bool,
    ) -> PgWireResult<Reply> {
        let other = |response| Ok(Reply::Other(response));
        match statement {
            CursorStatement::Declare { name, query, binary, hold } => {
                if !*hold && !in_transaction {
                    return Err(QueryError::OutsideTransaction("DECLARE CURSOR").into());
                }
                if self.cursors().contains(name) {
                    return Err(CursorError::Exists(name.clone()).into());
                }
                let (columns, batches, canceler) = self.start_batches(pg_compat::rewrite(query), params).await?;
                let declared = if *binary { ResultFormats::Binary } else { formats };
                let cursor = OpenCursor::new(columns, batches, declared, *hold, canceler);
                self.cursors().insert(name.clone(), cursor)?;
                other(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            CursorStatement::Fetch { name, count, send: true } => {
                let cursor = self.cursors().get(name)?;
                let timer = self.reading(&cursor.canceler)?;
                Ok(Reply::Rows(cursor.fetch(*count, &formats, timer).await?))
            }
            CursorStatement::Fetch { name, count, send: false } => {
                let cursor = self.cursors().get(name)?;
                let _timer = self.reading(&cursor.canceler)?;
                let skipped = cursor.advance(*count).await?;
                other(Response::Execution(Tag::new("MOVE").with_rows(usize::try_from(skipped).unwrap_or(usize::MAX))))
            }
            CursorStatement::Close(name) => {
                self.cursors().close(name.as_deref())?;
                other(Response::Execution(Tag::new(if name.is_some() { "CLOSE CURSOR" } else { "CLOSE CURSOR ALL" })))
            }
        }
    }

    /// Runs the client's query `sql` at `place` and answers with its rows.
    async fn query(
        &self,
        sql: &str,
        params: Vec<Value>,
        formats: ResultFormats,
        place: Place,
    ) -> Result<Rows, QueryError> {
        let (columns, frames, canceler) = self.start(pg_compat::rewrite(sql), params, formats, place).await?;
        let fields = Arc::new(columns.iter().map(Column::field_info).collect::<Vec<_>>());
        Ok(Rows { fields, frames: frames.boxed(), command: "SELECT", source: Some(canceler) })
    }

    /// Runs the copied query and answers with its rows as COPY data.
    async fn copy_out(&self, copy: &CopyOut) -> Result<Response, QueryError> {
        let binary = copy.binary();
        let formats = if binary { ResultFormats::Binary } else { ResultFormats::Text };
        let (columns, frames, _) =
            self.start(pg_compat::rewrite(&copy.query), Vec::new(), formats, Place::Session).await?;
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let mut encoder = copy.encoder(copy::text_fields(&names));
        let header = if copy.header { Some(copy::header(&mut encoder, &names)?) } else { None };
        let lines =
            frames.map(move |frames| copy::lines(&mut encoder, frames?, binary)).flat_map(|lines| match lines {
                Ok(lines) => stream::iter(lines).map(Ok).left_stream(),
                Err(e) => stream::iter([Err(e)]).right_stream(),
            });
        let data = copy::with_header(header, lines);
        Ok(Response::CopyOut(CopyResponse::new(i8::from(binary), names.len(), data)))
    }

    /// Starts `sql` at `place` and returns its columns, its rows as a stream and what
    /// interrupts it. `statement_timeout` times a statement on the session's thread until its
    /// result is read; a cursor only until its columns are known: its result outlives the
    /// statement that opened it, and each FETCH is timed instead.
    async fn start(
        &self,
        sql: String,
        params: Vec<Value>,
        formats: ResultFormats,
        place: Place,
    ) -> Result<(Vec<Column>, impl Stream<Item = PgWireResult<Frames>> + Send + 'static, Canceler), QueryError> {
        let (columns, rx, canceler, timer) = self.begin(sql, params, Answer::Rows(formats), place).await?;
        let timer = if place == Place::Session { timer } else { None };
        Ok((columns, row_stream(rx, timer), canceler))
    }

    /// Sends `sql` to run at `place` and waits for its columns, timed by `statement_timeout`
    /// from here: the one way a statement starts. Returns the columns, the rest of its events,
    /// what interrupts it and the running timer (dropping it stops the timing).
    async fn begin(
        &self,
        sql: String,
        params: Vec<Value>,
        answer: Answer,
        place: Place,
    ) -> Result<(Vec<Column>, mpsc::Receiver<Event>, Canceler, Option<TimerGuard>), QueryError> {
        let (mut rx, canceler) = self.session()?.execute(sql, params, answer, place).await?;
        let timer = self.timer(&canceler);
        let columns = first_columns(&mut rx).await?;
        Ok((columns, rx, canceler, timer))
    }

    /// Starts a SQL cursor's query: its columns, its Arrow batches (each FETCH encodes what it
    /// reads in its own formats) and what interrupts it; timed until its columns are known.
    async fn start_batches(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<(Vec<Column>, impl Stream<Item = Result<RecordBatch, QueryError>> + Send + 'static, Canceler), QueryError>
    {
        let (columns, rx, canceler, _timed_until_here) =
            self.begin(sql, params, Answer::Batches, Place::Cursor).await?;
        let batches = stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Some(Event::Batch(batch)) => Some((Ok(batch), rx)),
                Some(Event::Failed(e)) => Some((Err(e), rx)),
                Some(Event::Columns(_) | Event::Rows(_) | Event::Done) | None => None,
            }
        });
        Ok((columns, batches, canceler))
    }

    /// Interrupts through `canceler` once `statement_timeout` (if set) has passed, unless
    /// dropped before.
    fn timer(&self, canceler: &Canceler) -> Option<TimerGuard> {
        let canceler = canceler.clone();
        self.settings().statement_timeout().map(|t| {
            TimerGuard(tokio::spawn(async move {
                tokio::time::sleep(t).await;
                canceler.cancel(CancelReason::Timeout);
            }))
        })
    }

    /// A FETCH, MOVE or Execute is about to read the result of a query that outlives the
    /// statement that started it (`source` interrupts it): a CancelRequest now reaches that
    /// query, and `statement_timeout` times this read.
    fn reading(&self, source: &Canceler) -> Result<Option<TimerGuard>, QueryError> {
        self.session()?.running(source);
        Ok(self.timer(source))
    }

    /// The columns a statement would return, without running it to completion; answered
    /// from the session's [`Described`] while the views are those it was described on.
    async fn describe(
        &self,
        sql: &str,
        params: Vec<Value>,
        formats: ResultFormats,
    ) -> Result<Vec<FieldInfo>, QueryError> {
        let generation = self.session()?.views_generation();
        let key = described::Key::new(sql, &params, &formats);
        if let Some(fields) = self.described().get(&key, generation) {
            return Ok(fields);
        }
        let (columns, ..) = self.begin(sql.to_owned(), params, Answer::Columns(formats), Place::Session).await?;
        let fields: Vec<FieldInfo> = columns.iter().map(Column::field_info).collect();
        self.described().put(key, generation, fields.clone());
        Ok(fields)
    }

    fn described(&self) -> std::sync::MutexGuard<'_, Described> {
        self.described.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ClientHandler {
    fn drop(&mut self) {
        if let Some(key) = self.cancel_key.lock().unwrap_or_else(|e| e.into_inner()).take() {
            self.shared.cancels.remove(&key);
        }
    }
}

/// Aborts the statement timer when the statement's result is finished or dropped.
struct TimerGuard(tokio::task::JoinHandle<()>);

impl Drop for TimerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn first_columns(rx: &mut mpsc::Receiver<Event>) -> Result<Vec<Column>, QueryError> {
    match rx.recv().await {
        Some(Event::Columns(c)) => Ok(c),
        Some(Event::Failed(e)) => Err(e),
        Some(Event::Rows(_) | Event::Batch(_) | Event::Done) | None => Err(QueryError::SessionGone),
    }
}

/// The rows of a result, in order, as the session thread produces them.
fn row_stream(
    rx: mpsc::Receiver<Event>,
    timer: Option<TimerGuard>,
) -> impl Stream<Item = PgWireResult<Frames>> + Send + 'static {
    stream::unfold((rx, timer), |(mut rx, timer)| async move {
        match rx.recv().await {
            Some(Event::Rows(frames)) => Some((Ok(frames), (rx, timer))),
            Some(Event::Failed(e)) => Some((Err(PgWireError::from(e)), (rx, timer))),
            Some(Event::Columns(_) | Event::Batch(_) | Event::Done) | None => None,
        }
    })
}

fn result_formats(f: &Format) -> ResultFormats {
    match f {
        Format::UnifiedText => ResultFormats::Text,
        Format::UnifiedBinary => ResultFormats::Binary,
        Format::Individual(v) => ResultFormats::Each(v.clone()),
    }
}

#[async_trait]
impl StartupHandler for ClientHandler {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(scram) = &self.scram {
            scram.on_startup(client, message).await?;
            self.remember_application_name(client);
            return Ok(());
        }
        let PgWireFrontendMessage::Startup(ref startup) = message else { return Ok(()) };
        let keys = match (&self.session, &self.keys) {
            (Ok(_), Some(keys)) => keys,
            (Err(refusal), _) => return Err(fatal("28000", refusal.clone())),
            (Ok(_), None) => return Err(QueryError::SessionGone.into()),
        };
        protocol_negotiation(client, startup).await?;
        save_startup_parameters_to_metadata(client, startup);
        let (pid, secret) = keys.generate(client);
        client.set_pid_and_secret_key(pid, secret);
        self.remember_application_name(client);
        finish_authentication(client, &auth::server_parameters()).await
    }
}

#[async_trait]
impl SimpleQueryHandler for ClientHandler {
    /// Statement by statement, each answered before the next starts: a result is streamed,
    /// so the next statement's columns cannot be known before it has been sent.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let statements = statement::split(&query.query);
        if statements.is_empty() {
            client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
        }
        for sql in statements {
            let in_transaction = in_transaction(client);
            let stmt = statement::classify(sql);
            let reply = self.respond(&stmt, Vec::new(), ResultFormats::Text, Place::Session, in_transaction).await?;
            send_reply(client, &self.raw, reply, true).await?;
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        let status = client.transaction_status();
        send_ready_for_query(client, status).await
    }

    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // only reached when `on_query` is bypassed: answer the first statement
        let sql = statement::split(query).first().map(|s| (*s).to_owned()).unwrap_or_default();
        let stmt = statement::classify(&sql);
        Ok(vec![pgwire_response(self.respond(&stmt, Vec::new(), ResultFormats::Text, Place::Session, false).await?)])
    }
}

/// Whether the client is inside a transaction block (or a failed one).
fn in_transaction(client: &impl ClientInfo) -> bool {
    client.transaction_status() != TransactionStatus::Idle
}

/// A reply as pgwire's own response, for what pgwire sends itself.
fn pgwire_response(reply: Reply) -> Response {
    match reply {
        Reply::Rows(rows) => Response::Query(rows.into_query_response()),
        // pgwire has no response that leaves a failed transaction
        Reply::Recovered(tag) => Response::Execution(tag),
        Reply::Other(response) => response,
    }
}

/// Parses a Parse message's SQL: exactly one statement, classified.
pub struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = Statement;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = statement::split(sql);
        match statements.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(statement::classify(one))),
            _ => Err(QueryError::MultipleStatements.into()),
        }
    }

    fn get_parameter_types(&self, _stmt: &Statement) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(&self, _stmt: &Statement, _f: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl ExtendedQueryHandler for ClientHandler {
    type Statement = Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser)
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let types = params::described(target);
        let count = types.len();
        let fields = match &target.statement {
            Statement::Query(sql) => {
                self.describe(&pg_compat::rewrite(sql), vec![Value::Null; count], ResultFormats::Text).await?
            }
            Statement::Show(name) => vec![FieldInfo::new(name.clone(), None, None, Type::TEXT, FieldFormat::Text)],
            Statement::Cursor(CursorStatement::Fetch { name, send: true, .. }) => {
                self.fetch_fields(name, &ResultFormats::Text)?
            }
            _ => Vec::new(),
        };
        Ok(DescribeStatementResponse::new(types, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let formats = result_formats(&portal.result_column_format);
        let fields = match &portal.statement.statement {
            Statement::Query(sql) => self.describe(&pg_compat::rewrite(sql), params::values(portal)?, formats).await?,
            Statement::Show(name) => vec![FieldInfo::new(name.clone(), None, None, Type::TEXT, FieldFormat::Text)],
            Statement::Cursor(CursorStatement::Fetch { name, send: true, .. }) => self.fetch_fields(name, &formats)?,
            _ => Vec::new(),
        };
        Ok(DescribePortalResponse::new(fields))
    }

    /// A declared cursor is a portal too (PostgreSQL's SQL cursors are): psycopg describes its
    /// named cursors by their name after DECLARE. Other describes take pgwire's path.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let cursor = match (&message.name, message.target_type) {
            (Some(name), TARGET_TYPE_BYTE_PORTAL) if client.portal_store().get_portal(name).is_none() => {
                self.cursors().get(name).ok()
            }
            _ => None,
        };
        match cursor {
            Some(cursor) => {
                let fields = cursor.fields(&cursor.declared);
                send_describe_response(client, &DescribePortalResponse::new(fields)).await
            }
            None => self._on_describe(client, message).await,
        }
    }

    /// Only reached if pgwire starts a portal itself, which `on_execute` leaves it no case
    /// for; answered the same way (a row limit: the query runs as a cursor).
    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Statement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let place = if max_rows == 0 { Place::Session } else { Place::Cursor };
        Ok(pgwire_response(self.run_portal(client, portal, place).await?))
    }

    /// Streams a query's (or a FETCH's) rows as DuckDB produces them when the client asks for
    /// all of them (`max_rows` 0, what psycopg, tokio-postgres and most drivers send): pgwire's
    /// own Execute collects every remaining row of a portal before sending the first, which
    /// would hold a whole result in memory. Other statements are answered as pgwire would;
    /// row-limited Executes are [`ClientHandler::execute_in_parts`]; empty or finished portals
    /// take pgwire's path.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.max_rows != 0 {
            return self.execute_in_parts(client, message).await;
        }
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return self._on_execute(client, message).await;
        }
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let Some(Entry::Value(portal)) = client.portal_store().get_portal(name) else {
            return self._on_execute(client, message).await;
        };
        let state = portal.state();
        let mut state = state.lock().await;
        match std::mem::take(&mut *state) {
            // the rest of a portal read in parts so far: pgwire's rows
            PortalExecutionState::Suspended(results) => {
                *state = PortalExecutionState::Finished;
                let _timer = self.reading_portal(name)?;
                send_query_response(client, results, false).await?;
            }
            PortalExecutionState::Initial => {
                client.set_state(PgWireConnectionState::QueryInProgress);
                let reply = self.run_portal(client, &portal, Place::Session).await?;
                // not rows: answered as pgwire's Execute would, the portal left as it was
                if matches!(reply, Reply::Rows(_)) {
                    *state = PortalExecutionState::Finished;
                }
                send_reply(client, &self.raw, reply, false).await?;
            }
            finished @ PortalExecutionState::Finished => {
                *state = finished;
                drop(state);
                return self._on_execute(client, message).await;
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}
