//! A generated lake whose data files live in a real S3-compatible server (`s3s-fs` on
//! 127.0.0.1) and, byte for byte, in a local folder: the daemon reads the bucket through its
//! chunk cache and mount, and the local copy is the baseline every ratio is taken against.
//!
//! The lake is generated once into the local folder, then uploaded; the daemon's config points
//! the catalog's data path at the bucket (`[lake] data`), so both sides share one catalog and
//! the same files. The daemon reaches the bucket through a latency proxy (`warmlake-netproxy`), which gives
//! loopback a real bucket's round-trip time.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use object_store::{ObjectStore, ObjectStoreExt as _};
use warmlake_daemon::catalog::LakeSnapshot;
use warmlake_daemon::config::{Config, SqlSettings};
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{GeneratedLake, LakeSpec};
use warmlake_daemon::store::{CountingStore, Store, StoreConfig, StoreDecorator};

use warmlake_netproxy::Proxy;

const BUCKET: &str = "lake";
/// The folder of the bucket the data files are uploaded to (the lake's data path).
const PREFIX: &str = "data";
const ACCESS_KEY: &str = "warmlake-bench";
const SECRET_KEY: &str = "warmlake-bench-secret";
const REGION: &str = "us-east-1";

/// The bucket of [`RemoteLake::flat_copy`].
const FLAT_BUCKET: &str = "flat";

/// How another S3 client reaches a bucket: through the proxy, so at the same round-trip time
/// as the daemon, with the server's credentials.
#[derive(Debug, Clone)]
pub struct S3Access {
    /// The proxy in front of the server (plain HTTP, path-style requests).
    pub endpoint: SocketAddr,
    pub bucket: &'static str,
    pub region: &'static str,
    pub access_key: &'static str,
    pub secret_key: &'static str,
}

/// The name of a data file in [`RemoteLake::flat_copy`]: its key with every `/` made `__`.
pub fn flat_key(key: &str) -> String {
    key.replace('/', "__")
}

/// A running `s3s-fs`, killed on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts `s3s-fs` over `root` on a free port and waits until it accepts connections.
    fn start(root: &Path) -> anyhow::Result<S3Server> {
        let bin = find_s3s_fs().context(
            "s3s-fs not found on PATH or in ~/.cargo/bin (cargo install s3s-fs --version 0.14.1 --locked --features binary)",
        )?;
        std::fs::create_dir_all(root.join(BUCKET))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting s3s-fs")?;
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("s3s-fs did not listen on port {port} within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// The bucket's store config at `endpoint` (the server, or the proxy in front of it): path-style
/// access with static credentials; plain HTTP is fine on loopback.
fn store_config(endpoint: SocketAddr) -> StoreConfig {
    StoreConfig {
        options: vec![
            ("aws_endpoint".into(), format!("http://{endpoint}")),
            ("aws_region".into(), REGION.into()),
            ("aws_access_key_id".into(), ACCESS_KEY.into()),
            ("aws_secret_access_key".into(), SECRET_KEY.into()),
            ("aws_virtual_hosted_style_request".into(), "false".into()),
        ],
        allow_http: true,
        ..StoreConfig::default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_s3s_fs() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join("s3s-fs")).find(|p| p.is_file())
}

/// The lake, its bucket, and the folders of the daemon under test (all in one temporary
/// folder, removed on drop).
pub struct RemoteLake {
    /// Runs the daemon's cache fetches and the uploads.
    pub runtime: tokio::runtime::Runtime,
    /// The lake as generated, with its data files in `lake.data_dir` (the local baseline).
    pub lake: GeneratedLake,
    /// The newest snapshot, read from the catalog.
    pub snapshot: LakeSnapshot,
    /// In front of `server`; every request of the daemon and of [`RemoteLake::store`] goes
    /// through it.
    proxy: Proxy,
    /// Stopped on drop.
    server: S3Server,
    /// The request counter of the daemon's store (replaced at each daemon start).
    wire: Arc<Mutex<Option<Arc<CountingStore>>>>,
    // Last: dropped after the server that serves files from it.
    dir: tempfile::TempDir,
}

impl RemoteLake {
    /// Generates `spec` locally, starts `s3s-fs` and uploads the data files to it (directly),
    /// and starts a proxy in front of it with a round-trip time of `rtt` for everything else.
    pub fn new(spec: &LakeSpec, rtt: Duration) -> anyhow::Result<RemoteLake> {
        RemoteLake::with_link(spec, rtt, None)
    }

    /// [`RemoteLake::new`] over a link of `bandwidth` bytes per second in each direction,
    /// shared by every connection.
    pub fn with_link(spec: &LakeSpec, rtt: Duration, bandwidth: Option<u64>) -> anyhow::Result<RemoteLake> {
        let crate::BenchLake { dir, lake, snapshot } = crate::generate_lake(spec, &["mnt", "state", "cache"])?;
        let started = Instant::now();
        let server = S3Server::start(&dir.path().join("s3"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let files = upload(&runtime, &lake.data_dir, &format!("s3://{BUCKET}/{PREFIX}"), server.addr(), &|k| k.into())?;
        eprintln!("uploaded {files} files to s3s-fs in {:.1} s", started.elapsed().as_secs_f64());
        let proxy = Proxy::start(runtime.handle(), server.addr(), rtt, bandwidth)?;
        Ok(RemoteLake { runtime, lake, snapshot, proxy, server, wire: Arc::default(), dir })
    }

    /// Uploads a second copy of the data files to a bucket of their own, flat (each named by
    /// [`flat_key`]), for other S3 clients than the daemon: `s3s-fs` keeps objects as files in
    /// folders, and answers a HEAD of a key that is a folder (`data/web`) with a 500 where S3
    /// says 404; rclone and s3fs HEAD folders, and retry a 500 for minutes. A flat bucket has
    /// no folder to HEAD. The same bytes, the same server, the same proxy.
    pub fn flat_copy(&self) -> anyhow::Result<S3Access> {
        std::fs::create_dir_all(self.dir.path().join("s3").join(FLAT_BUCKET))?;
        let files =
            upload(&self.runtime, &self.lake.data_dir, &format!("s3://{FLAT_BUCKET}"), self.server.addr(), &flat_key)?;
        eprintln!("uploaded {files} files to the flat bucket");
        Ok(S3Access {
            endpoint: self.proxy.addr(),
            bucket: FLAT_BUCKET,
            region: REGION,
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
        })
    }

    /// The bucket's data folder through the proxy, as the daemon sees it (same store identity,
    /// so it also names the daemon's objects in its cache): the baseline for plain ranged GETs.
    pub fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&format!("s3://{BUCKET}/{PREFIX}"), &store_config(self.proxy.addr()))?)
    }

    /// Bytes every client (the daemon, [`RemoteLake::store`], other mounts) has downloaded
    /// through the proxy so far, HTTP headers included.
    pub fn bytes_delivered(&self) -> u64 {
        self.proxy.bytes_delivered()
    }

    /// Where the daemon mounts the lake.
    pub fn mount(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// The daemon's config: data in the bucket, the mount, no SQL socket (queries here run in
    /// process over the mount's `lake.sql`), an empty policy file (a user's own policy must not
    /// change what is measured), and the bucket through the proxy, its requests counted.
    fn config(&self) -> anyhow::Result<Config> {
        let dir = self.dir.path();
        let text = format!(
            "[lake]\nname = \"bench\"\ncatalog = \"sqlite:{catalog}\"\ndata = \"s3://{BUCKET}/{PREFIX}/\"\n\
             [state]\ndir = \"{state}\"\n[cache]\ndir = \"{cache}\"\nmax_cache = \"64GiB\"\nmin_free_disk = \"0B\"\n\
             [mount]\npath = \"{mnt}\"\n[sql]\nenabled = false\n[policy]\nfile = \"{policy}\"\n\
             [refresh]\ninterval_seconds = 3600\n",
            catalog = self.lake.catalogs[0].display(),
            state = dir.join("state").display(),
            cache = dir.join("cache").display(),
            mnt = self.mount().display(),
            policy = dir.join("policy.toml").display(),
        );
        let mut config = Config::parse(&text, &dir.join("config.toml"))?;
        config.store = store_config(self.proxy.addr());
        let wire = Arc::clone(&self.wire);
        config.store.decorate = Some(StoreDecorator(Arc::new(move |inner| {
            let counting = Arc::new(CountingStore::new(inner));
            *wire.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&counting));
            counting as Arc<dyn ObjectStore>
        })));
        Ok(config)
    }

    /// Starts a daemon over the lake: mirror, mount, cache (as it was left by the last one).
    /// A new daemon is also a new mount, so the kernel holds none of its pages yet.
    pub fn start_daemon(&self) -> anyhow::Result<Daemon> {
        Ok(Daemon::start(self.config()?, self.runtime.handle().clone())?)
    }

    /// Starts a daemon like [`RemoteLake::start_daemon`], with its SQL socket on as well
    /// (`<tmp>/sock/.s.PGSQL.5433`): the socket then reads the lake through the mount.
    pub fn start_daemon_with_sql(&self) -> anyhow::Result<Daemon> {
        let mut config = self.config()?;
        config.sql = Some(SqlSettings {
            socket_dir: self.dir.path().join("sock"),
            port: 5433,
            statement_timeout: None,
            memory_limit: None,
            max_connections: 64,
            tcp: None,
        });
        Ok(Daemon::start(config, self.runtime.handle().clone())?)
    }

    /// Empties the chunk cache (call with no daemon running).
    pub fn clear_cache(&self) -> anyhow::Result<()> {
        let cache = self.dir.path().join("cache");
        std::fs::remove_dir_all(&cache)?;
        std::fs::create_dir(&cache)?;
        Ok(())
    }

    /// GET requests and bytes asked for at the wire by the last daemon started.
    pub fn wire(&self) -> (u64, u64) {
        match &*self.wire.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(c) => (c.gets(), c.bytes_requested()),
            None => (0, 0),
        }
    }

    /// The lake's views over the local copy of the files (the baseline).
    pub fn local_script(&self) -> String {
        let root = format!("{}/", self.lake.data_dir.display());
        warmlake_daemon::view_sql::lake_script(&self.snapshot, &|k| format!("{root}{k}"))
    }

    /// The lake's views over a mount of [`RemoteLake::flat_copy`] at `root`, as a user of that
    /// mount would write them (no settings of warmlake's own `lake.sql`).
    pub fn flat_script(&self, root: &Path) -> String {
        let root = format!("{}/", root.display());
        warmlake_daemon::view_sql::lake_script(&self.snapshot, &|k| format!("{root}{}", flat_key(k.as_str())))
    }
}

/// Uploads every file under `dir` to `url` on the server at `server` (directly, not through the
/// proxy), each under the name `name` gives its path relative to `dir`; returns how many.
fn upload(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    url: &str,
    server: SocketAddr,
    name: &dyn Fn(&str) -> String,
) -> anyhow::Result<usize> {
    let store = Store::open(url, &store_config(server))?;
    let mut files = Vec::new();
    relative_files(dir, dir, &mut files)?;
    let mut names = std::collections::HashSet::new();
    for f in &files {
        let key = name(&f.to_string_lossy());
        ensure!(names.insert(key.clone()), "two data files would be uploaded as {key}");
        let bytes = std::fs::read(dir.join(f))?;
        runtime.block_on(store.object_store().put(&store.path(&key)?, bytes::Bytes::from(bytes).into()))?;
    }
    Ok(files.len())
}

/// Every file under `at`, relative to `dir`.
fn relative_files(dir: &Path, at: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(at)? {
        let p = e?.path();
        if p.is_dir() {
            relative_files(dir, &p, out)?;
        } else {
            out.push(p.strip_prefix(dir)?.to_path_buf());
        }
    }
    Ok(())
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}
