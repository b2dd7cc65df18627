//! The daemon: keeps the mirror fresh and serves it through the mount and the SQL socket.
//!
//! Start-up: open the catalog, bring the mirror up to date (or, if the catalog cannot be
//! reached, serve what the mirror already holds), choose where file contents come from (the
//! lake's own folder when its data is on this machine, else the chunk cache over the data
//! store), publish the newest snapshot and the kept ones to the tree, mount it, and bind the SQL
//! socket. Then every refresh interval: sync the mirror and publish again if a new snapshot
//! arrived. Every catalog call runs on a blocking thread. A failed refresh keeps the last good
//! state and is reported in `.warmlake/status.json`.
//!
//! The SQL socket's views read the same files as the mount's `lake.sql`: through the mount when
//! there is one (so SQL reads are cached too), else straight from a local data folder. A lake
//! whose data is remote and which is not mounted has no socket (the views would have nothing
//! to read); status says why.
//!
//! The policy in force filters everything published (`governance`): denied tables and columns
//! are never shown, bytes that may not be stored are read through, and the mirror is scrubbed
//! of statistics and inlined values it may not keep. A stricter policy is applied in this
//! order: publish (the mount and socket stop showing what is now denied, and open files obey
//! it from their next read), purge (cache and mirror), then report it as in force. Online, the
//! served snapshots are read from the catalog itself (so read-through inlined rows are complete,
//! in memory only); offline, from the mirror.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use warmlake_policy::{Mode, Policy};

use crate::cache::{self, Cache, CacheConfig, CacheError, CacheStats};
use crate::cached_source::CachedSource;
use crate::catalog::{CatalogError, CatalogLocation, CatalogReader, LakeSnapshot};
use crate::config::Config;
use crate::governance::{self, Governed};
use crate::mirror::{Mirror, MirrorError, create_private_dir};
use crate::policy_source::{CentralPolicy, LocalPolicy, PolicySource, PolicySourceConfig, PolicySourceError};
use crate::prewarm::{self, PrewarmError, PrewarmProgress, PrewarmReport, PrewarmRequest};
use crate::scheduler;
use crate::sql::{SqlConfig, SqlError, SqlLake, SqlServer};
use crate::store::{Store, StoreError};
use crate::tree::{LakeTree, LocalSource, ObjectSource};
use crate::view_sql;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the catalog cannot be reached and there is no local mirror yet: {0}")]
    NoMirror(CatalogError),
    #[error("the lake's data store: {0}")]
    Store(Box<StoreError>),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Mount(#[from] warmlake_fuse_mount::MountError),
    #[error("the SQL socket: {0}")]
    Sql(#[from] SqlError),
    #[error("a daemon task failed: {0}")]
    Task(String),
    #[error("no usable policy: {0}")]
    Policy(Box<PolicySourceError>),
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
}

/// What the daemon currently serves, for status reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub lake: String,
    pub catalog: String,
    pub snapshot: Option<i64>,
    pub snapshot_time: Option<String>,
    pub kept_snapshots: Vec<i64>,
    pub mirror: PathBuf,
    /// Where the lake's files are: a local folder or an object store URL.
    pub data: String,
    pub mount: Option<PathBuf>,
    /// The SQL socket (`psql -h <dir> -p <port>`), when it is served.
    pub sql_socket: Option<PathBuf>,
    /// The next scheduled prewarm: when (RFC 3339) and which jobs, while `run` is running.
    pub next_prewarm: Option<(String, Vec<String>)>,
    /// Prewarm jobs running now, with their progress.
    pub prewarm_running: Vec<crate::jobs::RunningJob>,
    /// The SQL TCP listener (`127.0.0.1:<port>`), when `[sql] tcp = true`.
    pub sql_tcp: Option<String>,
    /// Why there is no SQL socket although the config asks for one.
    pub sql_unavailable: Option<String>,
    /// Tables served as unreadable, with why: their catalog rows cannot be used, or DuckDB
    /// cannot read their files (time-travel views as `schema@snapshot.table`). Every other
    /// table is served; querying one of these fails with the same reason.
    pub unreadable_tables: BTreeMap<String, String>,
    /// The chunk cache's size and counters, for a lake whose data is remote.
    pub cache: Option<CacheStats>,
    /// The policy in force, summarised: `local.mode` and the number of rules.
    pub policy: String,
    /// Bytes dropped from the cache by the last policy change.
    pub policy_purged_bytes: u64,
    /// What is wrong with the policy files right now (the last good policy stays in force).
    pub policy_error: Option<String>,
    /// The last refresh error, cleared by the next successful refresh.
    pub last_error: Option<String>,
    /// When the catalog was last read successfully (seconds since the Unix epoch).
    pub last_refresh_unix: Option<u64>,
    pub offline: bool,
}

/// The running SQL socket.
struct SqlService {
    lake: watch::Sender<Arc<SqlLake>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), SqlError>>,
    /// Where the views read files: the mount, or the local data root (with its trailing `/`).
    files: SqlFiles,
    unreadable: crate::sql::Unreadable,
}

enum SqlFiles {
    Mount,
    Local(String),
}

/// Why an unmounted local lake gets no SQL socket under a policy that keeps tables or columns
/// from this machine: its sessions may read the lake's folder (the views do), and there every
/// file is whole, the denied columns and their footers' statistics included. The mount serves
/// them redacted.
const UNMOUNTED_RESTRICTED: &str = "the policy denies tables or columns of this lake, and the SQL socket of an unmounted \
                                    lake reads the lake's own files, where they are whole: set [mount] path";

/// Whether the policy keeps anything of `current` or `kept` from this machine.
fn restricts(current: &Governed, kept: &[Governed]) -> bool {
    std::iter::once(current).chain(kept).any(|g| g.access.restricts())
}

/// A running daemon (mirror, tree, mount, SQL socket). Dropping it unmounts.
pub struct Daemon {
    config: Config,
    runtime: tokio::runtime::Handle,
    /// `None` while `local.mode = "deny"` (the mirror is deleted then).
    mirror: Mutex<Option<Mirror>>,
    /// The live policy (file watch, central fetches); `policy` is the one applied.
    policy_source: PolicySource,
    policy: Mutex<Arc<Policy>>,
    /// The snapshots last published, as read (before the policy), to republish under a new policy.
    served: Mutex<Option<(LakeSnapshot, Vec<LakeSnapshot>)>>,
    tree: Arc<LakeTree>,
    cache: Option<Cache>,
    /// The data store the cache reads from (a remote lake only).
    store: Option<Store>,
    /// Woken by changes to a catalog in a local file (watched from start, so no commit made
    /// after `start` returns is missed): `run` refreshes at once instead of on the interval.
    catalog_changed: Arc<tokio::sync::Notify>,
    _catalog_watch: Option<crate::file_watch::FileWatch>,
    /// Names of prewarm jobs running now: a job is never started twice at once.
    /// Prewarm jobs running, and the journal of unfinished ones (resumed at start).
    jobs: Arc<crate::jobs::Jobs>,
    /// Cancelled when `run` begins to shut down: running jobs stop, as interrupted.
    stopping: CancellationToken,
    mount: Mutex<Option<warmlake_fuse_mount::Mount>>,
    sql: Mutex<Option<SqlService>>,
    status: Mutex<Status>,
}

/// How long after a change to a local catalog file the daemon refreshes: the writer's commit
/// touches the file several times in a few milliseconds.
const CATALOG_SETTLE: Duration = Duration::from_millis(300);

/// How often `.warmlake/status.json` is rewritten between refreshes (cache counters move).
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

impl Daemon {
    /// Starts the daemon: mirror, first publish, mount, SQL socket. Cache fetches and the SQL
    /// server run on `runtime`. Blocking: call from a plain thread or `spawn_blocking`.
    /// Refuses to start without a good policy (a malformed file is reported with its line).
    pub fn start(config: Config, runtime: tokio::runtime::Handle) -> Result<Daemon, DaemonError> {
        for dir in [&config.state_dir, &config.cache_dir] {
            create_private_dir(dir).map_err(|source| DaemonError::StateDir { path: dir.clone(), source })?;
        }
        let policy_config = PolicySourceConfig {
            local: Some(match &config.policy_file {
                Some(path) => LocalPolicy::explicit(path),
                None => LocalPolicy::default_file(),
            }),
            central: config.central_policy.as_ref().map(|url| CentralPolicy {
                url: url.clone(),
                store: config.store.clone(),
                saved_copy: Some(config.state_dir.join("policy/central.toml")),
            }),
            ..PolicySourceConfig::default()
        };
        let policy_source =
            runtime.block_on(PolicySource::start(policy_config)).map_err(|e| DaemonError::Policy(Box::new(e)))?;
        let policy = policy_source.current();
        let mut status = Status {
            lake: config.lake_name.clone(),
            catalog: CatalogLocation::parse(&config.catalog).to_string(),
            snapshot: None,
            snapshot_time: None,
            kept_snapshots: Vec::new(),
            mirror: config.mirror_path(),
            data: String::new(),
            mount: config.mount.clone(),
            sql_socket: None,
            next_prewarm: None,
            prewarm_running: Vec::new(),
            sql_tcp: None,
            sql_unavailable: None,
            unreadable_tables: BTreeMap::new(),
            cache: None,
            policy: summary(&policy),
            policy_purged_bytes: 0,
            policy_error: policy_source.last_error(),
            last_error: None,
            last_refresh_unix: None,
            offline: false,
        };
        let deny = policy.mode() == Mode::Deny;
        let mut mirror = if deny {
            // Nothing of the lake may rest on this machine: not even its metadata.
            if config.mirror_path().exists() {
                Mirror::open(&config.mirror_path())?.destroy()?;
            }
            None
        } else {
            Some(Mirror::open(&config.mirror_path())?)
        };
        let (current, kept) = match online(&config, mirror.as_mut(), &policy) {
            Ok(snapshots) => {
                status.last_refresh_unix = Some(unix_now());
                snapshots
            }
            Err(e) => match &mirror {
                Some(m) if m.last_snapshot()?.is_some() => {
                    tracing::warn!(error = %e, "catalog unreachable; serving the local mirror");
                    status.offline = true;
                    status.last_error = Some(e.to_string());
                    offline(&config, m, &policy)?
                }
                _ => match e {
                    DaemonError::Catalog(e) => return Err(DaemonError::NoMirror(e)),
                    e => return Err(e),
                },
            },
        };
        status.data = current.data_root.clone();
        let (source, remote, local_root) = data_source(&config, &policy, &current.data_root, &runtime)?;
        let (cache, store) = match remote {
            Some((cache, store)) => (Some(cache), Some(store)),
            None => (None, None),
        };
        if deny && let Some(cache) = &cache {
            status.policy_purged_bytes = cache.evict_all()?;
        }
        let tree_root = config.mount.clone().unwrap_or_default();
        let tree = Arc::new(LakeTree::new(tree_root, source));
        let catalog = CatalogLocation::parse(&config.catalog);
        let catalog_changed = Arc::new(tokio::sync::Notify::new());
        let jobs = Arc::new(crate::jobs::Jobs::open(&config.state_dir));
        let daemon = Daemon {
            config,
            runtime,
            mirror: Mutex::new(mirror),
            policy_source,
            policy: Mutex::new(policy),
            served: Mutex::new(None),
            tree,
            cache,
            store,
            jobs,
            stopping: CancellationToken::new(),
            _catalog_watch: watch_catalog(&catalog, &catalog_changed),
            catalog_changed,
            mount: Mutex::new(None),
            sql: Mutex::new(None),
            status: Mutex::new(status),
        };
        daemon.publish(current, kept, true);
        // A purge that a crash interrupted, or a policy edited while the daemon was down,
        // completes before anything is served.
        let purged = daemon.purge(&daemon.policy())?;
        lock(&daemon.status).policy_purged_bytes += purged;
        if let Some(path) = &daemon.config.mount {
            let tree: Arc<dyn warmlake_fuse_mount::Tree> = daemon.tree.clone();
            let m = warmlake_fuse_mount::mount(tree, path, &mount_options(daemon.cache.is_some()))?;
            tracing::info!(mount = %path.display(), "lake mounted");
            if let Some(cache) = &daemon.cache {
                drop_pages_on_change(&daemon.runtime, cache.changes(), m.page_dropper());
            }
            *lock(&daemon.mount) = Some(m);
        }
        daemon.start_sql(local_root)?;
        daemon.update_status();
        Ok(daemon)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&lock(&self.policy))
    }

    /// Puts `policy` in force: republishes (the mount and the socket stop showing what it
    /// denies, at once), then purges the cache and the mirror of what it forbids to store, then
    /// reports it. Blocking. Errors leave the new policy in force for what is shown; the purge
    /// is retried by the next call or refresh.
    pub fn apply_policy(&self, policy: Arc<Policy>) -> Result<(), DaemonError> {
        let was_deny = self.policy().mode() == Mode::Deny;
        *lock(&self.policy) = Arc::clone(&policy);
        if was_deny && policy.mode() != Mode::Deny {
            // Nothing was mirrored under "deny": start the mirror again and read the catalog.
            *lock(&self.mirror) = Some(Mirror::open(&self.config.mirror_path())?);
            self.refresh()?;
        } else {
            // Bound first: the guard must not live across `publish`, which takes it again.
            let served = lock(&self.served).clone();
            if let Some((current, kept)) = served {
                self.publish(current, kept, true);
            }
        }
        let purged = self.purge(&policy)?;
        {
            let mut s = lock(&self.status);
            s.policy = summary(&policy);
            s.policy_purged_bytes = purged;
        }
        self.update_status();
        tracing::info!(purged_bytes = purged, "policy in force: {}", summary(&policy));
        Ok(())
    }

    /// Prewarms `request` on the snapshot served now (or the kept one it names), under the
    /// policy in force (tables that may not be stored are skipped and reported). `progress` is
    /// called after each file; `cancel` stops the job between files. Runs on the async runtime.
    pub async fn prewarm(
        &self,
        request: &PrewarmRequest,
        progress: &(dyn Fn(&PrewarmProgress) + Sync),
        cancel: &CancellationToken,
    ) -> Result<PrewarmReport, PrewarmError> {
        let (Some(cache), Some(store)) = (&self.cache, &self.store) else {
            return Err(PrewarmError::LocalLake(lock(&self.status).data.clone()));
        };
        let governed = {
            let policy = self.policy();
            let served = lock(&self.served).clone();
            match (served, request.snapshot) {
                (Some((current, _)), None) => governance::govern(&policy, &current),
                (Some((current, kept)), Some(id)) => {
                    let Some(at) = kept.iter().chain([&current]).find(|s| s.snapshot.id == id) else {
                        let kept = kept.iter().map(|s| s.snapshot.id).collect();
                        return Err(PrewarmError::SnapshotNotKept { id, kept });
                    };
                    governance::govern_kept(&policy, at, &current)
                }
                (None, _) => Governed::unrestricted(LakeSnapshot::default()),
            }
        };
        prewarm::prewarm(cache, store, &governed, request, progress, cancel).await
    }

    /// Runs `request` as the job `name`, refused while a job of that name runs (a schedule that
    /// fires again while its last run is still going, a second identical `warmlake prewarm`).
    /// The job shows in status while it runs, and stays in the journal until it finishes, so a
    /// daemon that dies or stops meanwhile runs it again at its next start. A cancel through
    /// `cancel` ends it for good; the daemon's shutdown, as interrupted.
    pub async fn prewarm_job(
        &self,
        name: &str,
        request: &PrewarmRequest,
        progress: &(dyn Fn(&PrewarmProgress) + Sync),
        cancel: &CancellationToken,
    ) -> Result<PrewarmReport, PrewarmError> {
        let job = self.jobs.begin(name, request)?;
        let either = cancel.child_token();
        let (stopping, forward) = (self.stopping.clone(), either.clone());
        let link = tokio::spawn(async move {
            stopping.cancelled().await;
            forward.cancel();
        });
        let tracked = |p: &PrewarmProgress| {
            job.progress(p);
            progress(p);
        };
        let result = self.prewarm(request, &tracked, &either).await;
        link.abort();
        job.end(!self.stopping.is_cancelled());
        result
    }

    /// Runs the background job `name` (scheduled, hot, or resumed) and logs its outcome.
    async fn run_job(&self, name: &str, request: &PrewarmRequest) {
        let logged = |p: &PrewarmProgress| {
            tracing::debug!(job = name, files = p.files_done, of = p.files_total, bytes = p.bytes_done, "prewarm");
        };
        tracing::info!(job = name, "prewarm started");
        match self.prewarm_job(name, request, &logged, &CancellationToken::new()).await {
            Ok(r) if r.cancelled => tracing::info!(job = name, "prewarm interrupted; it resumes at the next start"),
            Ok(r) => tracing::info!(
                job = name,
                files = r.progress.files_done,
                bytes = r.progress.bytes_done,
                fetched = r.progress.bytes_fetched,
                skipped = r.skipped.len(),
                "prewarm done"
            ),
            Err(PrewarmError::Busy(e)) => tracing::info!(job = name, "{e}; this run is skipped"),
            Err(e) => tracing::warn!(job = name, error = %e, "prewarm failed"),
        }
    }

    /// Drops cached bytes older than the policy's `max_age`. Blocking; errors are logged.
    fn expire_cache(&self) {
        let (Some(cache), Some(age)) = (&self.cache, self.policy().limits().max_age()) else { return };
        match cache.evict_older_than(age) {
            Ok(0) => {}
            Ok(bytes) => tracing::info!(bytes, "cached bytes older than max_age dropped"),
            Err(e) => tracing::warn!(error = %e, "dropping cached bytes older than max_age failed"),
        }
    }

    /// Drops cached bytes and mirror values `policy` forbids to store. Returns bytes evicted.
    fn purge(&self, policy: &Policy) -> Result<u64, DaemonError> {
        let served = lock(&self.served).clone();
        let mut purged = 0;
        if policy.mode() == Mode::Deny {
            if let Some(mirror) = lock(&self.mirror).take() {
                mirror.destroy()?;
            }
            if let Some(cache) = &self.cache {
                purged += cache.evict_all()?;
            }
            return Ok(purged);
        }
        if let Some(cache) = &self.cache {
            if let Some(age) = policy.limits().max_age() {
                purged += cache.evict_older_than(age)?;
            }
            // A lower budget than the cache was opened with: shrink now (later writes still
            // count against the opening budget until a restart).
            if let Some(max) = policy.limits().max_cache() {
                purged += cache.shrink_to(max)?;
            }
        }
        let Some((current, kept)) = served else { return Ok(purged) };
        let all: Vec<LakeSnapshot> = kept.iter().cloned().chain(std::iter::once(current.clone())).collect();
        if let Some(mirror) = lock(&self.mirror).as_mut() {
            mirror.scrub(&governance::mirror_scrub(policy, &all))?;
        }
        if let Some(cache) = &self.cache {
            let mut done = std::collections::BTreeSet::new();
            for s in &all {
                let access = governance::govern_kept(policy, s, &current).access;
                for t in &s.tables {
                    let qualified = format!("{}.{}", t.schema, t.name);
                    let storable = access.rules_for(&qualified).is_some_and(|r| r.store);
                    if !storable && done.insert(qualified.clone()) {
                        purged += cache.evict_table(&qualified)?;
                    }
                }
            }
        }
        Ok(purged)
    }

    /// Binds the SQL socket, if the config asks for one and its views have files to read.
    fn start_sql(&self, local_root: Option<String>) -> Result<(), DaemonError> {
        let Some(settings) = &self.config.sql else { return Ok(()) };
        let (files, readable) = match (&self.config.mount, local_root) {
            (Some(mount), _) => (SqlFiles::Mount, mount.clone()),
            (None, Some(root)) => (SqlFiles::Local(root.clone()), PathBuf::from(root)),
            (None, None) => {
                let why = "the lake's data is in an object store and the lake is not mounted: the SQL socket reads \
                           through the mount (set [mount] path)";
                tracing::warn!("no SQL socket: {why}");
                lock(&self.status).sql_unavailable = Some(why.into());
                return Ok(());
            }
        };
        let (current, kept) = self.governed_served();
        if matches!(files, SqlFiles::Local(_)) && restricts(&current, &kept) {
            tracing::warn!("no SQL socket: {UNMOUNTED_RESTRICTED}");
            lock(&self.status).sql_unavailable = Some(UNMOUNTED_RESTRICTED.into());
            return Ok(());
        }
        let mut sql_config = SqlConfig::new(settings.socket_dir.clone(), vec![readable]);
        sql_config.port = settings.port;
        sql_config.statement_timeout = settings.statement_timeout;
        sql_config.memory_limit = settings.memory_limit.clone();
        sql_config.max_connections = settings.max_connections;
        sql_config.spill_dir = Some(self.config.state_dir.join("spill"));
        sql_config.tcp = settings.tcp.clone();
        let lake = Arc::new(self.sql_lake(&files, &current.snapshot, &kept));
        let (tx, rx) = watch::channel(lake);
        let server = self.runtime.block_on(SqlServer::bind(sql_config, rx))?;
        let socket = server.socket_path();
        let unreadable = server.unreadable();
        tracing::info!(socket = %socket.display(), "SQL socket listening");
        lock(&self.status).sql_tcp = server.tcp_addr().map(|a| a.to_string());
        let stop = CancellationToken::new();
        let task = self.runtime.spawn(server.run(stop.clone().cancelled_owned()));
        lock(&self.status).sql_socket = Some(socket);
        *lock(&self.sql) = Some(SqlService { lake: tx, stop, task, files, unreadable });
        Ok(())
    }

    /// The views the SQL socket shows for `snapshot`, over the files it reads: the current
    /// snapshot's schemas, and each kept snapshot's as `<schema>@<id>` (time travel).
    fn sql_lake(&self, files: &SqlFiles, snapshot: &LakeSnapshot, kept: &[Governed]) -> SqlLake {
        let script = match files {
            // The tree's own scripts: the same views over the mount's paths.
            SqlFiles::Mount => {
                let mut script = self.tree.script();
                script.append(self.tree.history_script());
                script
            }
            SqlFiles::Local(root) => {
                let url = |k: &crate::lake_path::LakeKey| format!("{root}{k}");
                let mut script = view_sql::lake_views(snapshot, &url);
                for k in kept {
                    script.append(view_sql::lake_views(&view_sql::at_snapshot(&k.snapshot), &url));
                }
                script
            }
        };
        SqlLake { snapshot: snapshot.snapshot.id, script }
    }

    /// The served snapshots (current, kept) as the policy in force lets them be seen.
    fn governed_served(&self) -> (Governed, Vec<Governed>) {
        let policy = self.policy();
        let served = lock(&self.served).clone();
        let (current, kept) = served.unwrap_or_default();
        governance::govern_served(&policy, &current, &kept)
    }

    /// Shows `current` and `kept` (read from the catalog or the mirror) under the policy in
    /// force, in the mount and the SQL socket.
    fn publish(&self, current: LakeSnapshot, kept: Vec<LakeSnapshot>, policy_changed: bool) {
        if !policy_changed && lock(&self.served).as_ref().is_some_and(|(c, k)| *c == current && *k == kept) {
            // Nothing new: keep the tree (and the kernel's caches of it) as they are.
            self.update_status();
            return;
        }
        {
            let mut s = lock(&self.status);
            s.snapshot = Some(current.snapshot.id);
            s.snapshot_time = Some(current.snapshot.time.clone());
            s.kept_snapshots = kept.iter().map(|k| k.snapshot.id).collect();
        }
        let policy = self.policy();
        let (governed, governed_kept) = governance::govern_served(&policy, &current, &kept);
        self.tree.publish(&governed, &governed_kept);
        // The tree's temporaries (and the snapshots just read) are freed by now.
        crate::heap::release_free_memory();
        if let Some(mount) = &*lock(&self.mount) {
            // A new policy may refuse bytes open files already hold in the page cache.
            mount.invalidate(policy_changed);
        }
        let previous = lock(&self.served).replace((current, kept));
        if let (Some(before), Some(after)) = (previous, lock(&self.served).clone()) {
            self.evict_departed(&before, &after);
        }
        let local_sql = lock(&self.sql).as_ref().is_some_and(|sql| matches!(sql.files, SqlFiles::Local(_)));
        if local_sql
            && restricts(&governed, &governed_kept)
            && let Some(sql) = lock(&self.sql).take()
        {
            // Its task ends as soon as it sees the cancellation; nothing waits for it here.
            sql.stop.cancel();
            tracing::warn!("SQL socket closed: {UNMOUNTED_RESTRICTED}");
            let mut s = lock(&self.status);
            s.sql_socket = None;
            s.sql_tcp = None;
            s.sql_unavailable = Some(UNMOUNTED_RESTRICTED.into());
        }
        if let Some(sql) = &*lock(&self.sql) {
            let next = Arc::new(self.sql_lake(&sql.files, &governed.snapshot, &governed_kept));
            sql.lake.send_if_modified(|lake| {
                let changed = **lake != *next;
                *lake = next;
                changed
            });
        }
        self.update_status();
    }

    /// Drops the cached bytes of files that left every snapshot served (compacted or expired
    /// away), and of files the catalog schedules for deletion: nobody can read them through
    /// warmlake any more. Blocking; errors are logged (the budget evicts them eventually).
    fn evict_departed(&self, before: &(LakeSnapshot, Vec<LakeSnapshot>), after: &(LakeSnapshot, Vec<LakeSnapshot>)) {
        let (Some(cache), Some(store)) = (&self.cache, &self.store) else { return };
        let keys = |(current, kept): &(LakeSnapshot, Vec<LakeSnapshot>)| {
            let mut keys = std::collections::BTreeSet::new();
            for s in kept.iter().chain(std::iter::once(current)) {
                for t in &s.tables {
                    for f in &t.files {
                        keys.insert(f.key.as_str().to_string());
                        keys.extend(f.deletes.iter().map(|d| d.key.as_str().to_string()));
                    }
                }
            }
            keys
        };
        let still = keys(after);
        let scheduled = after.0.scheduled_for_deletion.iter().map(|k| k.as_str().to_string());
        let gone: std::collections::BTreeSet<String> =
            keys(before).into_iter().filter(|k| !still.contains(k)).chain(scheduled).collect();
        let mut freed = 0;
        for key in &gone {
            match cache.evict_object(&cache::ObjectRef::new(store.clone(), key.as_str(), 0)) {
                Ok(bytes) => freed += bytes,
                Err(e) => tracing::warn!(key, error = %e, "cannot evict a file that left the lake"),
            }
        }
        if freed > 0 {
            tracing::info!(files = gone.len(), bytes = freed, "evicted files no snapshot serves any more");
        }
    }

    /// Rewrites `.warmlake/status.json` with current counters.
    fn update_status(&self) {
        let json = {
            let mut s = lock(&self.status);
            self.fill_live(&mut s);
            serde_json::to_value(&*s).unwrap_or_default()
        };
        self.tree.set_status(&json);
    }

    /// Syncs the mirror with the catalog and publishes a new snapshot if there is one.
    /// Returns the snapshot now served. Blocking.
    pub fn refresh(&self) -> Result<i64, DaemonError> {
        let before = lock(&self.status).snapshot;
        let policy = self.policy();
        let result = {
            let mut mirror = lock(&self.mirror);
            online(&self.config, mirror.as_mut(), &policy)
        };
        match result {
            Ok((current, kept)) => {
                {
                    let mut s = lock(&self.status);
                    s.last_error = None;
                    s.offline = false;
                    s.last_refresh_unix = Some(unix_now());
                }
                let id = current.snapshot.id;
                if before != Some(id) || lock(&self.status).kept_snapshots.is_empty() {
                    tracing::info!(snapshot = id, "publishing new snapshot");
                }
                self.publish(current, kept, false);
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "refresh failed; still serving the last good snapshot");
                let mut s = lock(&self.status);
                s.last_error = Some(e.to_string());
                s.offline = true;
                Err(e)
            }
        }
    }

    /// The tree the mount serves.
    pub fn tree(&self) -> Arc<LakeTree> {
        Arc::clone(&self.tree)
    }

    /// A snapshot of the daemon's status.
    pub fn status(&self) -> Status {
        let mut s = lock(&self.status).clone();
        self.fill_live(&mut s);
        s
    }

    /// The parts of the status read fresh at each report rather than kept up to date.
    fn fill_live(&self, s: &mut Status) {
        s.unreadable_tables = self.tree.unreadable().into_iter().collect();
        if let Some(sql) = &*lock(&self.sql) {
            for (table, why) in lock(&sql.unreadable).iter() {
                s.unreadable_tables.entry(table.clone()).or_insert_with(|| why.clone());
            }
        }
        s.cache = self.cache.as_ref().map(Cache::stats);
        s.policy_error = self.policy_source.last_error();
        s.prewarm_running = self.jobs.running();
    }

    /// Re-reads the policy files now and applies the result (instead of waiting for the
    /// watch or the next periodic check). Blocking.
    pub fn reload_policy(&self) -> Result<(), DaemonError> {
        let policy = self.runtime.block_on(self.policy_source.reload_now());
        if *policy != *self.policy() {
            self.apply_policy(policy)?;
        }
        Ok(())
    }

    /// The chunk cache, for a lake whose data is remote.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// Closes the SQL socket, unmounts and saves the cache's statistics and column heat.
    /// Blocking.
    pub fn stop(self) -> Result<(), DaemonError> {
        if let Some(sql) = lock(&self.sql).take() {
            sql.stop.cancel();
            match self.runtime.block_on(sql.task) {
                Ok(result) => result?,
                Err(e) => return Err(DaemonError::Task(e.to_string())),
            }
        }
        if let Some(m) = lock(&self.mount).take() {
            m.unmount()?;
        }
        if let Some(cache) = &self.cache {
            cache.flush();
        }
        Ok(())
    }

    /// Serves the control socket and runs refreshes every interval until `shutdown` completes,
    /// then stops. `shutdown` is first polled once the control socket is bound.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let daemon = Arc::new(self);
        let control = crate::control::ControlServer::start(Arc::clone(&daemon), &daemon.config.state_dir)?;
        let mut ticker = tokio::time::interval(daemon.config.refresh_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut status_ticker = tokio::time::interval(STATUS_INTERVAL);
        status_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut policies = daemon.policy_source.subscribe();
        let mut policy_live = true;
        let catalog_changed = Arc::clone(&daemon.catalog_changed);
        // Background prewarm jobs: stopped (`stopping`) and awaited at shutdown.
        let jobs = tokio_util::task::TaskTracker::new();
        let spawn_job = |name: String, request: PrewarmRequest| {
            let d = Arc::clone(&daemon);
            jobs.spawn(async move { d.run_job(&name, &request).await });
        };
        for (name, request) in daemon.jobs.interrupted() {
            tracing::info!(job = name, "resuming a prewarm the last run did not finish");
            spawn_job(name, request);
        }
        tokio::pin!(shutdown);
        let mut planner = scheduler::Planner::default();
        loop {
            let (due_jobs, wait) = planner.step(&daemon.policy());
            lock(&daemon.status).next_prewarm = planner.next();
            for job in due_jobs {
                spawn_job(job.name.clone(), scheduler::request(&job));
            }
            tokio::select! {
                _ = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
                changed = policies.changed(), if policy_live => {
                    if changed.is_err() {
                        policy_live = false;
                        continue;
                    }
                    let next = policies.borrow_and_update().clone();
                    let d = Arc::clone(&daemon);
                    match tokio::task::spawn_blocking(move || d.apply_policy(next)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "applying the new policy failed"),
                        Err(e) => tracing::error!(error = %e, "applying the new policy panicked"),
                    }
                }
                () = catalog_changed.notified() => {
                    // Let the writer finish its transaction (and further events settle).
                    tokio::time::sleep(CATALOG_SETTLE).await;
                    ticker.reset_immediately();
                }
                _ = ticker.tick() => {
                    let d = Arc::clone(&daemon);
                    let before = daemon.status().snapshot;
                    // Errors are logged and reported in status; the daemon keeps serving.
                    let now = tokio::task::spawn_blocking(move || {
                        let now = d.refresh().ok();
                        d.expire_cache();
                        now
                    })
                    .await
                    .ok()
                    .flatten();
                    // New data: fetch the columns people read for its new files.
                    if now.is_some() && now != before && daemon.cache.is_some() {
                        spawn_job(scheduler::HOT_JOB.into(), scheduler::hot_everywhere());
                    }
                }
                _ = status_ticker.tick() => {
                    daemon.update_status();
                    // Column heat gathered since the last tick, saved in one batch, so a restart
                    // (or a crash) keeps what people read.
                    if let Some(cache) = daemon.cache.clone() {
                        match tokio::task::spawn_blocking(move || cache.save_heat()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save column heat"),
                            Err(e) => tracing::warn!(error = %e, "saving column heat panicked"),
                        }
                    }
                }
            }
        }
        tracing::info!("shutting down");
        daemon.stopping.cancel();
        control.stop().await;
        jobs.close();
        jobs.wait().await;
        let daemon = Arc::try_unwrap(daemon).map_err(|_| DaemonError::Task("a refresh is still running".into()))?;
        tokio::task::spawn_blocking(move || daemon.stop()).await.map_err(|e| DaemonError::Task(e.to_string()))?
    }
}

/// An object that changed in the store was dropped from the cache; pages the kernel holds of it
/// would be served beside bytes of the new version, so they go too, whoever noticed the change
/// (a reader, a prewarm, a fetch ahead). Ends with the cache.
fn drop_pages_on_change(
    runtime: &tokio::runtime::Handle,
    mut changes: tokio::sync::watch::Receiver<()>,
    pages: warmlake_fuse_mount::PageDropper,
) {
    runtime.spawn(async move {
        while changes.changed().await.is_ok() {
            tracing::warn!("an object changed in the store; dropping the mount's cached pages");
            pages.drop_all();
        }
    });
}

/// Where file contents come from: the lake's own folder when its data is a plain path (no copy
/// needed), else the chunk cache over the data store. Also returns the cache and the store (a
/// store), and the data folder with a trailing `/` when its files are on this machine (a
/// plain path or a `file://` store).
#[allow(clippy::type_complexity)]
fn data_source(
    config: &Config,
    policy: &Policy,
    data_root: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<(Arc<dyn ObjectSource>, Option<(Cache, Store)>, Option<String>), DaemonError> {
    // A plain path is a folder of files on this machine: read in place. A URL is an object
    // store, `file://` included (a folder used as a bucket): read through the cache. For a
    // `file://` store the SQL socket may still read the folder directly when there is no mount.
    let with_slash = |p: &str| if p.ends_with('/') { p.to_string() } else { format!("{p}/") };
    if !data_root.contains("://") {
        return Ok((Arc::new(LocalSource::new(data_root)), None, Some(with_slash(data_root))));
    }
    let file_root = data_root.strip_prefix("file://").map(with_slash);
    let store = Store::open(data_root, &config.store).map_err(|e| DaemonError::Store(Box::new(e)))?;
    let mut cache_config = CacheConfig::new(&config.cache_dir);
    cache_config.max_cache = config.max_cache.min(policy.limits().max_cache().unwrap_or(u64::MAX));
    cache_config.min_free_disk = config.min_free_disk;
    let cache = Cache::open(cache_config, runtime.clone())?;
    tracing::info!(data = data_root, cache = %config.cache_dir.display(), "reading the lake's data through the cache");
    Ok((Arc::new(CachedSource::new(cache.clone(), store.clone(), runtime.clone())), Some((cache, store)), file_root))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the newest snapshot and the kept ones from the catalog and brings the mirror (when
/// there is one) up to date, scrubbed under `policy`.
fn online(
    config: &Config,
    mirror: Option<&mut Mirror>,
    policy: &Policy,
) -> Result<(LakeSnapshot, Vec<LakeSnapshot>), DaemonError> {
    let source = CatalogReader::open(&CatalogLocation::parse(&config.catalog), config.data.as_deref())?;
    let (current, kept) = read_kept(config, &source, policy)?;
    if let Some(mirror) = mirror {
        let all: Vec<LakeSnapshot> = kept.iter().cloned().chain(std::iter::once(current.clone())).collect();
        let report = mirror.sync(&source, &governance::mirror_scrub(policy, &all))?;
        if report.rows > 0 {
            tracing::info!(from = ?report.from, to = report.to, rows = report.rows, full = report.full, "mirror updated");
        }
    }
    Ok((current, kept))
}

/// The newest snapshot and the kept ones, from the mirror (offline).
fn offline(
    config: &Config,
    mirror: &Mirror,
    policy: &Policy,
) -> Result<(LakeSnapshot, Vec<LakeSnapshot>), DaemonError> {
    read_kept(config, &CatalogReader::open(&mirror.location(), None)?, policy)
}

/// The newest snapshot and the kept ones (newest last).
fn read_kept(
    config: &Config,
    reader: &CatalogReader,
    policy: &Policy,
) -> Result<(LakeSnapshot, Vec<LakeSnapshot>), DaemonError> {
    let snapshots = reader.snapshots()?;
    // The policy's keep_snapshots, when it sets one, can only lower the config's.
    let by_policy = policy.limits().keep_snapshots_setting().map(|s| s.value as usize).unwrap_or(usize::MAX);
    let keep = config.keep_snapshots.min(by_policy).max(1);
    let kept_ids: Vec<i64> = snapshots.iter().rev().take(keep).rev().map(|s| s.id).collect();
    let mut kept: Vec<LakeSnapshot> = Vec::with_capacity(kept_ids.len());
    for id in kept_ids {
        let mut snapshot = reader.read_snapshot(id)?;
        if let Some(previous) = kept.last() {
            snapshot.share_files(previous);
        }
        kept.push(snapshot);
    }
    let current = match kept.last() {
        Some(c) => c.clone(),
        None => reader.read_snapshot(reader.latest_snapshot()?.id)?,
    };
    Ok((current, kept))
}

/// How the lake is mounted. Read through the cache (`cached`), with readahead off: every byte
/// the kernel reads ahead is a byte the cache fetches, widened to its whole column chunk, and
/// past the end of the chunk a reader wants lies a chunk of a column the query may never read.
/// The kernel then asks for one page at a time, and the cache puts the cached rest of the chunk
/// in the page cache after each read instead ([`crate::tree::ObjectSource::read_ahead`]). A
/// lake on local disk keeps the kernel's usual 128 KiB window. Measured in `bench/` (`cache`).
fn mount_options(cached: bool) -> warmlake_fuse_mount::MountOptions {
    let readahead = if cached { 0 } else { 128 << 10 };
    warmlake_fuse_mount::MountOptions { readahead, ..warmlake_fuse_mount::MountOptions::default() }
}

/// Watches a catalog that is a local file (with the journal files its database writes beside
/// it), waking `changed` on every commit. `None` for a remote catalog, or when the folder
/// cannot be watched (then the refresh interval alone applies, and a warning says so).
fn watch_catalog(
    catalog: &CatalogLocation,
    changed: &Arc<tokio::sync::Notify>,
) -> Option<crate::file_watch::FileWatch> {
    let (CatalogLocation::DuckDb(path) | CatalogLocation::Sqlite(path)) = catalog else { return None };
    let mut files = vec![path.clone()];
    files.extend(["-wal", ".wal", "-journal"].map(|s| PathBuf::from(format!("{}{s}", path.display()))));
    crate::file_watch::FileWatch::start(&files, "catalog", Arc::clone(changed))
        .map_err(|e| tracing::warn!(error = %e, "cannot watch the catalog; refreshing on the interval only"))
        .ok()
}

/// One line for status: the mode and how many rules.
fn summary(policy: &Policy) -> String {
    format!("local.mode = {}, {} rules", policy.mode().as_str(), policy.rules().count())
}
