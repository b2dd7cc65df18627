//! The local policy file: reading it, and watching it for edits.
//!
//! The watch is on the file's folder, not on the file: editors save by writing a new file and
//! renaming it over the old one (vim, VS Code, `sed -i`), and a watch on the old file's inode
//! would never see the new one. Events are filtered to the file's name. When the file is a
//! symbolic link (dotfile managers), the folder of its target is watched too. Whatever the
//! watch misses (a folder created later, a full inotify table) the periodic re-read catches.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use warmlake_policy::{Policy, PolicyError};

use super::LocalPolicy;

/// Why the local file gave no policy.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The file was named explicitly (`[policy] file = ...`) and does not exist.
    #[error("policy file {} does not exist", path.display())]
    Missing { path: PathBuf },
    /// The file exists but cannot be read (permissions, a folder, not UTF-8).
    #[error("cannot read policy file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file does not parse: `file:line:column: reason`.
    #[error(transparent)]
    Invalid(Box<PolicyError>),
}

/// Reads and parses the local file. `Ok(None)`: the file is absent and not required, so there
/// is no local layer.
pub(super) async fn load(local: &LocalPolicy) -> Result<Option<Policy>, LocalError> {
    let path = &local.path;
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if local.required { Err(LocalError::Missing { path: path.clone() }) } else { Ok(None) };
        }
        Err(source) => return Err(LocalError::Read { path: path.clone(), source }),
    };
    let file = path.display().to_string();
    Policy::parse(&text, &file).map(Some).map_err(|e| LocalError::Invalid(Box::new(e)))
}

/// Watches the file's folder and wakes `changed` on every event that touches the file. Dropping
/// it stops the watch.
pub(super) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
}

impl FileWatch {
    /// Starts watching. A folder that cannot be watched is logged and skipped: the periodic
    /// re-read still applies edits, only later.
    pub(super) fn start(path: &Path, changed: Arc<Notify>) -> Result<FileWatch, notify::Error> {
        let mut targets: Vec<(PathBuf, OsString)> = Vec::new();
        let mut add = |p: &Path| {
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
                if !targets.iter().any(|(d, n)| *d == dir && n == name) {
                    targets.push((dir, name.to_os_string()));
                }
            }
        };
        add(path);
        if let Ok(target) = std::fs::canonicalize(path) {
            add(&target);
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
        for (dir, _) in &targets {
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {}
                // Usual for the optional default file: no ~/.config/warmlake yet.
                Err(_) if !dir.exists() => tracing::info!(
                    "{} does not exist; a policy file created there applies at the next periodic re-read",
                    dir.display()
                ),
                Err(e) => tracing::warn!(
                    "cannot watch {} for policy edits ({e}); they apply at the next periodic re-read",
                    dir.display()
                ),
            }
        }
        Ok(FileWatch { _watcher: watcher })
    }
}
