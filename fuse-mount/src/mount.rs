//! Mounting a [`Tree`] and unmounting it again.
//!
//! [`mount()`] checks what commonly goes wrong before asking the kernel (no `/dev/fuse`, no
//! `fusermount3` for an unprivileged user, a stale mount left by a crashed run, a live mount
//! already there), then starts a background fuser session. The returned [`Mount`] unmounts on
//! drop, so a daemon that exits or a test that panics does not leave the mountpoint dangling.
//!
//! A process killed with SIGKILL cannot unmount: its mountpoint then answers every `stat` with
//! `ENOTCONN` ("Transport endpoint is not connected") until someone runs `fusermount3 -u`.
//! [`mount()`] does that itself (lazily, `-z`) when it finds such a mountpoint, so restarting the
//! daemon is enough to recover.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{BackgroundSession, MountOption, SessionACL};

use crate::fs::{FsConfig, TreeFs};
use crate::fuse::{FuseFs, KernelSettings};
use crate::inode::InodeTable;
use crate::mountinfo::is_fuse_mountpoint;
use crate::page_push::{PagePusher, PushControl};
use crate::read_pool::ReadPool;
use crate::tree::Tree;

/// The FUSE character device.
const FUSE_DEVICE: &str = "/dev/fuse";

/// How to mount. Every field has a default that suits the daemon; see each for why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// The "source" shown by `mount` and `df` (default `warmlake`), so an operator can tell
    /// which mount is ours. May not contain `,` (the mount option separator) or control
    /// characters.
    pub fs_name: String,
    /// Let users other than the one running the daemon use the mount (default false). For an
    /// unprivileged daemon this needs `user_allow_other` in `/etc/fuse.conf`.
    pub allow_other: bool,
    /// How long the kernel may cache a node's attributes without asking again (default 60 s).
    /// The tree is immutable between snapshot switches, so a long TTL makes `stat` and `ls -l`
    /// free; the cost is that a snapshot switch becomes visible in attributes up to this late.
    pub attr_ttl: Duration,
    /// How long the kernel may cache a name's lookup (default 60 s). Same trade as
    /// [`MountOptions::attr_ttl`]: a file added by a new snapshot may take this long to appear
    /// under a path the kernel has already looked up; a removed one as long to vanish.
    pub entry_ttl: Duration,
    /// The largest read request, in bytes (default 1 MiB, the kernel's usual ceiling:
    /// `/proc/sys/fs/fuse/max_pages_limit`). Larger reads mean fewer round trips through FUSE
    /// and larger ranged GETs behind them. Sequential reads only reach this size if the mount's
    /// readahead window is raised to match, which [`mount()`] does when it may (as root); other
    /// users get 128 KiB requests. Also offered as `st_blksize`, which `cp`, `cat` and friends
    /// size their buffers by. Between 4 KiB and 16 MiB.
    pub max_read: u32,
    /// How far the kernel reads ahead of a reader, in bytes (default: `max_read`). Readahead
    /// turns small sequential reads into large requests; but every byte it asks for is a byte
    /// the tree must produce, so a tree that fetches over the network on a miss may prefer 0:
    /// the kernel then asks for exactly the pages readers read, one page per request, and the
    /// tree says what to put in the page cache ahead of the reader instead
    /// ([`crate::OpenFile::read_ahead`]). Up to the kernel's 128 KiB this holds for every user;
    /// a larger window only when the mount's readahead may be changed (as root).
    pub readahead: u32,
    /// Threads that run file reads (default 16). Reads may wait on the network, so they never
    /// run on the session threads; this bounds how many run at once (and so how many
    /// `max_read` buffers are in memory: at most twice this many, counting the queue). Also the
    /// kernel's `max_background`, its limit on readahead requests in flight.
    pub worker_threads: usize,
    /// Threads that receive requests from the kernel and answer metadata requests (default 2).
    /// Metadata is answered from memory, so few are needed; more than one keeps `ls` responsive
    /// while another thread waits for a free read worker.
    pub session_threads: usize,
    /// Clear a stale mount left at the mountpoint by a crashed run before mounting (default
    /// true). When false, such a mountpoint fails with [`MountError::StaleMount`].
    pub clear_stale_mount: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            fs_name: "warmlake".to_string(),
            allow_other: false,
            attr_ttl: Duration::from_secs(60),
            entry_ttl: Duration::from_secs(60),
            max_read: 1 << 20,
            readahead: 1 << 20,
            worker_threads: 16,
            session_threads: 2,
            clear_stale_mount: true,
        }
    }
}

impl MountOptions {
    fn validate(&self) -> Result<(), MountError> {
        let invalid = |reason: String| Err(MountError::InvalidOptions { reason });
        if self.fs_name.is_empty() || self.fs_name.contains(',') || self.fs_name.chars().any(char::is_control) {
            return invalid(format!("fs_name {:?} must be non-empty, without ',' or control characters", self.fs_name));
        }
        if !(4096..=16 << 20).contains(&self.max_read) {
            return invalid(format!("max_read {} must be between 4096 and {}", self.max_read, 16 << 20));
        }
        if self.worker_threads == 0 {
            return invalid("worker_threads must be at least 1".to_string());
        }
        if self.session_threads == 0 {
            return invalid("session_threads must be at least 1".to_string());
        }
        Ok(())
    }
}

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A [`MountOptions`] field is out of range.
    #[error("invalid mount options: {reason}")]
    InvalidOptions { reason: String },
    /// The kernel's FUSE device does not exist.
    #[error(
        "{}: FUSE device not found; load the kernel module (`modprobe fuse`) or, in a container, \
         pass the device through (`--device /dev/fuse`)",
        path.display()
    )]
    FuseDeviceMissing { path: PathBuf },
    /// An unprivileged mount needs the setuid helper `fusermount3`, and it is not installed.
    #[error(
        "fusermount3 not found: unprivileged FUSE mounts need it; install the `fuse3` package \
         (Debian/Ubuntu: `apt-get install fuse3`)"
    )]
    FusermountMissing,
    /// The mountpoint does not exist.
    #[error("mountpoint {} does not exist", mountpoint.display())]
    MountpointMissing { mountpoint: PathBuf },
    /// The mountpoint is not a directory.
    #[error("mountpoint {} is not a directory", mountpoint.display())]
    MountpointNotADirectory { mountpoint: PathBuf },
    /// A live FUSE filesystem is already mounted there (another daemon, or a mount this process
    /// still holds).
    #[error(
        "{} is already a live FUSE mount; stop whatever serves it or unmount it (`fusermount3 -u {}`)",
        mountpoint.display(),
        mountpoint.display()
    )]
    AlreadyMounted { mountpoint: PathBuf },
    /// A stale mount from a crashed run is there and could not be cleared (or clearing is
    /// disabled).
    #[error(
        "{} is a stale FUSE mount left by a crashed run and was not cleared: {reason}; \
         run `fusermount3 -u -z {}`",
        mountpoint.display(),
        mountpoint.display()
    )]
    StaleMount { mountpoint: PathBuf, reason: String },
    /// `allow_other` was asked for, but `/etc/fuse.conf` does not allow it for this user.
    #[error(
        "allow_other is not permitted for this user: add `user_allow_other` to /etc/fuse.conf \
         or mount without allow_other"
    )]
    AllowOtherNotPermitted {
        #[source]
        source: io::Error,
    },
    /// The mountpoint could not be inspected (`stat` failed with something other than "not
    /// found" or "not connected").
    #[error("cannot inspect mountpoint {}", mountpoint.display())]
    Inspect {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    /// fuser or the kernel refused the mount.
    #[error("mounting at {} failed", mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Unmounting failed.
    #[error("unmounting {} failed", mountpoint.display())]
    Unmount {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A mounted tree. Unmounts when dropped (logging any failure); call [`Mount::unmount`] to see
/// the error instead.
///
/// If files on the mount are still open, the kernel refuses a plain unmount (`EBUSY`); the
/// mount is then detached lazily: it disappears from the namespace at once, and the session
/// keeps serving the open files until the last one is closed, then ends by itself.
#[derive(Debug)]
pub struct Mount {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    helpers: UnmountHelpers,
    inodes: Arc<Mutex<InodeTable>>,
    pushes: PushControl,
}

impl Mount {
    /// Where the tree is mounted (canonicalised).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// A handle that drops the kernel's cached pages of the mount's files (see [`PageDropper`]).
    pub fn page_dropper(&self) -> PageDropper {
        PageDropper { inodes: Arc::clone(&self.inodes), pushes: self.pushes.clone() }
    }

    /// Tells the kernel to forget every name and directory attribute it cached, after the tree
    /// changed (a new snapshot, a stricter policy): without this, a removed file stays visible
    /// and a new one hidden for up to the entry TTL. With `contents`, cached file pages go too
    /// (a policy now refuses bytes that readers of open files could otherwise still get from
    /// the page cache); without, a path that still exists keeps its inode and the pages already
    /// read. Never call this from inside a [`Tree`] method (the kernel may be waiting on that
    /// very request).
    pub fn invalidate(&self, contents: bool) {
        let Some(session) = &self.session else { return };
        if contents {
            self.pushes.invalidate();
        }
        let (names, dirs, files) = self.inodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dentries();
        let dirs: Vec<fuser::INodeNo> = if contents { dirs.into_iter().chain(files).collect() } else { dirs };
        let notifier = session.notifier();
        let mut failed = 0usize;
        for (parent, name) in &names {
            // ENOENT: the kernel had not cached it; nothing to do.
            if let Err(e) = notifier.inval_entry(*parent, std::ffi::OsStr::new(name))
                && e.raw_os_error() != Some(libc::ENOENT)
            {
                failed += 1;
            }
        }
        for ino in dirs {
            // Offset 0, length 0: attributes only for a directory; for a file, all its pages.
            if let Err(e) = notifier.inval_inode(ino, 0, 0)
                && e.raw_os_error() != Some(libc::ENOENT)
            {
                failed += 1;
            }
        }
        if failed > 0 {
            tracing::debug!(failed, names = names.len(), "some kernel cache invalidations failed");
        }
    }

    /// Unmounts and waits for the session threads and read workers to finish. In-flight reads
    /// complete first, so this waits as long as the slowest of them.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => {
                tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted");
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    "mount is busy (files still open); detaching it lazily"
                );
                lazy_unmount(&self.mountpoint, &self.helpers).map_err(|reason| MountError::Unmount {
                    mountpoint: self.mountpoint.clone(),
                    source: io::Error::other(reason),
                })
            }
            Err(source) => Err(MountError::Unmount { mountpoint: self.mountpoint.clone(), source }),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::error!(error = %crate::error::error_chain(&e), "unmount on drop failed");
        }
    }
}

/// Mounts `tree` read-only at `mountpoint` and serves it from background threads until the
/// returned [`Mount`] is dropped or unmounted. Returns once the kernel has completed the FUSE
/// handshake, so the mount is usable immediately.
pub fn mount(tree: Arc<dyn Tree>, mountpoint: &Path, opts: &MountOptions) -> Result<Mount, MountError> {
    opts.validate()?;
    if !Path::new(FUSE_DEVICE).exists() {
        return Err(MountError::FuseDeviceMissing { path: PathBuf::from(FUSE_DEVICE) });
    }
    let (uid, gid) = effective_ids();
    let helpers = UnmountHelpers { fusermount: find_fusermount(), privileged: uid == 0 };
    // Root mounts with mount(2) directly; everybody else goes through the setuid helper.
    if !helpers.privileged && helpers.fusermount.is_none() {
        return Err(MountError::FusermountMissing);
    }
    let mountpoint = prepare_mountpoint(mountpoint, opts.clear_stale_mount, &helpers)?;

    let fs = TreeFs::new(
        tree,
        FsConfig {
            attr_ttl: opts.attr_ttl,
            entry_ttl: opts.entry_ttl,
            uid,
            gid,
            blksize: prev_power_of_two(opts.max_read),
        },
    );
    let reads = ReadPool::new(opts.worker_threads, opts.worker_threads)
        .map_err(|source| MountError::Mount { mountpoint: mountpoint.clone(), source })?;
    let kernel = KernelSettings {
        max_read: opts.max_read,
        max_background: u16::try_from(opts.worker_threads).unwrap_or(u16::MAX),
        readahead: opts.readahead,
    };
    let inodes = fs.inode_table();
    let pushes = PushControl::default();
    let pusher = PagePusher::start(pushes.clone())
        .map_err(|source| MountError::Mount { mountpoint: mountpoint.clone(), source })?;
    let session = fuser::spawn_mount(FuseFs::new(fs, reads, pusher, kernel), &mountpoint, &fuser_config(opts))
        .map_err(|source| classify_mount_error(&mountpoint, source))?;
    pushes.connect(session.notifier());
    tracing::info!(mountpoint = %mountpoint.display(), fs_name = %opts.fs_name, "mounted");
    if let Err(e) = set_readahead(&mountpoint, opts.readahead) {
        tracing::info!(
            mountpoint = %mountpoint.display(),
            error = %e,
            "cannot set the mount's readahead; the kernel keeps its 128 KiB window"
        );
    }
    Ok(Mount { session: Some(session), mountpoint, helpers, inodes, pushes })
}

/// Drops the kernel's cached pages of every file of a mount, for a tree whose files' bytes
/// changed at their source (an object replaced in the store under the same name). Every file,
/// not the changed one alone: the tree's owner knows objects, not the inodes the kernel holds
/// them under, and a change is rare. Cheap to clone, callable from any thread, never blocks:
/// the drops run on the mount's push thread, so code a read waits on may call it.
#[derive(Debug, Clone)]
pub struct PageDropper {
    inodes: Arc<Mutex<InodeTable>>,
    pushes: PushControl,
}

impl PageDropper {
    /// Drops the cached pages of every file the kernel knows.
    pub fn drop_all(&self) {
        let (_, _, files) = self.inodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dentries();
        self.pushes.forget(files);
    }
}

/// Sets the kernel readahead of the new mount to `bytes` (rounded down to KiB).
///
/// The kernel sizes sequential (buffered) reads by the mount's readahead window, which starts
/// at the 128 KiB it offered in the FUSE handshake, whatever `max_read` allows. The window
/// lives in `/sys/class/bdi/<major>:<minor>/read_ahead_kb`, writable by root only; for other
/// users this fails and reads stay at 128 KiB (the [`Tree`] should then fetch ahead itself).
fn set_readahead(mountpoint: &Path, bytes: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(mountpoint)?.dev();
    // glibc's gnu_dev_major / gnu_dev_minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    std::fs::write(&knob, (bytes / 1024).to_string())?;
    tracing::debug!(knob, kib = bytes / 1024, "set readahead");
    Ok(())
}

/// fuser's session configuration for `opts`.
fn fuser_config(opts: &MountOptions) -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        // Read-only at the VFS: writes, creates, renames fail with EROFS before reaching us.
        MountOption::RO,
        MountOption::FSName(opts.fs_name.clone()),
        MountOption::Subtype("warmlake".to_string()),
        // Let the kernel enforce the 0o444/0o555 modes instead of sending ACCESS requests.
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
        MountOption::NoAtime,
    ];
    config.acl = if opts.allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(opts.session_threads);
    config
}

fn classify_mount_error(mountpoint: &Path, source: io::Error) -> MountError {
    if source.kind() == io::ErrorKind::PermissionDenied && source.to_string().contains("user_allow_other") {
        return MountError::AllowOtherNotPermitted { source };
    }
    MountError::Mount { mountpoint: mountpoint.to_path_buf(), source }
}

/// Checks the mountpoint, clears a stale mount there if allowed, and returns its canonical
/// path (what `/proc/self/mountinfo` shows).
///
/// A dead FUSE mount cannot always be recognised by `stat`: the kernel keeps answering it from
/// cached attributes until they expire (60 s by default), and only then says `ENOTCONN`. So a
/// FUSE mount found in mountinfo is probed with `opendir`, which always goes to the daemon.
fn prepare_mountpoint(mountpoint: &Path, clear_stale: bool, helpers: &UnmountHelpers) -> Result<PathBuf, MountError> {
    let canonical = canonical_mountpoint(mountpoint)?;
    let owned = || canonical.clone();
    let stale = match std::fs::metadata(&canonical) {
        Ok(meta) if meta.is_dir() => {
            if is_fuse_mountpoint(&canonical) {
                match std::fs::read_dir(&canonical) {
                    Err(e) if is_disconnected(&e) => true,
                    _ => {
                        return Err(MountError::AlreadyMounted { mountpoint: owned() });
                    }
                }
            } else {
                false
            }
        }
        Ok(_) => {
            return Err(MountError::MountpointNotADirectory { mountpoint: owned() });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::MountpointMissing { mountpoint: owned() });
        }
        Err(e) if is_disconnected(&e) => true,
        Err(source) => {
            return Err(MountError::Inspect { mountpoint: owned(), source });
        }
    };
    if !stale {
        return Ok(canonical);
    }
    if !clear_stale {
        return Err(MountError::StaleMount { mountpoint: owned(), reason: "clear_stale_mount is off".to_string() });
    }
    tracing::warn!(
        mountpoint = %canonical.display(),
        "clearing a stale FUSE mount left by a crashed run"
    );
    lazy_unmount(&canonical, helpers).map_err(|reason| MountError::StaleMount { mountpoint: owned(), reason })?;
    match std::fs::metadata(&canonical) {
        Ok(meta) if meta.is_dir() => Ok(canonical),
        Ok(_) => Err(MountError::MountpointNotADirectory { mountpoint: owned() }),
        Err(e) => {
            Err(MountError::StaleMount { mountpoint: owned(), reason: format!("still unusable after unmounting: {e}") })
        }
    }
}

/// The canonical form of `mountpoint`. If the mountpoint itself cannot be resolved because a
/// dead mount sits on it, its parent is resolved instead and the name appended.
fn canonical_mountpoint(mountpoint: &Path) -> Result<PathBuf, MountError> {
    let inspect = |source| MountError::Inspect { mountpoint: mountpoint.to_path_buf(), source };
    match mountpoint.canonicalize() {
        Ok(canonical) => Ok(canonical),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(MountError::MountpointMissing { mountpoint: mountpoint.to_path_buf() })
        }
        Err(e) if is_disconnected(&e) => {
            let (Some(parent), Some(name)) = (mountpoint.parent(), mountpoint.file_name()) else {
                return Err(inspect(e));
            };
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            Ok(parent.canonicalize().map_err(inspect)?.join(name))
        }
        Err(e) => Err(inspect(e)),
    }
}

/// `ENOTCONN` is what a FUSE mount whose daemon died answers; `ECONNABORTED` what one answers
/// after its connection was aborted through `/sys/fs/fuse/connections`.
fn is_disconnected(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTCONN) | Some(libc::ECONNABORTED))
}

/// What can unmount: `fusermount3` (works for the mount's owner), and `umount` for root.
#[derive(Debug, Clone)]
struct UnmountHelpers {
    fusermount: Option<PathBuf>,
    privileged: bool,
}

/// Detaches the mount at `mountpoint` lazily (`MNT_DETACH`): it leaves the namespace now and
/// goes away once nothing uses it. Returns what went wrong, for the caller's error.
fn lazy_unmount(mountpoint: &Path, helpers: &UnmountHelpers) -> Result<(), String> {
    let mut attempts: Vec<(PathBuf, Vec<&str>)> = Vec::new();
    if let Some(fusermount) = &helpers.fusermount {
        attempts.push((fusermount.clone(), vec!["-u", "-z", "--"]));
    }
    if helpers.privileged {
        attempts.push((PathBuf::from("umount"), vec!["-l", "--"]));
    }
    if attempts.is_empty() {
        return Err("fusermount3 not found (install the `fuse3` package, Debian/Ubuntu: \
             `apt-get install fuse3`)"
            .to_string());
    }
    let mut failures = Vec::new();
    for (program, args) in attempts {
        let output = Command::new(&program).args(&args).arg(mountpoint).stdin(Stdio::null()).output();
        match output {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => failures.push(format!(
                "`{} {}` failed ({}): {}",
                program.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => failures.push(format!("cannot run {}: {e}", program.display())),
        }
    }
    Err(failures.join("; "))
}

/// The `fusermount3` (or older `fusermount`) helper, looked for where fuser looks: the
/// `FUSERMOUNT_PATH` environment variable, then `PATH`, then `/bin` and `/sbin`.
fn find_fusermount() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FUSERMOUNT_PATH") {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect()).unwrap_or_default();
    dirs.extend(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    ["fusermount3", "fusermount"]
        .iter()
        .find_map(|name| dirs.iter().map(|dir| dir.join(name)).find(|candidate| candidate.is_file()))
}

/// The effective user and group of this process: the owner shown for every node.
#[allow(unsafe_code)]
fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid(2) and getegid(2) take no arguments, cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// The largest power of two not above `n` (`n` > 0).
fn prev_power_of_two(n: u32) -> u32 {
    1 << (31 - n.max(1).leading_zeros())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn helpers() -> UnmountHelpers {
        UnmountHelpers { fusermount: None, privileged: false }
    }

    #[test]
    fn defaults_are_valid() {
        let opts = MountOptions::default();
        assert!(opts.validate().is_ok());
        assert_eq!(opts.max_read, 1 << 20);
        assert!(!opts.allow_other);
        assert_eq!(opts.attr_ttl, Duration::from_secs(60));
    }

    #[test]
    fn invalid_options_are_refused() {
        let bad = [
            MountOptions { fs_name: String::new(), ..Default::default() },
            MountOptions { fs_name: "a,b".into(), ..Default::default() },
            MountOptions { max_read: 100, ..Default::default() },
            MountOptions { max_read: 32 << 20, ..Default::default() },
            MountOptions { worker_threads: 0, ..Default::default() },
            MountOptions { session_threads: 0, ..Default::default() },
        ];
        for opts in bad {
            assert!(matches!(opts.validate(), Err(MountError::InvalidOptions { .. })), "{opts:?}");
        }
    }

    #[test]
    fn fuser_config_is_read_only_and_owner_only_by_default() {
        let config = fuser_config(&MountOptions::default());
        assert!(config.mount_options.contains(&MountOption::RO));
        assert!(config.mount_options.contains(&MountOption::FSName("warmlake".into())));
        assert_eq!(config.acl, SessionACL::Owner);
        assert_eq!(config.n_threads, Some(2));
        let shared = fuser_config(&MountOptions { allow_other: true, ..Default::default() });
        assert_eq!(shared.acl, SessionACL::All);
    }

    #[test]
    fn missing_and_non_directory_mountpoints_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(prepare_mountpoint(&missing, true, &helpers()), Err(MountError::MountpointMissing { .. })));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(prepare_mountpoint(&file, true, &helpers()), Err(MountError::MountpointNotADirectory { .. })));
        let ok = prepare_mountpoint(dir.path(), true, &helpers()).unwrap();
        assert_eq!(ok, dir.path().canonicalize().unwrap());
    }

    #[test]
    fn lazy_unmount_without_helpers_names_the_package() {
        let err = lazy_unmount(Path::new("/nonexistent"), &helpers()).unwrap_err();
        assert!(err.contains("fuse3"), "{err}");
    }

    #[test]
    fn friendly_messages_name_the_fix() {
        let missing = MountError::FusermountMissing.to_string();
        assert!(missing.contains("apt-get install fuse3"), "{missing}");
        let device = MountError::FuseDeviceMissing { path: PathBuf::from(FUSE_DEVICE) }.to_string();
        assert!(device.contains("modprobe fuse"), "{device}");
    }

    #[test]
    fn allow_other_refusal_is_recognised() {
        let err = classify_mount_error(
            Path::new("/m"),
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "fusermount3: option allow_other only allowed if 'user_allow_other' is set in /etc/fuse.conf",
            ),
        );
        assert!(matches!(err, MountError::AllowOtherNotPermitted { .. }));
        let other = classify_mount_error(Path::new("/m"), io::Error::other("boom"));
        assert!(matches!(other, MountError::Mount { .. }));
    }

    #[test]
    fn the_guard_and_errors_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Mount>();
        send_sync::<MountError>();
        send_sync::<MountOptions>();
    }

    #[test]
    fn blksize_is_a_power_of_two() {
        assert_eq!(prev_power_of_two(1 << 20), 1 << 20);
        assert_eq!(prev_power_of_two((1 << 20) + 5), 1 << 20);
        assert_eq!(prev_power_of_two(4096 * 3), 8192);
        assert_eq!(prev_power_of_two(1), 1);
    }
}
