//! The errors a [`Tree`](crate::Tree) returns, the adapter's own errors, and the one place where
//! both become an errno for the kernel.
//!
//! [`TreeError`] has one variant per answer a reader can act on: "no such file" is not "you may
//! not read this", which is not "the store is unreachable". Everything else is a `source`.
//! [`TreeError::to_errno`] and `FsError::to_errno` are exhaustive matches with no wildcard arm,
//! so adding a variant fails to compile until someone decides its errno.

use std::io;

use fuser::{FileHandle, INodeNo};

use crate::path::{PathError, TreePath};

/// Why a [`Tree`](crate::Tree) or [`OpenFile`](crate::OpenFile) call failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Nothing exists at `path` (in the current snapshot). `ENOENT`.
    #[error("{path}: no such file or directory")]
    NotFound { path: TreePath },
    /// `path` is a file but was used as a directory. `ENOTDIR`.
    #[error("{path}: not a directory")]
    NotADirectory { path: TreePath },
    /// `path` is a directory but was opened as a file. `EISDIR`.
    #[error("{path}: is a directory")]
    IsADirectory { path: TreePath },
    /// Policy forbids this node. `EACCES`, so `ls` and `open` report "Permission denied".
    #[error("{path}: permission denied: {reason}")]
    PermissionDenied { path: TreePath, reason: String },
    /// The bytes are neither cached locally nor fetchable right now (store unreachable, request
    /// timed out). `EIO`: the reader must not mistake it for an empty or missing file.
    #[error("{path}: unavailable: {reason}")]
    Unavailable { path: TreePath, reason: String },
    /// The file's bytes at their source no longer match those read before: its version changed
    /// under the reader (a store answering with another ETag). `EIO`. The tree's owner should
    /// also drop the kernel's cached pages ([`crate::PageDropper`]), so no page of the old
    /// version is served next to bytes of the new one.
    #[error("{path}: changed at its source: {reason}")]
    Changed { path: TreePath, reason: String },
    /// A local I/O error (reading the cache, say). `EIO`; the cause is logged, not returned,
    /// because its errno (`ENOSPC` on the cache disk...) would mislead the reader of the mount.
    #[error("{path}: I/O error")]
    Io {
        path: TreePath,
        #[source]
        source: io::Error,
    },
}

impl TreeError {
    /// The path the failed call was about.
    pub fn path(&self) -> &TreePath {
        match self {
            TreeError::NotFound { path }
            | TreeError::NotADirectory { path }
            | TreeError::IsADirectory { path }
            | TreeError::PermissionDenied { path, .. }
            | TreeError::Unavailable { path, .. }
            | TreeError::Changed { path, .. }
            | TreeError::Io { path, .. } => path,
        }
    }

    /// The errno the kernel returns to the reader for this error.
    pub fn to_errno(&self) -> libc::c_int {
        match self {
            TreeError::NotFound { .. } => libc::ENOENT,
            TreeError::NotADirectory { .. } => libc::ENOTDIR,
            TreeError::IsADirectory { .. } => libc::EISDIR,
            TreeError::PermissionDenied { .. } => libc::EACCES,
            TreeError::Unavailable { .. } => libc::EIO,
            TreeError::Changed { .. } => libc::EIO,
            TreeError::Io { .. } => libc::EIO,
        }
    }
}

/// Errors of the FUSE adapter: a tree error, or a request the adapter refuses by itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// The tree refused.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The kernel named an inode this mount never gave out or already forgot. `ESTALE`.
    #[error("unknown inode {}", .0.0)]
    UnknownInode(INodeNo),
    /// The inode's path now holds a node of another kind (a snapshot switch replaced a file by a
    /// directory, say). The kernel looks the name up again and gets a fresh inode. `ESTALE`.
    #[error("{path}: inode {} is stale (the node changed kind)", ino.0)]
    StaleInode { ino: INodeNo, path: TreePath },
    /// The kernel named a file handle this mount never gave out or already released. `EBADF`.
    #[error("unknown file handle {}", .0.0)]
    UnknownHandle(FileHandle),
    /// A name the tree cannot contain (see [`TreePath`]), so nothing can be found under it.
    /// `ENOENT`.
    #[error("invalid name {name:?}")]
    InvalidName {
        name: String,
        #[source]
        source: PathError,
    },
    /// A name that is not UTF-8: every tree path is, so nothing can be found under it. `ENOENT`.
    #[error("invalid name {name:?}: not UTF-8")]
    NonUtf8Name { name: String },
    /// An attempt to write: the mount is read-only. `EROFS`.
    #[error("{path}: read-only file system")]
    ReadOnly { path: TreePath },
    /// [`OpenFile::read_at`](crate::OpenFile::read_at) broke its contract and returned the
    /// wrong number of bytes. `EIO`, never the short data.
    #[error("{path}: read at offset {offset} returned {got} bytes, expected {expected}")]
    WrongReadLength { path: TreePath, offset: u64, expected: usize, got: usize },
}

impl FsError {
    /// The errno for the kernel. The only translation point besides [`TreeError::to_errno`],
    /// which it delegates to.
    pub(crate) fn to_errno(&self) -> libc::c_int {
        match self {
            FsError::Tree(e) => e.to_errno(),
            FsError::UnknownInode(_) => libc::ESTALE,
            FsError::StaleInode { .. } => libc::ESTALE,
            FsError::UnknownHandle(_) => libc::EBADF,
            FsError::InvalidName { .. } => libc::ENOENT,
            FsError::NonUtf8Name { .. } => libc::ENOENT,
            FsError::ReadOnly { .. } => libc::EROFS,
            FsError::WrongReadLength { .. } => libc::EIO,
        }
    }

    /// How loudly to log this error. Routine failures (a shell probing for a file that is not
    /// there, a write attempt on a read-only mount) are debug; policy denials are info, since
    /// an operator may want to see who was refused; anything else is warn.
    pub(crate) fn log_level(&self) -> tracing::Level {
        match self {
            FsError::Tree(TreeError::NotFound { .. })
            | FsError::Tree(TreeError::NotADirectory { .. })
            | FsError::Tree(TreeError::IsADirectory { .. })
            | FsError::InvalidName { .. }
            | FsError::NonUtf8Name { .. }
            | FsError::ReadOnly { .. }
            | FsError::StaleInode { .. } => tracing::Level::DEBUG,
            FsError::Tree(TreeError::PermissionDenied { .. }) => tracing::Level::INFO,
            FsError::Tree(TreeError::Unavailable { .. })
            | FsError::Tree(TreeError::Changed { .. })
            | FsError::Tree(TreeError::Io { .. })
            | FsError::UnknownInode(_)
            | FsError::UnknownHandle(_)
            | FsError::WrongReadLength { .. } => tracing::Level::WARN,
        }
    }
}

/// `err` and its chain of sources, `: `-separated, for one log line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> TreePath {
        TreePath::new(s).unwrap()
    }

    #[test]
    fn tree_errors_map_to_the_errno_a_reader_expects() {
        let cases = [
            (TreeError::NotFound { path: p("a") }, libc::ENOENT),
            (TreeError::NotADirectory { path: p("a") }, libc::ENOTDIR),
            (TreeError::IsADirectory { path: p("a") }, libc::EISDIR),
            (TreeError::PermissionDenied { path: p("a"), reason: "policy".into() }, libc::EACCES),
            (TreeError::Unavailable { path: p("a"), reason: "store unreachable".into() }, libc::EIO),
            (TreeError::Changed { path: p("a"), reason: "ETag differs".into() }, libc::EIO),
            (TreeError::Io { path: p("a"), source: io::Error::from_raw_os_error(libc::ENOSPC) }, libc::EIO),
        ];
        for (err, errno) in cases {
            assert_eq!(err.to_errno(), errno, "{err}");
            assert_eq!(err.path(), &p("a"));
            assert_eq!(FsError::from(err).to_errno(), errno);
        }
    }

    #[test]
    fn adapter_errors_map_to_errno() {
        let cases = [
            (FsError::UnknownInode(INodeNo(7)), libc::ESTALE),
            (FsError::StaleInode { ino: INodeNo(7), path: p("a") }, libc::ESTALE),
            (FsError::UnknownHandle(FileHandle(3)), libc::EBADF),
            (
                FsError::InvalidName {
                    name: "..".into(),
                    source: PathError::DotSegment { path: "..".into(), segment: "..".into() },
                },
                libc::ENOENT,
            ),
            (FsError::NonUtf8Name { name: "\u{fffd}".into() }, libc::ENOENT),
            (FsError::ReadOnly { path: p("a") }, libc::EROFS),
            (FsError::WrongReadLength { path: p("a"), offset: 0, expected: 10, got: 9 }, libc::EIO),
        ];
        for (err, errno) in cases {
            assert_eq!(err.to_errno(), errno, "{err}");
        }
    }

    #[test]
    fn error_chain_includes_the_cause() {
        let err = FsError::from(TreeError::Io { path: p("cache/x"), source: io::Error::other("disk on fire") });
        assert_eq!(error_chain(&err), "/cache/x: I/O error: disk on fire");
    }
}
