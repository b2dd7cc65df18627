//! The central policy: one object in the lake's store, fetched whole, and a saved copy of the
//! last good one on local disk so an offline start still enforces it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use object_store::{GetOptions, ObjectStore as _};

use super::CentralPolicy;
use crate::store::{Store, StoreError};

/// A policy larger than this is refused unread: real ones are a few KiB, and a wrong URL
/// pointing at a data file must not be downloaded and parsed every few minutes.
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Why the central policy could not be fetched. The daemon keeps the last good central policy
/// (or fails closed) whatever the reason; the message goes to the log and to status.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    /// The store answered but has no object there.
    #[error("central policy {url} not found")]
    NotFound { url: String },
    /// The store could not be reached, refused the credentials, or failed after its retries.
    #[error("cannot fetch central policy {url}: {source}")]
    Unreachable { url: String, source: object_store::Error },
    /// The object is not a policy: too large, or not UTF-8.
    #[error("central policy {url} {reason}")]
    NotAPolicy { url: String, reason: String },
}

/// What a fetch found.
pub(super) enum Fetched {
    /// The object is unchanged since the fetch that returned this ETag.
    NotModified,
    /// The object's text and ETag.
    Text { text: String, etag: Option<String> },
}

/// The store holding the central policy and the policy's key in it.
pub(super) struct CentralStore {
    url: String,
    store: Store,
    key: String,
    saved_copy: Option<PathBuf>,
}

/// Splits `s3://bucket/.warmlake/policy.toml` into the store URL (`s3://bucket/.warmlake`) and
/// the key (`policy.toml`): [`Store::open`] takes a folder, and keys are relative to it.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let (store, key) = url.rsplit_once('/')?;
    let scheme_only = store.ends_with(':') || store.ends_with("://") || store.ends_with(":/");
    (!key.is_empty() && !store.is_empty() && !scheme_only).then_some((store, key))
}

impl CentralStore {
    pub(super) fn open(config: &CentralPolicy) -> Result<CentralStore, StoreError> {
        let (store_url, key) = split_url(&config.url).ok_or_else(|| StoreError::Config {
            url: config.url.clone(),
            reason: "expected the URL of a policy file, such as s3://bucket/.warmlake/policy.toml".into(),
        })?;
        Ok(CentralStore {
            url: config.url.clone(),
            store: Store::open(store_url, &config.store)?,
            key: key.to_string(),
            saved_copy: config.saved_copy.clone(),
        })
    }

    /// The URL, which is also the file name the central policy is parsed under (so rules and
    /// limits say `s3://bucket/.warmlake/policy.toml:12`).
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the policy unless its ETag is still `etag` (a conditional GET: an unchanged
    /// policy costs one request and no body).
    pub(super) async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let unreachable = |source| FetchError::Unreachable { url: self.url.clone(), source };
        let path = self.store.path(&self.key).map_err(|e| FetchError::NotAPolicy {
            url: self.url.clone(),
            reason: format!("has an invalid key: {e}"),
        })?;
        let options = GetOptions { if_none_match: etag.map(str::to_string), ..GetOptions::default() };
        let result = match self.store.object_store().get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::NotModified),
            Err(object_store::Error::NotFound { .. }) => return Err(FetchError::NotFound { url: self.url.clone() }),
            Err(e) => return Err(unreachable(e)),
        };
        if result.meta.size > MAX_POLICY_BYTES {
            return Err(FetchError::NotAPolicy {
                url: self.url.clone(),
                reason: format!("is {} bytes; a policy is at most {MAX_POLICY_BYTES}", result.meta.size),
            });
        }
        let etag = result.meta.e_tag.clone();
        let bytes = result.bytes().await.map_err(unreachable)?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| FetchError::NotAPolicy { url: self.url.clone(), reason: "is not UTF-8 text".into() })?;
        Ok(Fetched::Text { text, etag })
    }

    /// The saved copy's text, if one is configured and readable.
    pub(super) async fn read_saved(&self) -> Option<(PathBuf, String)> {
        let path = self.saved_copy.clone()?;
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Some((path, text)),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot read the saved central policy {}: {e}", path.display());
                }
                None
            }
        }
    }

    /// Replaces the saved copy with `text` (a policy that parsed). Failing to save is logged,
    /// not fatal: the policy is in force either way, only an offline restart would miss it.
    pub(super) async fn save(&self, text: String) {
        let Some(path) = self.saved_copy.clone() else { return };
        let saved =
            tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes()).map_err(|e| (path, e)));
        match saved.await {
            Ok(Ok(())) => {}
            Ok(Err((path, e))) => tracing::warn!("cannot save the central policy to {}: {e}", path.display()),
            Err(e) => tracing::warn!("saving the central policy failed: {e}"),
        }
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: a private temporary file in the same folder, fsync, rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_policy_urls() {
        assert_eq!(split_url("s3://bucket/.warmlake/policy.toml"), Some(("s3://bucket/.warmlake", "policy.toml")));
        assert_eq!(split_url("s3://bucket/policy.toml"), Some(("s3://bucket", "policy.toml")));
        assert_eq!(split_url("file:///etc/warmlake/central.toml"), Some(("file:///etc/warmlake", "central.toml")));
        assert_eq!(split_url("/etc/warmlake/central.toml"), Some(("/etc/warmlake", "central.toml")));
        assert_eq!(split_url("s3://bucket/dir/"), None);
        assert_eq!(split_url("policy.toml"), None);
        assert_eq!(split_url("file:/policy.toml"), None);
        assert_eq!(split_url("s3://policy.toml"), None);
    }

    #[test]
    fn saves_atomically_and_privately() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy/central.toml");
        write_atomically(&path, b"one").expect("write");
        write_atomically(&path, b"two").expect("overwrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("policy")).expect("list").flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}
