//! Pushing bytes the tree already holds into the kernel's page cache.
//!
//! With readahead off (the daemon's choice for a lake read through its cache, where every byte
//! read ahead is a byte fetched from the store, often of a column chunk no query reads), the
//! kernel asks for a buffered reader's pages one at a time, each a round trip through FUSE.
//! After answering a read, the adapter asks the file what follows ([`OpenFile::read_ahead`]: for
//! the daemon, the cached rest of the column chunk) and stores those pages in the page cache
//! with `FUSE_NOTIFY_STORE`, so the reader's next pages are page-cache hits.
//!
//! Pushes run on a thread of their own, never on a read worker: a store waits for the kernel's
//! lock on each page it fills, and that page may be locked by a read waiting for a read worker.
//! The queue is short and a push that finds it full is dropped (a push is only a hint). A push
//! queued before [`crate::Mount::invalidate`] is dropped too, so pages the tree no longer serves
//! are never put back; and a push inside the range last pushed for the same file is skipped.
//!
//! The same thread drops the kernel's pages of files whose bytes changed at their source
//! ([`crate::PageDropper`], `FUSE_NOTIFY_INVAL_INODE`), for the same reason: dropping a page
//! waits for its lock, which a read may hold while it waits for the very code asking for the
//! drop. Drops are never lost, and every push queued before one is dropped.
//!
//! [`OpenFile::read_ahead`]: crate::OpenFile::read_ahead

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;

use fuser::{INodeNo, Notifier};

/// Pushes waiting for the push thread; more are dropped.
const QUEUE: usize = 64;
/// Largest single store sent to the kernel, so one write to the FUSE device stays short.
const MAX_STORE: usize = 1 << 20;
/// Files whose last push is remembered (for skipping repeats) before the memory is cleared.
const REMEMBERED: usize = 4096;

/// What the mount keeps to steer pushes: the session's notifier, known only once the session
/// runs, and the invalidation epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct PushControl {
    notifier: Arc<OnceLock<Notifier>>,
    epoch: Arc<AtomicU64>,
    /// Files whose kernel pages are to be dropped, in order.
    forgets: Arc<Mutex<Vec<INodeNo>>>,
    /// Wakes the push thread (set when it starts).
    wake: Arc<OnceLock<SyncSender<Job>>>,
}

impl PushControl {
    /// Starts pushing through `notifier` (pushes before this are dropped).
    pub(crate) fn connect(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Drops every push queued so far: the kernel was told to forget pages.
    pub(crate) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Has the push thread drop the kernel's cached pages of `files`, and drops every push
    /// queued so far (they may hold bytes of an old version). Never blocks.
    pub(crate) fn forget(&self, files: impl IntoIterator<Item = INodeNo>) {
        self.forgets.lock().unwrap_or_else(PoisonError::into_inner).extend(files);
        self.invalidate();
        // A full queue wakes the thread anyway, and it looks at the forgets before each job.
        if let Some(wake) = self.wake.get() {
            let _ = wake.try_send(Job::Forget);
        }
    }
}

struct Push {
    ino: INodeNo,
    pages: Range<u64>,
    bytes: Vec<u8>,
    epoch: u64,
}

/// What the push thread is woken for.
enum Job {
    Push(Push),
    /// Look at `PushControl::forgets`.
    Forget,
}

/// The sending side, held by the filesystem. Dropping it ends the push thread (not joined: a
/// store blocked on a page lock ends when the session does).
pub(crate) struct PagePusher {
    sender: SyncSender<Job>,
    control: PushControl,
    page: u64,
}

impl PagePusher {
    /// Starts the push thread.
    pub(crate) fn start(control: PushControl) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(QUEUE);
        let _ = control.wake.set(sender.clone());
        let thread_control = control.clone();
        thread::Builder::new().name("warmlake-push".into()).spawn(move || run(&receiver, &thread_control))?;
        Ok(PagePusher { sender, control, page: page_size() })
    }

    /// Queues what `ahead` gives, `(at, bytes)` of a file of `file_size` bytes, for the page
    /// cache of `ino`: the whole pages among them, the file's last partial page included.
    /// `ahead` runs after the invalidation epoch is read, so bytes it takes from a tree that
    /// was invalidated meanwhile are dropped.
    pub(crate) fn push(&self, ino: INodeNo, file_size: u64, ahead: impl FnOnce() -> Option<(u64, Vec<u8>)>) {
        if self.control.notifier.get().is_none() {
            return;
        }
        let epoch = self.control.epoch.load(Ordering::SeqCst);
        let Some((at, mut bytes)) = ahead() else { return };
        let Some(pages) = whole_pages(at, bytes.len() as u64, file_size, self.page) else { return };
        // Within `bytes` by construction: `pages` lies inside `at..at + len`.
        bytes.truncate((pages.end - at) as usize);
        bytes.drain(..(pages.start - at) as usize);
        let push = Push { ino, pages, bytes, epoch };
        if let Err(TrySendError::Full(_)) = self.sender.try_send(Job::Push(push)) {
            tracing::trace!("page push queue full; push dropped");
        }
    }
}

/// The pages among `len` bytes at `at`: from the first page boundary at or after `at` to the
/// last one at or before the end, or to the end itself when that is the end of the file (the
/// kernel marks a page up to date only when a push fills it from its start to its end or EOF).
fn whole_pages(at: u64, len: u64, file_size: u64, page: u64) -> Option<Range<u64>> {
    let end = at.saturating_add(len).min(file_size);
    let start = at.div_ceil(page).saturating_mul(page);
    let stop = if end == file_size { end } else { end / page * page };
    (start < stop).then_some(start..stop)
}

fn run(receiver: &Receiver<Job>, control: &PushControl) {
    let mut last: HashMap<INodeNo, (Range<u64>, u64)> = HashMap::new();
    while let Ok(job) = receiver.recv() {
        let forgets = std::mem::take(&mut *control.forgets.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(notifier) = control.notifier.get() {
            for ino in forgets {
                last.remove(&ino);
                // ENOENT: the kernel no longer knows the inode, so it holds none of its pages.
                if let Err(e) = notifier.inval_inode(ino, 0, 0)
                    && e.raw_os_error() != Some(libc::ENOENT)
                {
                    tracing::warn!(ino = ino.0, error = %e, "cannot drop the kernel's pages of a changed file");
                }
            }
        }
        let Job::Push(push) = job else { continue };
        let epoch = control.epoch.load(Ordering::SeqCst);
        if push.epoch != epoch {
            last.clear();
            continue;
        }
        if let Some((done, at_epoch)) = last.get(&push.ino)
            && *at_epoch == epoch
            && done.start <= push.pages.start
            && push.pages.end <= done.end
        {
            continue;
        }
        let Some(notifier) = control.notifier.get() else { continue };
        let mut offset = push.pages.start;
        for piece in push.bytes.chunks(MAX_STORE) {
            if let Err(e) = notifier.store(push.ino, offset, piece) {
                // ENOENT: the kernel forgot the inode (file closed and evicted); nothing to fill.
                if e.raw_os_error() != Some(libc::ENOENT) {
                    tracing::debug!(ino = push.ino.0, offset, error = %e, "page push failed");
                }
                break;
            }
            offset += piece.len() as u64;
        }
        if last.len() >= REMEMBERED {
            last.clear();
        }
        last.insert(push.ino, (push.pages, epoch));
    }
}

/// The kernel's page size.
#[allow(unsafe_code)]
fn page_size() -> u64 {
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pages_are_pushed() {
        // Aligned start, end inside a page: up to the last boundary.
        assert_eq!(whole_pages(4096, 10_000, 1 << 20, 4096), Some(4096..12_288));
        // Unaligned start: from the next boundary.
        assert_eq!(whole_pages(100, 10_000, 1 << 20, 4096), Some(4096..8192));
        // Less than a page between boundaries: nothing.
        assert_eq!(whole_pages(100, 4000, 1 << 20, 4096), None);
        // Reaching the end of the file: the last partial page too.
        assert_eq!(whole_pages(4096, 5000, 9096, 4096), Some(4096..9096));
        // Bytes beyond the end of the file are not pushed.
        assert_eq!(whole_pages(4096, 50_000, 9096, 4096), Some(4096..9096));
        assert_eq!(whole_pages(9096, 10, 9096, 4096), None);
    }
}
