//! Faults from the store: a decorator in front of a real S3-compatible server fails a share of
//! reads (an error like a 503 that survived the retries) and cuts the body of others short; a
//! real TCP proxy (`warmlake-netproxy`) breaks connections: resets, short bodies, stalls; and its
//! HTTP proxy answers a fifth of requests with S3's 500 and 503 errors or a wrong ETag.
//! Every read through the mount must return the source's exact bytes or fail with `EIO` —
//! never short, never wrong — and every query through the SQL socket the right rows or an
//! error with a SQLSTATE; once the faults stop, everything reads; after a restart with the
//! store gone, everything the cache kept is still exact (it never stored a partial range).

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
use warmlake_netproxy::{FaultKind, Faults, HttpFaultKind, HttpFaults, HttpProxy, Proxy, Xorshift};

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

/// Points the daemon's store at `proxy` instead of the server behind it; a stalled response
/// fails after 2 s, and is retried.
fn route_store_through(remote: &RemoteLake, cfg: &mut Config, proxy: std::net::SocketAddr) {
    let endpoint = remote.server.as_ref().expect("server").endpoint();
    for (_, value) in cfg.store.options.iter_mut().filter(|(_, v)| *v == endpoint) {
        *value = format!("http://{proxy}");
    }
    cfg.store.request_timeout = Duration::from_secs(2);
}

/// The server's address, for a proxy in front of it.
fn upstream(remote: &RemoteLake) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], remote.server.as_ref().expect("server").port))
}

/// Every data file of the lake's newest snapshot: its path under the mount, its source bytes.
fn lake_files(remote: &RemoteLake) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mnt = remote.mnt();
    let snapshot = remote.snapshot();
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

/// Passes of [`read_under_faults`] (2 rounds each), each through a new daemon over an empty
/// cache (a warm cache asks the store for nothing; background fetches — footers, columns ahead
/// — take their share of the faults, so one pass may leave readers none), until `done(exact,
/// failed, passes)`; the last pass's daemon is returned running, its cache kept.
fn passes_under_faults(
    remote: &RemoteLake,
    cfg: &Config,
    files: &[(std::path::PathBuf, Vec<u8>)],
    done: impl Fn(u64, u64, u64) -> bool,
) -> (u64, u64, Daemon) {
    let (mut exact, mut failed, mut passes) = (0, 0, 0);
    loop {
        let daemon = Daemon::start(cfg.clone(), remote.rt.handle().clone()).expect("daemon starts");
        let (e, f) = read_under_faults(files, 2);
        (exact, failed, passes) = (exact + e, failed + f, passes + 1);
        if done(exact, failed, passes) {
            return (exact, failed, daemon);
        }
        daemon.stop().expect("stop");
        std::fs::remove_dir_all(remote.tmp.path().join("cache")).expect("empty the cache");
    }
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
    // Until readers have met faults (a few passes at most; 12 is a bound, not an expectation).
    let (exact, failed, daemon) =
        passes_under_faults(&remote, &cfg, &files, |_, failed, passes| failed > 0 || passes == 12);
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
    let faults = Faults::new(1, Duration::from_secs(30), 0x2545_f491_4f6c_dd1d);
    let proxy =
        Proxy::with_faults(remote.rt.handle(), upstream(&remote), Duration::ZERO, None, Some(Arc::clone(&faults)))
            .expect("proxy");
    route_store_through(&remote, &mut cfg, proxy.addr());
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

/// A fifth of the store's requests answered with S3's `500 InternalError` or `503 SlowDown`, or
/// given a wrong ETag, by a real HTTP proxy: the 5xx are retried by the store client (one retry
/// in these tests, so some survive it and fail the read), and a wrong ETag makes the cache drop
/// what it holds of the object and fail the read rather than mix versions.
#[test]
fn http_errors_and_wrong_etags_give_exact_bytes_or_eio_never_wrong_ones() {
    if !fixtures::fuse_available("http_errors_and_wrong_etags_give_exact_bytes_or_eio_never_wrong_ones") {
        return;
    }
    let Some((mut remote, mut cfg)) = small_remote_lake() else { return };
    let faults = HttpFaults::new(20, &[], 0x0bad_5eed_1234_5678);
    let proxy = HttpProxy::start(remote.rt.handle(), upstream(&remote), Arc::clone(&faults)).expect("proxy");
    route_store_through(&remote, &mut cfg, proxy.addr());
    let files = lake_files(&remote);
    // Four passes, each from an empty cache; the last one's cache stays.
    let (exact, failed, daemon) = passes_under_faults(&remote, &cfg, &files, |_, _, passes| passes == 4);
    let kinds =
        [HttpFaultKind::InternalError, HttpFaultKind::SlowDown, HttpFaultKind::WrongEtag].map(|k| faults.injected(k));
    assert!(kinds.iter().all(|n| *n > 0), "every kind of fault was injected: {kinds:?}");
    faults.set_on(false);
    // An object last fetched with a wrong ETag fails its next read once (the real ETag differs
    // from the one the cache kept), and never more often than wrong ETags were sent.
    let (_, settling) = read_under_faults(&files, 1);
    assert!(settling <= kinds[2], "{settling} reads failed after the faults stopped, {} wrong ETags", kinds[2]);
    let changed = daemon.status().cache.expect("cache").totals.objects_changed;
    eprintln!(
        "http faults: {exact} exact reads, {failed} EIO over {} requests; 500s {}, 503s {}, wrong ETags {}; \
         {changed} objects found changed (in the last pass), {settling} reads failed once after",
        faults.requests(),
        kinds[0],
        kinds[1],
        kinds[2]
    );
    check_recovery(&mut remote, cfg, daemon, &files);
}

/// Queries whose answers are exact (no float sums), over several files and both tables.
const QUERIES: [&str; 4] = [
    "SELECT kind, count(*), sum(duration_ms) FROM web.events GROUP BY kind ORDER BY kind",
    "SELECT page, count(*) AS n FROM web.events GROUP BY page ORDER BY n DESC, page LIMIT 5",
    "SELECT count(*), count(DISTINCT customer_id) FROM sales.orders",
    "SELECT country, count(*) FROM web.events WHERE NOT is_bot GROUP BY country ORDER BY country",
];

/// A query's rows through the SQL socket as text (`NULL` for nulls), or the SQLSTATE and message
/// of its error; a failure without a SQLSTATE (a dropped connection) fails the test.
async fn socket_rows(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<Vec<String>>, (String, String)> {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect())
                }
                _ => None,
            })
            .collect()),
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: failed without a SQLSTATE: {e}"));
            Err((db.code().code().to_string(), db.message().to_string()))
        }
    }
}

/// The SQL socket over the mount while the store's requests fail at both levels: a fifth get a
/// 500 or 503, and every connection is reset, cut short or stalled somewhere in its first 256 KiB. Every query answers
/// the rows DuckDB reads from the local files, or an error with a SQLSTATE (the session goes
/// on); once the faults stop every query is right, and the cache holds only exact bytes.
#[test]
fn socket_queries_under_store_faults_give_right_rows_or_a_sqlstate() {
    if !fixtures::fuse_available("socket_queries_under_store_faults_give_right_rows_or_a_sqlstate") {
        return;
    }
    let Some((mut remote, mut cfg)) = small_remote_lake() else { return };
    let broken = Faults::new(1, Duration::from_secs(30), 0x51de_c0de_0000_0001);
    let tcp =
        Proxy::with_faults(remote.rt.handle(), upstream(&remote), Duration::ZERO, None, Some(Arc::clone(&broken)))
            .expect("tcp proxy");
    let errors = HttpFaults::new(20, &[HttpFaultKind::InternalError, HttpFaultKind::SlowDown], 0x51de_c0de_0000_0002);
    let http = HttpProxy::start(remote.rt.handle(), tcp.addr(), Arc::clone(&errors)).expect("http proxy");
    route_store_through(&remote, &mut cfg, http.addr());
    let snapshot = remote.snapshot();
    let expected: Vec<Vec<Vec<String>>> = QUERIES
        .iter()
        .map(|q| warmlake_daemon::local_query::query_text(&snapshot, q).expect("local query").rows)
        .collect();
    let files = lake_files(&remote);
    let daemon = Daemon::start(cfg.clone(), remote.rt.handle().clone()).expect("daemon starts");
    let settings = cfg.sql.clone().expect("sql settings");
    let (right, failed, codes) = remote.rt.block_on(async {
        let mut pg = tokio_postgres::Config::new();
        pg.host_path(&settings.socket_dir).port(settings.port).dbname("lake").user("test");
        let (client, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect to the SQL socket");
        let driver = tokio::spawn(conn);
        let (mut right, mut failed, mut codes) = (0u64, 0u64, std::collections::BTreeSet::new());
        for _ in 0..3 {
            for (sql, want) in QUERIES.iter().zip(&expected) {
                match socket_rows(&client, sql).await {
                    Ok(rows) => {
                        assert_eq!(&rows, want, "{sql}: wrong rows under faults");
                        right += 1;
                    }
                    Err((code, message)) => {
                        eprintln!("{sql}: {code} {message}");
                        codes.insert(code);
                        failed += 1;
                    }
                }
            }
        }
        errors.set_on(false);
        broken.set_on(false);
        for (sql, want) in QUERIES.iter().zip(&expected) {
            assert_eq!(&socket_rows(&client, sql).await.expect("after the faults"), want, "{sql}");
        }
        drop(client);
        let _ = driver.await;
        (right, failed, codes)
    });
    assert!(
        errors.total() > 0 && broken.total() > 0,
        "faults were injected at both levels: {} HTTP errors, {} broken connections",
        errors.total(),
        broken.total()
    );
    eprintln!(
        "socket under faults: {right} right answers, {failed} errors ({codes:?}); {} HTTP errors over {} requests, \
         {} broken connections",
        errors.total(),
        errors.requests(),
        broken.total()
    );
    check_recovery(&mut remote, cfg, daemon, &files);
}
