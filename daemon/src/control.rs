//! The control API: how `warmlake status`, `refresh`, `evict`, `metrics` and `ls` talk to the
//! running daemon.
//!
//! The daemon listens on a Unix socket, `<state_dir>/control.sock` (0600, in the 0700 state
//! folder, so only its user can connect). The protocol is newline-delimited JSON, one object
//! per line, so it can be read with `socat` and extended without a schema compiler:
//!
//! ```text
//! → {"v":1,"op":"evict","tables":["sales.orders"]}
//! ← {"v":1,"event":{"table":"sales.orders","evicted_bytes":4096}}
//! ← {"v":1,"result":{"evicted_bytes":4096,"cache":true}}
//! ```
//!
//! Every request carries the protocol version `v` and an `op`. The daemon answers with zero or
//! more `event` lines (progress) and then exactly one `result` or `error` line; the connection
//! then takes the next request. While a request runs the client may send
//! `{"v":1,"op":"cancel"}` (or close the connection) to ask it to stop; a request that can stop
//! early checks [`server::Exchange::is_cancelled`] between units of work and still ends with
//! its `result` or `error` line. Streaming requests (a future `prewarm`) are therefore ordinary
//! requests that send many events.
//!
//! A request whose `v` differs from [`PROTOCOL_VERSION`] is answered with an `error` of kind
//! `version` (carrying the daemon's version) before its `op` is even looked at, so a CLI older
//! or newer than the daemon says so instead of failing to parse.

mod metrics;
pub mod server;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use metrics::prometheus_text;
pub use server::ControlServer;

/// The protocol version. Bump it when a request or result changes shape incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// The socket's file name inside the state folder.
pub const SOCKET_NAME: &str = "control.sock";

/// What a client is told when the daemon hangs up before answering.
const CLOSED_EARLY: &str = "the daemon closed the connection before answering";

/// Longest request line the daemon reads; requests are small, and a bound keeps a confused
/// client from growing the daemon's memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Where the control socket of a daemon with state folder `state_dir` is.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// One request, as sent after the version (`{"v":1,"op":"...",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The daemon's [`crate::daemon::Status`].
    Status,
    /// Read the catalog now; the result is `{"snapshot": id, "previous": id|null}`.
    Refresh,
    /// Drop cached bytes of `tables` (`schema.table`), or of everything with `all`. One event
    /// per table, `{"table", "evicted_bytes"}`; the result is `{"evicted_bytes", "cache"}`
    /// (`cache` false when the lake's data is local and nothing is cached).
    Evict {
        #[serde(default)]
        tables: Vec<String>,
        #[serde(default)]
        all: bool,
    },
    /// Re-read the policy files now; the result is `{"policy", "policy_error"}`.
    PolicyReload,
    /// Prometheus text exposition; the result is `{"text": "..."}`.
    Metrics,
    /// The tree the mount serves, one folder (`""` is the root); the result is
    /// `{"path", "entries": [{"name", "kind": "dir"|"file", "size"}]}`.
    Ls {
        #[serde(default)]
        path: String,
    },
    /// Fetch `tables` (`schema.table` globs) into the cache: `columns` is `"all"` (default),
    /// `"hot"` (the columns people read) or a list of column-name globs. One event per file,
    /// a [`crate::prewarm::PrewarmProgress`]; the result is a
    /// [`crate::prewarm::PrewarmReport`]. Cancellable between files.
    Prewarm {
        tables: Vec<String>,
        #[serde(default)]
        columns: PrewarmColumns,
        /// Pin what is prewarmed: the budget evicts it last (`warmlake pin`).
        #[serde(default)]
        pin: bool,
        /// A kept snapshot to prewarm instead of the one served.
        #[serde(default)]
        snapshot: Option<i64>,
    },
    /// Unpin every cached byte of `tables` (`schema.table`); the result is
    /// `{"unpinned_bytes"}`.
    Unpin { tables: Vec<String> },
    /// Asks the request running on this connection to stop early. Answered by nothing itself:
    /// the running request ends with its own `result` or `error`.
    Cancel,
}

/// The columns a `prewarm` request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PrewarmColumns {
    /// `"all"` or `"hot"`.
    Named(String),
    /// Column-name globs.
    Listed(Vec<String>),
}

impl Default for PrewarmColumns {
    fn default() -> Self {
        PrewarmColumns::Named("all".into())
    }
}

impl From<&warmlake_policy::ColumnSelection> for PrewarmColumns {
    /// The request that asks for `selection` (the inverse of [`PrewarmColumns::selection`]).
    fn from(selection: &warmlake_policy::ColumnSelection) -> Self {
        use warmlake_policy::ColumnSelection;
        match selection {
            ColumnSelection::All => PrewarmColumns::Named("all".into()),
            ColumnSelection::Hot => PrewarmColumns::Named("hot".into()),
            ColumnSelection::Listed(globs) => PrewarmColumns::Listed(globs.iter().map(|g| g.as_str().into()).collect()),
        }
    }
}

impl std::fmt::Display for PrewarmColumns {
    /// As `warmlake prewarm --columns` takes it: `all`, `hot`, or names separated by commas.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrewarmColumns::Named(n) => f.write_str(n),
            PrewarmColumns::Listed(names) => f.write_str(&names.join(",")),
        }
    }
}

impl PrewarmColumns {
    /// The policy model's selection, or what is wrong with the request.
    pub fn selection(&self) -> Result<warmlake_policy::ColumnSelection, String> {
        use warmlake_policy::ColumnSelection;
        match self {
            PrewarmColumns::Named(n) if n == "all" => Ok(ColumnSelection::All),
            PrewarmColumns::Named(n) if n == "hot" => Ok(ColumnSelection::Hot),
            PrewarmColumns::Named(n) => Err(format!("columns must be \"all\", \"hot\" or a list of names, not {n:?}")),
            PrewarmColumns::Listed(names) => names
                .iter()
                .map(|n| warmlake_policy::Glob::new(n))
                .collect::<Result<_, _>>()
                .map(ColumnSelection::Listed),
        }
    }
}

/// One line from the daemon: exactly one of `event`, `result` and `error` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReply>,
}

/// Why the daemon did not carry out a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What kind of failure, for clients to branch on: `version`, `bad_request`, `not_found`,
    /// `failed` (the daemon tried and could not, e.g. the catalog is unreachable).
    pub kind: String,
    pub message: String,
}

/// A control request could not be made or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the socket: no daemon runs with this state folder.
    #[error("the warmlake daemon is not running (no control socket at {})", socket.display())]
    NotRunning { socket: PathBuf },
    /// Another daemon already serves this state folder.
    #[error("another warmlake daemon is already running with the control socket {}", socket.display())]
    AlreadyRunning { socket: PathBuf },
    #[error("the control socket {}: {source}", socket.display())]
    Io { socket: PathBuf, source: std::io::Error },
    /// The daemon speaks another protocol version (an older or newer warmlake).
    #[error(
        "the daemon speaks control protocol {daemon} and this warmlake speaks {client}: run the warmlake binary that \
         matches the daemon, or restart the daemon after upgrading"
    )]
    Version { daemon: u32, client: u32 },
    /// The daemon answered with something that is not this protocol.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// The daemon refused or failed the request.
    #[error("{message}")]
    Daemon { kind: String, message: String },
}

/// A blocking client for the control socket (one connection, requests in turn).
pub struct Client {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the daemon whose state folder is `state_dir`.
    pub fn connect(state_dir: &Path) -> Result<Client, ControlError> {
        let socket = socket_path(state_dir);
        let stream = match UnixStream::connect(&socket) {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                return Err(ControlError::NotRunning { socket });
            }
            Err(source) => return Err(ControlError::Io { socket, source }),
        };
        let writer = stream.try_clone().map_err(|source| ControlError::Io { socket: socket.clone(), source })?;
        Ok(Client { socket, reader: BufReader::new(stream), writer })
    }

    /// Sends `request` and returns its result, passing each progress event to `on_event`.
    pub fn request(
        &mut self,
        request: &Request,
        mut on_event: impl FnMut(serde_json::Value),
    ) -> Result<serde_json::Value, ControlError> {
        let io = |source: std::io::Error| match source.kind() {
            // The daemon hung up (it refuses other users' connections, or it is stopping): say
            // so the same way whenever the hang-up is noticed, while writing or reading.
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                ControlError::Protocol(CLOSED_EARLY.into())
            }
            _ => ControlError::Io { socket: self.socket.clone(), source },
        };
        let mut line = serde_json::to_value(request).map_err(|e| ControlError::Protocol(e.to_string()))?;
        if let Some(map) = line.as_object_mut() {
            map.insert("v".into(), PROTOCOL_VERSION.into());
        }
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        self.writer.write_all(&bytes).map_err(io)?;
        loop {
            let mut text = String::new();
            if self.reader.read_line(&mut text).map_err(io)? == 0 {
                return Err(ControlError::Protocol(CLOSED_EARLY.into()));
            }
            let response: Response =
                serde_json::from_str(&text).map_err(|e| ControlError::Protocol(format!("{e}: {}", text.trim_end())))?;
            if let Some(error) = response.error {
                if error.kind == "version" || response.v != PROTOCOL_VERSION {
                    return Err(ControlError::Version { daemon: response.v, client: PROTOCOL_VERSION });
                }
                return Err(ControlError::Daemon { kind: error.kind, message: error.message });
            }
            if response.v != PROTOCOL_VERSION {
                return Err(ControlError::Version { daemon: response.v, client: PROTOCOL_VERSION });
            }
            if let Some(event) = response.event {
                on_event(event);
            } else if let Some(result) = response.result {
                return Ok(result);
            } else {
                return Err(ControlError::Protocol(text.trim_end().to_string()));
            }
        }
    }
}
