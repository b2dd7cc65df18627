//! A set of byte ranges, kept sorted, disjoint and non-adjacent (rclone `lib/ranges` in Rust).
//!
//! The cache uses it for "which bytes of an object are present", "which are being written" and
//! "which does this read still miss". Ranges are half-open `start..end`; empty ranges are
//! ignored everywhere, so callers never have to special-case them.

use std::ops::Range;

/// Sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        RangeSet { ranges: Vec::new() }
    }

    /// The ranges, sorted and merged.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// Whether no byte is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes in the set.
    pub fn len_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Adds `r`, merging it with every range it overlaps or touches.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // First range whose end reaches r.start (touching counts), last whose start <= r.end.
        let lo = self.ranges.partition_point(|x| x.end < r.start);
        let hi = self.ranges.partition_point(|x| x.start <= r.end);
        if lo == hi {
            self.ranges.insert(lo, r);
            return;
        }
        let start = r.start.min(self.ranges[lo].start);
        let end = r.end.max(self.ranges[hi - 1].end);
        self.ranges.splice(lo..hi, std::iter::once(start..end));
    }

    /// Removes every byte of `r` from the set.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let lo = self.ranges.partition_point(|x| x.end <= r.start);
        let hi = self.ranges.partition_point(|x| x.start < r.end);
        if lo == hi {
            return;
        }
        let mut keep = Vec::with_capacity(2);
        if self.ranges[lo].start < r.start {
            keep.push(self.ranges[lo].start..r.start);
        }
        if self.ranges[hi - 1].end > r.end {
            keep.push(r.end..self.ranges[hi - 1].end);
        }
        self.ranges.splice(lo..hi, keep);
    }

    /// Whether every byte of `r` is in the set (an empty `r` is always present).
    pub fn contains(&self, r: &Range<u64>) -> bool {
        if r.start >= r.end {
            return true;
        }
        let i = self.ranges.partition_point(|x| x.end <= r.start);
        self.ranges.get(i).is_some_and(|x| x.start <= r.start && r.end <= x.end)
    }

    /// The parts of `r` that are not in the set, in order.
    pub fn missing(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        if r.start >= r.end {
            return out;
        }
        let mut at = r.start;
        let first = self.ranges.partition_point(|x| x.end <= r.start);
        for x in &self.ranges[first..] {
            if x.start >= r.end {
                break;
            }
            if x.start > at {
                out.push(at..x.start);
            }
            at = at.max(x.end);
        }
        if at < r.end {
            out.push(at..r.end);
        }
        out
    }

    /// The parts of `r` that are in the set, in order.
    pub fn intersection(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let first = self.ranges.partition_point(|x| x.end <= r.start);
        self.ranges[first..]
            .iter()
            .take_while(|x| x.start < r.end)
            .map(|x| x.start.max(r.start)..x.end.min(r.end))
            .filter(|x| x.start < x.end)
            .collect()
    }
}

impl FromIterator<Range<u64>> for RangeSet {
    fn from_iter<I: IntoIterator<Item = Range<u64>>>(iter: I) -> Self {
        let mut set = RangeSet::new();
        for r in iter {
            set.insert(r);
        }
        set
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init, clippy::type_complexity)] // table tests of ranges
mod tests {
    use super::*;

    fn set(rs: &[Range<u64>]) -> RangeSet {
        rs.iter().cloned().collect()
    }

    #[test]
    fn insert_table() {
        // (existing, inserted, expected)
        let cases: &[(&[Range<u64>], Range<u64>, &[Range<u64>])] = &[
            (&[], 0..10, &[0..10]),
            (&[], 5..5, &[]),
            (&[0..10], 20..30, &[0..10, 20..30]),
            (&[20..30], 0..10, &[0..10, 20..30]),
            (&[0..10], 10..20, &[0..20]),
            (&[10..20], 0..10, &[0..20]),
            (&[0..10, 20..30], 10..20, &[0..30]),
            (&[0..10, 20..30], 5..25, &[0..30]),
            (&[0..10, 20..30, 40..50], 0..50, &[0..50]),
            (&[0..10, 20..30, 40..50], 21..29, &[0..10, 20..30, 40..50]),
            (&[0..10, 20..30, 40..50], 31..39, &[0..10, 20..30, 31..39, 40..50]),
            (&[0..10, 20..30, 40..50], 30..40, &[0..10, 20..50]),
            (&[5..10], 0..100, &[0..100]),
        ];
        for (existing, r, want) in cases {
            let mut s = set(existing);
            s.insert(r.clone());
            assert_eq!(s.ranges(), *want, "insert {r:?} into {existing:?}");
        }
    }

    #[test]
    fn remove_table() {
        let cases: &[(&[Range<u64>], Range<u64>, &[Range<u64>])] = &[
            (&[], 0..10, &[]),
            (&[0..10], 0..10, &[]),
            (&[0..10], 3..3, &[0..10]),
            (&[0..10], 2..5, &[0..2, 5..10]),
            (&[0..10], 0..5, &[5..10]),
            (&[0..10], 5..20, &[0..5]),
            (&[0..10, 20..30], 5..25, &[0..5, 25..30]),
            (&[0..10, 20..30, 40..50], 10..40, &[0..10, 40..50]),
            (&[0..10, 20..30, 40..50], 0..100, &[]),
            (&[0..10], 10..20, &[0..10]),
        ];
        for (existing, r, want) in cases {
            let mut s = set(existing);
            s.remove(r.clone());
            assert_eq!(s.ranges(), *want, "remove {r:?} from {existing:?}");
        }
    }

    #[test]
    fn missing_and_intersection_table() {
        // (set, query, missing, present)
        type Case<'a> = (&'a [Range<u64>], Range<u64>, &'a [Range<u64>], &'a [Range<u64>]);
        let cases: &[Case] = &[
            (&[], 0..10, &[0..10], &[]),
            (&[0..10], 0..10, &[], &[0..10]),
            (&[0..10], 5..15, &[10..15], &[5..10]),
            (&[5..10], 0..15, &[0..5, 10..15], &[5..10]),
            (&[0..2, 4..6, 8..10], 1..9, &[2..4, 6..8], &[1..2, 4..6, 8..9]),
            (&[0..10], 20..30, &[20..30], &[]),
            (&[0..10], 4..4, &[], &[]),
        ];
        for (s, q, miss, present) in cases {
            let s = set(s);
            assert_eq!(s.missing(q.clone()), *miss, "missing {q:?} in {s:?}");
            assert_eq!(s.intersection(q.clone()), *present, "intersection {q:?} with {s:?}");
            assert_eq!(s.contains(q), miss.is_empty(), "contains {q:?} in {s:?}");
        }
    }

    /// Compares with a bitmap model over many pseudo-random operations (a poor man's proptest:
    /// the workspace has no proptest, and a fixed LCG keeps failures reproducible).
    #[test]
    fn agrees_with_bitmap_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _round in 0..200 {
            let mut s = RangeSet::new();
            let mut model = [false; 64];
            for _op in 0..20 {
                let a = next(64);
                let b = next(65);
                let r = a.min(b)..a.max(b);
                if next(3) == 0 {
                    s.remove(r.clone());
                    model[r.start as usize..r.end as usize].iter_mut().for_each(|x| *x = false);
                } else {
                    s.insert(r.clone());
                    model[r.start as usize..r.end as usize].iter_mut().for_each(|x| *x = true);
                }
                // Invariants: sorted, disjoint, non-adjacent, non-empty.
                for w in s.ranges().windows(2) {
                    assert!(w[0].end < w[1].start, "{s:?}");
                }
                assert!(s.ranges().iter().all(|r| r.start < r.end));
                for (i, &bit) in model.iter().enumerate() {
                    let i = i as u64;
                    assert_eq!(s.contains(&(i..i + 1)), bit, "byte {i} of {s:?}");
                }
                assert_eq!(s.len_bytes(), model.iter().filter(|b| **b).count() as u64);
            }
        }
    }
}
