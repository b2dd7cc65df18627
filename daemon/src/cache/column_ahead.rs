//! Column readers, and which of their chunks to fetch before they ask.
//!
//! A query reads a few columns of a Parquet file row group by row group: the chunk of each of
//! its columns in row group 0, then in row group 1, and so on. With the kernel's readahead off
//! (it fetched chunks of columns nobody reads), each of those chunks is a miss and a round trip
//! of its own, one after another: a cold query over a file of 16 row groups waits 16 round
//! trips per reading thread, where a tool that downloads whole files (rclone) waits one
//! transfer. A column reader does not build a sequential run (`cache/stream.rs`): it jumps over
//! the other columns' bytes.
//!
//! So the cache follows columns, as the kernel follows files: a demand miss that starts a chunk
//! of a column whose chunk in the row group before is already cached or being fetched is a
//! reader going down that column, and the column's next chunks are fetched at once, in
//! parallel, as many as the reader has gone through already (so the window doubles: misses at
//! row groups 0, 1, 3, 7, 15 ... rather than at each), up to a byte limit. Only chunks of the
//! columns being read are fetched, so a query's bytes stay its own; the cost is at most one
//! window of chunks past the last row group a filter lets the reader read.

use std::ops::Range;

use crate::cache::range_set::RangeSet;
use crate::layout::{ColumnChunk, Layout};

/// Ranges to fetch ahead of a miss whose fetches are `planned`: for each chunk a planned fetch
/// reads to its end from its first byte (or from where its cached bytes end), the same
/// column's following chunks that are neither `present` nor `in_flight`, as many as precede it
/// (cached or being fetched to their end, without a gap), at most `max_bytes` in all. In file
/// order, each a whole chunk widened to the `page`s it begins and ends in: the reader reads
/// through the mount in pages, and a page a chunk shares with its neighbours would otherwise be
/// a round trip of its own. A fetch of only a chunk's first page (the page a read of the chunk
/// before grazed) is not a reader of that chunk's column.
pub fn ahead(
    layout: &Layout,
    planned: &[Range<u64>],
    present: &RangeSet,
    in_flight: &[Range<u64>],
    max_bytes: u64,
    page: u64,
) -> Vec<Range<u64>> {
    let page = page.max(1);
    // Cached, or being fetched to its end (a grazed first page is neither).
    let held = |c: &ColumnChunk| {
        present.contains(&c.range) || in_flight.iter().any(|f| f.start < c.range.end && c.range.end <= f.end)
    };
    let started = |fetch: &Range<u64>, c: &ColumnChunk| {
        fetch.end >= c.range.end && (fetch.start <= c.range.start || present.contains(&(c.range.start..fetch.start)))
    };
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut budget = max_bytes;
    for fetch in planned {
        for started in layout.chunks_overlapping(fetch.clone()).filter(|c| started(fetch, c)) {
            let column: Vec<&ColumnChunk> = layout.chunks.iter().filter(|c| c.column == started.column).collect();
            let Some(at) = column.iter().position(|c| c.range == started.range) else { continue };
            // How far down the column the reader has come: the chunks before, without a gap.
            let behind = column[..at].iter().rev().take_while(|c| held(c)).count();
            let wanted = column[at + 1..]
                .iter()
                .take(behind)
                .filter(|c| !held(c) && !planned.iter().any(|p| p.start <= c.range.start && c.range.start < p.end));
            for c in wanted {
                let start = c.range.start / page * page;
                let end = c.range.end.div_ceil(page).saturating_mul(page).min(layout.file_size);
                let len = end - start;
                if len > budget {
                    break;
                }
                if !out.iter().any(|r| r.start == start) {
                    budget -= len;
                    out.push(start..end);
                }
            }
        }
    }
    out.sort_by_key(|r| r.start);
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    /// `groups` row groups of `columns` columns, each chunk 1,000 bytes, in file order.
    fn layout(groups: usize, columns: usize) -> Layout {
        let mut chunks = Vec::new();
        let mut at = 4;
        for row_group in 0..groups {
            for column in 0..columns {
                chunks.push(ColumnChunk {
                    row_group,
                    column,
                    field_id: Some(column as i32 + 1),
                    path: format!("c{column}"),
                    range: at..at + 1000,
                });
                at += 1000;
            }
        }
        Layout { file_size: at + 100, footer: at..at + 100, chunks }
    }

    fn chunk(l: &Layout, row_group: usize, column: usize) -> Range<u64> {
        l.chunks
            .iter()
            .find(|c| c.row_group == row_group && c.column == column)
            .map(|c| c.range.clone())
            .unwrap_or(0..0)
    }

    fn present(ranges: &[Range<u64>]) -> RangeSet {
        ranges.iter().cloned().collect()
    }

    #[test]
    fn the_first_chunk_of_a_column_is_not_followed() {
        let l = layout(8, 4);
        assert!(ahead(&l, &[chunk(&l, 0, 2)], &RangeSet::new(), &[], u64::MAX, 1).is_empty());
    }

    #[test]
    fn the_window_doubles_down_the_column_and_skips_other_columns() {
        let l = layout(16, 4);
        // Row group 1 of column 2, with row group 0 cached: one chunk ahead.
        let cached = present(&[chunk(&l, 0, 2)]);
        assert_eq!(ahead(&l, &[chunk(&l, 1, 2)], &cached, &[], u64::MAX, 1), [chunk(&l, 2, 2)]);
        // Row group 3, with 0..=2 cached or in flight: three ahead, all of column 2.
        let cached = present(&[chunk(&l, 0, 2), chunk(&l, 1, 2)]);
        let got = ahead(&l, &[chunk(&l, 3, 2)], &cached, &[chunk(&l, 2, 2)], u64::MAX, 1);
        assert_eq!(got, [chunk(&l, 4, 2), chunk(&l, 5, 2), chunk(&l, 6, 2)]);
    }

    #[test]
    fn held_chunks_are_not_fetched_again_and_the_byte_limit_holds() {
        let l = layout(16, 2);
        let cached = present(&(0..7).map(|g| chunk(&l, g, 0)).collect::<Vec<_>>());
        let flying = [chunk(&l, 8, 0)];
        let got = ahead(&l, &[chunk(&l, 7, 0)], &cached, &flying, 2500, 1);
        assert_eq!(got, [chunk(&l, 9, 0), chunk(&l, 10, 0)], "8 is in flight; 2,500 bytes hold two chunks");
    }

    #[test]
    fn chunks_ahead_take_the_pages_they_share_with_their_neighbours() {
        // Chunks of 1,000 bytes from offset 4, two columns, pages of 256: row group 2 of
        // column 0 is 4004..5004, so pages 3840..5120.
        let l = layout(8, 2);
        let cached = present(&[chunk(&l, 0, 0)]);
        assert_eq!(ahead(&l, &[chunk(&l, 1, 0)], &cached, &[], u64::MAX, 256), [3840..5120]);
    }

    #[test]
    fn a_grazed_chunk_is_not_a_reader_of_its_column() {
        // Column 0 read in row groups 0 and 1; the last page of each grazed column 1's chunk.
        let l = layout(8, 2);
        let graze = |g: usize| chunk(&l, g, 1).start..chunk(&l, g, 1).start + 100;
        let cached = present(&[chunk(&l, 0, 0), graze(0), chunk(&l, 1, 0)]);
        // Row group 1's graze of column 1: not a reader of column 1.
        assert!(ahead(&l, &[graze(1)], &cached, &[], u64::MAX, 1).is_empty());
        // A read of column 1's chunk whose first page was grazed fetches the rest: a reader
        // (column 1's chunk before is cached), so the next one is fetched ahead.
        let cached = present(&[chunk(&l, 0, 1), chunk(&l, 1, 0), graze(1)]);
        let rest = graze(1).end..chunk(&l, 1, 1).end;
        assert_eq!(ahead(&l, &[rest], &cached, &[], u64::MAX, 1), [chunk(&l, 2, 1)]);
    }
}
