//! Checks that any [`Tree`] implementation must pass.
//!
//! The FUSE adapter relies on the contract documented on [`Tree`] and [`OpenFile`]: listings
//! agree with attributes, sizes agree with the bytes, reads are exact. A tree that breaks it
//! shows up as wrong file content or confused tools, far from the cause. [`tree_conformance`]
//! walks a whole tree and checks the contract directly, without a mount, so the daemon's tests
//! can run it against the real tree over a small fixture lake, as `MemTree`'s tests do here.
//!
//! It reads every file in full (twice), so point it at small trees. Nodes the tree refuses with
//! [`TreeError::PermissionDenied`] are counted and skipped: a policy may hide anything.

use std::collections::{HashSet, VecDeque};

use crate::error::TreeError;
use crate::path::TreePath;
use crate::tree::{Attr, NodeKind, OpenFile, Tree};

/// A name no tree is expected to contain, used to probe "not found" answers.
const MISSING_NAME: &str = ".warmlake-conformance-no-such-entry";
/// Size of the reads that fetch a file in full.
const CHUNK: u32 = 1 << 20;
/// Size of the small reads compared against them: odd, so pieces straddle every alignment.
const PIECE: u32 = 4093;

/// What [`tree_conformance`] looked at, so a caller can assert it checked something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Directories listed, the root included.
    pub directories: usize,
    /// Files opened and read in full.
    pub files: usize,
    /// Bytes of file content checked.
    pub bytes: u64,
    /// Nodes skipped because the tree answered [`TreeError::PermissionDenied`].
    pub denied: usize,
}

/// Walks `tree` from the root and checks the [`Tree`] contract. Returns what was checked, or a
/// description of the first violation found.
///
/// Checked: the root is a directory; listed names are valid, unique segments; every listed
/// child's [`Tree::attr`] agrees with the listing's kind; opening a directory fails with
/// [`TreeError::IsADirectory`] and listing a file with [`TreeError::NotADirectory`]; a file's
/// handle has the size its attributes report; reading a file in 1 MiB chunks gives the same
/// bytes as reading it in small odd-sized pieces, every read returns exactly
/// `min(len, size - offset)` bytes, and reads at or past the end return nothing; unknown paths
/// give [`TreeError::NotFound`]; every error names the path it was asked about.
pub fn tree_conformance(tree: &dyn Tree) -> Result<ConformanceReport, String> {
    let mut report = ConformanceReport::default();
    let root = TreePath::root();
    let root_attr = tree.attr(&root).map_err(|e| format!("attr of the root failed: {e}"))?;
    if root_attr.kind != NodeKind::Directory {
        return Err(format!("the root is a {:?}, not a directory", root_attr.kind));
    }
    check_missing(tree, &root)?;

    let mut queue = VecDeque::from([root]);
    let mut probed_under_file = false;
    while let Some(dir) = queue.pop_front() {
        expect_error(tree.open(&dir).map(|_| ()), &dir, "open of a directory", |e| {
            matches!(e, TreeError::IsADirectory { .. })
        })?;
        let entries = match tree.list(&dir) {
            Ok(entries) => entries,
            Err(TreeError::PermissionDenied { .. }) => {
                report.denied += 1;
                continue;
            }
            Err(e) => return Err(format!("{dir}: list failed: {e}")),
        };
        report.directories += 1;
        let mut seen = HashSet::new();
        for entry in entries {
            let child =
                dir.join(&entry.name).map_err(|e| format!("{dir}: listed an invalid name {:?}: {e}", entry.name))?;
            if !seen.insert(entry.name.clone()) {
                return Err(format!("{dir}: lists {:?} twice", entry.name));
            }
            let attr = match tree.attr(&child) {
                Ok(attr) => attr,
                Err(TreeError::PermissionDenied { .. }) => {
                    report.denied += 1;
                    continue;
                }
                Err(e) => return Err(format!("{child}: listed, but attr failed: {e}")),
            };
            if attr.kind != entry.kind {
                return Err(format!("{child}: listed as {:?} but attr says {:?}", entry.kind, attr.kind));
            }
            match attr.kind {
                NodeKind::Directory => queue.push_back(child),
                NodeKind::File => {
                    if !probed_under_file {
                        probed_under_file = true;
                        check_under_file(tree, &child)?;
                    }
                    check_file(tree, &child, &attr, &mut report)?;
                }
            }
        }
    }
    Ok(report)
}

/// Unknown names under `dir` are not found, whatever is asked of them.
fn check_missing(tree: &dyn Tree, dir: &TreePath) -> Result<(), String> {
    let missing = dir.join(MISSING_NAME).map_err(|e| format!("cannot build a probe path: {e}"))?;
    let not_found = |e: &TreeError| matches!(e, TreeError::NotFound { .. });
    expect_error(tree.attr(&missing).map(|_| ()), &missing, "attr of a missing path", not_found)?;
    expect_error(tree.list(&missing).map(|_| ()), &missing, "list of a missing path", not_found)?;
    expect_error(tree.open(&missing).map(|_| ()), &missing, "open of a missing path", not_found)
}

/// Nothing exists under a file: `attr` of `file/x` is NotFound (or NotADirectory).
fn check_under_file(tree: &dyn Tree, file: &TreePath) -> Result<(), String> {
    let below = file.join(MISSING_NAME).map_err(|e| format!("cannot build a probe path: {e}"))?;
    expect_error(tree.attr(&below).map(|_| ()), &below, "attr below a file", |e| {
        matches!(e, TreeError::NotFound { .. } | TreeError::NotADirectory { .. })
    })
}

fn check_file(tree: &dyn Tree, path: &TreePath, attr: &Attr, report: &mut ConformanceReport) -> Result<(), String> {
    expect_error(tree.list(path).map(|_| ()), path, "list of a file", |e| {
        matches!(e, TreeError::NotADirectory { .. })
    })?;
    let file = match tree.open(path) {
        Ok(file) => file,
        Err(TreeError::PermissionDenied { .. }) => {
            report.denied += 1;
            return Ok(());
        }
        Err(e) => return Err(format!("{path}: open failed: {e}")),
    };
    let size = file.size();
    if size != attr.size {
        return Err(format!("{path}: attr reports {} bytes but the open handle {size}", attr.size));
    }

    let mut offset = 0u64;
    while offset < size {
        let whole = read_exact(&*file, path, offset, CHUNK)?;
        let mut pieces = Vec::with_capacity(whole.len());
        while pieces.len() < whole.len() {
            let want = PIECE.min((whole.len() - pieces.len()) as u32);
            pieces.extend(read_exact(&*file, path, offset + pieces.len() as u64, want)?);
        }
        if let Some(at) = whole.iter().zip(&pieces).position(|(a, b)| a != b) {
            return Err(format!(
                "{path}: byte {} differs between a {CHUNK}-byte read and {PIECE}-byte reads",
                offset + at as u64
            ));
        }
        offset += whole.len() as u64;
    }

    for past_end in [size, size.saturating_add(4096), u64::MAX] {
        read_exact(&*file, path, past_end, 100)?;
    }
    read_exact(&*file, path, 0, 0)?;
    if size > 0 {
        let last = read_exact(&*file, path, size - 1, 100)?;
        let again = read_exact(&*file, path, size - 1, 1)?;
        if last != again {
            return Err(format!("{path}: the last byte reads differently twice"));
        }
    }

    report.files += 1;
    report.bytes += size;
    Ok(())
}

/// One read, checked to return exactly `min(len, size - offset)` bytes.
fn read_exact(file: &dyn OpenFile, path: &TreePath, offset: u64, len: u32) -> Result<Vec<u8>, String> {
    let expected = file.size().saturating_sub(offset).min(u64::from(len)) as usize;
    let data = file.read_at(offset, len).map_err(|e| format!("{path}: read of {len} bytes at {offset} failed: {e}"))?;
    if data.len() != expected {
        return Err(format!(
            "{path}: read of {len} bytes at {offset} returned {} bytes, expected {expected}",
            data.len()
        ));
    }
    Ok(data)
}

/// `result` must be an error accepted by `accept` (or a policy denial) that names `path`.
fn expect_error(
    result: Result<(), TreeError>,
    path: &TreePath,
    what: &str,
    accept: impl Fn(&TreeError) -> bool,
) -> Result<(), String> {
    match result {
        Ok(()) => Err(format!("{path}: {what} succeeded; it must fail")),
        Err(e) if accept(&e) || matches!(e, TreeError::PermissionDenied { .. }) => {
            if e.path() == path {
                Ok(())
            } else {
                Err(format!("{path}: {what} failed naming another path: {e}"))
            }
        }
        Err(e) => Err(format!("{path}: {what} failed with the wrong error: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mem_tree::{Fault, FaultOp, MemTree};
    use crate::tree::DirEntry;
    use std::sync::Arc;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn sample() -> MemTree {
        let tree = MemTree::new([
            ("README", b"hello".to_vec()),
            ("empty", Vec::new()),
            ("sales/2024/part-0.parquet", pseudo_random(3 * 1024 * 1024 + 17, 1)),
            ("sales/2024/part-1.parquet", pseudo_random(4093 * 3, 2)),
            ("sales/2025/part-0.parquet", pseudo_random(1, 3)),
        ])
        .unwrap();
        tree.insert_dir("empty-dir").unwrap();
        tree
    }

    #[test]
    fn mem_tree_conforms() {
        let report = tree_conformance(&sample()).unwrap();
        assert_eq!(
            report,
            ConformanceReport { directories: 5, files: 5, bytes: 5 + 3 * 1024 * 1024 + 17 + 4093 * 3 + 1, denied: 0 }
        );
    }

    #[test]
    fn denied_nodes_are_counted_and_skipped() {
        let tree = sample();
        tree.inject("sales/2024", FaultOp::List, Fault::PermissionDenied("p".into())).unwrap();
        tree.inject("README", FaultOp::Open, Fault::PermissionDenied("p".into())).unwrap();
        let report = tree_conformance(&tree).unwrap();
        assert_eq!(report.denied, 2);
        assert_eq!(report.files, 2);
    }

    #[test]
    fn unavailable_files_are_violations() {
        let tree = sample();
        tree.inject("README", FaultOp::Read, Fault::Unavailable("down".into())).unwrap();
        let err = tree_conformance(&tree).unwrap_err();
        assert!(err.contains("/README"), "{err}");
    }

    /// A tree that gets one part of the contract wrong, selected by `bug`.
    struct Buggy {
        bug: &'static str,
        inner: MemTree,
    }

    struct BuggyFile {
        bug: &'static str,
        inner: Arc<dyn OpenFile>,
    }

    impl Tree for Buggy {
        fn attr(&self, path: &TreePath) -> Result<Attr, TreeError> {
            let mut attr = self.inner.attr(path)?;
            if self.bug == "size" && attr.kind == NodeKind::File {
                attr.size += 1;
            }
            Ok(attr)
        }
        fn list(&self, dir: &TreePath) -> Result<Vec<DirEntry>, TreeError> {
            let mut entries = self.inner.list(dir)?;
            match self.bug {
                "kind" => entries.iter_mut().for_each(|e| e.kind = NodeKind::Directory),
                "name" => entries.push(DirEntry::new("..", NodeKind::Directory)),
                "duplicate" => {
                    let first = entries[0].clone();
                    entries.push(first);
                }
                _ => {}
            }
            Ok(entries)
        }
        fn open(&self, path: &TreePath) -> Result<Arc<dyn OpenFile>, TreeError> {
            if self.bug == "missing-ok" && path.file_name() == Some(MISSING_NAME) {
                return Err(TreeError::Unavailable { path: path.clone(), reason: "x".into() });
            }
            if self.bug == "wrong-path" && path.file_name() == Some(MISSING_NAME) {
                return Err(TreeError::NotFound { path: TreePath::root() });
            }
            Ok(Arc::new(BuggyFile { bug: self.bug, inner: self.inner.open(path)? }))
        }
    }

    impl OpenFile for BuggyFile {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, TreeError> {
            let mut data = self.inner.read_at(offset, len)?;
            match self.bug {
                "short" if data.len() > 1 => {
                    data.pop();
                }
                "padded" => data.resize(len as usize, 0),
                "offset" if offset > 0 => data.iter_mut().for_each(|b| *b = b.wrapping_add(1)),
                _ => {}
            }
            Ok(data)
        }
    }

    #[test]
    fn each_contract_violation_is_caught() {
        for bug in ["size", "kind", "name", "duplicate", "missing-ok", "wrong-path", "short", "padded", "offset"] {
            let tree = Buggy { bug, inner: sample() };
            let result = tree_conformance(&tree);
            assert!(result.is_err(), "{bug} was not caught");
        }
        let fine = Buggy { bug: "none", inner: sample() };
        assert!(tree_conformance(&fine).is_ok());
    }
}
