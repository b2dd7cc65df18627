//! A bounded pool of threads that run file reads off the FUSE session threads.
//!
//! In the daemon a read can wait seconds on the object store. fuser's session threads each
//! handle one request at a time, so a read run on one of them would hold up every `lookup`,
//! `getattr` and `readdir` queued behind it, and `ls` on the mount would hang while a large
//! file downloads. Instead the session thread hands the read, with its reply (fuser replies
//! are `Send`), to this pool and goes back to the kernel.
//!
//! The queue is bounded: when every worker is busy and the queue is full, the session thread
//! blocks on `submit` until a slot frees up. That is the backpressure: the kernel stops getting
//! answers, so readers stop sending more work, instead of an unbounded pile of pending reads
//! (each holding up to `max_read` bytes) growing in memory. The kernel bounds concurrent
//! readahead itself as well (`max_background`, set to the pool size at `init`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::{io, thread};

/// A unit of work: one read and its reply.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Worker threads fed from one bounded queue. Dropping the pool lets queued jobs finish and
/// joins the workers.
pub(crate) struct ReadPool {
    sender: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl ReadPool {
    /// Starts `threads` workers (at least one) sharing a queue of `queue` pending jobs.
    pub(crate) fn new(threads: usize, queue: usize) -> io::Result<Self> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let worker = thread::Builder::new().name(format!("warmlake-read-{i}")).spawn(move || work(&receiver))?;
            workers.push(worker);
        }
        Ok(ReadPool { sender: Some(sender), workers })
    }

    /// Queues `job`, blocking while the queue is full. Gives the job back if the pool has shut
    /// down, so the caller can run it (or drop it, which answers the kernel with `EIO`).
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        match &self.sender {
            Some(sender) => sender.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = receiver.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else {
            return; // The pool was dropped and the queue is empty.
        };
        // A panicking tree must not take a worker with it. The job's reply, dropped during the
        // unwind, answers the kernel with EIO.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a read panicked; the reader gets EIO");
        }
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        self.sender = None;
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a read worker panicked outside a job");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;

    #[test]
    fn runs_every_job_and_joins_on_drop() {
        let done = Arc::new(AtomicUsize::new(0));
        let pool = ReadPool::new(3, 2).unwrap();
        for _ in 0..100 {
            let done = Arc::clone(&done);
            assert!(
                pool.submit(Box::new(move || {
                    done.fetch_add(1, Ordering::SeqCst);
                }))
                .is_ok()
            );
        }
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 100);
    }

    #[test]
    fn jobs_run_concurrently_up_to_the_thread_count() {
        // Two jobs that each wait for the other can only both finish on two threads.
        let pool = ReadPool::new(2, 0).unwrap();
        let (a_tx, a_rx) = channel::<()>();
        let (b_tx, b_rx) = channel::<()>();
        let (done_tx, done_rx) = channel::<&str>();
        let done_a = done_tx.clone();
        assert!(
            pool.submit(Box::new(move || {
                a_tx.send(()).unwrap();
                b_rx.recv().unwrap();
                done_a.send("a").unwrap();
            }))
            .is_ok()
        );
        assert!(
            pool.submit(Box::new(move || {
                b_tx.send(()).unwrap();
                a_rx.recv().unwrap();
                done_tx.send("b").unwrap();
            }))
            .is_ok()
        );
        let mut done = [done_rx.recv().unwrap(), done_rx.recv().unwrap()];
        done.sort();
        assert_eq!(done, ["a", "b"]);
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_worker() {
        let pool = ReadPool::new(1, 1).unwrap();
        assert!(pool.submit(Box::new(|| panic!("tree bug"))).is_ok());
        let (tx, rx) = channel();
        assert!(pool.submit(Box::new(move || tx.send(42).unwrap())).is_ok());
        assert_eq!(rx.recv().unwrap(), 42);
    }

    #[test]
    fn a_zero_thread_pool_still_has_one_worker() {
        let pool = ReadPool::new(0, 1).unwrap();
        let (tx, rx) = channel();
        assert!(pool.submit(Box::new(move || tx.send(1).unwrap())).is_ok());
        assert_eq!(rx.recv().unwrap(), 1);
    }
}
