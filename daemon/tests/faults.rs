//! Faults from the store: a decorator in front of a real S3-compatible server fails a share of
//! reads (an error like a 503 that survived the retries) and cuts the body of others short; and
//! a real TCP proxy (`warmlake-netproxy`) breaks connections: resets, short bodies, stalls.
//! Every read through the mount must return the source's exact bytes or fail with `EIO` —
//! never short, never wrong — and once the faults stop, everything reads; after a restart with
//! the store gone, everything the cache kept is still exact (it never stored a partial range).

mod cache_support;
mod fixtures;
mod remote_lake;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use remote_lake::RemoteLake;
use std::time::Duration;
use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;
use warmlake_daemon::store::StoreDecorator;
use warmlake_netproxy::{FaultKind, Faults, Proxy, Xorshift};

/// Fails about one read in four and truncates about one in eight, while `on`.
#[derive(Debug)]
struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    on: Arc<AtomicBool>,
    /// Seeded, so a failing run can be replayed.
    rolls: Xorshift,
    injected: Arc<AtomicU64>,
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if !self.on.load(Ordering::Relaxed) {
            return self.inner.get_opts(location, options).await;
        }
        match self.rolls.next() % 8 {
            0 | 1 => {
                self.injected.fetch_add(1, Ordering::Relaxed);
                Err(object_store::Error::Generic { store: "fault", source: "injected: 503 Slow Down".into() })
            }
            2 => {
                // The body ends early: the same headers, fewer bytes.
                self.injected.fetch_add(1, Ordering::Relaxed);
                let mut result = self.inner.get_opts(location, options).await?;
                let empty = || GetResultPayload::Stream(Box::pin(futures::stream::empty()));
                let chunks: Vec<bytes::Bytes> = match std::mem::replace(&mut result.payload, empty()) {
                    GetResultPayload::Stream(body) => futures::TryStreamExt::try_collect(body).await?,
                    other => {
                        result.payload = other;
                        return Ok(result);
                    }
                };
                let mut body: Vec<u8> = chunks.concat();
                body.truncate(body.len() / 2);
                let cut = bytes::Bytes::from(body);
                result.payload = GetResultPayload::Stream(Box::pin(futures::stream::once(async move { Ok(cut) })));
                Ok(result)
            }
            _ => self.inner.get_opts(location, options).await,
        }
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A small lake in the S3 server and a daemon config for it, with an empty policy (a user's own
/// must not change what is tested); `None` when the server cannot run here (skipped).
fn small_remote_lake() -> Option<(RemoteLake, Config)> {
    let spec = LakeSpec { events_rows: 50_000, events_files: 4, ..LakeSpec::default() };
    let remote = RemoteLake::new(&spec)?;
    let policy = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy, "").expect("policy");
    let cfg = remote.config_with(&format!("[policy]\nfile = \"{}\"\n", policy.display()));
    Some((remote, cfg))
}

/// Every data file of the lake's newest snapshot: its path under the mount, its source bytes.
fn lake_files(remote: &RemoteLake) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mnt = remote.mnt();
    let snapshot = warmlake_daemon::catalog::CatalogReader::open(
        &warmlake_daemon::catalog::CatalogLocation::parse(&format!("sqlite:{}", remote.lake.catalogs[0].display())),
        None,
    )
    .and_then(|r| r.read_snapshot(remote.lake.latest_snapshot))
    .expect("snapshot");
    snapshot
        .tables
        .iter()
        .flat_map(|t| t.files.iter().map(move |f| (t, f)))
        .map(|(t, f)| {
            let source = std::fs::read(remote.lake.data_dir.join(f.key.as_str())).expect("source");
            (mnt.join(&t.schema).join(&t.name).join(&f.name), source)
        })
        .collect()
}

/// Reads every file `rounds` times through the mount while faults are on: each read must give
/// the source's exact bytes or `EIO`. Returns (exact, failed).
fn read_under_faults(files: &[(std::path::PathBuf, Vec<u8>)], rounds: usize) -> (u64, u64) {
    let (mut exact, mut failed) = (0, 0);
    for _ in 0..rounds {
        for (path, source) in files {
            match std::fs::read(path) {
                Ok(bytes) => {
                    assert!(bytes == *source, "{}: wrong bytes under faults", path.display());
                    exact += 1;
                }
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}: {e}", path.display());
                    failed += 1;
                }
            }
        }
    }
    (exact, failed)
}

/// Once faults stop every file reads exactly; then, restarted with the store gone, the cache
/// alone serves every file exactly (it never kept a partial or wrong range).
fn check_recovery(remote: &mut RemoteLake, cfg: Config, daemon: Daemon, files: &[(std::path::PathBuf, Vec<u8>)]) {
    for (path, source) in files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes == *source, "{}", path.display());
    }
    daemon.stop().expect("stop");
    remote.stop_store();
    let daemon = Daemon::start(cfg, remote.rt.handle().clone()).expect("restart");
    for (path, source) in files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{} from the cache: {e}", path.display()));
        assert!(bytes == *source, "{}", path.display());
    }
    assert_eq!(daemon.status().cache.expect("cache").totals.corrupt_pieces, 0);
    daemon.stop().expect("stop");
}

#[test]
fn store_faults_give_exact_bytes_or_eio_never_wrong_ones() {
    if !fixtures::fuse_available("store_faults_give_exact_bytes_or_eio_never_wrong_ones") {
        return;
    }
    let Some((mut remote, mut cfg)) = small_remote_lake() else { return };
    let on = Arc::new(AtomicBool::new(true));
    let injected = Arc::new(AtomicU64::new(0));
    let (flag, count) = (Arc::clone(&on), Arc::clone(&injected));
    cfg.store.decorate = Some(StoreDecorator(Arc::new(move |inner| {
        Arc::new(FaultStore {
            inner,
            on: Arc::clone(&flag),
            rolls: Xorshift::new(0x9e37_79b9_7f4a_7c15),
            injected: Arc::clone(&count),
        }) as Arc<dyn ObjectStore>
    })));
    let files = lake_files(&remote);
    let daemon = Daemon::start(cfg.clone(), remote.rt.handle().clone()).expect("daemon starts");
    let (exact, failed) = read_under_faults(&files, 3);
    assert!(injected.load(Ordering::Relaxed) > 0 && failed > 0, "faults were injected and seen: {failed}");
    eprintln!("under faults: {exact} exact reads, {failed} EIO, {} faults injected", injected.load(Ordering::Relaxed));
    on.store(false, Ordering::Relaxed);
    check_recovery(&mut remote, cfg, daemon, &files);
}

/// The same through a real TCP proxy that breaks every connection to the store somewhere in its
/// first 256 KiB, in turn with a reset mid-body, a body cut short, and a stall longer than the
/// request timeout: the store client's own timeouts and retries meet real network failures.
#[test]
fn broken_connections_give_exact_bytes_or_eio_never_wrong_ones() {
    if !fixtures::fuse_available("broken_connections_give_exact_bytes_or_eio_never_wrong_ones") {
        return;
    }
    let Some((mut remote, mut cfg)) = small_remote_lake() else { return };
    let server = remote.server.as_ref().expect("server");
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
    let faults = Faults::new(1, Duration::from_secs(30), 0x2545_f491_4f6c_dd1d);
    let proxy = Proxy::with_faults(remote.rt.handle(), upstream, Duration::ZERO, None, Some(Arc::clone(&faults)))
        .expect("proxy");
    let endpoint = server.endpoint();
    for (_, value) in cfg.store.options.iter_mut().filter(|(_, v)| *v == endpoint) {
        *value = format!("http://{}", proxy.addr());
    }
    // A stalled response fails after this, and is retried.
    cfg.store.request_timeout = Duration::from_secs(2);
    let files = lake_files(&remote);
    let daemon = Daemon::start(cfg.clone(), remote.rt.handle().clone()).expect("daemon starts");
    let (exact, failed) = read_under_faults(&files, 3);
    let kinds = [FaultKind::Reset, FaultKind::Truncate, FaultKind::Stall].map(|k| faults.injected(k));
    assert!(kinds.iter().all(|n| *n > 0), "every kind of fault was injected: {kinds:?}");
    eprintln!(
        "broken connections: {exact} exact reads, {failed} EIO; resets {}, truncations {}, stalls {}",
        kinds[0], kinds[1], kinds[2]
    );
    faults.set_on(false);
    check_recovery(&mut remote, cfg, daemon, &files);
}
