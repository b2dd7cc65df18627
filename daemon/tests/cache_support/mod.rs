//! Test support for the cache and store tests: a real S3-compatible server (`s3s-fs`) on
//! 127.0.0.1, started on a free port over a temporary root and killed on drop.
//!
//! When `s3s-fs` is not installed (`scripts/test` installs it) a test skips loudly, except with
//! `CI=true`, where it fails: CI must never pass by skipping the tests that matter.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use warmlake_daemon::store::{CountingStore, Store, StoreConfig};

pub const BUCKET: &str = "lake";
pub const ACCESS_KEY: &str = "warmlake-test";
pub const SECRET_KEY: &str = "warmlake-test-secret";

/// A running `s3s-fs`.
pub struct S3Server {
    child: Child,
    pub port: u16,
    _root: tempfile::TempDir,
}

fn find_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WARMLAKE_S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join("s3s-fs")).find(|p| p.is_file())
}

impl S3Server {
    /// Starts a server, or returns `None` (after saying so loudly) when `s3s-fs` is missing
    /// outside CI. Panics on CI.
    pub fn start() -> Option<S3Server> {
        let Some(bin) = find_binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("s3s-fs is not installed and CI=true: run scripts/test, which installs it");
            }
            eprintln!(
                "\n*** SKIPPED: s3s-fs not found (install: cargo install s3s-fs --version 0.14.1 --locked \
                 --features binary) ***\n"
            );
            return None;
        };
        Some(Self::start_with(&bin, None))
    }

    /// Starts a server over `root` (a fresh temporary folder when `None`) on `port` (a free
    /// one when `None`).
    pub fn start_with(bin: &Path, port: Option<u16>) -> S3Server {
        let root = tempfile::tempdir().expect("server root");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket folder");
        let port = port.unwrap_or_else(|| {
            let l = TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        });
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let server = S3Server { child, port, _root: root };
        // Readiness, not timing: wait until it accepts connections (or give up after a minute).
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Store options for this server (path-style, static credentials).
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            options: vec![
                ("aws_endpoint".into(), self.endpoint()),
                ("aws_region".into(), "us-east-1".into()),
                ("aws_access_key_id".into(), ACCESS_KEY.into()),
                ("aws_secret_access_key".into(), SECRET_KEY.into()),
                ("aws_virtual_hosted_style_request".into(), "false".into()),
            ],
            allow_http: true,
            max_retries: 2,
            ..StoreConfig::default()
        }
    }

    /// A store on `s3://lake/data` with a request counter under its concurrency limit.
    pub fn counting_store(&self) -> (Store, Arc<CountingStore>) {
        let mut counter = None;
        let store = Store::open_decorated(&format!("s3://{BUCKET}/data"), &self.store_config(), |s| {
            let c = Arc::new(CountingStore::new(s));
            counter = Some(c.clone());
            c as Arc<dyn ObjectStore>
        })
        .expect("store");
        (store, counter.expect("decorated"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads `bytes` as `key` of `store`.
pub fn upload(rt: &tokio::runtime::Runtime, store: &Store, key: &str, bytes: &[u8]) {
    let path = store.path(key).expect("key");
    let payload = bytes::Bytes::copy_from_slice(bytes);
    rt.block_on(store.object_store().put(&path, payload.into())).expect("upload");
}

/// Deterministic pseudo-random bytes (incompressible, and every offset distinct enough that a
/// misplaced range shows).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime")
}

/// Allocated bytes of every data file under the cache's `objects/` folder.
pub fn allocated_bytes(cache_dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(subs) = std::fs::read_dir(cache_dir.join("objects")) else { return 0 };
    for sub in subs.flatten() {
        let Ok(files) = std::fs::read_dir(sub.path()) else { continue };
        for f in files.flatten() {
            if let Ok(m) = f.metadata() {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// Every data file under the cache's `objects/` folder.
pub fn data_files(cache_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(subs) = std::fs::read_dir(cache_dir.join("objects")) else { return out };
    for sub in subs.flatten() {
        if let Ok(files) = std::fs::read_dir(sub.path()) {
            out.extend(files.flatten().map(|f| f.path()));
        }
    }
    out
}
