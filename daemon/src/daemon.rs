//! The daemon: keeps the mirror fresh and serves it through the mount.
//!
//! Start-up: open the catalog, bring the mirror up to date (or, if the catalog cannot be
//! reached, serve what the mirror already holds), publish the newest snapshot and the kept ones
//! to the tree, mount it. Then every refresh interval: sync the mirror and publish again if a
//! new snapshot arrived. Every catalog call runs on a blocking thread. A failed refresh keeps
//! the last good state and is reported in `.warmlake/status.json`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::catalog::{CatalogError, CatalogLocation, CatalogReader, LakeSnapshot};
use crate::config::Config;
use crate::mirror::{Mirror, MirrorError, create_private_dir};
use crate::tree::{LakeTree, LocalSource};

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
    #[error(
        "the lake's data lives in an object store ({0}); serving it needs the chunk cache, which this build does not have yet"
    )]
    RemoteData(String),
    #[error(transparent)]
    Mount(#[from] warmlake_fuse_mount::MountError),
    #[error("a daemon task failed: {0}")]
    Task(String),
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
    pub mount: Option<PathBuf>,
    /// The last refresh error, cleared by the next successful refresh.
    pub last_error: Option<String>,
    pub offline: bool,
}

/// A running daemon (mirror, tree and mount). Dropping it unmounts.
pub struct Daemon {
    config: Config,
    mirror: Mutex<Mirror>,
    tree: Arc<LakeTree>,
    mount: Mutex<Option<warmlake_fuse_mount::Mount>>,
    status: Mutex<Status>,
}

impl Daemon {
    /// Starts the daemon: mirror, first publish, mount. Blocking; call from a blocking thread.
    pub fn start(config: Config) -> Result<Daemon, DaemonError> {
        for dir in [&config.state_dir, &config.cache_dir] {
            create_private_dir(dir).map_err(|source| DaemonError::StateDir { path: dir.clone(), source })?;
        }
        let mut mirror = Mirror::open(&config.mirror_path())?;
        let mut status = Status {
            lake: config.lake_name.clone(),
            catalog: CatalogLocation::parse(&config.catalog).to_string(),
            snapshot: None,
            snapshot_time: None,
            kept_snapshots: Vec::new(),
            mirror: config.mirror_path(),
            mount: config.mount.clone(),
            last_error: None,
            offline: false,
        };
        match sync(&config, &mut mirror) {
            Ok(()) => {}
            Err(e) if mirror.last_snapshot()?.is_some() => {
                tracing::warn!(error = %e, "catalog unreachable; serving the local mirror");
                status.offline = true;
                status.last_error = Some(e.to_string());
            }
            Err(DaemonError::Catalog(e)) => return Err(DaemonError::NoMirror(e)),
            Err(e) => return Err(e),
        }
        let (current, kept) = read_mirror(&config, &mirror)?;
        let source = match current.data_root.strip_prefix("file://").unwrap_or(&current.data_root) {
            root if !root.contains("://") => LocalSource::new(root),
            _ => return Err(DaemonError::RemoteData(current.data_root.clone())),
        };
        let tree_root = config.mount.clone().unwrap_or_default();
        let tree = Arc::new(LakeTree::new(tree_root, Arc::new(source)));
        let daemon =
            Daemon { config, mirror: Mutex::new(mirror), tree, mount: Mutex::new(None), status: Mutex::new(status) };
        daemon.publish(&current, &kept);
        if let Some(path) = &daemon.config.mount {
            let tree: Arc<dyn warmlake_fuse_mount::Tree> = daemon.tree.clone();
            let m = warmlake_fuse_mount::mount(tree, path, &warmlake_fuse_mount::MountOptions::default())?;
            tracing::info!(mount = %path.display(), "lake mounted");
            *lock(&daemon.mount) = Some(m);
        }
        Ok(daemon)
    }

    fn publish(&self, current: &LakeSnapshot, kept: &[LakeSnapshot]) {
        let json = {
            let mut s = lock(&self.status);
            s.snapshot = Some(current.snapshot.id);
            s.snapshot_time = Some(current.snapshot.time.clone());
            s.kept_snapshots = kept.iter().map(|k| k.snapshot.id).collect();
            serde_json::to_value(&*s).unwrap_or_default()
        };
        self.tree.publish(current, kept, &json);
    }

    /// Syncs the mirror with the catalog and publishes a new snapshot if there is one.
    /// Returns the snapshot now served. Blocking.
    pub fn refresh(&self) -> Result<i64, DaemonError> {
        let before = lock(&self.status).snapshot;
        let result = {
            let mut mirror = lock(&self.mirror);
            sync(&self.config, &mut mirror).and_then(|()| read_mirror(&self.config, &mirror))
        };
        match result {
            Ok((current, kept)) => {
                {
                    let mut s = lock(&self.status);
                    s.last_error = None;
                    s.offline = false;
                }
                if before != Some(current.snapshot.id) || lock(&self.status).kept_snapshots.is_empty() {
                    tracing::info!(snapshot = current.snapshot.id, "publishing new snapshot");
                }
                self.publish(&current, &kept);
                Ok(current.snapshot.id)
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
        lock(&self.status).clone()
    }

    /// Unmounts and stops. Blocking.
    pub fn stop(self) -> Result<(), DaemonError> {
        if let Some(m) = lock(&self.mount).take() {
            m.unmount()?;
        }
        Ok(())
    }

    /// Runs refreshes every interval until `shutdown` completes, then stops.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let daemon = Arc::new(self);
        let mut ticker = tokio::time::interval(daemon.config.refresh_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => {
                    let d = Arc::clone(&daemon);
                    // Errors are logged and reported in status; the daemon keeps serving.
                    let _ = tokio::task::spawn_blocking(move || d.refresh()).await;
                }
            }
        }
        tracing::info!("shutting down");
        let daemon = Arc::try_unwrap(daemon).map_err(|_| DaemonError::Task("a refresh is still running".into()))?;
        tokio::task::spawn_blocking(move || daemon.stop()).await.map_err(|e| DaemonError::Task(e.to_string()))?
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sync(config: &Config, mirror: &mut Mirror) -> Result<(), DaemonError> {
    let source = CatalogReader::open(&CatalogLocation::parse(&config.catalog), config.data.as_deref())?;
    let report = mirror.sync(&source)?;
    if report.rows > 0 {
        tracing::info!(from = ?report.from, to = report.to, rows = report.rows, full = report.full, "mirror updated");
    }
    Ok(())
}

/// The newest snapshot and the kept ones (newest last), read from the mirror.
fn read_mirror(config: &Config, mirror: &Mirror) -> Result<(LakeSnapshot, Vec<LakeSnapshot>), DaemonError> {
    let reader = CatalogReader::open(&mirror.location(), None)?;
    let snapshots = reader.snapshots()?;
    let keep = config.keep_snapshots.max(1);
    let kept_ids: Vec<i64> = snapshots.iter().rev().take(keep).rev().map(|s| s.id).collect();
    let mut kept = Vec::with_capacity(kept_ids.len());
    for id in kept_ids {
        kept.push(reader.read_snapshot(id)?);
    }
    let current = match kept.last() {
        Some(c) => c.clone(),
        None => reader.read_snapshot(reader.latest_snapshot()?.id)?,
    };
    Ok((current, kept))
}
