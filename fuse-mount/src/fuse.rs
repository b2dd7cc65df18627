//! The `fuser::Filesystem` adapter: a thin shell over [`TreeFs`].
//!
//! Each method calls the filesystem, matches, and replies; errors go through [`fuse_error!`],
//! which logs once (path, errno, cause) and replies with the errno from the one translation
//! table in [`crate::error`]. Reads are the exception to "reply on the spot": they are handed to
//! the [`ReadPool`] with their reply, because a read may wait on the network and must not hold
//! up the session thread (see [`crate::read_pool`]).

use std::ffi::OsStr;
use std::io;
use std::sync::Arc;

use fuser::{
    Errno, FileHandle, Filesystem, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::error::{FsError, error_chain};
use crate::fs::TreeFs;
use crate::page_push::PagePusher;
use crate::path::MAX_SEGMENT_LEN;
use crate::read_pool::{Job, ReadPool};

/// Inode numbers are never reused within a mount, so every reply can use generation 0.
const GENERATION: Generation = Generation(0);

/// Logs `err` for request `op` and replies with its errno.
macro_rules! fuse_error {
    ($op:literal, $reply:expr, $err:expr) => {{
        let err: FsError = $err;
        log_error($op, &err);
        $reply.error(Errno::from_i32(err.to_errno()));
    }};
}

/// Logs a failed request once, at the error's level (see `FsError::log_level`), with the
/// errno the reader gets and the error's whole chain (which names the path).
fn log_error(op: &'static str, err: &FsError) {
    let errno = err.to_errno();
    let chain = error_chain(err);
    match err.log_level() {
        tracing::Level::DEBUG => tracing::debug!(op, errno, error = %chain, "FUSE request failed"),
        tracing::Level::INFO => tracing::info!(op, errno, error = %chain, "FUSE request failed"),
        _ => tracing::warn!(op, errno, error = %chain, "FUSE request failed"),
    }
}

/// What `init` negotiates with the kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelSettings {
    /// Largest read request wanted, in bytes.
    pub(crate) max_read: u32,
    /// Most background requests (readahead) the kernel keeps in flight.
    pub(crate) max_background: u16,
    /// Readahead window offered in `init`, in bytes (at most what the kernel offers).
    pub(crate) readahead: u32,
}

/// The filesystem handed to fuser.
pub(crate) struct FuseFs {
    fs: TreeFs,
    reads: ReadPool,
    pusher: Arc<PagePusher>,
    kernel: KernelSettings,
}

impl FuseFs {
    pub(crate) fn new(fs: TreeFs, reads: ReadPool, pusher: PagePusher, kernel: KernelSettings) -> Self {
        FuseFs { fs, reads, pusher: Arc::new(pusher), kernel }
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // The kernel sizes read requests by `max_pages`, which fuser derives from
        // max(max_write, max_readahead). Nothing is ever written, so max_write is free to carry
        // the read size. The kernel caps max_pages at /proc/sys/fs/fuse/max_pages_limit (256
        // pages, 1 MiB, by default).
        let max_read = self.kernel.max_read;
        if let Err(nearest) = config.set_max_write(max_read) {
            let _ = config.set_max_write(nearest);
        }
        // Readahead cannot exceed what the kernel offered in INIT (its bdi readahead, usually
        // 128 KiB); `mount()` raises the bdi readahead afterwards when it may. A smaller window
        // (0 included) holds for every user, root or not.
        if let Err(nearest) = config.set_max_readahead(self.kernel.readahead) {
            let _ = config.set_max_readahead(nearest);
        }
        if let Err(nearest) = config.set_max_background(self.kernel.max_background) {
            let _ = config.set_max_background(nearest);
        }
        // READDIRPLUS: `ls -l` gets names and attributes in one round trip, and lookup counts
        // come with them. AUTO_INVAL_DATA: if a snapshot switch changes a path's size or mtime,
        // the kernel drops the cached pages the next time it refreshes the attributes, despite
        // KEEP_CACHE. PARALLEL_DIROPS: lookups in one directory need not queue behind each other.
        for flag in [InitFlags::FUSE_DO_READDIRPLUS, InitFlags::FUSE_AUTO_INVAL_DATA, InitFlags::FUSE_PARALLEL_DIROPS] {
            if let Err(missing) = config.add_capabilities(flag) {
                tracing::debug!(?missing, "kernel lacks a FUSE capability");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(parent, name) {
            Ok(attr) => reply.entry_with_ttls(&self.fs.attr_ttl(), &self.fs.entry_ttl(), &attr, GENERATION),
            Err(e) => fuse_error!("lookup", reply, e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino) {
            Ok(attr) => reply.attr(&self.fs.attr_ttl(), &attr),
            Err(e) => fuse_error!("getattr", reply, e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.open(ino, flags) {
            Ok((fh, fopen)) => reply.opened(fh, fopen),
            Err(e) => fuse_error!("open", reply, e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let target = match self.fs.read_target(fh) {
            Ok(target) => target,
            Err(e) => return fuse_error!("read", reply, e),
        };
        let pusher = Arc::clone(&self.pusher);
        let job: Job = Box::new(move || match target.read(offset, size) {
            Ok(data) => {
                reply.data(&data);
                // After the reply: the reader goes on while its next pages are pushed.
                pusher.push(ino, target.size(), || target.read_ahead(offset, size));
            }
            Err(e) => fuse_error!("read", reply, e),
        });
        if let Err(job) = self.reads.submit(job) {
            // Only while the pool shuts down; run the read here rather than fail it.
            job();
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Nothing is ever buffered for writing. ENOSYS makes the kernel stop sending FLUSH for
        // the life of the mount (the `close` still succeeds): a round trip less per `close`,
        // which a query over many small files makes once per file.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(ino) {
            Ok(fh) => reply.opened(fh, fuser::FopenFlags::empty()),
            Err(e) => fuse_error!("opendir", reply, e),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let result = self.fs.readdir(fh, offset, |e| reply.add(e.ino, e.offset, e.kind, e.name));
        match result {
            Ok(()) => reply.ok(),
            Err(e) => fuse_error!("readdir", reply, e),
        }
    }

    fn readdirplus(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        // fuser sends one TTL for both the entry and its attributes; use the shorter.
        let ttl = self.fs.attr_ttl().min(self.fs.entry_ttl());
        let result =
            self.fs.readdirplus(fh, offset, |e| reply.add(e.attr.ino, e.offset, e.name, &ttl, &e.attr, GENERATION));
        match result {
            Ok(()) => reply.ok(),
            Err(e) => fuse_error!("readdirplus", reply, e),
        }
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.fs.release(fh);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // No meaningful capacity: the mount mirrors a remote lake. Zero blocks makes `df` show
        // it as a pseudo filesystem, like /proc.
        let bsize = self.kernel.max_read;
        reply.statfs(0, 0, 0, 0, 0, bsize, MAX_SEGMENT_LEN as u32, bsize);
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        // ENOSYS makes the kernel stop asking for the life of the mount (no xattrs exist).
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }
}
