//! The daemon's side of the control socket.
//!
//! One task accepts connections; each connection gets a task that runs its requests in turn,
//! and a reader task that turns the socket into lines (so waiting for a line can be raced
//! against a running request's events without losing half-read input). Requests run on
//! blocking threads: every daemon call they make (refresh, evict, policy reload) may block on
//! the catalog, the disk or the store.
//!
//! Shutdown follows the daemon's pattern: one token, waited for. [`ControlServer::stop`] cancels
//! it, which stops accepting, asks running requests to stop early (through their
//! [`Exchange`]), and waits until every connection task has ended, so the daemon can take back
//! sole ownership of itself before it unmounts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warmlake_fuse_mount::{NodeKind, Tree as _, TreeError, TreePath};

use super::{ControlError, ErrorReply, MAX_LINE, PROTOCOL_VERSION, Request, Response, socket_path};
use crate::daemon::Daemon;
use crate::mirror::create_private_dir;

/// Progress events a request may have queued before it waits for the client to read them:
/// enough to smooth bursts, small enough that a stalled client stalls the request, not memory.
const EVENT_QUEUE: usize = 64;

/// The running control socket. [`ControlServer::stop`] ends it; dropping it without stopping
/// leaves its tasks to end with the runtime.
pub struct ControlServer {
    path: PathBuf,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl ControlServer {
    /// Binds `<state_dir>/control.sock` (0600) and serves `daemon` on it. Must be called
    /// inside a tokio runtime. A socket left by a daemon that died is replaced; one that a
    /// live daemon answers on is not.
    pub fn start(daemon: Arc<Daemon>, state_dir: &Path) -> Result<ControlServer, ControlError> {
        let path = socket_path(state_dir);
        let io = |source| ControlError::Io { socket: path.clone(), source };
        create_private_dir(state_dir).map_err(io)?;
        if path.symlink_metadata().is_ok() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(ControlError::AlreadyRunning { socket: path });
            }
            std::fs::remove_file(&path).map_err(io)?;
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept(listener, daemon, stop.clone(), tracker.clone()));
        tracing::info!(socket = %path.display(), "control socket listening");
        Ok(ControlServer { path, stop, tracker })
    }

    /// Stops accepting, lets running requests finish (asking them to stop early), waits for
    /// every connection to end and removes the socket.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), error = %e, "could not remove the control socket");
        }
    }
}

async fn accept(
    listener: tokio::net::UnixListener,
    daemon: Arc<Daemon>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, mostly: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        // Only the daemon's own user, whatever the socket's permissions say (a second line
        // behind the 0700 state folder, as for the SQL socket).
        match stream.peer_cred() {
            Ok(peer) if peer.uid() == own_uid() => {}
            Ok(peer) => {
                tracing::warn!(uid = peer.uid(), "control socket: refused a connection from another user");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket: cannot identify the connecting process");
                continue;
            }
        }
        tracker.spawn(connection(stream, Arc::clone(&daemon), stop.clone(), tracker.clone()));
    }
}

/// The daemon's own (effective) uid.
fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A line from the client, or why there are no more.
enum Line {
    Text(String),
    TooLong,
}

/// Reads lines into `lines` until the client closes, a line is too long, the connection task
/// is gone, or the daemon stops.
async fn read_lines(read: OwnedReadHalf, lines: mpsc::Sender<Line>, stop: CancellationToken) {
    let mut reader = BufReader::new(read);
    loop {
        let mut text = String::new();
        let mut bounded = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            _ = lines.closed() => return,
            read = bounded.read_line(&mut text) => read,
        };
        let line = match read {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_LINE => Line::TooLong,
            Ok(_) => Line::Text(text),
        };
        let last = matches!(line, Line::TooLong);
        if lines.send(line).await.is_err() || last {
            return;
        }
    }
}

async fn connection(stream: UnixStream, daemon: Arc<Daemon>, stop: CancellationToken, tracker: TaskTracker) {
    let (read, mut write) = stream.into_split();
    let (lines_tx, mut lines) = mpsc::channel(1);
    tracker.spawn(read_lines(read, lines_tx, stop.clone()));
    let mut pending: Option<Line> = None;
    loop {
        let line = match pending.take() {
            Some(line) => line,
            None => tokio::select! {
                _ = stop.cancelled() => return,
                line = lines.recv() => match line {
                    Some(line) => line,
                    None => return,
                },
            },
        };
        let request = match line {
            Line::TooLong => {
                let reply = failure("bad_request", format!("request longer than {MAX_LINE} bytes"));
                let response = Response { v: PROTOCOL_VERSION, event: None, result: None, error: Some(reply) };
                let _ = send(&mut write, response, &stop).await;
                return;
            }
            Line::Text(text) => match parse(&text) {
                // Nothing runs, so there is nothing to cancel; a cancel that arrives just after
                // its request ended must not produce a reply the client would take for the next.
                Ok(Request::Cancel) => continue,
                Ok(request) => request,
                Err(error) => {
                    let response = Response { v: PROTOCOL_VERSION, event: None, result: None, error: Some(error) };
                    if send(&mut write, response, &stop).await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let exchange = Exchange { events: events_tx, cancel: stop.child_token() };
        let cancel = exchange.cancel.clone();
        let d = Arc::clone(&daemon);
        let mut work = tokio::task::spawn_blocking(move || handle(&d, request, &exchange));
        let mut client_gone = false;
        let outcome = loop {
            tokio::select! {
                done = &mut work => break done,
                Some(event) = events.recv() => {
                    if send(&mut write, event_response(event), &stop).await.is_err() {
                        client_gone = true;
                        cancel.cancel();
                    }
                }
                line = lines.recv(), if pending.is_none() && !client_gone => match line {
                    Some(Line::Text(text)) if matches!(parse(&text), Ok(Request::Cancel)) => cancel.cancel(),
                    Some(line) => pending = Some(line),
                    None => {
                        client_gone = true;
                        cancel.cancel();
                    }
                },
            }
        };
        if client_gone {
            return;
        }
        while let Ok(event) = events.try_recv() {
            if send(&mut write, event_response(event), &stop).await.is_err() {
                return;
            }
        }
        let response = match outcome {
            Ok(Ok(result)) => Response { v: PROTOCOL_VERSION, event: None, result: Some(result), error: None },
            Ok(Err(error)) => Response { v: PROTOCOL_VERSION, event: None, result: None, error: Some(error) },
            Err(e) => Response {
                v: PROTOCOL_VERSION,
                event: None,
                result: None,
                error: Some(failure("failed", format!("the request's task failed: {e}"))),
            },
        };
        if send(&mut write, response, &stop).await.is_err() {
            return;
        }
    }
}

fn event_response(event: Value) -> Response {
    Response { v: PROTOCOL_VERSION, event: Some(event), result: None, error: None }
}

/// Writes one response line. A client that stops reading must not hold up the daemon's
/// shutdown: once the daemon stops, a write that cannot finish is given up.
async fn send(write: &mut OwnedWriteHalf, response: Response, stop: &CancellationToken) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    tokio::select! {
        biased;
        written = write.write_all(&bytes) => written,
        _ = stop.cancelled() => Err(std::io::Error::other("the daemon is stopping")),
    }
}

/// Reads one request line: the version first, so a client of another version gets a version
/// error even for an `op` this daemon does not know.
fn parse(text: &str) -> Result<Request, ErrorReply> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| failure("bad_request", format!("not a JSON object: {e}")))?;
    let Some(map) = value.as_object_mut() else {
        return Err(failure("bad_request", "a request is a JSON object".into()));
    };
    match map.remove("v").as_ref().and_then(Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(failure(
                "version",
                format!("this daemon speaks control protocol {PROTOCOL_VERSION}; the request is version {v}"),
            ));
        }
        None => return Err(failure("bad_request", "the request has no protocol version \"v\"".into())),
    }
    serde_json::from_value(value).map_err(|e| failure("bad_request", e.to_string()))
}

fn failure(kind: &str, message: String) -> ErrorReply {
    ErrorReply { kind: kind.into(), message }
}

/// What a running request gets besides its arguments: where its progress events go, and
/// whether it has been asked to stop (the client sent `cancel` or left, or the daemon stops).
/// Handlers run on a blocking thread.
pub struct Exchange {
    events: mpsc::Sender<Value>,
    cancel: CancellationToken,
}

impl Exchange {
    /// Sends a progress event to the client. Waits while the client is behind by
    /// [`EVENT_QUEUE`] events; an event for a client that has left is dropped.
    pub fn event(&self, event: Value) {
        let _ = self.events.blocking_send(event);
    }

    /// Sends a progress event if the client keeps up; dropped otherwise (the next one says
    /// more). Unlike [`Exchange::event`] it never waits, so async work may call it.
    pub fn progress(&self, event: Value) {
        let _ = self.events.try_send(event);
    }

    /// Whether the request should stop at the next convenient point.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Carries out one request. Blocking.
fn handle(daemon: &Daemon, request: Request, exchange: &Exchange) -> Result<Value, ErrorReply> {
    match request {
        Request::Status => serde_json::to_value(daemon.status()).map_err(|e| failure("failed", e.to_string())),
        Request::Refresh => {
            let previous = daemon.status().snapshot;
            let snapshot = daemon.refresh().map_err(|e| failure("failed", format!("refresh failed: {e}")))?;
            Ok(json!({ "snapshot": snapshot, "previous": previous }))
        }
        Request::Evict { tables, all } => evict(daemon, &tables, all, exchange),
        Request::PolicyReload => {
            daemon.reload_policy().map_err(|e| failure("failed", format!("applying the policy failed: {e}")))?;
            let status = daemon.status();
            Ok(json!({ "policy": status.policy, "policy_error": status.policy_error }))
        }
        Request::Metrics => Ok(json!({ "text": super::prometheus_text(&daemon.status()) })),
        Request::Ls { path } => ls(daemon, &path),
        Request::Prewarm { tables, columns, pin, snapshot } => {
            prewarm(daemon, &tables, &columns, (pin, snapshot), exchange)
        }
        Request::Unpin { tables } => {
            for table in &tables {
                table_path(daemon, table)?;
            }
            let bytes: u64 = daemon.cache().map(|c| tables.iter().map(|t| c.unpin_table(t)).sum()).unwrap_or(0);
            Ok(json!({ "unpinned_bytes": bytes }))
        }
        // The connection consumes cancels itself; one never reaches a handler.
        Request::Cancel => Ok(Value::Null),
    }
}

fn prewarm(
    daemon: &Daemon,
    tables: &[String],
    columns: &super::PrewarmColumns,
    (pin, snapshot): (bool, Option<i64>),
    exchange: &Exchange,
) -> Result<Value, ErrorReply> {
    let bad = |m: String| failure("bad_request", m);
    if tables.is_empty() {
        return Err(bad("prewarm needs at least one table (schema.table; globs such as sales.* work)".into()));
    }
    // Named by what it asks for: the same prewarm asked twice runs once.
    let at = snapshot.map(|s| format!(" --snapshot {s}")).unwrap_or_default();
    let name = format!("prewarm {} --columns {columns}{at}{}", tables.join(" "), if pin { " --pin" } else { "" });
    let tables = tables.iter().map(|t| warmlake_policy::QualifiedGlob::new(t)).collect::<Result<Vec<_>, _>>();
    let request = crate::prewarm::PrewarmRequest {
        tables: tables.map_err(bad)?,
        columns: columns.selection().map_err(bad)?,
        pin,
        snapshot,
    };
    let progress = |p: &crate::prewarm::PrewarmProgress| exchange.progress(json!(p));
    let report = tokio::runtime::Handle::current()
        .block_on(daemon.prewarm_job(&name, &request, &progress, &exchange.cancel))
        .map_err(|e| match e {
            crate::prewarm::PrewarmError::Busy(e) => failure("busy", e.to_string()),
            e @ crate::prewarm::PrewarmError::SnapshotNotKept { .. } => failure("not_found", e.to_string()),
            e => failure("failed", e.to_string()),
        })?;
    if report.tables.is_empty() && report.skipped.is_empty() {
        return Err(failure("not_found", "no table of the lake matches".into()));
    }
    serde_json::to_value(report).map_err(|e| failure("failed", e.to_string()))
}

fn evict(daemon: &Daemon, tables: &[String], all: bool, exchange: &Exchange) -> Result<Value, ErrorReply> {
    if all != tables.is_empty() {
        return Err(failure("bad_request", "evict needs either table names or \"all\", not both".into()));
    }
    // Unknown names are refused rather than evicting nothing: a typo must not look like success.
    for table in tables {
        table_path(daemon, table)?;
    }
    let Some(cache) = daemon.cache() else {
        return Ok(json!({ "evicted_bytes": 0, "cache": false }));
    };
    let cache_failure = |e: crate::cache::CacheError| failure("failed", format!("evicting failed: {e}"));
    if all {
        let bytes = cache.evict_all().map_err(cache_failure)?;
        return Ok(json!({ "evicted_bytes": bytes, "cache": true }));
    }
    let mut total = 0;
    for (done, table) in tables.iter().enumerate() {
        if exchange.is_cancelled() {
            return Err(failure(
                "cancelled",
                format!("cancelled after {done} of {} tables ({total} bytes evicted)", tables.len()),
            ));
        }
        let bytes = cache.evict_table(table).map_err(cache_failure)?;
        total += bytes;
        exchange.event(json!({ "table": table, "evicted_bytes": bytes }));
    }
    Ok(json!({ "evicted_bytes": total, "cache": true }))
}

/// The folder of `schema.table` in the served tree, or a `not_found` error.
fn table_path(daemon: &Daemon, table: &str) -> Result<TreePath, ErrorReply> {
    let not_found = || failure("not_found", format!("no table {table} in the served snapshot (see warmlake ls)"));
    let (schema, name) = table.split_once('.').ok_or_else(not_found)?;
    let path = TreePath::root().join(schema).and_then(|p| p.join(name)).map_err(|_| not_found())?;
    match daemon.tree().attr(&path) {
        Ok(attr) if attr.kind == NodeKind::Directory => Ok(path),
        _ => Err(not_found()),
    }
}

fn ls(daemon: &Daemon, path: &str) -> Result<Value, ErrorReply> {
    let trimmed = path.trim_matches('/');
    let tree_path = if trimmed.is_empty() {
        TreePath::root()
    } else {
        TreePath::new(trimmed).map_err(|e| failure("bad_request", format!("{path}: {e}")))?
    };
    let tree = daemon.tree();
    let tree_error = |e: TreeError| match e {
        TreeError::NotFound { .. } => failure("not_found", format!("{path}: no such file or folder in the lake")),
        e => failure("failed", format!("{path}: {e}")),
    };
    let attr = tree.attr(&tree_path).map_err(tree_error)?;
    let entry = |name: &str, kind: NodeKind, size: u64| json!({ "name": name, "kind": if kind == NodeKind::Directory { "dir" } else { "file" }, "size": size });
    let mut entries = Vec::new();
    if attr.kind == NodeKind::File {
        entries.push(entry(tree_path.file_name().unwrap_or_default(), attr.kind, attr.size));
    } else {
        let mut children = tree.list(&tree_path).map_err(tree_error)?;
        children.sort_by(|a, b| a.name.cmp(&b.name));
        for child in children {
            let Ok(child_path) = tree_path.join(&child.name) else { continue };
            // A child that vanished or is hidden between list and attr is left out, as `ls` would.
            if let Ok(a) = tree.attr(&child_path) {
                entries.push(entry(&child.name, a.kind, a.size));
            }
        }
    }
    Ok(json!({ "path": trimmed, "entries": entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_version_first() {
        assert_eq!(parse(r#"{"v":1,"op":"status"}"#), Ok(Request::Status));
        assert_eq!(
            parse(r#"{"op":"evict","v":1,"tables":["sales.orders"]}"#),
            Ok(Request::Evict { tables: vec!["sales.orders".into()], all: false })
        );
        assert_eq!(parse(r#"{"v":1,"op":"ls"}"#), Ok(Request::Ls { path: String::new() }));
        // Another version is refused before its op is looked at, even one this daemon lacks.
        let newer = parse(r#"{"v":2,"op":"prewarm"}"#).expect_err("refused");
        assert_eq!(newer.kind, "version");
        assert!(newer.message.contains("protocol 1"), "{}", newer.message);
        for bad in [
            r#"{"op":"status"}"#,
            r#"{"v":1,"op":"explode"}"#,
            r#"{"v":1,"op":"evict","all":true,"force":1}"#,
            "[1]",
            "status",
        ] {
            assert_eq!(parse(bad).map_err(|e| e.kind), Err("bad_request".to_string()), "{bad}");
        }
    }

    #[test]
    fn a_request_round_trips_through_the_client_encoding() {
        let request = Request::Evict { tables: vec![], all: true };
        let mut line = serde_json::to_value(&request).expect("encode");
        line["v"] = PROTOCOL_VERSION.into();
        assert_eq!(parse(&line.to_string()), Ok(request));
    }
}
