//! The local SQL socket: the lake as a PostgreSQL server on a Unix socket, so psql, psycopg
//! and JDBC tools can query it.
//!
//! - `engine`: the one DuckDB database, locked down to the lake's folders, holding the views
//! - `session`: one DuckDB connection per client on a thread of its own, streaming rows
//! - `handler`: the pgwire protocol side (startup, queries, cancel)
//! - `auth`: SCRAM-SHA-256 for the optional TCP listener
//! - `params`: bound parameters, decoded by their declared type into DuckDB values
//! - `statement`: splitting and classifying what clients send (session commands, refusals)
//! - `copy`: `COPY ... TO STDOUT` (psql's `\copy`): parsing it and writing rows as COPY data
//! - `cursor`: SQL cursors (`DECLARE ... CURSOR`, `FETCH`, `MOVE`, `CLOSE`)
//! - `described`: statements a session has described, until the views change
//! - `settings`: `SET`/`SHOW` per session
//! - `encode`: DuckDB (Arrow) values as PostgreSQL text and binary
//! - `pg_compat`: catalog queries DuckDB's `pg_catalog` cannot run, rewritten onto macros
//! - `error`: failures and their SQLSTATEs
//!
//! The socket follows libpq's naming, `<socket_dir>/.s.PGSQL.<port>`, in a 0700 folder, and
//! only the Unix user running the daemon may connect (the peer's uid is checked on every
//! connection). For clients that cannot use a Unix socket (JDBC), a TCP listener on 127.0.0.1
//! can be enabled; it asks for a password (SCRAM-SHA-256). `serve` runs until its shutdown
//! future completes.

mod auth;
mod copy;
mod cursor;
mod described;
mod encode;
mod engine;
mod error;
mod handler;
mod numeric;
mod params;
mod pg_compat;
mod reply;
mod savepoint;
mod session;
mod settings;
mod statement;
mod wire;

/// Splits SQL text into statements the way the socket does (quotes, dollar quotes, comments).
pub use statement::split as split_statements;

use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{QueryError, SqlError};
pub use settings::SERVER_VERSION;

use auth::ScramPassword;
use engine::Engine;
use handler::{CancelRegistry, ClientHandler, Shared};
use session::Session;

/// What sessions see: the lake at one snapshot, as DuckDB statements creating its schemas and
/// views (`view_sql::lake_views`, reading files where the daemon serves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlLake {
    pub snapshot: i64,
    pub script: crate::view_sql::Script,
}

/// The tables the socket serves as unreadable since its last publish, `(schema.table, why)`:
/// those whose view DuckDB refused as well as those the catalog already could not express.
pub type Unreadable = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// How the socket is served. Paths are fixed for the server's life because DuckDB's
/// configuration (which folders may be read) is locked when it starts.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// Folder of the socket (`psql -h <socket_dir>`); created 0700.
    pub socket_dir: PathBuf,
    /// The port in the socket's name (`psql -p <port>`); 5433 by default, beside a real
    /// PostgreSQL on 5432.
    pub port: u16,
    /// The only folders sessions can read: where the views' files are (the mount, or the
    /// local data root).
    pub readable_dirs: Vec<PathBuf>,
    /// Where DuckDB spills what does not fit in memory; `<socket_dir>/spill` when None.
    pub spill_dir: Option<PathBuf>,
    /// Connections served at once; further clients wait to be accepted.
    pub max_connections: usize,
    /// A new session's `statement_timeout` (None: no limit; clients may `SET` their own).
    pub statement_timeout: Option<Duration>,
    /// DuckDB's `memory_limit` for all sessions together (e.g. "2GB"); DuckDB's default
    /// (80% of RAM) when None.
    pub memory_limit: Option<String>,
    /// A TCP listener on 127.0.0.1 as well; off by default, since any local user can reach a
    /// TCP port and only the password then stands between them and the lake.
    pub tcp: Option<TcpConfig>,
}

/// The optional TCP listener: loopback only, SCRAM-SHA-256 with one password.
#[derive(Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Port on 127.0.0.1; 0 picks a free one ([`SqlServer::tcp_addr`] tells which).
    pub port: u16,
    /// The password every TCP client must give (any user name is accepted).
    pub password: String,
}

impl std::fmt::Debug for TcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConfig").field("port", &self.port).field("password", &"<redacted>").finish()
    }
}

impl SqlConfig {
    pub fn new(socket_dir: PathBuf, readable_dirs: Vec<PathBuf>) -> Self {
        Self {
            socket_dir,
            port: 5433,
            readable_dirs,
            spill_dir: None,
            max_connections: 64,
            statement_timeout: None,
            memory_limit: None,
            tcp: None,
        }
    }

    /// The socket's path, as libpq names it.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }
}

/// A bound, ready server: the socket exists and the first snapshot's views are in place.
pub struct SqlServer {
    config: SqlConfig,
    listener: UnixListener,
    /// The TCP listener and the password's SCRAM verifier, when TCP is enabled.
    tcp: Option<(TcpListener, Arc<ScramPassword>)>,
    engine: Arc<Engine>,
    lake: watch::Receiver<Arc<SqlLake>>,
    snapshot: Arc<AtomicI64>,
    unreadable: Unreadable,
    owner_uid: u32,
}

impl SqlServer {
    /// Prepares the folder, opens and locks the engine, publishes the current lake and
    /// binds the socket.
    pub async fn bind(config: SqlConfig, lake: watch::Receiver<Arc<SqlLake>>) -> Result<Self, SqlError> {
        private_dir(&config.socket_dir)?;
        let spill = config.spill_dir.clone().unwrap_or_else(|| config.socket_dir.join("spill"));
        private_dir(&spill)?;
        let current = lake.borrow().clone();
        let (dirs, limit) = (config.readable_dirs.clone(), config.memory_limit.clone());
        let (engine, unreadable) = tokio::task::spawn_blocking(move || -> Result<_, SqlError> {
            let engine = Engine::open(&dirs, &spill, limit.as_deref())?;
            let unreadable = engine.publish(&current)?;
            Ok((engine, unreadable))
        })
        .await
        .map_err(|_| SqlError::EngineGone)??;
        let unreadable = Arc::new(std::sync::Mutex::new(unreadable));
        let path = config.socket_path();
        remove_stale_socket(&path).await?;
        let listen_err = |source| SqlError::Listen { path: path.clone(), source };
        let listener = UnixListener::bind(&path).map_err(listen_err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(listen_err)?;
        // the socket's owner is the daemon's user: the only one allowed in
        let owner_uid = std::fs::metadata(&path).map_err(listen_err)?.uid();
        let tcp = match &config.tcp {
            None => None,
            Some(t) => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, t.port));
                let listener = TcpListener::bind(addr).await.map_err(|source| SqlError::ListenTcp { addr, source })?;
                let password = t.password.clone();
                let verifier = tokio::task::spawn_blocking(move || ScramPassword::new(&password))
                    .await
                    .map_err(|_| SqlError::EngineGone)?;
                Some((listener, Arc::new(verifier)))
            }
        };
        let snapshot = Arc::new(AtomicI64::new(lake.borrow().snapshot));
        Ok(Self { config, listener, tcp, engine: Arc::new(engine), lake, snapshot, unreadable, owner_uid })
    }

    pub fn socket_path(&self) -> PathBuf {
        self.config.socket_path()
    }

    /// The tables served as unreadable, kept current by [`SqlServer::run`]'s publishes.
    pub fn unreadable(&self) -> Unreadable {
        Arc::clone(&self.unreadable)
    }

    /// Where the TCP listener is bound, when TCP is enabled.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then closes every connection (a running statement
    /// stops at its next batch) and removes the socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), SqlError> {
        let SqlServer { config, listener, tcp, engine, mut lake, snapshot, unreadable, owner_uid } = self;
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let shared = Arc::new(Shared {
            cancels: Arc::new(CancelRegistry::default()),
            pids: Arc::new(Default::default()),
            statement_timeout: config.statement_timeout,
            snapshot: snapshot.clone(),
        });
        // publishes each new snapshot; a failed publish keeps the previous views
        tracker.spawn({
            let (engine, token, snapshot, unreadable) = (engine.clone(), token.clone(), snapshot.clone(), unreadable);
            async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        changed = lake.changed() => if changed.is_err() { return },
                    }
                    let next = lake.borrow_and_update().clone();
                    let engine = engine.clone();
                    let id = next.snapshot;
                    match tokio::task::spawn_blocking(move || engine.publish(&next)).await {
                        Ok(Ok(tables)) => {
                            snapshot.store(id, Ordering::SeqCst);
                            *unreadable.lock().unwrap_or_else(|e| e.into_inner()) = tables;
                        }
                        Ok(Err(e)) => tracing::error!(error = %e, "SQL socket keeps the previous snapshot"),
                        Err(e) => tracing::error!(error = %e, "publishing to the SQL socket panicked"),
                    }
                }
            }
        });
        let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
        tokio::pin!(shutdown);
        loop {
            // a permit before accepting: at most max_connections served at once
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted.map(|(stream, _)| Peer::Unix(stream)),
                accepted = accept_tcp(tcp.as_ref()) => accepted.map(|(stream, _)| Peer::Tcp(stream)),
            };
            let peer = match accepted {
                Ok(peer) => peer,
                Err(e) => {
                    tracing::warn!(error = %e, "SQL socket accept failed");
                    continue;
                }
            };
            let (engine, shared, token) = (engine.clone(), shared.clone(), token.clone());
            let password = tcp.as_ref().map(|(_, p)| p.clone());
            tracker.spawn(async move {
                let _permit = permit;
                let cancels = shared.cancels.clone();
                let served = match peer {
                    Peer::Unix(stream) => {
                        let session = match peer_refusal(&stream, owner_uid) {
                            Some(refusal) => Err(refusal),
                            None => open_session(engine).await,
                        };
                        let client = Arc::new(ClientHandler::new(shared, session, None));
                        tokio::select! {
                            _ = token.cancelled() => Ok(()),
                            r = wire::serve_unix(stream, client, cancels) => r,
                        }
                    }
                    Peer::Tcp(stream) => {
                        let session = open_session(engine).await;
                        let client = Arc::new(ClientHandler::new(shared, session, password));
                        tokio::select! {
                            _ = token.cancelled() => Ok(()),
                            r = wire::serve_tcp(stream, client, cancels) => r,
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(error = %e, "SQL connection ended with an error");
                }
            });
        }
        token.cancel();
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_file(config.socket_path());
        Ok(())
    }
}

/// Binds and serves until `shutdown` completes: the entry point the daemon calls.
pub async fn serve(
    config: SqlConfig,
    lake: watch::Receiver<Arc<SqlLake>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SqlError> {
    SqlServer::bind(config, lake).await?.run(shutdown).await
}

/// A connection, by where it came from.
enum Peer {
    /// Admitted by the peer's uid.
    Unix(tokio::net::UnixStream),
    /// Admitted by SCRAM at startup.
    Tcp(tokio::net::TcpStream),
}

/// The next TCP connection, or never when TCP is off.
async fn accept_tcp(
    tcp: Option<&(TcpListener, Arc<ScramPassword>)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match tcp {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Why a Unix peer is refused: it does not run as `owner_uid` (or cannot be identified).
fn peer_refusal(stream: &tokio::net::UnixStream, owner_uid: u32) -> Option<String> {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => return Some(format!("cannot identify the connecting process: {e}")),
    };
    (uid != owner_uid).then(|| {
        format!(
            "warmlake serves the lake only to its own Unix user (uid {owner_uid}); this connection comes from uid {uid}"
        )
    })
}

/// A session on its own DuckDB connection, or why there is none.
async fn open_session(engine: Arc<Engine>) -> Result<Session, String> {
    tokio::task::spawn_blocking(move || {
        let conn = engine.connect().map_err(|e| e.to_string())?;
        Session::start(engine, conn).map_err(|e| format!("cannot start a session: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Creates `dir` (and parents) and makes it 0700.
fn private_dir(dir: &Path) -> Result<(), SqlError> {
    let err = |source| SqlError::SocketDir { path: dir.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

/// Removes a socket left by a previous run; refuses when a server still answers on it.
async fn remove_stale_socket(path: &Path) -> Result<(), SqlError> {
    if !path.exists() {
        return Ok(());
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(SqlError::Listen {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "another server is listening on this socket"),
        });
    }
    std::fs::remove_file(path).map_err(|source| SqlError::Listen { path: path.to_owned(), source })
}
