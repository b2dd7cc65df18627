//! Crash safety: a child process filling the cache from a real S3 server is killed with
//! SIGKILL mid-fetch; after restart every byte the cache serves equals the source (sha256), the
//! index vouches only for bytes that are on disk, and bytes nobody vouches for are gone.
//!
//! The child is this test binary re-executed with `WARMLAKE_CRASH_CHILD` set, running the
//! `crash_child` test, which does nothing in a normal run.

mod cache_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};

use cache_support::{S3Server, allocated_bytes, data_files, pattern, runtime, sha256, upload};
use warmlake_daemon::cache::{Cache, CacheConfig, ObjectRef, ReadOptions};
use warmlake_daemon::store::Store;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 48 * MIB;
const KEY: &str = "crash/big.bin";

fn cache_config(dir: &std::path::Path) -> CacheConfig {
    CacheConfig { min_free_disk: 0, block_size: MIB, ..CacheConfig::new(dir) }
}

/// The child: prefetch the whole object (many concurrent flights writing at once), printing
/// the stored byte count as it grows, until killed.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var("WARMLAKE_CRASH_CHILD") else { return };
    let mut parts = spec.splitn(2, '|');
    let (Some(port), Some(dir)) = (parts.next(), parts.next()) else { panic!("bad spec {spec}") };
    let server_cfg = S3ServerConfig::for_port(port.parse().expect("port"));
    let rt = runtime();
    let store = Store::open("s3://lake/data", &server_cfg).expect("store");
    let cache = Cache::open(cache_config(std::path::Path::new(dir)), rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, KEY, SIZE);
    let watcher = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            loop {
                let stored = cache.stats().bytes_stored;
                if stored != last {
                    println!("stored {stored}");
                    last = stored;
                }
                std::thread::yield_now();
            }
        })
    };
    // Fill, empty, fill again... until the parent kills us.
    let whole = 0..SIZE;
    loop {
        cache.prefetch_blocking(&obj, std::slice::from_ref(&whole)).expect("prefetch");
        cache.evict_all().expect("evict");
        assert!(!watcher.is_finished());
    }
}

/// Store options for a server on `port` (the child cannot share the parent's `S3Server`).
struct S3ServerConfig;
impl S3ServerConfig {
    fn for_port(port: u16) -> warmlake_daemon::store::StoreConfig {
        warmlake_daemon::store::StoreConfig {
            options: vec![
                ("aws_endpoint".into(), format!("http://127.0.0.1:{port}")),
                ("aws_region".into(), "us-east-1".into()),
                ("aws_access_key_id".into(), cache_support::ACCESS_KEY.into()),
                ("aws_secret_access_key".into(), cache_support::SECRET_KEY.into()),
                ("aws_virtual_hosted_style_request".into(), "false".into()),
            ],
            allow_http: true,
            ..Default::default()
        }
    }
}

#[test]
fn kill_9_mid_fetch_never_serves_bad_bytes() {
    if std::env::var("WARMLAKE_CRASH_CHILD").is_ok() {
        return;
    }
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, _) = server.counting_store();
    let source = pattern(SIZE as usize, 42);
    upload(&rt, &store, KEY, &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let exe = std::env::current_exe().expect("test binary");

    // Kill at several points: early, mid-way, and in a later pass.
    for (round, kill_after_lines) in [3usize, 20, 60].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("WARMLAKE_CRASH_CHILD", format!("{}|{}", server.port, dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        while seen < kill_after_lines {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("stored ") => seen += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        let status = child.wait().expect("wait");
        assert_eq!(seen, kill_after_lines, "round {round}: the child stopped before it was killed ({status})");

        // Restart.
        let cache = Cache::open(cache_config(dir.path()), rt.handle().clone()).expect("reopen");
        let obj = ObjectRef::new(store.clone(), KEY, SIZE);
        let present = cache.present(&obj);
        // Every byte the index vouches for is on disk and equals the source.
        let files = data_files(dir.path());
        assert!(files.len() <= 1, "round {round}: one data file at most, found {files:?}");
        if let Some(file) = files.first() {
            let f = std::fs::File::open(file).expect("data file");
            for r in present.ranges() {
                let mut buf = vec![0u8; (r.end - r.start) as usize];
                f.read_exact_at(&mut buf, r.start).expect("read present range");
                assert!(buf == source[r.start as usize..r.end as usize], "round {round}: indexed range {r:?} differs");
            }
        }
        // Bytes nobody vouches for were punched out at restart.
        let allocated = allocated_bytes(dir.path());
        assert!(
            allocated <= present.len_bytes() + 8192 * present.ranges().len() as u64,
            "round {round}: {allocated} bytes allocated for {} indexed",
            present.len_bytes()
        );
        // Everything served equals the source.
        let mut all = Vec::with_capacity(SIZE as usize);
        let mut at = 0;
        while at < SIZE {
            let b = cache.read_blocking(&obj, at, 1 << 20, ReadOptions::default()).expect("read");
            all.extend_from_slice(&b);
            at += b.len() as u64;
        }
        assert_eq!(sha256(&all), sha256(&source), "round {round}");
        assert_eq!(cache.stats().totals.corrupt_pieces, 0, "round {round}: no indexed piece was bad");
        // Leave a partly filled cache for the next round's child to continue from.
        cache.shrink_to(SIZE / 3).expect("shrink");
    }
}
