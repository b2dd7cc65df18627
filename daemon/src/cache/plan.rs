//! Miss planning: which byte ranges to fetch for the gaps a read found. Pure functions, so
//! widening and coalescing are tested without a store.
//!
//! A gap is widened to its *unit*: the enclosing column chunk (or the footer) when the file's
//! layout is known, the whole object for encrypted files, else an aligned block. Units larger
//! than `max_fetch` are cut into aligned blocks so one huge column chunk cannot pin hundreds of
//! MB in memory. Units are then trimmed to their missing bytes and neighbours closer than
//! `coalesce_gap` are merged into one request, because one GET costs a round trip (20–100 ms to
//! a cloud region) while a few hundred KiB of extra bytes cost less than that.

use std::ops::Range;

use crate::layout::Layout;

use super::range_set::RangeSet;

/// What a miss widens to, for one object.
#[derive(Debug, Clone)]
pub enum Units<'a> {
    /// Column chunks and the footer of a parsed Parquet file; aligned blocks elsewhere.
    Layout(&'a Layout),
    /// This range (the footer while the layout is being fetched); aligned blocks elsewhere.
    Exact(Range<u64>),
    /// The whole object (encrypted Parquet: never parsed, kept whole).
    Whole,
    /// Aligned blocks.
    Blocks,
}

/// Sizes that shape a plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    /// Object size.
    pub size: u64,
    /// Alignment and size of a block.
    pub block: u64,
    /// Largest single fetch.
    pub max_fetch: u64,
    /// Neighbouring fetches closer than this are merged.
    pub coalesce_gap: u64,
}

fn align(r: Range<u64>, lim: &PlanLimits) -> Range<u64> {
    let b = lim.block.max(1);
    let start = r.start / b * b;
    let end = r.end.div_ceil(b).saturating_mul(b).min(lim.size);
    start..end
}

/// The units covering `gap`, before trimming and coalescing.
pub fn widen(gap: Range<u64>, units: &Units<'_>, lim: &PlanLimits) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    match units {
        Units::Blocks => out.push(align(gap, lim)),
        Units::Whole if lim.size <= lim.max_fetch => out.push(0..lim.size),
        Units::Whole => out.push(align(gap, lim)),
        Units::Exact(r) => {
            // The part of the gap inside `r` becomes `r`; the rest is block-aligned.
            let inside = gap.start.max(r.start)..gap.end.min(r.end);
            if inside.start < inside.end && r.end - r.start <= lim.max_fetch {
                out.push(r.clone());
                let mut rest: RangeSet = [gap.clone()].into_iter().collect();
                rest.remove(r.clone());
                out.extend(rest.ranges().iter().map(|g| align(g.clone(), lim)));
            } else {
                out.push(align(gap, lim));
            }
        }
        Units::Layout(layout) => {
            let mut at = gap.start;
            while at < gap.end {
                match layout.unit_at(at) {
                    Some(u) if u.end - u.start <= lim.max_fetch => {
                        at = u.end;
                        out.push(u);
                    }
                    Some(u) => {
                        // An oversized chunk: aligned blocks, kept inside the chunk.
                        let piece = align(at..gap.end.min(u.end), lim);
                        out.push(piece.start.max(u.start)..piece.end.min(u.end));
                        at = gap.end.min(u.end);
                    }
                    None => {
                        // Between units (leading magic, page indexes): aligned blocks, but never
                        // reaching into the units on either side (their bytes are fetched, whole,
                        // only when they are read).
                        let next = layout
                            .chunks
                            .iter()
                            .map(|c| c.range.start)
                            .chain([layout.footer.start])
                            .filter(|s| *s > at)
                            .min()
                            .unwrap_or(lim.size);
                        let prev = layout
                            .chunks
                            .iter()
                            .map(|c| c.range.end)
                            .chain([layout.footer.end])
                            .filter(|e| *e <= at)
                            .max()
                            .unwrap_or(0);
                        let stop = gap.end.min(next);
                        let piece = align(at..stop, lim);
                        out.push(piece.start.max(prev)..piece.end.min(next.max(stop)));
                        at = stop;
                    }
                }
            }
        }
    }
    out.retain(|r| r.start < r.end);
    out
}

/// Plans the fetches for `gaps` of an object whose present bytes are `present`: widen each
/// gap, drop what is present at either end of each unit, and coalesce neighbours.
pub fn plan(gaps: &[Range<u64>], present: &RangeSet, units: &Units<'_>, lim: &PlanLimits) -> Vec<Range<u64>> {
    let mut wanted: Vec<Range<u64>> = Vec::new();
    for gap in gaps {
        for unit in widen(gap.clone(), units, lim) {
            // Trim: fetch from the first missing byte to the last; interior present bytes are
            // re-fetched rather than splitting one request into many.
            let missing = present.missing(unit);
            if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                wanted.push(first.start..last.end);
            }
        }
    }
    wanted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in wanted {
        if let Some(prev) = out.last_mut() {
            let merged = prev.start..prev.end.max(r.end);
            if r.start <= prev.end.saturating_add(lim.coalesce_gap) && merged.end - merged.start <= lim.max_fetch {
                *prev = merged;
                continue;
            }
            if r.start < prev.end {
                // Overlapping but too big to merge: fetch only the new tail.
                let tail = prev.end..r.end;
                if tail.start < tail.end {
                    out.push(tail);
                }
                continue;
            }
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init, clippy::type_complexity)] // table tests of ranges
mod tests {
    use super::*;
    use crate::layout::ColumnChunk;

    const MIB: u64 = 1 << 20;

    fn lim(size: u64) -> PlanLimits {
        PlanLimits { size, block: MIB, max_fetch: 8 * MIB, coalesce_gap: 64 * 1024 }
    }

    fn layout(size: u64, chunks: &[Range<u64>], footer: Range<u64>) -> Layout {
        Layout {
            file_size: size,
            footer,
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(i, r)| ColumnChunk {
                    row_group: 0,
                    column: i,
                    field_id: Some(i as i32),
                    path: format!("c{i}"),
                    range: r.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn blocks_align_and_clamp_to_the_object() {
        let l = lim(10 * MIB + 5);
        assert_eq!(widen(10..20, &Units::Blocks, &l), vec![0..MIB]);
        assert_eq!(widen(MIB - 1..MIB + 1, &Units::Blocks, &l), vec![0..2 * MIB]);
        assert_eq!(widen(10 * MIB..10 * MIB + 3, &Units::Blocks, &l), vec![10 * MIB..10 * MIB + 5]);
    }

    #[test]
    fn layout_widens_to_chunks_footer_and_blocks_between() {
        let size = 20 * MIB;
        let l = layout(size, &[4..1000, 1000..3 * MIB, 3 * MIB..14 * MIB, 15 * MIB..19 * MIB], 19 * MIB..size);
        let u = Units::Layout(&l);
        let lim = lim(size);
        // Inside one chunk → that chunk.
        assert_eq!(widen(2000..2010, &u, &lim), vec![1000..3 * MIB]);
        // Spanning two chunks → both.
        assert_eq!(widen(900..1100, &u, &lim), vec![4..1000, 1000..3 * MIB]);
        // In the footer → the footer.
        assert_eq!(widen(size - 8..size, &u, &lim), vec![19 * MIB..size]);
        // An 11 MiB chunk exceeds max_fetch: blocks inside it.
        assert_eq!(widen(5 * MIB + 1..5 * MIB + 2, &u, &lim), vec![5 * MIB..6 * MIB]);
        // Between chunks (14..15 MiB holds no chunk): blocks, stopping at the next chunk.
        assert_eq!(widen(14 * MIB + 10..14 * MIB + 20, &u, &lim), vec![14 * MIB..15 * MIB]);
        // The leading magic.
        assert_eq!(widen(0..2, &u, &lim), vec![0..4]);
        // Between the last chunk and the footer (page indexes): the block would start at
        // 18 MiB, inside a chunk nobody asked for; it starts where that chunk ends instead.
        let l = layout(size, &[4..1000, 1000..18 * MIB + 100], 19 * MIB..size);
        let u = Units::Layout(&l);
        assert_eq!(widen(18 * MIB + 500..18 * MIB + 600, &u, &lim), vec![18 * MIB + 100..19 * MIB]);
    }

    #[test]
    fn whole_and_exact() {
        let l = lim(3 * MIB);
        assert_eq!(widen(10..20, &Units::Whole, &l), vec![0..3 * MIB]);
        let big = lim(100 * MIB);
        assert_eq!(widen(10..20, &Units::Whole, &big), vec![0..MIB]);
        let footer = 3 * MIB - 500..3 * MIB;
        assert_eq!(widen(3 * MIB - 8..3 * MIB, &Units::Exact(footer.clone()), &l), vec![footer.clone()]);
        assert_eq!(widen(0..10, &Units::Exact(footer), &l), vec![0..MIB]);
    }

    #[test]
    fn plan_trims_present_ends_and_coalesces() {
        let l = lim(10 * MIB);
        let present: RangeSet = [0..100].into_iter().collect();
        // Block 0..1MiB, first 100 bytes present: fetch 100..1MiB.
        assert_eq!(plan(&[200..300], &present, &Units::Blocks, &l), vec![100..MIB]);
        // Two gaps in adjacent blocks coalesce into one request.
        assert_eq!(plan(&[200..300, MIB + 5..MIB + 6], &present, &Units::Blocks, &l), vec![100..2 * MIB]);
        // Gaps far apart stay separate.
        assert_eq!(
            plan(&[200..300, 5 * MIB..5 * MIB + 1], &present, &Units::Blocks, &l),
            vec![100..MIB, 5 * MIB..6 * MIB]
        );
        // A fully present unit yields nothing.
        let all: RangeSet = [0..10 * MIB].into_iter().collect();
        assert!(plan(&[200..300], &all, &Units::Blocks, &l).is_empty());
    }

    #[test]
    fn plan_respects_max_fetch_when_coalescing() {
        let l = PlanLimits { size: 100 * MIB, block: MIB, max_fetch: 2 * MIB, coalesce_gap: MIB };
        let gaps: Vec<Range<u64>> = (0..4).map(|i| i * MIB + 1..i * MIB + 2).collect();
        let got = plan(&gaps, &RangeSet::new(), &Units::Blocks, &l);
        assert_eq!(got, vec![0..2 * MIB, 2 * MIB..4 * MIB]);
        assert!(got.iter().all(|r| r.end - r.start <= l.max_fetch));
    }
}
