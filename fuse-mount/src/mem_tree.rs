//! An in-memory [`Tree`] for tests and demos.
//!
//! [`MemTree`] is built from a list of `(path, bytes)`; parent directories are implied. It can be
//! changed after construction (to stand in for a snapshot switch) and can be told to fail a
//! given operation on a given path with a chosen error, so tests can check what a reader of the
//! mount sees for each [`TreeError`]. It is not meant for large trees: listing a directory scans
//! every node.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::TreeError;
use crate::path::{PathError, TreePath};
use crate::tree::{Attr, DirEntry, NodeKind, OpenFile, Tree};

/// Which [`Tree`] or [`OpenFile`] call a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// [`Tree::attr`] of the path.
    Attr,
    /// [`Tree::list`] of the path.
    List,
    /// [`Tree::open`] of the path.
    Open,
    /// [`OpenFile::read_at`] on handles opened at the path after the fault was injected.
    Read,
}

/// An error to inject; becomes the [`TreeError`] variant of the same name for the faulted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// [`TreeError::NotFound`].
    NotFound,
    /// [`TreeError::PermissionDenied`] with this reason.
    PermissionDenied(String),
    /// [`TreeError::Unavailable`] with this reason.
    Unavailable(String),
    /// [`TreeError::Changed`] with this reason.
    Changed(String),
    /// [`TreeError::Io`] with an `io::Error` of this kind.
    Io(io::ErrorKind),
}

impl Fault {
    fn to_error(&self, path: &TreePath) -> TreeError {
        let path = path.clone();
        match self {
            Fault::NotFound => TreeError::NotFound { path },
            Fault::PermissionDenied(reason) => TreeError::PermissionDenied { path, reason: reason.clone() },
            Fault::Unavailable(reason) => TreeError::Unavailable { path, reason: reason.clone() },
            Fault::Changed(reason) => TreeError::Changed { path, reason: reason.clone() },
            Fault::Io(kind) => TreeError::Io { path, source: io::Error::new(*kind, "injected fault") },
        }
    }
}

/// Why a [`MemTree`] could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemTreeError {
    /// The path is not a valid [`TreePath`].
    #[error(transparent)]
    Path(#[from] PathError),
    /// A file already sits where a parent directory of `path` would have to be.
    #[error("{path}: a parent is a file")]
    ParentIsAFile { path: TreePath },
    /// A directory already sits at `path`, so a file cannot be put there (or the root was named).
    #[error("{path}: is a directory")]
    IsADirectory { path: TreePath },
    /// Nothing to remove at `path`.
    #[error("{path}: not found")]
    NotFound { path: TreePath },
}

#[derive(Debug, Clone)]
enum MemNode {
    Directory,
    File(Arc<[u8]>),
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<TreePath, MemNode>,
    faults: HashMap<(TreePath, FaultOp), Fault>,
}

/// An in-memory tree of directories and files (see the [module docs](self)).
///
/// Every node has the same mtime, [`MemTree::mtime`], so attributes are deterministic.
#[derive(Debug)]
pub struct MemTree {
    inner: RwLock<Inner>,
    mtime: SystemTime,
}

impl MemTree {
    /// An empty tree: just the root directory.
    pub fn empty() -> Self {
        let mut inner = Inner::default();
        inner.nodes.insert(TreePath::root(), MemNode::Directory);
        MemTree {
            inner: RwLock::new(inner),
            // 2023-11-14T22:13:20Z: any fixed time will do.
            mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// A tree holding these files (relative paths such as `a/b.parquet`); their parent
    /// directories are created as needed.
    pub fn new<P, B>(files: impl IntoIterator<Item = (P, B)>) -> Result<Self, MemTreeError>
    where
        P: AsRef<str>,
        B: Into<Vec<u8>>,
    {
        let tree = MemTree::empty();
        for (path, bytes) in files {
            tree.insert_file(path.as_ref(), bytes)?;
        }
        Ok(tree)
    }

    /// The mtime every node reports.
    pub fn mtime(&self) -> SystemTime {
        self.mtime
    }

    /// Adds or replaces the file at `path`, creating parent directories. Handles already open
    /// on the old content keep reading it.
    pub fn insert_file(&self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<(), MemTreeError> {
        let path = TreePath::new(path)?;
        let mut inner = self.write();
        if matches!(inner.nodes.get(&path), Some(MemNode::Directory)) {
            return Err(MemTreeError::IsADirectory { path });
        }
        create_parents(&mut inner, &path)?;
        inner.nodes.insert(path, MemNode::File(Arc::from(bytes.into())));
        Ok(())
    }

    /// Adds an (empty) directory at `path`, creating parent directories. Does nothing if a
    /// directory is already there.
    pub fn insert_dir(&self, path: &str) -> Result<(), MemTreeError> {
        let path = TreePath::new(path)?;
        let mut inner = self.write();
        match inner.nodes.get(&path) {
            Some(MemNode::Directory) => return Ok(()),
            Some(MemNode::File(_)) => return Err(MemTreeError::ParentIsAFile { path }),
            None => {}
        }
        create_parents(&mut inner, &path)?;
        inner.nodes.insert(path, MemNode::Directory);
        Ok(())
    }

    /// Removes the node at `path` and everything under it. The root cannot be removed.
    pub fn remove(&self, path: &str) -> Result<(), MemTreeError> {
        let path = TreePath::new(path)?;
        if path.is_root() {
            return Err(MemTreeError::IsADirectory { path });
        }
        let mut inner = self.write();
        if inner.nodes.remove(&path).is_none() {
            return Err(MemTreeError::NotFound { path });
        }
        inner.nodes.retain(|p, _| !is_under(p, &path));
        Ok(())
    }

    /// Makes `op` on `path` fail with `fault` from now on (replacing an earlier fault for the
    /// same path and operation). The path need not exist.
    pub fn inject(&self, path: &str, op: FaultOp, fault: Fault) -> Result<(), MemTreeError> {
        let path = TreePath::new(path)?;
        self.write().faults.insert((path, op), fault);
        Ok(())
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.write().faults.clear();
    }

    fn fault(inner: &Inner, path: &TreePath, op: FaultOp) -> Result<(), TreeError> {
        match inner.faults.get(&(path.clone(), op)) {
            Some(fault) => Err(fault.to_error(path)),
            None => Ok(()),
        }
    }

    // Poisoning is ignored: every write section leaves the maps consistent.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates the missing ancestors of `path` as directories; fails if one of them is a file.
fn create_parents(inner: &mut Inner, path: &TreePath) -> Result<(), MemTreeError> {
    let mut ancestors = Vec::new();
    let mut cursor = path.parent();
    while let Some(dir) = cursor {
        cursor = dir.parent();
        ancestors.push(dir);
    }
    for dir in ancestors.into_iter().rev() {
        match inner.nodes.get(&dir) {
            Some(MemNode::Directory) => {}
            Some(MemNode::File(_)) => {
                return Err(MemTreeError::ParentIsAFile { path: path.clone() });
            }
            None => {
                inner.nodes.insert(dir, MemNode::Directory);
            }
        }
    }
    Ok(())
}

/// Whether `path` lies strictly under the directory `dir`.
fn is_under(path: &TreePath, dir: &TreePath) -> bool {
    if dir.is_root() {
        return !path.is_root();
    }
    path.as_str().strip_prefix(dir.as_str()).is_some_and(|rest| rest.starts_with('/'))
}

impl Tree for MemTree {
    fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
        let inner = self.read();
        Self::fault(&inner, path, FaultOp::Attr)?;
        match inner.nodes.get(path) {
            Some(MemNode::Directory) => Ok(Attr::directory(self.mtime)),
            Some(MemNode::File(bytes)) => Ok(Attr::file(bytes.len() as u64, self.mtime)),
            None => Err(TreeError::NotFound { path: path.clone() }),
        }
    }

    fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
        let inner = self.read();
        Self::fault(&inner, dir, FaultOp::List)?;
        match inner.nodes.get(dir) {
            Some(MemNode::Directory) => {}
            Some(MemNode::File(_)) => return Err(TreeError::NotADirectory { path: dir.clone() }),
            None => return Err(TreeError::NotFound { path: dir.clone() }),
        }
        let entries = inner
            .nodes
            .iter()
            .filter(|(path, _)| path.parent().as_ref() == Some(dir))
            .filter_map(|(path, node)| {
                let kind = match node {
                    MemNode::Directory => NodeKind::Directory,
                    MemNode::File(_) => NodeKind::File,
                };
                path.file_name().map(|name| DirEntry::new(name, kind))
            })
            .collect();
        Ok(entries)
    }

    fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
        let inner = self.read();
        Self::fault(&inner, path, FaultOp::Open)?;
        match inner.nodes.get(path) {
            Some(MemNode::File(bytes)) => Ok(Arc::new(MemFile {
                path: path.clone(),
                bytes: Arc::clone(bytes),
                read_fault: inner.faults.get(&(path.clone(), FaultOp::Read)).cloned(),
            })),
            Some(MemNode::Directory) => Err(TreeError::IsADirectory { path: path.clone() }),
            None => Err(TreeError::NotFound { path: path.clone() }),
        }
    }
}

/// An open [`MemTree`] file: the bytes it had when opened.
struct MemFile {
    path: TreePath,
    bytes: Arc<[u8]>,
    read_fault: Option<Fault>,
}

impl OpenFile for MemFile {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
        if let Some(fault) = &self.read_fault {
            return Err(fault.to_error(&self.path));
        }
        let size = self.bytes.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
        let end = start.saturating_add(len as usize).min(size);
        Ok(self.bytes[start..end].to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> TreePath {
        TreePath::new(s).unwrap()
    }

    fn names(tree: &MemTree, dir: &str) -> Vec<(String, NodeKind)> {
        tree.list(&p(dir)).unwrap().into_iter().map(|e| (e.name, e.kind)).collect()
    }

    #[test]
    fn parents_are_implied_and_listings_are_sorted() {
        let tree = MemTree::new([("b/x", "1"), ("a", "22"), ("b/c/y", "333")]).unwrap();
        assert_eq!(names(&tree, ""), [("a".to_string(), NodeKind::File), ("b".to_string(), NodeKind::Directory)]);
        assert_eq!(names(&tree, "b"), [("c".to_string(), NodeKind::Directory), ("x".to_string(), NodeKind::File)]);
        assert_eq!(tree.attr(&p("b/c/y")).unwrap().size, 3);
        assert_eq!(tree.attr(&p("b/c")).unwrap().kind, NodeKind::Directory);
        assert_eq!(tree.attr(&p("a")).unwrap().mtime, tree.mtime());
    }

    #[test]
    fn construction_errors() {
        assert!(matches!(MemTree::new([("a/../b", "")]), Err(MemTreeError::Path(_))));
        assert!(matches!(MemTree::new([("a", ""), ("a/b", "")]), Err(MemTreeError::ParentIsAFile { .. })));
        assert!(matches!(MemTree::new([("a/b", ""), ("a", "")]), Err(MemTreeError::IsADirectory { .. })));
        assert!(matches!(MemTree::new([("", "")]), Err(MemTreeError::IsADirectory { .. })));
    }

    #[test]
    fn wrong_kind_and_missing_paths() {
        let tree = MemTree::new([("d/f", "x")]).unwrap();
        assert!(matches!(tree.list(&p("d/f")), Err(TreeError::NotADirectory { .. })));
        assert!(matches!(tree.open(&p("d")), Err(TreeError::IsADirectory { .. })));
        assert!(matches!(tree.attr(&p("nope")), Err(TreeError::NotFound { .. })));
        assert!(matches!(tree.list(&p("nope")), Err(TreeError::NotFound { .. })));
        assert!(matches!(tree.open(&p("d/f/x")), Err(TreeError::NotFound { .. })));
    }

    #[test]
    fn reads_clamp_at_the_end() {
        let tree = MemTree::new([("f", "0123456789")]).unwrap();
        let f = tree.open(&p("f")).unwrap();
        assert_eq!(f.size(), 10);
        assert_eq!(f.read_at(0, 4).unwrap(), b"0123");
        assert_eq!(f.read_at(8, 4).unwrap(), b"89");
        assert!(f.read_at(10, 4).unwrap().is_empty());
        assert!(f.read_at(u64::MAX, u32::MAX).unwrap().is_empty());
    }

    #[test]
    fn insert_and_remove_change_the_tree_but_not_open_handles() {
        let tree = MemTree::new([("d/f", "old")]).unwrap();
        let f = tree.open(&p("d/f")).unwrap();
        tree.insert_file("d/f", "new content").unwrap();
        assert_eq!(tree.attr(&p("d/f")).unwrap().size, 11);
        assert_eq!(f.read_at(0, 100).unwrap(), b"old");
        tree.remove("d").unwrap();
        assert!(tree.attr(&p("d")).is_err());
        assert!(tree.attr(&p("d/f")).is_err());
        assert_eq!(f.read_at(0, 100).unwrap(), b"old");
        assert!(matches!(tree.remove("d"), Err(MemTreeError::NotFound { .. })));
        tree.insert_dir("e/empty").unwrap();
        assert!(names(&tree, "e/empty").is_empty());
    }

    #[test]
    fn removing_a_directory_keeps_siblings_with_a_common_prefix() {
        let tree = MemTree::new([("a/x", ""), ("ab/y", ""), ("a.b", "")]).unwrap();
        tree.remove("a").unwrap();
        assert!(tree.attr(&p("ab/y")).is_ok());
        assert!(tree.attr(&p("a.b")).is_ok());
    }

    #[test]
    fn injected_faults_become_tree_errors() {
        let tree = MemTree::new([("f", "x"), ("d/g", "y")]).unwrap();
        tree.inject("f", FaultOp::Attr, Fault::NotFound).unwrap();
        tree.inject("d", FaultOp::List, Fault::Unavailable("down".into())).unwrap();
        tree.inject("d/g", FaultOp::Open, Fault::PermissionDenied("no".into())).unwrap();
        tree.inject("", FaultOp::Read, Fault::Io(io::ErrorKind::Other)).unwrap();
        assert!(matches!(tree.attr(&p("f")), Err(TreeError::NotFound { .. })));
        assert!(matches!(
            tree.list(&p("d")),
            Err(TreeError::Unavailable { reason, .. }) if reason == "down"
        ));
        assert!(matches!(tree.open(&p("d/g")), Err(TreeError::PermissionDenied { .. })));
        // Faults apply to the named path only.
        assert!(tree.open(&p("f")).is_ok());

        tree.inject("f", FaultOp::Read, Fault::Io(io::ErrorKind::Other)).unwrap();
        let f = tree.open(&p("f")).unwrap();
        assert!(matches!(f.read_at(0, 1), Err(TreeError::Io { .. })));

        tree.clear_faults();
        assert!(tree.attr(&p("f")).is_ok());
        assert_eq!(tree.open(&p("f")).unwrap().read_at(0, 1).unwrap(), b"x");
    }
}
