//! The read-only tree the mount serves, and the handle a reader gets when it opens a file.
//!
//! The trait is path-based on purpose. FUSE speaks in inode numbers, but inode numbers are a
//! property of one mount's conversation with the kernel, not of the data: the daemon knows its
//! lake as paths (`table/part-0.parquet`), the policy speaks in paths, and a test can build a
//! tree from a list of paths. The FUSE adapter keeps the inode table, so a
//! [`Tree`] implementation holds no per-mount state and stays testable without FUSE, through the
//! checks in [`crate::conformance`].
//!
//! The tree is expected to be immutable between snapshot switches: the adapter lets the kernel
//! cache attributes and pages for long periods (see [`crate::MountOptions`]). When the daemon
//! switches snapshots, paths that are still present should keep their content (DuckLake never
//! rewrites a data file in place: new data goes to new files), and files already open keep
//! reading the bytes they opened through their [`OpenFile`].

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::TreeError;
use crate::path::TreePath;

/// What a node is. The tree has no symlinks, devices or sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A directory, listed with [`Tree::list`].
    Directory,
    /// A regular file, read through [`Tree::open`].
    File,
}

/// The attributes of one node.
///
/// There is deliberately no mode or owner: the mount is read-only, so every directory is
/// `0o555` and every file `0o444`, owned by the user running the mount. Access policy is the
/// tree's to enforce by returning [`TreeError::PermissionDenied`]; mode bits could only express
/// it per user of the mount, and every user of the mount is the same user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Directory or file.
    pub kind: NodeKind,
    /// Size in bytes. Must equal [`OpenFile::size`] of a handle opened from the same snapshot.
    /// Directories report 0.
    pub size: u64,
    /// Last modification time, shown as mtime, ctime and atime.
    pub mtime: SystemTime,
}

impl Attr {
    /// The attributes of a file of `size` bytes.
    pub fn file(size: u64, mtime: SystemTime) -> Self {
        Attr { kind: NodeKind::File, size, mtime }
    }

    /// The attributes of a directory.
    pub fn directory(mtime: SystemTime) -> Self {
        Attr { kind: NodeKind::Directory, size: 0, mtime }
    }
}

/// One child in a directory listing.
///
/// Only the name and kind: `readdir` needs nothing more, and `readdirplus` fetches the rest
/// through [`Tree::attr`], which is cheap by contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The child's name: one segment, valid for [`TreePath::join`]. Entries with names that are
    /// not are skipped by the adapter (and reported by the conformance checks).
    pub name: String,
    /// Directory or file; must agree with [`Tree::attr`] of the child.
    pub kind: NodeKind,
}

impl DirEntry {
    /// A child named `name` of kind `kind`.
    pub fn new(name: impl Into<String>, kind: NodeKind) -> Self {
        DirEntry { name: name.into(), kind }
    }
}

/// A read-only tree of directories and files, addressed by [`TreePath`].
///
/// Methods are called from FUSE worker threads, concurrently, so implementations are
/// `Send + Sync`. `attr` and `list` are on the path of every `stat` and `ls`: they must answer
/// from memory. `open` should be quick as well (it pins a version of the file; it need not
/// fetch it). Only [`OpenFile::read_at`] may wait on the network, and the adapter runs it on a
/// pool of read workers so that a slow read never stalls metadata requests.
pub trait Tree: Send + Sync + 'static {
    /// Attributes of the node at `path` (the root is [`TreePath::root`]). Never touches the
    /// network.
    ///
    /// Errors: [`TreeError::NotFound`] when nothing is at `path` (also when a parent is a file),
    /// [`TreeError::PermissionDenied`] when policy hides the node.
    fn attr(&self, path: &TreePath) -> Result<Attr, TreeError>;

    /// The children of the directory at `dir`, in any order, without `.` and `..`. Attributes
    /// are fetched lazily through [`Tree::attr`].
    ///
    /// Errors: [`TreeError::NotFound`], [`TreeError::NotADirectory`] when `dir` is a file,
    /// [`TreeError::PermissionDenied`].
    fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError>;

    /// Opens the file at `path` for reading. The handle keeps reading the bytes it opened even
    /// if the tree later switches to a snapshot where `path` changed or is gone.
    ///
    /// Errors: [`TreeError::NotFound`], [`TreeError::IsADirectory`] when `path` is a directory,
    /// [`TreeError::PermissionDenied`], [`TreeError::Unavailable`] when the file can never be
    /// read right now (for example neither cached nor reachable and the tree knows it).
    fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError>;
}

/// An open file: a fixed sequence of [`OpenFile::size`] bytes.
///
/// The adapter holds it in an `Arc` for as long as the kernel keeps the file open and hands
/// clones to its read workers, so reads on one handle may run concurrently.
pub trait OpenFile: Send + Sync {
    /// The file's size in bytes; constant for the life of the handle.
    fn size(&self) -> u64;

    /// Exactly `min(len, size - offset)` bytes starting at `offset` (none when `offset >= size`),
    /// or an error. Never fewer bytes, and never zeros in place of data that could not be
    /// fetched: a short or padded answer would be served to the reader as file content.
    /// The adapter checks the length and turns a wrong one into `EIO`.
    ///
    /// This may block on the network; it runs on a read worker thread.
    ///
    /// Errors: [`TreeError::Unavailable`] when the bytes are neither cached nor fetchable,
    /// [`TreeError::Io`] when a local read failed.
    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError>;

    /// Whether the kernel may keep this file's pages in its page cache across opens
    /// (`FOPEN_KEEP_CACHE`). True for immutable files, which is every file of a lake: a second
    /// `open` then costs no reads at all. Return false only for a file whose content can change
    /// at the same path, or whose reads must reach the tree exactly as the reader made them: it
    /// is then opened with direct I/O (`FOPEN_DIRECT_IO`), so readers see its current content in
    /// full even while the kernel still holds its previous size, and no readahead widens a read.
    fn keep_cache(&self) -> bool {
        true
    }

    /// Bytes the tree holds locally and expects the reader to want right after a read of `len`
    /// bytes at `offset`: `Some((at, bytes))`, with `at` at or after the read's end. The
    /// adapter pushes them into the kernel's page cache (`FUSE_NOTIFY_STORE`) after answering
    /// the read, so the reader's next pages cost no request. Meant for mounts with readahead
    /// turned off, where the kernel otherwise asks for one page at a time; only whole pages are
    /// pushed, and pushes are a hint the adapter may drop. Called only for files opened with
    /// [`OpenFile::keep_cache`]. Default: none.
    fn read_ahead(&self, offset: u64, len: u32) -> Option<(u64, Vec<u8>)> {
        let _ = (offset, len);
        None
    }
}
