//! A full disk under the cache: the cache folder on a small tmpfs (48 MiB), objects in a real
//! S3-compatible server (`s3s-fs`).
//!
//! With `max_cache` above the filesystem's size and `min_free_disk = 0`, the free disk is the
//! only limit: the cache fills the filesystem itself, then another writer takes every byte
//! the cache frees, so its writes (data and index) fail with `ENOSPC`. Reads must keep
//! returning the source's exact bytes, eviction must happen, nothing unindexed may stay
//! allocated, the cache must store again once there is room, and after reopening every cached
//! piece must verify. A second test samples the cache every 100 ms during a prefetch larger
//! than a budget smaller than the filesystem: the budget is never exceeded.
//!
//! Mounting needs root: CI runs as root and fails if the mount fails; elsewhere the tests skip
//! (loudly) without root.

mod cache_support;

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cache_support::{S3Server, allocated_bytes, pattern, runtime, sha256, upload};
use warmlake_daemon::cache::{Cache, CacheConfig, ObjectRef, ReadOptions};
use warmlake_daemon::store::Store;

const MIB: u64 = 1 << 20;
/// The filesystem under the cache.
const FS_SIZE: u64 = 48 * MIB;
/// Objects in the store: twice what the filesystem holds.
const OBJECTS: u64 = 6;
const OBJECT_SIZE: u64 = 16 * MIB;

fn on_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A tmpfs of [`FS_SIZE`] mounted on a temp folder, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts one, or `None` (after saying why) when not root outside CI. On CI it must work.
    fn mount(test: &str) -> Option<SmallFs> {
        if !rustix::process::geteuid().is_root() {
            assert!(!on_ci(), "{test}: mounting a small filesystem needs root, which CI has");
            eprintln!("\n*** SKIPPED {test}: mounting a small tmpfs needs root ***\n");
            return None;
        }
        let dir = tempfile::tempdir().expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={},mode=0700", FS_SIZE), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!on_ci(), "{test}: cannot mount a tmpfs on CI: {why}");
            eprintln!("\n*** SKIPPED {test}: cannot mount a tmpfs: {why} ***\n");
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !done {
            // Something still holds a file there (a failed test's cache): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// The objects, uploaded: (object, its bytes).
fn objects(server: &S3Server, rt: &tokio::runtime::Runtime) -> (Store, Vec<(ObjectRef, Vec<u8>)>) {
    let (store, _) = server.counting_store();
    let objects = (0..OBJECTS)
        .map(|i| {
            let key = format!("full/{i}.bin");
            let bytes = pattern(OBJECT_SIZE as usize, 100 + i);
            upload(rt, &store, &key, &bytes);
            (ObjectRef::new(store.clone(), key, OBJECT_SIZE), bytes)
        })
        .collect();
    (store, objects)
}

/// Reads every object whole, 1 MiB at a time, from one thread per object; every read must
/// succeed with the source's bytes.
fn read_all(cache: &Cache, objects: &[(ObjectRef, Vec<u8>)], what: &str) {
    std::thread::scope(|s| {
        for (obj, source) in objects {
            s.spawn(move || {
                let mut out = Vec::with_capacity(source.len());
                while (out.len() as u64) < obj.size {
                    let at = out.len() as u64;
                    let b = cache
                        .read_blocking(obj, at, MIB, ReadOptions::default())
                        .unwrap_or_else(|e| panic!("{what}: read of {} at {at}: {e}", obj.key));
                    assert!(!b.is_empty(), "{what}: empty read of {} at {at}", obj.key);
                    out.extend_from_slice(&b);
                }
                assert_eq!(sha256(&out), sha256(source), "{what}: {} differs from the source", obj.key);
            });
        }
    });
}

/// Another program filling the disk: it writes whenever there is room, so every byte the
/// cache frees is taken before the cache can write there. Counts the `ENOSPC`s it met.
struct Filler {
    stop: Arc<AtomicBool>,
    enospc: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
    path: PathBuf,
}

impl Filler {
    fn start(dir: &Path) -> Filler {
        let path = dir.join("ballast");
        let (stop, enospc) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let mut file = std::fs::File::create(&path).expect("ballast");
        let thread = {
            let (stop, enospc) = (stop.clone(), enospc.clone());
            std::thread::spawn(move || {
                let chunk = vec![0x5au8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    match file.write(&chunk) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                            enospc.fetch_add(1, Ordering::Relaxed);
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("ballast: {e}"),
                    }
                }
            })
        };
        Filler { stop, enospc, thread, path }
    }

    /// Stops writing and frees the space; returns the `ENOSPC`s met.
    fn remove(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("ballast thread");
        std::fs::remove_file(&self.path).expect("remove the ballast");
        self.enospc.load(Ordering::Relaxed)
    }
}

/// Every range the index vouches for is on disk and equals the source (read from the data file
/// directly, not through the cache).
fn assert_present_ranges_match(cache: &Cache, cache_dir: &Path, objects: &[(ObjectRef, Vec<u8>)]) -> u64 {
    let files = cache_support::data_files(cache_dir);
    let mut checked = 0;
    for (obj, source) in objects {
        let present = cache.present(obj);
        if present.is_empty() {
            continue;
        }
        let prefix = sha256(obj.cache_key().as_bytes());
        let file = files
            .iter()
            .find(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
            .unwrap_or_else(|| panic!("no data file for {} with {} bytes indexed", obj.key, present.len_bytes()));
        let f = std::fs::File::open(file).expect("data file");
        for r in present.ranges() {
            let mut buf = vec![0u8; (r.end - r.start) as usize];
            f.read_exact_at(&mut buf, r.start).expect("indexed range is in the file");
            assert!(buf == source[r.start as usize..r.end as usize], "{}: indexed range {r:?} differs", obj.key);
            checked += r.end - r.start;
        }
    }
    checked
}

#[test]
fn a_full_disk_degrades_to_read_through_and_corrupts_nothing() {
    let test = "a_full_disk_degrades_to_read_through_and_corrupts_nothing";
    let Some(fs) = SmallFs::mount(test) else { return };
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (_store, objects) = objects(&server, &rt);
    let cache_dir = fs.path().join("cache");
    // The budget is far above the filesystem: only the disk says when to stop.
    let config = CacheConfig { max_cache: 1 << 30, min_free_disk: 0, block_size: MIB, ..CacheConfig::new(&cache_dir) };
    let cache = Cache::open(config.clone(), rt.handle().clone()).expect("open");

    // 1. Twice the filesystem, prefetched then read: the cache fills the disk and evicts.
    for (obj, _) in &objects {
        cache.prefetch_blocking(obj, std::slice::from_ref(&(0..obj.size))).expect("prefetch on a filling disk");
    }
    read_all(&cache, &objects, "filling the disk");
    let s = cache.stats();
    assert!(s.totals.bytes_evicted > 0, "the disk, not the budget, made room: {s:?}");
    assert!(s.bytes_stored > FS_SIZE / 2 && s.bytes_stored <= FS_SIZE, "the disk was used: {s:?}");

    // 2. Another writer takes every byte the cache frees: the cache's writes fail with ENOSPC
    //    (data and index); reads go on, exact, from the store.
    let filler = Filler::start(fs.path());
    read_all(&cache, &objects, "while another writer fills the disk");
    read_all(&cache, &objects, "again, while another writer fills the disk");
    let enospc = filler.remove();
    assert!(enospc > 0, "the filesystem really was full");
    // What failed to land is not left allocated: the disk holds no more than the index vouches for.
    let s = cache.stats();
    let allocated = allocated_bytes(&cache_dir);
    assert!(
        allocated <= s.bytes_stored + OBJECTS * 4096,
        "{allocated} bytes allocated for {} indexed after failed writes",
        s.bytes_stored
    );
    assert_present_ranges_match(&cache, &cache_dir, &objects);

    // 3. With room again, the cache stores again (emptied first: it may still hold a full disk
    //    of its own bytes).
    cache.evict_all().expect("evict");
    read_all(&cache, &objects, "after the disk has room again");
    let after = cache.stats();
    assert!(after.bytes_stored > FS_SIZE / 2, "stores resumed: {after:?}");

    // 4. Reopened (crash recovery runs), every indexed byte equals the source and every piece
    //    verifies when served.
    drop(cache);
    let cache = Cache::open(config, rt.handle().clone()).expect("reopen");
    let checked = assert_present_ranges_match(&cache, &cache_dir, &objects);
    assert!(checked > 0, "something stayed cached");
    read_all(&cache, &objects, "after reopening");
    assert_eq!(cache.stats().totals.corrupt_pieces, 0, "no cached piece failed its checksum");
    eprintln!(
        "disk full: {OBJECTS} × {} MiB through a {} MiB tmpfs; evicted {} bytes by disk pressure; the other writer \
         met ENOSPC {enospc} times; after reopening {checked} indexed bytes equal the source",
        OBJECT_SIZE / MIB,
        FS_SIZE / MIB,
        s.totals.bytes_evicted
    );
    drop(cache);
    drop(fs);
}

#[test]
fn budget_below_the_filesystem_holds_during_a_large_prefetch() {
    let test = "budget_below_the_filesystem_holds_during_a_large_prefetch";
    let Some(fs) = SmallFs::mount(test) else { return };
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (_store, objects) = objects(&server, &rt);
    let cache_dir = fs.path().join("cache");
    let budget = 20 * MIB;
    let config = CacheConfig { max_cache: budget, min_free_disk: 0, block_size: MIB, ..CacheConfig::new(&cache_dir) };
    let cache = Cache::open(config, rt.handle().clone()).expect("open");

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (cache, done, dir) = (cache.clone(), done.clone(), cache_dir.clone());
        std::thread::spawn(move || {
            let (mut samples, mut max_used, mut max_disk) = (0u64, 0u64, 0u64);
            loop {
                let finished = done.load(Ordering::Relaxed);
                let s = cache.stats();
                max_used = max_used.max(s.bytes_stored + s.bytes_reserved);
                max_disk = max_disk.max(allocated_bytes(&dir));
                samples += 1;
                if finished {
                    return (samples, max_used, max_disk);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Like a prewarm: four objects at a time, all of each.
    std::thread::scope(|s| {
        for group in objects.chunks(4) {
            let handles: Vec<_> = group
                .iter()
                .map(|(obj, _)| {
                    let cache = &cache;
                    s.spawn(move || {
                        cache.prefetch_blocking(obj, std::slice::from_ref(&(0..obj.size))).expect("prefetch")
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("prefetch thread");
            }
        }
    });
    done.store(true, Ordering::Relaxed);
    let (samples, max_used, max_disk) = sampler.join().expect("sampler");
    let s = cache.stats();
    assert!(max_used <= budget, "budget {budget} exceeded: {max_used}");
    assert!(max_disk <= budget + OBJECTS * 4096, "data files held {max_disk} bytes for a budget of {budget}");
    assert!(s.bytes_stored > 0 && s.totals.bytes_evicted > 0, "{s:?}");
    read_all(&cache, &objects, "after the prefetch");
    eprintln!(
        "budget: {} MiB prefetched with max_cache {} MiB on a {} MiB tmpfs; {samples} samples, at most {max_used} \
         bytes counted and {max_disk} allocated",
        OBJECTS * OBJECT_SIZE / MIB,
        budget / MIB,
        FS_SIZE / MIB
    );
    drop(cache);
    drop(fs);
}
