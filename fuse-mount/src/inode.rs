//! The table between the kernel's inode numbers and tree paths.
//!
//! FUSE reference counting: every successful `lookup` reply (and every `readdirplus` entry other
//! than `.` and `..`) adds one to the kernel's lookup count of that inode, and the kernel later
//! gives them back with `forget(ino, n)`. While the count is above zero the kernel may name the
//! inode in any request, so the entry must stay; at zero it is removed. The root (inode 1) is
//! never removed.
//!
//! A path keeps its inode number as long as the inode is referenced. Numbers are never reused
//! within a mount (a `u64` counter does not wrap), which is why replies can use generation 0.
//! If a snapshot switch turns a file into a directory (or back) at the same path, the next
//! lookup gives the path a fresh inode: the kernel must not see one inode change kind. The old
//! inode stays in the table, detached from the path, until it is forgotten.

use std::collections::HashMap;

use fuser::INodeNo;

use crate::path::TreePath;
use crate::tree::NodeKind;

/// One inode the kernel may name.
#[derive(Debug)]
struct InodeEntry {
    path: TreePath,
    kind: NodeKind,
    /// Outstanding kernel lookups. Entries handed out by plain `readdir` (which does not count)
    /// may sit at zero until a lookup and its forget remove them.
    lookups: u64,
}

/// Inode numbers <-> paths, with the kernel's lookup counts.
#[derive(Debug)]
pub(crate) struct InodeTable {
    by_ino: HashMap<u64, InodeEntry>,
    /// The current inode of each path. A stale inode (see the module docs) is in `by_ino` only.
    by_path: HashMap<TreePath, u64>,
    next: u64,
}

impl InodeTable {
    /// Every name the kernel may have cached: (parent inode, name) of each current path, and
    /// the inode numbers of directories and of files (whose attributes and pages it may hold).
    pub(crate) fn dentries(&self) -> (Vec<(INodeNo, String)>, Vec<INodeNo>, Vec<INodeNo>) {
        let mut names = Vec::with_capacity(self.by_path.len());
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for (ino, entry) in &self.by_ino {
            match entry.kind {
                NodeKind::Directory => dirs.push(INodeNo(*ino)),
                NodeKind::File => files.push(INodeNo(*ino)),
            }
        }
        for path in self.by_path.keys() {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { continue };
            if let Some(parent_ino) = self.by_path.get(&parent) {
                names.push((INodeNo(*parent_ino), name.to_string()));
            }
        }
        (names, dirs, files)
    }

    /// A table holding only the root directory, as inode 1.
    pub(crate) fn new() -> Self {
        let root = TreePath::root();
        let mut by_ino = HashMap::new();
        by_ino.insert(INodeNo::ROOT.0, InodeEntry { path: root.clone(), kind: NodeKind::Directory, lookups: 1 });
        let mut by_path = HashMap::new();
        by_path.insert(root, INodeNo::ROOT.0);
        InodeTable { by_ino, by_path, next: INodeNo::ROOT.0 + 1 }
    }

    /// The path and kind recorded for `ino`.
    pub(crate) fn get(&self, ino: INodeNo) -> Option<(TreePath, NodeKind)> {
        self.by_ino.get(&ino.0).map(|e| (e.path.clone(), e.kind))
    }

    /// The current inode of `path`, if it has one.
    pub(crate) fn ino_of(&self, path: &TreePath) -> Option<INodeNo> {
        self.by_path.get(path).copied().map(INodeNo)
    }

    /// The inode for `path`, assigned if needed, without counting a lookup. For plain `readdir`,
    /// whose inode numbers the kernel only passes on to `getdents`.
    pub(crate) fn assign(&mut self, path: &TreePath, kind: NodeKind) -> INodeNo {
        if let Some(&ino) = self.by_path.get(path)
            && self.by_ino.get(&ino).is_some_and(|e| e.kind == kind)
        {
            return INodeNo(ino);
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(ino, InodeEntry { path: path.clone(), kind, lookups: 0 });
        // Replaces the inode of another kind, if any: that one is now stale.
        self.by_path.insert(path.clone(), ino);
        INodeNo(ino)
    }

    /// The inode for `path`, assigned if needed, with one more kernel lookup counted. Call only
    /// when the reply naming it is about to be sent.
    pub(crate) fn lookup(&mut self, path: &TreePath, kind: NodeKind) -> INodeNo {
        let ino = self.assign(path, kind);
        if let Some(entry) = self.by_ino.get_mut(&ino.0) {
            entry.lookups = entry.lookups.saturating_add(1);
        }
        ino
    }

    /// The kernel dropped `n` lookups of `ino`. Removes the entry at zero (never the root).
    /// Returns whether the entry was removed.
    pub(crate) fn forget(&mut self, ino: INodeNo, n: u64) -> bool {
        if ino == INodeNo::ROOT {
            return false;
        }
        let Some(entry) = self.by_ino.get_mut(&ino.0) else {
            return false;
        };
        entry.lookups = entry.lookups.saturating_sub(n);
        if entry.lookups > 0 {
            return false;
        }
        if let Some(entry) = self.by_ino.remove(&ino.0)
            && self.by_path.get(&entry.path) == Some(&ino.0)
        {
            self.by_path.remove(&entry.path);
        }
        true
    }

    /// The outstanding lookup count of `ino` (0 if unknown).
    #[cfg(test)]
    pub(crate) fn lookups(&self, ino: INodeNo) -> u64 {
        self.by_ino.get(&ino.0).map_or(0, |e| e.lookups)
    }

    /// How many inodes the table holds, the root included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_ino.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> TreePath {
        TreePath::new(s).unwrap()
    }

    #[test]
    fn root_is_inode_one_and_is_never_forgotten() {
        let mut t = InodeTable::new();
        assert_eq!(t.get(INodeNo::ROOT), Some((TreePath::root(), NodeKind::Directory)));
        assert_eq!(t.ino_of(&TreePath::root()), Some(INodeNo::ROOT));
        assert!(!t.forget(INodeNo::ROOT, 1_000));
        assert!(t.get(INodeNo::ROOT).is_some());
        assert_eq!(t.lookup(&TreePath::root(), NodeKind::Directory), INodeNo::ROOT);
    }

    #[test]
    fn lookups_are_counted_and_forget_removes_at_zero() {
        let mut t = InodeTable::new();
        let a = t.lookup(&p("a"), NodeKind::File);
        assert_ne!(a, INodeNo::ROOT);
        assert_eq!(t.lookup(&p("a"), NodeKind::File), a, "stable while referenced");
        assert_eq!(t.lookup(&p("a"), NodeKind::File), a);
        assert_eq!(t.lookups(a), 3);

        assert!(!t.forget(a, 2));
        assert_eq!(t.lookups(a), 1);
        assert_eq!(t.get(a), Some((p("a"), NodeKind::File)));

        assert!(t.forget(a, 1));
        assert_eq!(t.get(a), None);
        assert_eq!(t.ino_of(&p("a")), None);
        assert_eq!(t.len(), 1);

        let again = t.lookup(&p("a"), NodeKind::File);
        assert_ne!(again, a, "numbers are not reused");
    }

    #[test]
    fn forget_of_more_than_counted_or_unknown_is_harmless() {
        let mut t = InodeTable::new();
        let a = t.lookup(&p("a"), NodeKind::File);
        assert!(t.forget(a, 5));
        assert!(!t.forget(a, 1));
        assert!(!t.forget(INodeNo(999), 1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn assign_does_not_count() {
        let mut t = InodeTable::new();
        let a = t.assign(&p("d/a"), NodeKind::File);
        assert_eq!(t.lookups(a), 0);
        assert_eq!(t.assign(&p("d/a"), NodeKind::File), a);
        assert_eq!(t.lookup(&p("d/a"), NodeKind::File), a);
        assert_eq!(t.lookups(a), 1);
        assert!(t.forget(a, 1));
        assert_eq!(t.ino_of(&p("d/a")), None);
    }

    #[test]
    fn a_kind_change_gives_the_path_a_new_inode_and_keeps_the_old_until_forgotten() {
        let mut t = InodeTable::new();
        let old = t.lookup(&p("x"), NodeKind::File);
        let new = t.lookup(&p("x"), NodeKind::Directory);
        assert_ne!(old, new);
        assert_eq!(t.ino_of(&p("x")), Some(new));
        assert_eq!(t.get(old), Some((p("x"), NodeKind::File)));
        assert_eq!(t.get(new), Some((p("x"), NodeKind::Directory)));

        // Forgetting the stale inode must not detach the path from its new inode.
        assert!(t.forget(old, 1));
        assert_eq!(t.ino_of(&p("x")), Some(new));
        assert_eq!(t.get(new), Some((p("x"), NodeKind::Directory)));
        assert!(t.forget(new, 1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn distinct_paths_get_distinct_inodes() {
        let mut t = InodeTable::new();
        let a = t.lookup(&p("a"), NodeKind::Directory);
        let b = t.lookup(&p("a/b"), NodeKind::File);
        let c = t.lookup(&p("c"), NodeKind::File);
        assert!(a != b && b != c && a != c);
        assert_eq!(t.len(), 4);
    }
}
