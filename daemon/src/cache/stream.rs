//! Sequential readers, and how far to fetch ahead of them.
//!
//! A reader that goes through a file in order (`cp`, a checksum, a scan of every column) meets
//! a miss at each column chunk, one round trip each: 46 KiB chunks at 30 ms a round trip is
//! about 1.5 MiB/s. The kernel's readahead would hide that, but the mount turns it off (it
//! fetched chunks of columns nobody reads). So the cache keeps its own: per object, where the
//! last demand miss's fetches ended. A miss that begins exactly there continues a run; after
//! [`SEQUENTIAL_AFTER`] misses in a row, each miss also fetches ahead as many bytes as the run
//! has fetched so far (up to a limit), so the window doubles like the kernel's. Readers of a
//! few columns jump from chunk to chunk and never build a run; a reader of a few *adjacent*
//! columns may, and then over-fetches at most one window at the end of its run.

use std::collections::HashMap;
use std::ops::Range;

/// Misses in a row, each starting where the last one's fetches ended, before fetching ahead.
/// A chunk whose first page another chunk's last page grazed costs two misses, so this is about
/// two chunks read in order, past the first.
pub const SEQUENTIAL_AFTER: u32 = 4;

/// Objects followed at once; the oldest are forgotten wholesale past this.
const FOLLOWED: usize = 4096;

/// Runs followed per object: readers going through different parts of one file at once
/// (threads of one scan, or two programs) each keep their own.
const RUNS_PER_OBJECT: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Stream {
    /// Where the last miss's fetches (and the fetches ahead) ended.
    next: u64,
    /// Misses in a row that began at `next`.
    run: u32,
    /// Bytes fetched by the run so far.
    bytes: u64,
    /// When it last continued (a counter), to replace the stalest run.
    used: u64,
}

/// The runs of every object read lately, by cache key.
#[derive(Debug, Default)]
pub struct Streams {
    runs: HashMap<String, Vec<Stream>>,
    clock: u64,
}

impl Streams {
    /// Records a demand miss of `key` whose fetches are `planned` (in order) and returns how
    /// many bytes to fetch ahead of them (0: not a sequential reader yet), at most `max_ahead`.
    pub fn on_miss(&mut self, key: &str, planned: &[Range<u64>], max_ahead: u64) -> u64 {
        let (Some(first), Some(last)) = (planned.first(), planned.last()) else { return 0 };
        let len: u64 = planned.iter().map(|r| r.end - r.start).sum();
        if self.runs.len() >= FOLLOWED && !self.runs.contains_key(key) {
            self.runs.clear();
        }
        self.clock += 1;
        let runs = self.runs.entry(key.to_string()).or_default();
        let s = match runs.iter().position(|s| s.next == first.start) {
            Some(i) => {
                let s = &mut runs[i];
                s.run += 1;
                s.bytes = s.bytes.saturating_add(len);
                s
            }
            None => {
                let fresh = Stream { next: 0, run: 0, bytes: len, used: 0 };
                if runs.len() < RUNS_PER_OBJECT {
                    runs.push(fresh);
                } else if let Some(stalest) = runs.iter_mut().min_by_key(|s| s.used) {
                    *stalest = fresh;
                }
                let Some(s) = runs.iter_mut().find(|s| s.used == 0) else { return 0 };
                s
            }
        };
        s.next = last.end;
        s.used = self.clock;
        if s.run >= SEQUENTIAL_AFTER { s.bytes.min(max_ahead) } else { 0 }
    }

    /// Records that fetches ahead of the reader of `key` whose run ended at `from` now reach
    /// `end`.
    pub fn ahead_to(&mut self, key: &str, from: u64, end: u64) {
        let Some(runs) = self.runs.get_mut(key) else { return };
        if let Some(s) = runs.iter_mut().find(|s| s.next == from)
            && end > s.next
        {
            s.bytes = s.bytes.saturating_add(end - s.next);
            s.next = end;
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_misses_in_order_fetches_ahead_and_a_jump_ends_it() {
        let mut s = Streams::default();
        let max = 1 << 20;
        // Chunks of 100 bytes read in order: nothing ahead until the run is long enough.
        let mut ahead = Vec::new();
        for i in 0..8u64 {
            ahead.push(s.on_miss("f", &[i * 100..i * 100 + 100], max));
        }
        assert_eq!(ahead[..SEQUENTIAL_AFTER as usize], [0; SEQUENTIAL_AFTER as usize]);
        // Then as much as the run has fetched: the window grows with it.
        assert_eq!(ahead[SEQUENTIAL_AFTER as usize], 100 * (u64::from(SEQUENTIAL_AFTER) + 1));
        assert!(ahead.windows(2).skip(SEQUENTIAL_AFTER as usize).all(|w| w[1] > w[0]), "{ahead:?}");
        // The reader continues after what was fetched ahead: still one run.
        s.ahead_to("f", 800, 5_000);
        assert!(s.on_miss("f", &[5_000..5_100], max) > 0);
        // A jump elsewhere starts another run; other objects are followed on their own.
        assert_eq!(s.on_miss("f", &[90_000..90_100], max), 0);
        assert_eq!(s.on_miss("g", &[5_100..5_200], max), 0);
        // The first run goes on beside the new one (two readers of one file).
        assert!(s.on_miss("f", &[5_100..5_200], max) > 0);
        // Capped.
        let mut t = Streams::default();
        let last = (0..20u64).map(|i| t.on_miss("h", &[i * max..(i + 1) * max], 3 * max)).last();
        assert_eq!(last, Some(3 * max));
    }

    #[test]
    fn two_interleaved_readers_each_keep_their_run() {
        let mut s = Streams::default();
        let mut ahead = (0, 0);
        for i in 0..10u64 {
            ahead.0 = s.on_miss("f", &[i * 100..i * 100 + 100], 1 << 20);
            ahead.1 = s.on_miss("f", &[50_000 + i * 100..50_000 + i * 100 + 100], 1 << 20);
        }
        assert!(ahead.0 > 0 && ahead.1 > 0, "{ahead:?}");
    }

    #[test]
    fn readers_of_columns_far_apart_never_fetch_ahead() {
        let mut s = Streams::default();
        // Three columns' chunks per row group, each far from the last: every miss jumps.
        for rg in 0..10u64 {
            for col in [5u64, 12, 18] {
                let at = rg * 100_000 + col * 5_000;
                assert_eq!(s.on_miss("f", &[at..at + 4_000], 1 << 20), 0);
            }
        }
    }
}
