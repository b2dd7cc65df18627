//! The object store: where a lake's Parquet files live (S3 and S3-compatible endpoints, GCS,
//! Azure, plain HTTP(S), a local folder), reached through the `object_store` crate.
//!
//! [`Store`] adds three things on top of an `Arc<dyn ObjectStore>`:
//!
//! - **Configuration from a URL plus options** ([`Store::open`], [`StoreConfig`]): timeouts and
//!   retries with exponential backoff go to `object_store`'s own `ClientOptions`/`RetryConfig`,
//!   so a transient 5xx or reset connection is retried inside one [`Store::get_range`] call and
//!   only a failure that survives every retry reaches the caller (as
//!   [`StoreError::Unreachable`]).
//! - **A concurrency limit with priority for demand reads.** Every request holds a permit of
//!   the `requests` semaphore (`max_requests`). A background prefetch must first take a permit
//!   of the smaller `prefetch` semaphore (`max_prefetch_requests`), so prefetch can never
//!   occupy more than that many slots and at least `max_requests - max_prefetch_requests` are
//!   always left for a user who is waiting. Permits are acquired in that fixed order
//!   (prefetch, then requests), so the two semaphores cannot deadlock.
//! - **Typed errors** ([`StoreError`]) with the few outcomes callers act on: the object is gone
//!   (the mount answers `ENOENT`), it changed under us, access is denied, or the store could
//!   not be reached (`EIO`).
//!
//! Single-flight (one request for concurrent misses of one range) is the cache's job, because
//! only the cache knows which ranges a miss is widened to; see `cache`.

mod counting;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use tokio::sync::Semaphore;
use url::Url;

pub use counting::CountingStore;

/// How to reach the store. Every field has a default suited to a laptop on an ordinary
/// connection; see each field for why.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Backend options passed to the `object_store` builder by their documented names
    /// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_virtual_hosted_style_request`, `google_service_account`, `azure_storage_account_name`,
    /// ...). Unknown names are an error rather than silently ignored. Values not given here come
    /// from the usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub options: Vec<(String, String)>,
    /// Allow plain `http://` endpoints (local MinIO, Garage, s3s). Off by default because
    /// credentials would travel in clear text.
    pub allow_http: bool,
    /// Time allowed to open a TCP/TLS connection. Short (5 s): a store that cannot be reached
    /// should fail fast so the user's `read` returns `EIO` instead of hanging.
    pub connect_timeout: Duration,
    /// Time allowed for one whole request, body included. 60 s covers a 32 MiB range at
    /// ~0.5 MB/s, the slowest link warmlake aims to be usable on.
    pub request_timeout: Duration,
    /// Retries of a failed request (5xx, timeouts, resets) before giving up.
    pub max_retries: usize,
    /// Upper bound on the time spent retrying one request; also bounds how long signed
    /// credentials must stay valid (`object_store` advises under 5 minutes).
    pub retry_timeout: Duration,
    /// First backoff between retries; doubles up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    /// Largest backoff between retries.
    pub max_backoff: Duration,
    /// Requests in flight at once, all priorities. 16 keeps a home uplink busy without
    /// tripping per-prefix rate limits on S3 (thousands per second).
    pub max_requests: usize,
    /// Of those, how many background prefetch may hold. The rest are reserved for demand
    /// reads, so a `cat` never queues behind a prewarm job.
    pub max_prefetch_requests: usize,
    /// Wraps the backend of every store opened with this config, below the concurrency limit
    /// (benchmarks model a distant bucket's latency this way). `None` in normal use; not a
    /// config-file option.
    pub decorate: Option<StoreDecorator>,
}

/// A wrapper around a store's backend (see [`StoreConfig::decorate`]).
#[derive(Clone)]
pub struct StoreDecorator(pub Arc<Decorate>);

/// Wraps one backend in another (a latency model, a request counter).
pub type Decorate = dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send + Sync;

impl std::fmt::Debug for StoreDecorator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreDecorator")
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            options: Vec::new(),
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            max_retries: 5,
            retry_timeout: Duration::from_secs(180),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            max_requests: 16,
            max_prefetch_requests: 8,
            decorate: None,
        }
    }
}

/// Who is waiting for a request: a user (demand) or nobody yet (prefetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A read someone is blocked on (a FUSE `read`, a SQL query).
    Demand,
    /// Background prewarm; yields slots to demand reads.
    Prefetch,
}

/// A store request failed. Variants are what callers branch on; the store's own error is kept
/// as the source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (deleted by compaction or `expire_snapshots`). The mount
    /// answers `ENOENT`.
    #[error("object {key} not found in {store}")]
    NotFound { store: String, key: String },
    /// The object is not the one we cached: its ETag or size changed.
    #[error("object {key} in {store} changed: {detail}")]
    Changed { store: String, key: String, detail: String },
    /// Credentials were refused or missing.
    #[error("access to {key} in {store} denied: {source}")]
    Denied { store: String, key: String, source: object_store::Error },
    /// The store could not be reached or kept failing after every retry (timeouts included).
    #[error("cannot read {key} from {store}: {source}")]
    Unreachable { store: String, key: String, source: object_store::Error },
    /// The store answered with fewer or more bytes than asked for.
    #[error("{store} returned {got} bytes for {key} {range:?}")]
    ShortRead { store: String, key: String, range: Range<u64>, got: u64 },
    /// The URL or options do not describe a store.
    #[error("invalid store {url}: {reason}")]
    Config { url: String, reason: String },
    /// The object key is not a valid store path.
    #[error("invalid object key {key:?}: {source}")]
    InvalidKey { key: String, source: object_store::path::Error },
}

/// Bytes of one ranged GET and what the store said about the object.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Exactly the bytes of the requested range.
    pub bytes: Bytes,
    /// The object's ETag, when the store gives one.
    pub etag: Option<String>,
    /// The object's total size, as the store reports it.
    pub object_size: u64,
}

/// A configured object store with a concurrency limit. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    /// Identifies the store in cache keys, metrics and errors (the URL it was opened from).
    id: String,
    store: Arc<dyn ObjectStore>,
    /// The URL's path: object keys are relative to it.
    prefix: Path,
    /// The folder of a local store (`file://` or a plain path): while it is absent (a drive
    /// not mounted), a missing object is the store being unreachable, not the object gone.
    local_root: Option<std::path::PathBuf>,
    requests: Arc<Semaphore>,
    prefetch: Arc<Semaphore>,
}

impl Store {
    /// Opens the store a URL names: `s3://bucket/prefix`, `gs://`, `az://` (or `abfss://`),
    /// `http(s)://host/path`, `file:///dir` or a plain local path. Keys given to
    /// [`Store::get_range`] are relative to the URL's path.
    pub fn open(url: &str, config: &StoreConfig) -> Result<Store, StoreError> {
        Self::open_decorated(url, config, |s| s)
    }

    /// Like [`Store::open`], with `decorate` wrapping the backend before the concurrency limit
    /// (a [`CountingStore`] in tests, a throttle in benchmarks).
    pub fn open_decorated(
        url: &str,
        config: &StoreConfig,
        decorate: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Result<Store, StoreError> {
        let cfg_err = |reason: String| StoreError::Config { url: url.to_string(), reason };
        let parsed = match Url::parse(url) {
            Ok(u) => u,
            // A plain path (absolute or relative to the working directory).
            Err(url::ParseError::RelativeUrlWithoutBase) => return Self::open_local(url, url, config, decorate),
            Err(e) => return Err(cfg_err(e.to_string())),
        };
        if parsed.scheme() == "file" {
            let path = parsed.to_file_path().map_err(|()| cfg_err("not a local path".into()))?;
            return Self::open_local(url, &path.to_string_lossy(), config, decorate);
        }
        let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| cfg_err(e.to_string()))?;
        let client = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout);
        let retry = RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: config.initial_backoff,
                max_backoff: config.max_backoff,
                base: 2.0,
            },
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
        };
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let mut b = AmazonS3Builder::from_env().with_url(url);
                for (k, v) in &config.options {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|e: object_store::Error| cfg_err(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.with_client_options(client).with_retry(retry).build().map_err(|e| cfg_err(e.to_string()))?)
            }
            ObjectStoreScheme::GoogleCloudStorage => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(url);
                for (k, v) in &config.options {
                    let key: GoogleConfigKey = k.parse().map_err(|e: object_store::Error| cfg_err(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.with_client_options(client).with_retry(retry).build().map_err(|e| cfg_err(e.to_string()))?)
            }
            ObjectStoreScheme::MicrosoftAzure => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env().with_url(url);
                for (k, v) in &config.options {
                    let key: AzureConfigKey = k.parse().map_err(|e: object_store::Error| cfg_err(e.to_string()))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.with_client_options(client).with_retry(retry).build().map_err(|e| cfg_err(e.to_string()))?)
            }
            ObjectStoreScheme::Http => {
                if let Some((k, _)) = config.options.first() {
                    return Err(cfg_err(format!("option {k} does not apply to an HTTP store")));
                }
                // The HTTP store's paths are relative to the URL itself.
                let b = object_store::http::HttpBuilder::new().with_url(url);
                let store =
                    b.with_client_options(client).with_retry(retry).build().map_err(|e| cfg_err(e.to_string()))?;
                return Ok(Self::from_object_store(url, decorate(Arc::new(store)), Path::default(), config));
            }
            other => return Err(cfg_err(format!("unsupported scheme {other:?}"))),
        };
        Ok(Self::from_object_store(url, decorate(store), prefix, config))
    }

    fn open_local(
        url: &str,
        dir: &str,
        config: &StoreConfig,
        decorate: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Result<Store, StoreError> {
        let cfg_err = |reason: String| StoreError::Config { url: url.to_string(), reason };
        if let Some((k, _)) = config.options.first() {
            return Err(cfg_err(format!("option {k} does not apply to a local folder")));
        }
        // The folder is not required to exist: a lake on a drive that is not mounted right now is
        // served from the mirror and the cache, and its reads fail as unreachable (`map_err`).
        let root = std::path::absolute(dir).map_err(|e| cfg_err(e.to_string()))?;
        let prefix = Path::from_absolute_path(&root).map_err(|e| cfg_err(e.to_string()))?;
        let local = decorate(Arc::new(object_store::local::LocalFileSystem::new()));
        Ok(Self::build(url, local, prefix, Some(root), config))
    }

    /// Wraps an existing store (a decorated one in tests, such as [`CountingStore`]). `id`
    /// names it in cache keys and errors; keys are relative to `prefix`. The config's
    /// [`StoreConfig::decorate`], if any, wraps `store`.
    pub fn from_object_store(id: &str, store: Arc<dyn ObjectStore>, prefix: Path, config: &StoreConfig) -> Store {
        Self::build(id, store, prefix, None, config)
    }

    fn build(
        id: &str,
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        local_root: Option<std::path::PathBuf>,
        config: &StoreConfig,
    ) -> Store {
        let store = match &config.decorate {
            Some(decorate) => (decorate.0)(store),
            None => store,
        };
        let max = config.max_requests.max(1);
        let prefetch = config.max_prefetch_requests.clamp(1, max);
        Store {
            inner: Arc::new(StoreInner {
                id: id.trim_end_matches('/').to_string(),
                store,
                prefix,
                local_root,
                requests: Arc::new(Semaphore::new(max)),
                prefetch: Arc::new(Semaphore::new(prefetch)),
            }),
        }
    }

    /// The store's identity (the URL it was opened from, without a trailing `/`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The underlying `object_store`, for uploads in tests and tools.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The full store path of a key.
    pub fn path(&self, key: &str) -> Result<Path, StoreError> {
        let rel = Path::parse(key).map_err(|source| StoreError::InvalidKey { key: key.to_string(), source })?;
        Ok(self.inner.prefix.parts().chain(rel.parts()).collect())
    }

    /// One ranged GET of `range` of `key`, waiting for a permit of the given priority first.
    /// Retries and timeouts happen inside; the result holds exactly `range`'s bytes.
    pub async fn get_range(&self, key: &str, range: Range<u64>, priority: Priority) -> Result<Fetched, StoreError> {
        let path = self.path(key)?;
        // Permit order is fixed (prefetch, then requests) so the two semaphores cannot deadlock.
        // The semaphores are never closed, so acquire cannot fail; treat it as "no limit" if so.
        let _prefetch = match priority {
            Priority::Prefetch => self.inner.prefetch.clone().acquire_owned().await.ok(),
            Priority::Demand => None,
        };
        let _permit = self.inner.requests.clone().acquire_owned().await.ok();
        let opts = GetOptions::new().with_range(Some(range.clone()));
        let result = self.inner.store.get_opts(&path, opts).await.map_err(|e| self.map_err(key, e))?;
        let etag = result.meta.e_tag.clone();
        let object_size = result.meta.size;
        let bytes = result.bytes().await.map_err(|e| self.map_err(key, e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(StoreError::ShortRead {
                store: self.inner.id.clone(),
                key: key.to_string(),
                range,
                got: bytes.len() as u64,
            });
        }
        Ok(Fetched { bytes, etag, object_size })
    }

    /// The object's size and ETag, without reading it.
    pub async fn head(&self, key: &str) -> Result<(u64, Option<String>), StoreError> {
        use object_store::ObjectStoreExt;
        let path = self.path(key)?;
        let _permit = self.inner.requests.clone().acquire_owned().await.ok();
        let meta = self.inner.store.head(&path).await.map_err(|e| self.map_err(key, e))?;
        Ok((meta.size, meta.e_tag))
    }

    fn map_err(&self, key: &str, e: object_store::Error) -> StoreError {
        let store = self.inner.id.clone();
        let key = key.to_string();
        match e {
            object_store::Error::NotFound { .. } if self.inner.local_root.as_ref().is_some_and(|r| !r.is_dir()) => {
                let folder = self.inner.local_root.as_ref().map(|r| r.display().to_string()).unwrap_or_default();
                let source = object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("the folder {folder} is not there (a drive that is not mounted?)").into(),
                };
                StoreError::Unreachable { store, key, source }
            }
            object_store::Error::NotFound { .. } => StoreError::NotFound { store, key },
            object_store::Error::Precondition { source, .. } | object_store::Error::NotModified { source, .. } => {
                StoreError::Changed { store, key, detail: source.to_string() }
            }
            e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => {
                StoreError::Denied { store, key, source: e }
            }
            source => StoreError::Unreachable { store, key, source },
        }
    }
}

impl StoreError {
    /// The errno a filesystem read should answer with: `ENOENT` for a vanished object, `EACCES`
    /// for refused credentials, `EIO` for everything else.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NotFound { .. } => libc::ENOENT,
            StoreError::Denied { .. } => libc::EACCES,
            StoreError::Changed { .. }
            | StoreError::Unreachable { .. }
            | StoreError::ShortRead { .. }
            | StoreError::Config { .. }
            | StoreError::InvalidKey { .. } => libc::EIO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn opens_each_scheme() {
        let cfg = StoreConfig {
            options: vec![
                ("aws_region".into(), "us-east-1".into()),
                ("aws_endpoint".into(), "http://127.0.0.1:9".into()),
                ("aws_access_key_id".into(), "k".into()),
                ("aws_secret_access_key".into(), "s".into()),
            ],
            allow_http: true,
            ..StoreConfig::default()
        };
        let s = Store::open("s3://bucket/lake/data/", &cfg).expect("s3 store");
        assert_eq!(s.id(), "s3://bucket/lake/data");
        assert_eq!(s.path("a/b.parquet").expect("key").as_ref(), "lake/data/a/b.parquet");
        Store::open("https://example.com/lake", &StoreConfig::default()).expect("http store");
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().display());
        Store::open(&url, &StoreConfig::default()).expect("file store");
        Store::open(&dir.path().display().to_string(), &StoreConfig::default()).expect("plain path");
    }

    #[test]
    fn refuses_unknown_options_and_schemes() {
        let cfg = StoreConfig { options: vec![("aws_colour".into(), "blue".into())], ..StoreConfig::default() };
        assert!(matches!(Store::open("s3://bucket/x", &cfg), Err(StoreError::Config { .. })));
        let dir = tempfile::tempdir().expect("tempdir");
        let local = StoreConfig { options: vec![("aws_region".into(), "x".into())], ..StoreConfig::default() };
        assert!(matches!(Store::open(&dir.path().display().to_string(), &local), Err(StoreError::Config { .. })));
        assert!(matches!(Store::open("ftp://host/x", &StoreConfig::default()), Err(StoreError::Config { .. })));
    }

    #[test]
    fn ranged_get_and_not_found_on_a_local_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("obj"), b"0123456789").expect("write");
        let store = Store::open(&dir.path().display().to_string(), &StoreConfig::default()).expect("store");
        rt().block_on(async {
            let got = store.get_range("obj", 2..5, Priority::Demand).await.expect("get");
            assert_eq!(&got.bytes[..], b"234");
            assert_eq!(got.object_size, 10);
            let err = store.get_range("missing", 0..1, Priority::Prefetch).await.expect_err("missing");
            assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
            assert_eq!(err.errno(), libc::ENOENT);
            assert_eq!(store.head("obj").await.expect("head").0, 10);
        });
    }

    #[test]
    fn a_local_folder_that_is_not_there_is_unreachable_until_it_is() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // a name with a space and a non-ASCII letter, as drives and folders have
        let dir = tmp.path().join("Lake Drive é");
        let store = Store::open(&format!("file://{}", dir.display()), &StoreConfig::default()).expect("store");
        rt().block_on(async {
            let err = store.get_range("t/obj", 0..1, Priority::Demand).await.expect_err("no folder");
            assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
            assert!(err.to_string().contains("is not there"), "{err}");
            std::fs::create_dir_all(dir.join("t")).expect("the drive comes back");
            std::fs::write(dir.join("t/obj"), b"0123").expect("write");
            assert_eq!(&store.get_range("t/obj", 1..3, Priority::Demand).await.expect("get").bytes[..], b"12");
            let err = store.get_range("t/gone", 0..1, Priority::Demand).await.expect_err("missing");
            assert!(matches!(err, StoreError::NotFound { .. }), "with the folder there, a missing file is gone: {err}");
        });
    }

    #[test]
    fn counting_store_counts_gets() {
        let mem = Arc::new(object_store::memory::InMemory::new());
        let counting = Arc::new(CountingStore::new(mem));
        let store = Store::from_object_store("mem://", counting.clone(), Path::default(), &StoreConfig::default());
        rt().block_on(async {
            store.object_store().put(&Path::from("k"), Bytes::from_static(b"hello").into()).await.expect("put");
            store.get_range("k", 1..3, Priority::Demand).await.expect("get");
            store.get_range("k", 0..5, Priority::Prefetch).await.expect("get");
        });
        assert_eq!(counting.gets(), 2);
        assert_eq!(counting.bytes_requested(), 7);
    }
}
