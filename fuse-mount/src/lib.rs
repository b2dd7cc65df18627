//! A read-only FUSE filesystem over a small path-based [`Tree`] trait.
//!
//! The daemon implements [`Tree`] (attributes and listings from memory, file bytes from its
//! cache or the object store) and calls [`mount()`]; this crate does everything FUSE: the inode
//! and handle tables, the errno translation, kernel caching flags, a pool of read workers so
//! slow reads never stall `ls`, and mounting and unmounting, stale mounts from crashed runs
//! included. It knows nothing of S3, DuckLake or policy.
//!
//! - [`tree`]: the [`Tree`] and [`OpenFile`] traits and their data types.
//! - [`path`]: [`TreePath`], the validated relative path every tree call takes.
//! - [`error`]: [`TreeError`] and the one table from errors to errno.
//! - [`mount`](mod@mount): [`mount()`], [`MountOptions`], the [`Mount`] guard, [`MountError`].
//! - [`conformance`]: [`tree_conformance`], the checks any [`Tree`] must pass.
//! - [`mem_tree`]: [`MemTree`], an in-memory tree for tests and demos.
//!
//! Internally, `fs` holds the request logic (testable without a kernel), `fuse` the thin
//! `fuser::Filesystem` shell over it, `inode` the inode table, `read_pool` the read workers,
//! `page_push` the pushes of read-ahead pages into the kernel's page cache and `mountinfo` the
//! `/proc/self/mountinfo` reader.

pub mod conformance;
pub mod error;
mod fs;
mod fuse;
mod inode;
pub mod mem_tree;
pub mod mount;
mod mountinfo;
mod page_push;
pub mod path;
mod read_pool;
pub mod tree;

pub use conformance::{ConformanceReport, tree_conformance};
pub use error::TreeError;
pub use mem_tree::{Fault, FaultOp, MemTree, MemTreeError};
pub use mount::{Mount, MountError, MountOptions, PageDropper, mount};
pub use path::{PathError, TreePath};
pub use tree::{Attr, DirEntry, NodeKind, OpenFile, Tree};
