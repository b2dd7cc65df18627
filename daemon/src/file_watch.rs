//! Watching files for changes (`notify`): the policy file, a local catalog. Each file's folder
//! is watched, not the file, so editors that save by renaming a new file over the old one, and
//! databases that write a `-wal` beside their file, are seen; a symlink's target folder too.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::Notify;

/// Wakes `changed` on every event that touches one of the files. Dropping it stops the watch.
pub(crate) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
}

impl FileWatch {
    /// Starts watching `paths`. A folder that cannot be watched is logged (as `what`) and
    /// skipped: callers also re-read on a timer, so changes still arrive, only later.
    pub(crate) fn start(paths: &[PathBuf], what: &str, changed: Arc<Notify>) -> Result<FileWatch, notify::Error> {
        let mut targets: Vec<(PathBuf, OsString)> = Vec::new();
        let mut add = |p: &Path| {
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
                if !targets.iter().any(|(d, n)| *d == dir && n == name) {
                    targets.push((dir, name.to_os_string()));
                }
            }
        };
        for path in paths {
            add(path);
            if let Ok(target) = std::fs::canonicalize(path) {
                add(&target);
            }
        }
        let names: Vec<OsString> = targets.iter().map(|(_, n)| n.clone()).collect();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match event {
                // Access events (open, read, close without write) change nothing.
                Ok(e) if matches!(e.kind, EventKind::Access(_)) => false,
                // An event without paths is a rescan request (the kernel queue overflowed).
                Ok(e) => {
                    e.paths.is_empty()
                        || e.paths.iter().any(|p| p.file_name().is_some_and(|n| names.contains(&n.to_os_string())))
                }
                Err(_) => true,
            };
            if relevant {
                changed.notify_one();
            }
        })?;
        let mut dirs: Vec<&PathBuf> = targets.iter().map(|(d, _)| d).collect();
        dirs.dedup();
        for dir in dirs {
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {}
                Err(_) if !dir.exists() => tracing::info!(
                    "{} does not exist; a {what} created there is noticed at the next periodic check",
                    dir.display()
                ),
                Err(e) => tracing::warn!(
                    "cannot watch {} for {what} changes ({e}); they are noticed at the next periodic check",
                    dir.display()
                ),
            }
        }
        Ok(FileWatch { _watcher: watcher })
    }
}
