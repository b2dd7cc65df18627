//! Real mounts: what only the kernel can show.
//!
//! Each test mounts a `MemTree` on a temporary directory and uses it through `std::fs`, as any
//! reader would. The request logic itself is tested without a kernel in the crate's unit tests.
//!
//! These tests need `/dev/fuse` (and `fusermount3` when not root). Without them a test prints
//! a loud skip notice and passes, unless `CI=true`, where it fails: CI must run them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;
use warmlake_fuse_mount::{
    Attr, DirEntry, Fault, FaultOp, MemTree, Mount, MountError, MountOptions, OpenFile, Tree, TreeError, TreePath,
    mount,
};

const FIVE_MIB: usize = 5 * 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift), so large-file comparisons catch misplaced
/// pages that a repeating pattern would hide.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Called when FUSE is missing: fails under CI, skips loudly elsewhere.
fn fuse_unavailable(err: &MountError) {
    let msg = format!("FUSE is not available here: {}", error_chain(err));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; CI=true, so the real-mount tests must not be skipped");
    }
    eprintln!(
        "\n################################################################\n\
         SKIPPING REAL-MOUNT TEST: {msg}\n\
         (set CI=true to make this a failure)\n\
         ################################################################\n"
    );
}

/// Mounts `tree` at `dir`, or returns `None` after reporting that FUSE is unavailable.
fn try_mount(tree: Arc<dyn Tree>, dir: &Path, opts: &MountOptions) -> Option<Mount> {
    match mount(tree, dir, opts) {
        Ok(mount) => Some(mount),
        Err(e @ (MountError::FuseDeviceMissing { .. } | MountError::FusermountMissing)) => {
            fuse_unavailable(&e);
            None
        }
        Err(e) => panic!("mount failed: {}", error_chain(&e)),
    }
}

/// A mounted tree on a temporary directory. Field order matters: the mount is dropped (and
/// unmounted) before the directory is removed.
struct Mounted {
    mount: Mount,
    tree: Arc<MemTree>,
    _dir: TempDir,
}

impl Mounted {
    fn path(&self, rel: &str) -> PathBuf {
        self.mount.mountpoint().join(rel)
    }
}

fn mount_tree(tree: MemTree, opts: &MountOptions) -> Option<Mounted> {
    let dir = tempfile::tempdir().unwrap();
    let tree = Arc::new(tree);
    let mount = try_mount(tree.clone(), dir.path(), opts)?;
    Some(Mounted { mount, tree, _dir: dir })
}

fn sample_tree() -> MemTree {
    let tree = MemTree::new([
        ("hello.txt", b"hello world\n".to_vec()),
        ("empty", Vec::new()),
        ("sales/2024/part-0.parquet", pseudo_random(10_000, 1)),
        ("sales/2024/part-1.parquet", pseudo_random(1, 2)),
        ("big.bin", pseudo_random(FIVE_MIB, 3)),
        ("denied-open", b"secret".to_vec()),
        ("denied-attr", b"hidden".to_vec()),
        ("offline-open", b"x".to_vec()),
        ("offline-read", b"y".to_vec()),
    ])
    .unwrap();
    tree.insert_dir("empty-dir").unwrap();
    let denied = || Fault::PermissionDenied("policy says no".into());
    let offline = || Fault::Unavailable("store unreachable and not cached".into());
    tree.inject("denied-open", FaultOp::Open, denied()).unwrap();
    tree.inject("denied-attr", FaultOp::Attr, denied()).unwrap();
    tree.inject("offline-open", FaultOp::Open, offline()).unwrap();
    tree.inject("offline-read", FaultOp::Read, offline()).unwrap();
    tree
}

/// Whether `/proc/self/mountinfo` lists a mount at `path` (checked independently of the
/// crate's own parser).
fn listed_in_mountinfo(path: &Path) -> bool {
    let wanted = path.to_str().unwrap().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn lists_directories_with_read_only_modes_and_sizes() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    // `denied-attr` cannot be stat'ed, so it is left out of listings.
    assert_eq!(
        names(m.mount.mountpoint()),
        ["big.bin", "denied-open", "empty", "empty-dir", "hello.txt", "offline-open", "offline-read", "sales"]
    );
    assert_eq!(names(&m.path("sales")), ["2024"]);
    assert_eq!(names(&m.path("sales/2024")), ["part-0.parquet", "part-1.parquet"]);
    assert!(names(&m.path("empty-dir")).is_empty());

    // Owner: the user running the mount, i.e. whoever owns a file this process creates.
    let scratch = tempfile::NamedTempFile::new().unwrap();
    let me = scratch.as_file().metadata().unwrap();

    let root = fs::metadata(m.mount.mountpoint()).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.permissions().mode() & 0o7777, 0o555);

    let dir = fs::metadata(m.path("sales/2024")).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.permissions().mode() & 0o7777, 0o555);

    let file = fs::metadata(m.path("sales/2024/part-0.parquet")).unwrap();
    assert!(file.is_file());
    assert_eq!(file.len(), 10_000);
    assert_eq!(file.permissions().mode() & 0o7777, 0o444);
    assert!(file.permissions().readonly());
    assert_eq!((file.uid(), file.gid()), (me.uid(), me.gid()));
    assert_eq!(file.modified().unwrap(), m.tree.mtime());

    assert_eq!(fs::metadata(m.path("empty")).unwrap().len(), 0);
    assert_eq!(fs::metadata(m.path("big.bin")).unwrap().len(), FIVE_MIB as u64);
}

#[test]
fn reads_whole_files_and_at_offsets() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello world\n");
    assert_eq!(fs::read(m.path("empty")).unwrap(), b"");
    let part = pseudo_random(10_000, 1);
    assert_eq!(fs::read(m.path("sales/2024/part-0.parquet")).unwrap(), part);
    assert_eq!(fs::read(m.path("sales/2024/part-1.parquet")).unwrap(), pseudo_random(1, 2));

    let mut file = File::open(m.path("sales/2024/part-0.parquet")).unwrap();
    for (offset, len) in [(0, 10), (1, 4095), (4095, 2), (4096, 4096), (9_990, 10), (5_000, 1)] {
        file.seek(SeekFrom::Start(offset as u64)).unwrap();
        let mut buf = vec![0; len];
        file.read_exact(&mut buf).unwrap();
        assert_eq!(buf, part[offset..offset + len], "seek to {offset}, read {len}");
        let mut pread = vec![0; len];
        file.read_exact_at(&mut pread, offset as u64).unwrap();
        assert_eq!(pread, part[offset..offset + len], "pread {len} at {offset}");
    }

    // A read that runs into the end is short; reads at or past the end return nothing.
    let mut buf = vec![0; 100];
    assert_eq!(file.read_at(&mut buf, 9_950).unwrap(), 50);
    assert_eq!(buf[..50], part[9_950..]);
    assert_eq!(file.read_at(&mut buf, 10_000).unwrap(), 0);
    file.seek(SeekFrom::Start(1 << 40)).unwrap();
    assert_eq!(file.read(&mut buf).unwrap(), 0);
}

#[test]
fn reads_a_file_larger_than_one_read_request() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    let expected = pseudo_random(FIVE_MIB, 3);
    let whole = fs::read(m.path("big.bin")).unwrap();
    assert_eq!(whole.len(), expected.len());
    assert!(whole == expected, "5 MiB file content differs");

    // Again in odd-sized chunks through one handle, and from a second handle at an offset
    // that crosses a 1 MiB boundary.
    let mut file = File::open(m.path("big.bin")).unwrap();
    let mut chunked = Vec::with_capacity(FIVE_MIB);
    let mut buf = vec![0; 1_000_003];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        chunked.extend_from_slice(&buf[..n]);
    }
    assert!(chunked == expected, "chunked read differs");

    let other = File::open(m.path("big.bin")).unwrap();
    let mut span = vec![0; 3 << 20];
    let start = (1 << 20) - 7;
    other.read_exact_at(&mut span, start as u64).unwrap();
    assert!(span == expected[start..start + span.len()], "read across 1 MiB boundaries differs");
}

#[test]
fn tree_errors_reach_readers_as_errno() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    let err = fs::read(m.path("denied-open")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    // It is listed and can be stat'ed: only opening it is denied.
    assert_eq!(fs::metadata(m.path("denied-open")).unwrap().len(), 6);

    let err = fs::metadata(m.path("denied-attr")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

    let err = fs::read(m.path("offline-open")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    let mut file = File::open(m.path("offline-read")).unwrap();
    let err = file.read(&mut [0; 16]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    for missing in ["nope", "sales/nope", "sales/2024/part-0.parquet/below"] {
        let err = fs::metadata(m.path(missing)).unwrap_err();
        assert!(matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)), "{missing}: {err}");
    }
    assert_eq!(fs::read(m.path("nope")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    assert_eq!(fs::read_dir(m.path("hello.txt")).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
}

/// A file whose bytes changed at their source: the read that finds out fails with `EIO`, and once
/// its owner drops the kernel's cached pages, a later read gets the new bytes rather than old
/// pages (the file is opened with `FOPEN_KEEP_CACHE`, so without the drop the kernel would go on
/// serving them).
#[test]
fn a_changed_file_loses_its_cached_pages() {
    let old = pseudo_random(FIVE_MIB, 11);
    let new = pseudo_random(FIVE_MIB, 12);
    let tree = MemTree::new([("changing.bin", old.clone())]).unwrap();
    let Some(m) = mount_tree(tree, &MountOptions::default()) else {
        return;
    };
    let path = m.path("changing.bin");
    let first_page = |path: &Path| {
        let mut page = vec![0u8; 4096];
        File::open(path).unwrap().read_exact_at(&mut page, 0).unwrap();
        page
    };
    assert_eq!(first_page(&path), old[..4096], "the old version, now in the page cache");
    m.tree.insert_file("changing.bin", new.clone()).unwrap();
    assert_eq!(first_page(&path), old[..4096], "cached pages are served while nothing says the file changed");
    m.tree.inject("changing.bin", FaultOp::Read, Fault::Changed("ETag differs".into())).unwrap();
    // Far from the pages read so far (and any readahead): this read reaches the tree.
    let err = File::open(&path).unwrap().read_exact_at(&mut [0u8; 4096], 4 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    m.tree.clear_faults();
    m.mount.page_dropper().drop_all();
    // The pages are dropped by the mount's push thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first_page(&path) != new[..4096] {
        assert!(std::time::Instant::now() < deadline, "the old version's pages are still served");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read(&path).unwrap(), new, "the whole file reads as the new version");
}

#[test]
fn writes_are_refused() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    let read_only = |what: &str, result: std::io::Result<()>| {
        let err = result.expect_err(what);
        assert!(matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)), "{what}: {err}");
    };
    read_only("create", File::create(m.path("new")).map(drop));
    read_only("open for writing", OpenOptions::new().write(true).open(m.path("hello.txt")).map(drop));
    read_only("append", OpenOptions::new().append(true).open(m.path("hello.txt")).map(drop));
    read_only("mkdir", fs::create_dir(m.path("newdir")));
    read_only("unlink", fs::remove_file(m.path("hello.txt")));
    read_only("rmdir", fs::remove_dir(m.path("empty-dir")));
    read_only("rename", fs::rename(m.path("hello.txt"), m.path("renamed")));
    read_only("chmod", fs::set_permissions(m.path("hello.txt"), fs::Permissions::from_mode(0o644)));
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello world\n");
}

#[test]
fn unmounts_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let tree = Arc::new(MemTree::new([("a", "b")]).unwrap());
    let Some(mount) = try_mount(tree, dir.path(), &MountOptions::default()) else {
        return;
    };
    let mountpoint = mount.mountpoint().to_path_buf();
    assert!(listed_in_mountinfo(&mountpoint));
    assert_eq!(names(&mountpoint), ["a"]);
    drop(mount);
    assert!(!listed_in_mountinfo(&mountpoint));
    assert!(names(&mountpoint).is_empty(), "the bare directory is back");
}

#[test]
fn unmount_with_an_open_file_detaches_lazily() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    let mountpoint = m.mount.mountpoint().to_path_buf();
    let mut file = File::open(m.path("hello.txt")).unwrap();
    let Mounted { mount, _dir, .. } = m;
    mount.unmount().expect("a busy mount is detached lazily");
    assert!(!listed_in_mountinfo(&mountpoint));
    // The open file is still served until it is closed.
    let mut content = String::new();
    file.read_to_string(&mut content).unwrap();
    assert_eq!(content, "hello world\n");
    drop(file);
}

#[test]
fn a_live_mountpoint_is_refused() {
    let Some(m) = mount_tree(sample_tree(), &MountOptions::default()) else {
        return;
    };
    let tree = Arc::new(MemTree::empty());
    let err = mount(tree, m.mount.mountpoint(), &MountOptions::default()).unwrap_err();
    assert!(matches!(err, MountError::AlreadyMounted { .. }), "{}", error_chain(&err));
    // The first mount is untouched.
    assert_eq!(fs::read(m.path("hello.txt")).unwrap(), b"hello world\n");
}

/// Environment variable that turns `child_mounts_and_waits` into a mounting child process.
const CHILD_ENV: &str = "WARMLAKE_FUSE_TEST_CHILD_MOUNTPOINT";
const CHILD_READY: &str = "warmlake-fuse-test-child-mounted";

/// Helper for `a_stale_mount_from_a_killed_process_is_cleared`: mounts at the directory named
/// by `CHILD_ENV`, says so on stdout, and waits on stdin to be killed. Does nothing when run
/// as an ordinary test.
#[test]
#[ignore = "helper run in a child process by a_stale_mount_from_a_killed_process_is_cleared"]
fn child_mounts_and_waits() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let tree = Arc::new(MemTree::new([("hello", "from the killed child")]).unwrap());
    let mount = mount(tree, Path::new(&dir), &MountOptions::default()).expect("child mount");
    println!("{CHILD_READY}");
    std::io::stdout().flush().unwrap();
    // The parent never writes; it kills us. EOF means the parent is gone: clean up.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(mount);
}

/// Kills the child process if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stale_mount_from_a_killed_process_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    // Probe FUSE first, so an unavailable FUSE skips (or fails under CI) before a child runs.
    let probe = Arc::new(MemTree::empty());
    let Some(probe) = try_mount(probe, dir.path(), &MountOptions::default()) else {
        return;
    };
    probe.unmount().unwrap();

    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_mounts_and_waits", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    // The harness prints `test child_mounts_and_waits ... ` first, on the same line.
    let mut ready = false;
    for line in stdout.lines() {
        if line.unwrap().contains(CHILD_READY) {
            ready = true;
            break;
        }
    }
    assert!(ready, "the child process did not mount");
    assert_eq!(fs::read(dir.path().join("hello")).unwrap(), b"from the killed child");

    child.0.kill().unwrap(); // SIGKILL: no destructor runs, the mount is left behind.
    child.0.wait().unwrap();
    // The kernel may still answer `stat` from cached attributes; listing reaches the daemon.
    let err = fs::read_dir(dir.path()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");

    let keep = MountOptions { clear_stale_mount: false, ..Default::default() };
    let err = mount(Arc::new(MemTree::empty()), dir.path(), &keep).unwrap_err();
    assert!(matches!(err, MountError::StaleMount { .. }), "{}", error_chain(&err));

    let tree = Arc::new(MemTree::new([("hello", "from the new mount")]).unwrap());
    let mount = mount(tree, dir.path(), &MountOptions::default())
        .unwrap_or_else(|e| panic!("remount over a stale mount: {}", error_chain(&e)));
    assert_eq!(fs::read(mount.mountpoint().join("hello")).unwrap(), b"from the new mount");
    mount.unmount().unwrap();
    assert!(fs::metadata(dir.path()).unwrap().is_dir());
}

/// A tree whose file `slow` blocks in `read_at` until the gate opens, to show that a read
/// waiting on the network does not hold up other requests.
struct GatedTree {
    inner: MemTree,
    entered: Mutex<Sender<()>>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

struct GatedFile {
    inner: Arc<dyn OpenFile>,
    entered: Sender<()>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Tree for GatedTree {
    fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
        self.inner.attr(path)
    }
    fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
        self.inner.list(dir)
    }
    fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
        let file = self.inner.open(path)?;
        if path.as_str() != "slow" {
            return Ok(file);
        }
        Ok(Arc::new(GatedFile {
            inner: file,
            entered: self.entered.lock().unwrap().clone(),
            gate: Arc::clone(&self.gate),
        }))
    }
}

impl OpenFile for GatedFile {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        let _ = self.entered.send(());
        let (open, changed) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
        self.inner.read_at(offset, len)
    }
}

fn open_gate(gate: &(Mutex<bool>, Condvar)) {
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
}

#[test]
fn a_blocked_read_does_not_block_other_requests() {
    let (entered_tx, entered_rx) = mpsc::channel();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let tree = GatedTree {
        inner: MemTree::new([("slow", "slow bytes"), ("fast", "fast bytes"), ("d/x", "x")]).unwrap(),
        entered: Mutex::new(entered_tx),
        gate: Arc::clone(&gate),
    };
    let dir = tempfile::tempdir().unwrap();
    // One session thread: if reads ran on it, everything below would wait for the slow read.
    let opts = MountOptions { session_threads: 1, worker_threads: 4, ..Default::default() };
    let Some(mount) = try_mount(Arc::new(tree), dir.path(), &opts) else {
        return;
    };
    let root = mount.mountpoint().to_path_buf();

    let slow_path = root.join("slow");
    let slow = thread::spawn(move || fs::read(slow_path));
    entered_rx.recv().unwrap(); // The slow read is now blocked inside the tree.

    // Do other work on another thread, and give up (rather than hang the suite) if it is stuck
    // behind the slow read. This is a deadlock guard, not a timing assertion.
    let (done_tx, done_rx) = mpsc::channel();
    let other_root = root.clone();
    thread::spawn(move || {
        let result = (|| -> std::io::Result<()> {
            assert_eq!(fs::metadata(other_root.join("fast"))?.len(), 10);
            assert_eq!(names(&other_root.join("d")), ["x"]);
            assert_eq!(fs::read(other_root.join("fast"))?, b"fast bytes");
            Ok(())
        })();
        let _ = done_tx.send(result);
    });
    let other = done_rx.recv_timeout(Duration::from_secs(120));
    open_gate(&gate);
    match other {
        Ok(result) => result.unwrap(),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("requests were stuck behind a blocked read")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the checks panicked (see above)"),
    }
    assert_eq!(slow.join().unwrap().unwrap(), b"slow bytes");
    mount.unmount().unwrap();
}

/// A tree that records the length of every read it is asked for.
struct RecordingTree {
    inner: MemTree,
    lens: Arc<Mutex<Vec<u32>>>,
    /// Bytes offered after each read ([`OpenFile::read_ahead`]), if any.
    ahead: Option<u32>,
}

struct RecordingFile {
    inner: Arc<dyn OpenFile>,
    lens: Arc<Mutex<Vec<u32>>>,
    ahead: Option<u32>,
}

impl Tree for RecordingTree {
    fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
        self.inner.attr(path)
    }
    fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
        self.inner.list(dir)
    }
    fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
        Ok(Arc::new(RecordingFile { inner: self.inner.open(path)?, lens: Arc::clone(&self.lens), ahead: self.ahead }))
    }
}

impl OpenFile for RecordingFile {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        self.lens.lock().unwrap().push(len);
        self.inner.read_at(offset, len)
    }
    fn read_ahead(&self, offset: u64, len: u32) -> Option<(u64, Vec<u8>)> {
        let from = offset + u64::from(len);
        Some((from, self.inner.read_at(from, self.ahead?).ok()?))
    }
}

/// With readahead off the kernel asks for one page per request; a tree that offers what follows
/// each read (`OpenFile::read_ahead`) gets it pushed into the page cache, so a sequential reader
/// costs a handful of requests instead of one per page, and still reads the file's bytes.
#[test]
fn pages_pushed_after_a_read_spare_the_next_requests() {
    const LEN: usize = 1 << 20;
    let mut requests = Vec::new();
    for ahead in [None, Some(256 << 10)] {
        let lens = Arc::new(Mutex::new(Vec::new()));
        let tree = RecordingTree {
            inner: MemTree::new([("f", pseudo_random(LEN, 9))]).unwrap(),
            lens: Arc::clone(&lens),
            ahead,
        };
        let dir = tempfile::tempdir().unwrap();
        let opts = MountOptions { readahead: 0, ..Default::default() };
        let Some(mount) = try_mount(Arc::new(tree), dir.path(), &opts) else {
            return;
        };
        let mut file = File::open(mount.mountpoint().join("f")).unwrap();
        let mut data = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
        }
        assert!(data == pseudo_random(LEN, 9), "wrong bytes with read_ahead {ahead:?}");
        let lens = lens.lock().unwrap().clone();
        assert!(lens.iter().all(|&l| l <= 4096), "readahead 0 asks page by page: {lens:?}");
        requests.push(lens.len());
        drop(file);
        mount.unmount().unwrap();
    }
    let (without, with) = (requests[0], requests[1]);
    assert!(without >= LEN / 4096, "one request per page without pushes, got {without}");
    assert!(with * 4 <= without, "pushes should spare most requests: {with} with, {without} without");
}

#[test]
fn sequential_reads_use_large_requests_when_the_kernel_allows() {
    let lens = Arc::new(Mutex::new(Vec::new()));
    let tree = RecordingTree {
        inner: MemTree::new([("big", pseudo_random(FIVE_MIB, 4))]).unwrap(),
        lens: Arc::clone(&lens),
        ahead: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = MountOptions::default();
    let Some(mount) = try_mount(Arc::new(tree), dir.path(), &opts) else {
        return;
    };
    let data = fs::read(mount.mountpoint().join("big")).unwrap();
    assert!(data == pseudo_random(FIVE_MIB, 4));
    let lens = lens.lock().unwrap().clone();
    assert!(!lens.is_empty());
    assert!(lens.iter().all(|&len| len <= opts.max_read), "{lens:?}");

    // Whether requests reach max_read depends on the mount's readahead window, which `mount`
    // raises when it may (as root). Check against what the kernel actually has.
    let dev = fs::metadata(mount.mountpoint()).unwrap().dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let readahead_kb = fs::read_to_string(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if readahead_kb == Some(opts.max_read / 1024) {
        assert_eq!(lens.iter().max(), Some(&opts.max_read), "{lens:?}");
    } else {
        eprintln!("readahead is {readahead_kb:?} KiB; read sizes seen: {lens:?}");
    }
    mount.unmount().unwrap();
}
