//! The local policy file: reading it. It is watched for edits with `crate::file_watch` (on its
//! folder, so editors that save by renaming are seen, and on its target's folder when it is a
//! symbolic link); whatever the watch misses (a folder created later, a full inotify table) the
//! periodic re-read catches.

use std::path::PathBuf;

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
