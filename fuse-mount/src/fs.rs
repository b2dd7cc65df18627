//! The filesystem behind the FUSE protocol: inode and handle bookkeeping over a [`Tree`].
//!
//! [`TreeFs`] answers each kind of kernel request with a `Result`, and [`crate::fuse`] only turns
//! those into replies. Keeping the two apart (as mountpoint-s3 does with `S3Filesystem` and
//! `S3FuseFilesystem`) lets the tests here drive lookups, forgets, directory paging and reads
//! directly, without a kernel: fuser's reply types cannot be built outside fuser.
//!
//! Lock order: `inodes` and `handles` are never held together, and neither is held across a
//! call into the [`Tree`] (which may be slow) or into a reply callback.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fuser::{FileAttr, FileHandle, FileType, FopenFlags, INodeNo, OpenAccMode, OpenFlags};

use crate::error::{FsError, TreeError};
use crate::inode::InodeTable;
use crate::path::TreePath;
use crate::tree::{Attr, DirEntry, NodeKind, OpenFile, Tree};

/// Mode bits of every directory: read-only mount, so nobody may write, everybody may list.
pub(crate) const DIR_PERM: u16 = 0o555;
/// Mode bits of every file: readable, never writable or executable.
pub(crate) const FILE_PERM: u16 = 0o444;

/// The parts of the mount options the filesystem needs.
#[derive(Debug, Clone)]
pub(crate) struct FsConfig {
    pub(crate) attr_ttl: Duration,
    pub(crate) entry_ttl: Duration,
    /// Owner of every node: the user running the mount.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// `st_blksize`, the I/O size tools such as `cp` and `cat` size their buffers by.
    pub(crate) blksize: u32,
}

/// An open file or directory, keyed by the handle number given to the kernel.
enum Handle {
    File(ReadTarget),
    Dir(Arc<DirListing>),
}

/// The open-handle table. Handle numbers are never reused within a mount.
#[derive(Default)]
struct Handles {
    next: u64,
    open: HashMap<u64, Handle>,
}

/// What a read needs, cloned out of the handle table so that the read runs without a lock.
#[derive(Clone)]
pub(crate) struct ReadTarget {
    path: TreePath,
    file: Arc<dyn OpenFile>,
}

impl std::fmt::Debug for ReadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTarget").field("path", &self.path).field("size", &self.file.size()).finish()
    }
}

impl ReadTarget {
    /// The file's size.
    pub(crate) fn size(&self) -> u64 {
        self.file.size()
    }

    /// What to push into the page cache after a read of `size` bytes at `offset`
    /// ([`OpenFile::read_ahead`]); nothing for a file read with direct I/O, whose pages the
    /// kernel does not keep.
    pub(crate) fn read_ahead(&self, offset: u64, size: u32) -> Option<(u64, Vec<u8>)> {
        if !self.file.keep_cache() {
            return None;
        }
        self.file.read_ahead(offset, size)
    }

    /// Reads `size` bytes at `offset`, clamped to the end of the file. Checks the length
    /// [`OpenFile::read_at`] promised, so a broken implementation shows up as `EIO`, never as a
    /// short file.
    pub(crate) fn read(&self, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let remaining = self.file.size().saturating_sub(offset);
        // Fits in u32 because it is at most `size`.
        let expected = remaining.min(u64::from(size)) as u32;
        if expected == 0 {
            return Ok(Vec::new());
        }
        let data = self.file.read_at(offset, expected)?;
        if data.len() != expected as usize {
            return Err(FsError::WrongReadLength {
                path: self.path.clone(),
                offset,
                expected: expected as usize,
                got: data.len(),
            });
        }
        Ok(data)
    }
}

/// A directory listing taken at `opendir`, paged through by `readdir`.
///
/// Taking it once per open, not once per `readdir` call, keeps offsets meaningful if the tree
/// switches snapshots while a reader is half-way through a large directory: the reader sees
/// one consistent listing. Slot 0 is `.`, slot 1 is `..`, slot `i + 2` is `entries[i]`; the
/// offset handed to the kernel for a slot is its index + 1 (the slot to resume at).
pub(crate) struct DirListing {
    path: TreePath,
    ino: INodeNo,
    parent_ino: INodeNo,
    attr: Attr,
    entries: Vec<DirEntry>,
}

/// One entry of a `readdir` page, as the adapter needs it for `ReplyDirectory::add`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListedEntry<'a> {
    pub(crate) ino: INodeNo,
    pub(crate) offset: u64,
    pub(crate) kind: FileType,
    pub(crate) name: &'a str,
}

/// One entry of a `readdirplus` page, for `ReplyDirectoryPlus::add`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListedEntryPlus<'a> {
    pub(crate) offset: u64,
    pub(crate) name: &'a str,
    pub(crate) attr: FileAttr,
}

/// The filesystem: a [`Tree`] plus the inode and handle tables.
pub(crate) struct TreeFs {
    tree: Arc<dyn Tree>,
    config: FsConfig,
    /// Shared with the [`crate::Mount`], which reads it to tell the kernel what to forget.
    inodes: Arc<Mutex<InodeTable>>,
    handles: Mutex<Handles>,
}

impl TreeFs {
    pub(crate) fn new(tree: Arc<dyn Tree>, config: FsConfig) -> Self {
        TreeFs {
            tree,
            config,
            inodes: Arc::new(Mutex::new(InodeTable::new())),
            handles: Mutex::new(Handles { next: 1, open: HashMap::new() }),
        }
    }

    /// The inode table, for kernel cache invalidation by the mount.
    pub(crate) fn inode_table(&self) -> Arc<Mutex<InodeTable>> {
        Arc::clone(&self.inodes)
    }

    pub(crate) fn attr_ttl(&self) -> Duration {
        self.config.attr_ttl
    }

    pub(crate) fn entry_ttl(&self) -> Duration {
        self.config.entry_ttl
    }

    /// `lookup`: the child `name` of directory `parent`, with one kernel lookup counted.
    pub(crate) fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, FsError> {
        let (parent_path, parent_kind) = self.inode(parent)?;
        if parent_kind != NodeKind::Directory {
            return Err(TreeError::NotADirectory { path: parent_path }.into());
        }
        let name = name.to_str().ok_or_else(|| FsError::NonUtf8Name { name: name.to_string_lossy().into_owned() })?;
        let path = parent_path.join(name).map_err(|source| FsError::InvalidName { name: name.to_string(), source })?;
        let attr = self.tree.attr(&path)?;
        let ino = self.inodes().lookup(&path, attr.kind);
        Ok(self.file_attr(ino, &attr))
    }

    /// `forget`: the kernel dropped `n` lookups of `ino`.
    pub(crate) fn forget(&self, ino: INodeNo, n: u64) {
        self.inodes().forget(ino, n);
    }

    /// `getattr`: current attributes of `ino`.
    pub(crate) fn getattr(&self, ino: INodeNo) -> Result<FileAttr, FsError> {
        let (path, kind) = self.inode(ino)?;
        let attr = self.tree.attr(&path)?;
        if attr.kind != kind {
            return Err(FsError::StaleInode { ino, path });
        }
        Ok(self.file_attr(ino, &attr))
    }

    /// `open`: opens the file for reading. Write access is refused with `EROFS` (the kernel
    /// already refuses it on a read-only mount; this is the second line).
    pub(crate) fn open(&self, ino: INodeNo, flags: OpenFlags) -> Result<(FileHandle, FopenFlags), FsError> {
        let (path, _) = self.inode(ino)?;
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return Err(FsError::ReadOnly { path });
        }
        let file = self.tree.open(&path)?;
        // A file that may change at its path is read with direct I/O: no stale pages, and reads
        // go on until the file's own end rather than the size the kernel cached with the attributes.
        let fopen = if file.keep_cache() { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::FOPEN_DIRECT_IO };
        let fh = self.insert_handle(Handle::File(ReadTarget { path, file }));
        Ok((fh, fopen))
    }

    /// The open file behind `fh`, for a read worker.
    pub(crate) fn read_target(&self, fh: FileHandle) -> Result<ReadTarget, FsError> {
        match self.handles().open.get(&fh.0) {
            Some(Handle::File(target)) => Ok(target.clone()),
            Some(Handle::Dir(_)) | None => Err(FsError::UnknownHandle(fh)),
        }
    }

    /// `release` / `releasedir`: the kernel closed the handle.
    pub(crate) fn release(&self, fh: FileHandle) {
        self.handles().open.remove(&fh.0);
    }

    /// `opendir`: takes the listing that `readdir` pages through.
    pub(crate) fn opendir(&self, ino: INodeNo) -> Result<FileHandle, FsError> {
        let (path, kind) = self.inode(ino)?;
        if kind != NodeKind::Directory {
            return Err(TreeError::NotADirectory { path }.into());
        }
        let entries = self.tree.list(&path)?;
        let attr = self.tree.attr(&path)?;
        let parent_ino = match path.parent() {
            Some(parent) => self.inodes().ino_of(&parent).unwrap_or(INodeNo::ROOT),
            None => INodeNo::ROOT,
        };
        let listing = DirListing { path, ino, parent_ino, attr, entries };
        Ok(self.insert_handle(Handle::Dir(Arc::new(listing))))
    }

    /// `readdir`: calls `add` for each entry from `offset` on until it returns true (the reply
    /// buffer is full). Plain `readdir` counts no lookups, so inode numbers are assigned without
    /// a count; the kernel uses them only for `d_ino`.
    pub(crate) fn readdir(
        &self,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(ListedEntry<'_>) -> bool,
    ) -> Result<(), FsError> {
        let listing = self.dir_handle(fh)?;
        for (index, slot) in slots(&listing, offset) {
            let next = index + 1;
            let entry = match slot {
                Slot::Dot => ListedEntry { ino: listing.ino, offset: next, kind: FileType::Directory, name: "." },
                Slot::DotDot => {
                    ListedEntry { ino: listing.parent_ino, offset: next, kind: FileType::Directory, name: ".." }
                }
                Slot::Child(child) => {
                    let Some(path) = child_path(&listing.path, child) else {
                        continue;
                    };
                    let ino = self.inodes().assign(&path, child.kind);
                    ListedEntry { ino, offset: next, kind: file_type(child.kind), name: &child.name }
                }
            };
            if add(entry) {
                break;
            }
        }
        Ok(())
    }

    /// `readdirplus`: like [`TreeFs::readdir`] with attributes. Each child entry the kernel
    /// receives counts as a lookup, so the count is taken before `add` and given back if `add`
    /// refuses the entry. Children whose attributes cannot be read (gone in a new snapshot,
    /// denied by policy) are left out: the kernel needs attributes for every entry.
    pub(crate) fn readdirplus(
        &self,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(ListedEntryPlus<'_>) -> bool,
    ) -> Result<(), FsError> {
        let listing = self.dir_handle(fh)?;
        for (index, slot) in slots(&listing, offset) {
            let next = index + 1;
            let full = match slot {
                // The kernel counts no lookup for `.` and `..`.
                Slot::Dot | Slot::DotDot => {
                    let (name, ino) = match slot {
                        Slot::Dot => (".", listing.ino),
                        _ => ("..", listing.parent_ino),
                    };
                    add(ListedEntryPlus { offset: next, name, attr: self.file_attr(ino, &listing.attr) })
                }
                Slot::Child(child) => {
                    let Some(path) = child_path(&listing.path, child) else {
                        continue;
                    };
                    let attr = match self.tree.attr(&path) {
                        Ok(attr) => attr,
                        Err(e) => {
                            tracing::debug!(path = %path, error = %e, "readdirplus: skipping entry");
                            continue;
                        }
                    };
                    let ino = self.inodes().lookup(&path, attr.kind);
                    let full =
                        add(ListedEntryPlus { offset: next, name: &child.name, attr: self.file_attr(ino, &attr) });
                    if full {
                        self.inodes().forget(ino, 1);
                    }
                    full
                }
            };
            if full {
                break;
            }
        }
        Ok(())
    }

    fn dir_handle(&self, fh: FileHandle) -> Result<Arc<DirListing>, FsError> {
        match self.handles().open.get(&fh.0) {
            Some(Handle::Dir(listing)) => Ok(Arc::clone(listing)),
            Some(Handle::File(_)) | None => Err(FsError::UnknownHandle(fh)),
        }
    }

    fn inode(&self, ino: INodeNo) -> Result<(TreePath, NodeKind), FsError> {
        self.inodes().get(ino).ok_or(FsError::UnknownInode(ino))
    }

    fn insert_handle(&self, handle: Handle) -> FileHandle {
        let mut handles = self.handles();
        let fh = handles.next;
        handles.next += 1;
        handles.open.insert(fh, handle);
        FileHandle(fh)
    }

    /// The kernel's view of `attr` as inode `ino`.
    pub(crate) fn file_attr(&self, ino: INodeNo, attr: &Attr) -> FileAttr {
        let (kind, perm) = match attr.kind {
            NodeKind::Directory => (FileType::Directory, DIR_PERM),
            NodeKind::File => (FileType::RegularFile, FILE_PERM),
        };
        FileAttr {
            ino,
            size: attr.size,
            blocks: attr.size.div_ceil(512),
            atime: attr.mtime,
            mtime: attr.mtime,
            ctime: attr.mtime,
            crtime: attr.mtime,
            kind,
            perm,
            // 1 for directories too: "subdirectory count unknown", so tools such as find do
            // not use nlink - 2 to skip looking for subdirectories.
            nlink: 1,
            uid: self.config.uid,
            gid: self.config.gid,
            rdev: 0,
            blksize: self.config.blksize,
            flags: 0,
        }
    }

    // Poisoning is ignored: every critical section leaves the tables consistent (no section
    // calls out while a table is half-updated), so a panic elsewhere does not corrupt them.
    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        self.inodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many handles are open (for tests).
    #[cfg(test)]
    fn open_handles(&self) -> usize {
        self.handles().open.len()
    }
}

enum Slot<'a> {
    Dot,
    DotDot,
    Child(&'a DirEntry),
}

/// The slots of `listing` from `offset` on, with their indexes.
fn slots(listing: &DirListing, offset: u64) -> impl Iterator<Item = (u64, Slot<'_>)> {
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    [Slot::Dot, Slot::DotDot]
        .into_iter()
        .chain(listing.entries.iter().map(Slot::Child))
        .enumerate()
        .skip(skip)
        .map(|(i, slot)| (i as u64, slot))
}

/// The path of a listed child, or `None` (logged) if the tree listed a name that is not a
/// valid segment.
fn child_path(dir: &TreePath, child: &DirEntry) -> Option<TreePath> {
    match dir.join(&child.name) {
        Ok(path) => Some(path),
        Err(e) => {
            tracing::warn!(dir = %dir, error = %e, "tree listed an invalid name; skipping it");
            None
        }
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Directory => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::mem_tree::{Fault, FaultOp, MemTree};
    use std::os::unix::ffi::OsStrExt;

    fn config() -> FsConfig {
        FsConfig {
            attr_ttl: Duration::from_secs(60),
            entry_ttl: Duration::from_secs(60),
            uid: 1234,
            gid: 5678,
            blksize: 1 << 20,
        }
    }

    fn fixture() -> (Arc<MemTree>, TreeFs) {
        let tree = Arc::new(
            MemTree::new([
                ("hello.txt", b"hello world".to_vec()),
                ("sales/2024/part-0.parquet", (0..=255u8).collect()),
                ("sales/2024/part-1.parquet", vec![7; 10]),
                ("sales/readme", Vec::new()),
            ])
            .unwrap(),
        );
        let fs = TreeFs::new(tree.clone(), config());
        (tree, fs)
    }

    fn lookup_path(fs: &TreeFs, path: &str) -> Result<FileAttr, FsError> {
        let mut ino = INodeNo::ROOT;
        let mut attr = fs.getattr(ino)?;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            attr = fs.lookup(ino, OsStr::new(seg))?;
            ino = attr.ino;
        }
        Ok(attr)
    }

    fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> libc::c_int {
        r.expect_err("expected an error").to_errno()
    }

    #[test]
    fn root_attributes() {
        let (_, fs) = fixture();
        let attr = fs.getattr(INodeNo::ROOT).unwrap();
        assert_eq!(attr.ino, INodeNo::ROOT);
        assert_eq!(attr.kind, FileType::Directory);
        assert_eq!(attr.perm, 0o555);
        assert_eq!((attr.uid, attr.gid), (1234, 5678));
        assert_eq!(attr.blksize, 1 << 20);
    }

    #[test]
    fn lookup_gives_file_and_directory_attributes() {
        let (_, fs) = fixture();
        let file = lookup_path(&fs, "sales/2024/part-0.parquet").unwrap();
        assert_eq!(file.kind, FileType::RegularFile);
        assert_eq!(file.perm, 0o444);
        assert_eq!(file.size, 256);
        assert_eq!(file.blocks, 1);
        assert_eq!(file.nlink, 1);
        let dir = lookup_path(&fs, "sales").unwrap();
        assert_eq!(dir.kind, FileType::Directory);
        assert_eq!(dir.perm, 0o555);
        assert_eq!(fs.getattr(file.ino).unwrap(), file);
    }

    #[test]
    fn lookup_errors_map_to_errno() {
        let (_, fs) = fixture();
        assert_eq!(errno(lookup_path(&fs, "nope")), libc::ENOENT);
        assert_eq!(errno(lookup_path(&fs, "sales/nope")), libc::ENOENT);
        let file = lookup_path(&fs, "hello.txt").unwrap();
        assert_eq!(errno(fs.lookup(file.ino, OsStr::new("x"))), libc::ENOTDIR);
        assert_eq!(errno(fs.lookup(INodeNo::ROOT, OsStr::new(".."))), libc::ENOENT);
        assert_eq!(errno(fs.lookup(INodeNo::ROOT, OsStr::from_bytes(b"\xff"))), libc::ENOENT);
        assert_eq!(errno(fs.lookup(INodeNo(4242), OsStr::new("x"))), libc::ESTALE);
        assert_eq!(errno(fs.getattr(INodeNo(4242))), libc::ESTALE);
    }

    #[test]
    fn injected_faults_map_to_errno() {
        let tree = Arc::new(
            MemTree::new([
                ("secret/a", b"a".to_vec()),
                ("locked", b"b".to_vec()),
                ("offline", b"c".to_vec()),
                ("broken", b"d".to_vec()),
            ])
            .unwrap(),
        );
        tree.inject("secret", FaultOp::Attr, Fault::PermissionDenied("policy".into())).unwrap();
        tree.inject("locked", FaultOp::Open, Fault::PermissionDenied("policy".into())).unwrap();
        tree.inject("offline", FaultOp::Open, Fault::Unavailable("no network".into())).unwrap();
        tree.inject("broken", FaultOp::Read, Fault::Io(std::io::ErrorKind::Other)).unwrap();
        let fs = TreeFs::new(tree, config());
        let ro = OpenFlags(libc::O_RDONLY);

        assert_eq!(errno(lookup_path(&fs, "secret")), libc::EACCES);
        let locked = lookup_path(&fs, "locked").unwrap();
        assert_eq!(errno(fs.open(locked.ino, ro)), libc::EACCES);
        let offline = lookup_path(&fs, "offline").unwrap();
        assert_eq!(errno(fs.open(offline.ino, ro)), libc::EIO);
        let broken = lookup_path(&fs, "broken").unwrap();
        let (fh, _) = fs.open(broken.ino, ro).unwrap();
        assert_eq!(errno(fs.read_target(fh).unwrap().read(0, 10)), libc::EIO);
    }

    #[test]
    fn forget_releases_inodes_and_lookups_are_stable_while_referenced() {
        let (_, fs) = fixture();
        let a = fs.lookup(INodeNo::ROOT, OsStr::new("hello.txt")).unwrap();
        let b = fs.lookup(INodeNo::ROOT, OsStr::new("hello.txt")).unwrap();
        assert_eq!(a.ino, b.ino);
        fs.forget(a.ino, 1);
        assert!(fs.getattr(a.ino).is_ok(), "one lookup still outstanding");
        fs.forget(a.ino, 1);
        assert_eq!(errno(fs.getattr(a.ino)), libc::ESTALE);
        let c = fs.lookup(INodeNo::ROOT, OsStr::new("hello.txt")).unwrap();
        assert_ne!(c.ino, a.ino);
    }

    #[test]
    fn open_and_read_clamp_to_the_end_of_the_file() {
        let (_, fs) = fixture();
        let file = lookup_path(&fs, "sales/2024/part-0.parquet").unwrap();
        let (fh, flags) = fs.open(file.ino, OpenFlags(libc::O_RDONLY)).unwrap();
        assert_eq!(flags, FopenFlags::FOPEN_KEEP_CACHE);
        let target = fs.read_target(fh).unwrap();
        let expected: Vec<u8> = (0..=255u8).collect();
        assert_eq!(target.read(0, 4096).unwrap(), expected);
        assert_eq!(target.read(10, 5).unwrap(), expected[10..15]);
        assert_eq!(target.read(250, 100).unwrap(), expected[250..]);
        assert!(target.read(256, 100).unwrap().is_empty());
        assert!(target.read(10_000, 100).unwrap().is_empty());
        assert!(target.read(0, 0).unwrap().is_empty());
        fs.release(fh);
        assert_eq!(errno(fs.read_target(fh)), libc::EBADF);
        assert_eq!(fs.open_handles(), 0);
    }

    #[test]
    fn write_opens_are_refused_with_erofs() {
        let (_, fs) = fixture();
        let file = lookup_path(&fs, "hello.txt").unwrap();
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDWR | libc::O_APPEND] {
            assert_eq!(errno(fs.open(file.ino, OpenFlags(flags))), libc::EROFS);
        }
        assert_eq!(fs.open_handles(), 0);
    }

    #[test]
    fn opening_a_directory_as_a_file_fails() {
        let (_, fs) = fixture();
        let dir = lookup_path(&fs, "sales").unwrap();
        assert_eq!(errno(fs.open(dir.ino, OpenFlags(libc::O_RDONLY))), libc::EISDIR);
        let file = lookup_path(&fs, "hello.txt").unwrap();
        assert_eq!(errno(fs.opendir(file.ino)), libc::ENOTDIR);
    }

    #[test]
    fn an_open_handle_keeps_its_bytes_across_a_tree_change() {
        let (tree, fs) = fixture();
        let file = lookup_path(&fs, "hello.txt").unwrap();
        let (fh, _) = fs.open(file.ino, OpenFlags(libc::O_RDONLY)).unwrap();
        tree.insert_file("hello.txt", b"a different snapshot".to_vec()).unwrap();
        assert_eq!(fs.read_target(fh).unwrap().read(0, 100).unwrap(), b"hello world");
        tree.remove("hello.txt").unwrap();
        assert_eq!(fs.read_target(fh).unwrap().read(6, 100).unwrap(), b"world");
        assert_eq!(errno(fs.getattr(file.ino)), libc::ENOENT);
    }

    #[test]
    fn a_node_that_changes_kind_gets_a_new_inode() {
        let (tree, fs) = fixture();
        let old = lookup_path(&fs, "hello.txt").unwrap();
        tree.remove("hello.txt").unwrap();
        tree.insert_file("hello.txt/inner", b"x".to_vec()).unwrap();
        assert_eq!(errno(fs.getattr(old.ino)), libc::ESTALE);
        let new = lookup_path(&fs, "hello.txt").unwrap();
        assert_ne!(new.ino, old.ino);
        assert_eq!(new.kind, FileType::Directory);
    }

    fn listed_names(fs: &TreeFs, fh: FileHandle, offset: u64) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        fs.readdir(fh, offset, |e| {
            out.push((e.name.to_string(), e.offset));
            false
        })
        .unwrap();
        out
    }

    #[test]
    fn readdir_lists_dot_entries_then_children_and_resumes_at_offsets() {
        let (_, fs) = fixture();
        let sales = lookup_path(&fs, "sales").unwrap();
        let fh = fs.opendir(sales.ino).unwrap();
        let all = listed_names(&fs, fh, 0);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [".", "..", "2024", "readme"]);
        assert_eq!(all.iter().map(|(_, o)| *o).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(listed_names(&fs, fh, 3), [("readme".to_string(), 4)]);
        assert!(listed_names(&fs, fh, 4).is_empty());
        assert!(listed_names(&fs, fh, u64::MAX).is_empty());

        // `.` is the directory itself and `..` its parent (the root).
        let mut inos = Vec::new();
        fs.readdir(fh, 0, |e| {
            inos.push((e.name.to_string(), e.ino, e.kind));
            false
        })
        .unwrap();
        assert_eq!(inos[0], (".".into(), sales.ino, FileType::Directory));
        assert_eq!(inos[1], ("..".into(), INodeNo::ROOT, FileType::Directory));
        assert_eq!(inos[3].2, FileType::RegularFile);
        fs.release(fh);
    }

    #[test]
    fn readdir_stops_when_the_buffer_is_full() {
        let (_, fs) = fixture();
        let fh = fs.opendir(INodeNo::ROOT).unwrap();
        let mut seen = Vec::new();
        fs.readdir(fh, 0, |e| {
            if seen.len() == 2 {
                return true;
            }
            seen.push(e.name.to_string());
            false
        })
        .unwrap();
        assert_eq!(seen, [".", ".."]);
        // The kernel resumes at the offset of the last accepted entry.
        assert_eq!(listed_names(&fs, fh, 2).into_iter().map(|(n, _)| n).collect::<Vec<_>>(), ["hello.txt", "sales"]);
    }

    #[test]
    fn readdir_listing_is_fixed_at_opendir() {
        let (tree, fs) = fixture();
        let fh = fs.opendir(INodeNo::ROOT).unwrap();
        tree.insert_file("zzz-new", b"new".to_vec()).unwrap();
        let names: Vec<String> = listed_names(&fs, fh, 0).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [".", "..", "hello.txt", "sales"]);
        let fresh = fs.opendir(INodeNo::ROOT).unwrap();
        assert_eq!(listed_names(&fs, fresh, 0).len(), 5);
    }

    #[test]
    fn readdirplus_counts_a_lookup_per_accepted_child_only() {
        let (_, fs) = fixture();
        let fh = fs.opendir(INodeNo::ROOT).unwrap();
        let mut accepted = Vec::new();
        // Accept `.`, `..` and the first child, refuse the second.
        fs.readdirplus(fh, 0, |e| {
            if accepted.len() == 3 {
                return true;
            }
            accepted.push((e.name.to_string(), e.attr));
            false
        })
        .unwrap();
        let names: Vec<&str> = accepted.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [".", "..", "hello.txt"]);
        let hello = accepted[2].1;
        assert_eq!(hello.size, 11);
        assert_eq!(hello.perm, 0o444);
        {
            let inodes = fs.inodes();
            assert_eq!(inodes.lookups(hello.ino), 1);
            assert_eq!(inodes.lookups(INodeNo::ROOT), 1, "dot entries are not counted");
            let sales = inodes.ino_of(&TreePath::new("sales").unwrap());
            assert_eq!(sales, None, "the refused entry was given back");
        }
        // The kernel forgets what it received.
        fs.forget(hello.ino, 1);
        assert_eq!(errno(fs.getattr(hello.ino)), libc::ESTALE);
    }

    #[test]
    fn readdirplus_skips_children_without_attributes() {
        let tree = Arc::new(MemTree::new([("visible", b"v".to_vec()), ("hidden", b"h".to_vec())]).unwrap());
        tree.inject("hidden", FaultOp::Attr, Fault::PermissionDenied("policy".into())).unwrap();
        let fs = TreeFs::new(tree, config());
        let fh = fs.opendir(INodeNo::ROOT).unwrap();
        let mut names = Vec::new();
        fs.readdirplus(fh, 0, |e| {
            names.push(e.name.to_string());
            false
        })
        .unwrap();
        assert_eq!(names, [".", "..", "visible"]);
    }

    #[test]
    fn listing_errors_surface_at_opendir() {
        let tree = Arc::new(MemTree::new([("private/x", b"x".to_vec())]).unwrap());
        tree.inject("private", FaultOp::List, Fault::PermissionDenied("policy".into())).unwrap();
        let fs = TreeFs::new(tree, config());
        let private = lookup_path(&fs, "private").unwrap();
        assert_eq!(errno(fs.opendir(private.ino)), libc::EACCES);
    }

    #[test]
    fn file_handles_are_not_directory_handles() {
        let (_, fs) = fixture();
        let file = lookup_path(&fs, "hello.txt").unwrap();
        let (fh, _) = fs.open(file.ino, OpenFlags(libc::O_RDONLY)).unwrap();
        assert_eq!(errno(fs.readdir(fh, 0, |_| false)), libc::EBADF);
        let dh = fs.opendir(INodeNo::ROOT).unwrap();
        assert_eq!(errno(fs.read_target(dh)), libc::EBADF);
    }

    /// A tree whose files return one byte too few: the contract violation must become EIO.
    struct ShortTree;
    struct ShortFile;

    impl Tree for ShortTree {
        fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
            if path.is_root() {
                Ok(Attr::directory(std::time::UNIX_EPOCH))
            } else {
                Ok(Attr::file(100, std::time::UNIX_EPOCH))
            }
        }
        fn list(&self, _: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
            Ok(vec![DirEntry::new("f", NodeKind::File)])
        }
        fn open(&self, _: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
            Ok(Arc::new(ShortFile))
        }
    }

    impl OpenFile for ShortFile {
        fn size(&self) -> u64 {
            100
        }
        fn read_at(&self, _: u64, len: u32) -> Result<Vec<u8>, TreeError> {
            Ok(vec![0; len as usize - 1])
        }
        fn keep_cache(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_short_read_from_the_tree_is_an_error_not_data() {
        let fs = TreeFs::new(Arc::new(ShortTree), config());
        let f = fs.lookup(INodeNo::ROOT, OsStr::new("f")).unwrap();
        let (fh, flags) = fs.open(f.ino, OpenFlags(libc::O_RDONLY)).unwrap();
        assert_eq!(flags, FopenFlags::FOPEN_DIRECT_IO, "a file that may change is read directly");
        let err = fs.read_target(fh).unwrap().read(0, 10).unwrap_err();
        assert!(matches!(err, FsError::WrongReadLength { expected: 10, got: 9, .. }));
        assert_eq!(err.to_errno(), libc::EIO);
    }
}
