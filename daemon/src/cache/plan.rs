//! Miss planning: which byte ranges to fetch for the gaps a read found. Pure functions, so
//! widening and coalescing are tested without a store.
//!
//! A gap is widened to its *unit*: the enclosing column chunk (or the footer) when the file's
//! layout is known, to the end of the unit's last page, the whole object for encrypted files,
//! else an aligned block; a gap that only
//! grazes a unit (the page at its edge, read because the kernel reads whole pages) is fetched as
//! it is. Units larger than `max_fetch` are cut into aligned blocks so one huge column chunk
//! cannot pin hundreds of MB in memory. Units are then trimmed to their missing bytes and
//! neighbours closer than `coalesce_gap` are merged into one request, because one GET costs a
//! round trip (20–100 ms to a cloud region) while a few hundred KiB of extra bytes cost less.

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
    /// The kernel's page: a buffered read through the mount asks for whole pages.
    pub page: u64,
}

fn align(r: Range<u64>, lim: &PlanLimits) -> Range<u64> {
    let b = lim.block.max(1);
    let start = r.start / b * b;
    let end = r.end.div_ceil(b).saturating_mul(b).min(lim.size);
    start..end
}

/// The bytes around `at`, which lies in no unit: from the end of the unit before it (or the
/// start of the object) to the start of the unit after it (or the end of the object).
fn between_units(layout: &Layout, at: u64, size: u64) -> Range<u64> {
    let units = || layout.chunks.iter().map(|c| c.range.clone()).chain([layout.footer.clone()]);
    let prev = units().map(|u| u.end).filter(|e| *e <= at).max().unwrap_or(0);
    let next = units().map(|u| u.start).filter(|s| *s > at).min().unwrap_or(size);
    prev..next
}

/// Whether `part` (of `gap`, a missing part of `read`) only grazes `region`: the read runs on
/// past one edge of the region and touches no more of it than the page at that edge. The kernel
/// reads whole pages, so a reader of one chunk's last bytes also asks for the first bytes of the
/// chunks after it: those are fetched as they are, instead of widening to units nobody may read.
/// At the start of a region this holds only when the read's first bytes are cached, i.e. the
/// reader came through them: a reader does not start in the last page of one chunk, but does
/// start at the first byte of another, so a page missing from its first byte widens the regions
/// that begin in it.
fn grazes(read: &Range<u64>, gap: &Range<u64>, part: &Range<u64>, region: &Range<u64>, page: u64) -> bool {
    let page = page.max(1);
    let at_start = read.start < region.start && gap.start > read.start && part.end <= region.start / page * page + page;
    let at_end = read.end > region.end && part.start >= (region.end - 1) / page * page;
    at_start || at_end
}

/// The units covering `gap`, a missing part of `read`, before trimming and coalescing.
pub fn widen(gap: Range<u64>, read: &Range<u64>, units: &Units<'_>, lim: &PlanLimits) -> Vec<Range<u64>> {
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
                let (region, is_unit) = match layout.unit_at(at) {
                    Some(u) => (u, true),
                    None => (between_units(layout, at, lim.size), false),
                };
                let part = at..gap.end.min(region.end);
                at = part.end;
                if grazes(read, &gap, &part, &region, lim.page) {
                    out.push(part);
                } else if is_unit && region.end - region.start <= lim.max_fetch {
                    // To the end of the unit's last page: a reader of the unit reads that page,
                    // whose last bytes (the next unit's first) would otherwise be a request of
                    // their own, a round trip after this one.
                    let page = lim.page.max(1);
                    out.push(region.start..region.end.div_ceil(page).saturating_mul(page).min(lim.size));
                } else {
                    // An oversized chunk, or bytes between units (leading magic, page indexes,
                    // bloom filters): aligned blocks, kept inside the region, so a block never
                    // drags in a neighbouring unit (its bytes are fetched, whole, only when read).
                    let piece = align(part, lim);
                    out.push(piece.start.max(region.start)..piece.end.min(region.end));
                }
            }
        }
    }
    out.retain(|r| r.start < r.end);
    out
}

/// Plans the fetches for `gaps` of a read of `read` from an object whose present bytes are
/// `present`: widen each gap, drop what is present at either end of each unit, and coalesce
/// neighbours.
pub fn plan(
    gaps: &[Range<u64>],
    read: &Range<u64>,
    present: &RangeSet,
    units: &Units<'_>,
    lim: &PlanLimits,
) -> Vec<Range<u64>> {
    let mut wanted: Vec<Range<u64>> = Vec::new();
    for gap in gaps {
        for unit in widen(gap.clone(), read, units, lim) {
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
    const PAGE: u64 = 4096;

    /// `widen` of a gap that is the whole read.
    fn widen_read(gap: Range<u64>, units: &Units<'_>, lim: &PlanLimits) -> Vec<Range<u64>> {
        widen(gap.clone(), &gap, units, lim)
    }

    /// `plan` of a read whose gaps are given (the read spans them).
    fn plan_read(gaps: &[Range<u64>], present: &RangeSet, units: &Units<'_>, lim: &PlanLimits) -> Vec<Range<u64>> {
        let read = gaps.iter().map(|g| g.start).min().unwrap_or(0)..gaps.iter().map(|g| g.end).max().unwrap_or(0);
        plan(gaps, &read, present, units, lim)
    }

    fn lim(size: u64) -> PlanLimits {
        PlanLimits { size, block: MIB, max_fetch: 8 * MIB, coalesce_gap: 64 * 1024, page: PAGE }
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
        assert_eq!(widen_read(10..20, &Units::Blocks, &l), vec![0..MIB]);
        assert_eq!(widen_read(MIB - 1..MIB + 1, &Units::Blocks, &l), vec![0..2 * MIB]);
        assert_eq!(widen_read(10 * MIB..10 * MIB + 3, &Units::Blocks, &l), vec![10 * MIB..10 * MIB + 5]);
    }

    #[test]
    fn layout_widens_to_chunks_footer_and_blocks_between() {
        let size = 20 * MIB;
        let l = layout(size, &[4..1000, 1000..3 * MIB, 3 * MIB..14 * MIB, 15 * MIB..19 * MIB], 19 * MIB..size);
        let u = Units::Layout(&l);
        let lim = lim(size);
        // Inside one chunk → that chunk.
        assert_eq!(widen_read(2000..2010, &u, &lim), vec![1000..3 * MIB]);
        // Starting in one chunk and reading on into the next → the next, whole; the first is only
        // grazed (its last page).
        assert_eq!(widen_read(900..3 * MIB - 10, &u, &lim), vec![900..1000, 1000..3 * MIB]);
        // Reading deep into two chunks → both (the second, of 11 MiB, in blocks).
        assert_eq!(widen_read(5 * PAGE..3 * MIB + 5 * PAGE, &u, &lim), vec![1000..3 * MIB, 3 * MIB..4 * MIB]);
        // In the footer → the footer.
        assert_eq!(widen_read(size - 8..size, &u, &lim), vec![19 * MIB..size]);
        // An 11 MiB chunk exceeds max_fetch: blocks inside it.
        assert_eq!(widen_read(5 * MIB + 1..5 * MIB + 2, &u, &lim), vec![5 * MIB..6 * MIB]);
        // Between chunks (14..15 MiB holds no chunk): blocks, stopping at the next chunk.
        assert_eq!(widen_read(14 * MIB + 10..14 * MIB + 20, &u, &lim), vec![14 * MIB..15 * MIB]);
        // The leading magic.
        assert_eq!(widen_read(0..2, &u, &lim), vec![0..4]);
        // Between the last chunk and the footer (page indexes): the block would start at
        // 18 MiB, inside a chunk nobody asked for; it starts where that chunk ends instead.
        let l = layout(size, &[4..1000, 1000..18 * MIB + 100], 19 * MIB..size);
        let u = Units::Layout(&l);
        assert_eq!(widen_read(18 * MIB + 500..18 * MIB + 600, &u, &lim), vec![18 * MIB + 100..19 * MIB]);
    }

    #[test]
    fn a_page_that_straddles_two_chunks() {
        let size = 10 * MIB;
        let l = layout(size, &[4..10_000, 10_000..3 * MIB], 9 * MIB + 100..size);
        let u = Units::Layout(&l);
        let lim = lim(size);
        let page = 2 * PAGE..3 * PAGE;
        // Neither part cached: a reader starting the second chunk. The first is only grazed.
        assert_eq!(widen_read(page.clone(), &u, &lim), vec![2 * PAGE..10_000, 10_000..3 * MIB]);
        // The first chunk's part cached: a reader finishing it. The second is only grazed.
        assert_eq!(widen(10_000..3 * PAGE, &page, &u, &lim), vec![10_000..3 * PAGE]);
        // Also past a chunk that lies whole inside the page.
        let l3 = layout(size, &[4..10_000, 10_000..10_100, 10_100..3 * MIB], 9 * MIB + 100..size);
        let u3 = Units::Layout(&l3);
        assert_eq!(widen(10_000..3 * PAGE, &page, &u3, &lim), vec![10_000..10_100, 10_100..3 * PAGE]);
        // But a page missing from its first byte is a reader starting there: the chunks that
        // begin in it widen.
        assert_eq!(widen_read(page.clone(), &u3, &lim), vec![2 * PAGE..10_000, 10_000..10_100, 10_100..3 * MIB]);
        // A reader starting the first chunk gets it to the end of its last page, which the
        // reader will ask for (the second chunk's first bytes in it are a graze saved).
        assert_eq!(widen_read(0..PAGE, &u, &lim), vec![0..4, 4..3 * PAGE]);
        // The next page is inside the second chunk: it widens (and the plan trims what is there).
        assert_eq!(widen_read(3 * PAGE..4 * PAGE, &u, &lim), vec![10_000..3 * MIB]);
        let present: RangeSet = [4..3 * PAGE].into_iter().collect();
        assert_eq!(plan_read(&[3 * PAGE..4 * PAGE], &present, &u, &lim), vec![3 * PAGE..3 * MIB]);
        // The first page of the footer reaches back over the bytes before it (page indexes,
        // bloom filters): those are not fetched in a block.
        assert_eq!(widen_read(9 * MIB..9 * MIB + PAGE, &u, &lim), vec![9 * MIB..9 * MIB + 100, 9 * MIB + 100..size]);
        // A read that lies between units only is still fetched in blocks kept between them.
        assert_eq!(widen_read(5 * MIB..5 * MIB + PAGE, &u, &lim), vec![5 * MIB..6 * MIB]);
    }

    #[test]
    fn whole_and_exact() {
        let l = lim(3 * MIB);
        assert_eq!(widen_read(10..20, &Units::Whole, &l), vec![0..3 * MIB]);
        let big = lim(100 * MIB);
        assert_eq!(widen_read(10..20, &Units::Whole, &big), vec![0..MIB]);
        let footer = 3 * MIB - 500..3 * MIB;
        assert_eq!(widen_read(3 * MIB - 8..3 * MIB, &Units::Exact(footer.clone()), &l), vec![footer.clone()]);
        assert_eq!(widen_read(0..10, &Units::Exact(footer), &l), vec![0..MIB]);
    }

    #[test]
    fn plan_trims_present_ends_and_coalesces() {
        let l = lim(10 * MIB);
        let present: RangeSet = [0..100].into_iter().collect();
        // Block 0..1MiB, first 100 bytes present: fetch 100..1MiB.
        assert_eq!(plan_read(&[200..300], &present, &Units::Blocks, &l), vec![100..MIB]);
        // Two gaps in adjacent blocks coalesce into one request.
        assert_eq!(plan_read(&[200..300, MIB + 5..MIB + 6], &present, &Units::Blocks, &l), vec![100..2 * MIB]);
        // Gaps far apart stay separate.
        assert_eq!(
            plan_read(&[200..300, 5 * MIB..5 * MIB + 1], &present, &Units::Blocks, &l),
            vec![100..MIB, 5 * MIB..6 * MIB]
        );
        // A fully present unit yields nothing.
        let all: RangeSet = [0..10 * MIB].into_iter().collect();
        assert!(plan_read(&[200..300], &all, &Units::Blocks, &l).is_empty());
    }

    #[test]
    fn plan_respects_max_fetch_when_coalescing() {
        let l = PlanLimits { size: 100 * MIB, block: MIB, max_fetch: 2 * MIB, coalesce_gap: MIB, page: PAGE };
        let gaps: Vec<Range<u64>> = (0..4).map(|i| i * MIB + 1..i * MIB + 2).collect();
        let got = plan_read(&gaps, &RangeSet::new(), &Units::Blocks, &l);
        assert_eq!(got, vec![0..2 * MIB, 2 * MIB..4 * MIB]);
        assert!(got.iter().all(|r| r.end - r.start <= l.max_fetch));
    }
}
