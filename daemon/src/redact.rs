//! Parquet files with denied columns, as the mount serves them.
//!
//! A Parquet footer describes every column: min/max statistics per row group, where the page
//! indexes (min/max per page) and bloom filters are. Refusing reads of a denied column's chunks
//! is not enough when the footer hands its values out, so a file of a table with denied columns
//! is served as a different file:
//!
//! - its **body** (every byte before the original footer) as it is, except that the page
//!   indexes and bloom filters of denied columns read as zeros: nothing in the new footer
//!   points at them, and a reader that fetches all page indexes in one range (arrow-rs does)
//!   must not fail over bytes it will not parse. A read that starts in a denied column's chunk
//!   (dictionary or data pages) is refused ([`Redacted::check`]); one that only runs into such
//!   a chunk gets zeros for it;
//! - then a **new footer**, re-encoded by the `parquet` crate from the original: the denied
//!   columns keep only what places their chunks (offsets, sizes, encodings, value count), so
//!   a reader of the other columns reads the file exactly as before; their statistics, size
//!   statistics, geospatial statistics, page index and bloom filter locations are gone. The
//!   denied columns stay in the schema: a reader that asks for one gets `EACCES`, a clear
//!   answer, rather than a file that silently lacks the column.
//!
//! The served file is shorter than the object: the tree reports [`Redacted::size`], never the
//! catalog's `file_size` or `footer_size`.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use parquet::file::metadata::{
    ColumnChunkMetaData, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataReader, ParquetMetaDataWriter,
    RowGroupMetaData,
};

use crate::lake_path::LakeKey;
use crate::layout::{self, LayoutError};

/// A file as served under a policy that denies some of its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// Bytes of the original served from the object: everything before its footer.
    body_len: u64,
    /// Ranges of the body served as zeros (page indexes and bloom filters of denied columns),
    /// sorted and disjoint.
    blanked: Vec<Range<u64>>,
    /// Column chunks of denied columns, with the column's path: reads touching them fail.
    denied_chunks: Vec<(Range<u64>, String)>,
    /// The new footer: metadata, its length (u32 LE) and `PAR1`.
    footer: Vec<u8>,
}

/// Why a file with denied columns cannot be served redacted (it is then refused whole).
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// The footer cannot be located or parsed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The `parquet` crate could not rebuild or re-encode the metadata.
    #[error("cannot re-encode the Parquet metadata: {0}")]
    Encode(parquet::errors::ParquetError),
    /// The new footer does not say what it should (a check after encoding: never served).
    #[error("the re-encoded footer does not match the original: {0}")]
    Mismatch(String),
}

/// A read of a [`Redacted`] file that touches a denied column's chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedRead {
    /// The denied column's dotted path.
    pub column: String,
}

impl Redacted {
    /// Rewrites `footer` (the original's metadata plus its 8-byte tail, exactly
    /// [`layout::footer_range`]'s bytes) of a file of `file_size` bytes for a policy that
    /// denies the columns whose leaves have one of `denied` as field id.
    pub fn new(footer: &[u8], file_size: u64, denied: &[i32]) -> Result<Redacted, RedactError> {
        let (meta, footer_range) = layout::decode_footer(footer, file_size)?;
        let body_len = footer_range.start;
        let schema = meta.file_metadata().schema_descr_ptr();
        let is_denied = |leaf: usize| {
            let column = schema.column(leaf);
            let info = column.self_type().get_basic_info();
            info.has_id() && denied.contains(&info.id())
        };

        let mut denied_chunks = Vec::new();
        let mut index_ranges = Vec::new();
        let mut row_groups = Vec::with_capacity(meta.num_row_groups());
        for (rg_idx, rg) in meta.row_groups().iter().enumerate() {
            let mut columns = Vec::with_capacity(rg.num_columns());
            for (leaf, col) in rg.columns().iter().enumerate() {
                if !is_denied(leaf) {
                    columns.push(col.clone());
                    continue;
                }
                let chunk = layout::chunk_range(col, rg_idx, leaf, body_len)?;
                denied_chunks.push((chunk, col.column_path().string()));
                index_ranges.extend(col.column_index_range());
                index_ranges.extend(col.offset_index_range());
                if let Some(start) = col.bloom_filter_offset().and_then(|o| u64::try_from(o).ok()) {
                    let len = col.bloom_filter_length().and_then(|l| u64::try_from(l).ok());
                    index_ranges.push(start..len.map_or(u64::MAX, |l| start.saturating_add(l)));
                }
                columns.push(placement_only(col)?);
            }
            row_groups.push(rebuilt(rg, columns)?);
        }
        let blanked = blank_ranges(index_ranges, &meta, body_len);

        let redacted_meta =
            ParquetMetaDataBuilder::new(meta.file_metadata().clone()).set_row_groups(row_groups).build();
        let mut new_footer = Vec::with_capacity(footer.len());
        ParquetMetaDataWriter::new(&mut new_footer, &redacted_meta).finish().map_err(RedactError::Encode)?;
        let redacted = Redacted { body_len, blanked, denied_chunks, footer: new_footer };
        redacted.verify(&meta, &is_denied)?;
        Ok(redacted)
    }

    /// The served file's size.
    pub fn size(&self) -> u64 {
        self.body_len + self.footer.len() as u64
    }

    /// The body's length: reads below it come from the object.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Refuses a read of `range` (of the served file) that starts in a denied column's chunk:
    /// that is a reader of the denied column, and `EACCES` tells it so. A read that only runs
    /// into one from before is a reader of a neighbour reading a little past its chunk (DuckDB
    /// reads page headers 256 bytes at a time, and coalesces nearby chunks when it prefetches),
    /// and gets zeros for the denied bytes ([`Redacted::read`]). Every chunk is checked, not a
    /// binary search: a file whose chunks overlap (malformed, or hostile) must not slip a denied
    /// chunk past the check.
    pub fn check(&self, range: Range<u64>) -> Result<(), DeniedRead> {
        match self.denied_chunks.iter().find(|(c, _)| c.contains(&range.start)) {
            Some((_, column)) => Err(DeniedRead { column: column.clone() }),
            None => Ok(()),
        }
    }

    /// The served bytes of `range` (clamped to [`Redacted::size`]): the body's from `fetch`
    /// (called with each part of the body outside the denied chunks, in order, which must
    /// return exactly that part), zeros for denied chunks and blanked ranges, then the new
    /// footer's. The caller has [`Redacted::check`]ed the range.
    pub fn read<E>(
        &self,
        range: Range<u64>,
        mut fetch: impl FnMut(Range<u64>) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let end = range.end.min(self.size());
        let start = range.start.min(end);
        let mut out = vec![0u8; (end - start) as usize];
        let body_end = end.min(self.body_len);
        let mut at = start;
        while at < body_end {
            // The next denied chunk that overlaps what is left: fetch up to it, skip it.
            let next = self
                .denied_chunks
                .iter()
                .map(|(c, _)| c)
                .filter(|c| c.end > at && c.start < body_end)
                .min_by_key(|c| c.start.max(at));
            let (gap_end, resume) = match next {
                Some(c) => (c.start.max(at), c.end.min(body_end)),
                None => (body_end, body_end),
            };
            if at < gap_end {
                let bytes = fetch(at..gap_end)?;
                let n = bytes.len().min((gap_end - at) as usize);
                out[(at - start) as usize..(at - start) as usize + n].copy_from_slice(&bytes[..n]);
            }
            at = resume.max(gap_end);
        }
        for b in &self.blanked {
            let (from, to) = (b.start.max(start), b.end.min(body_end));
            if from < to {
                out[(from - start) as usize..(to - start) as usize].fill(0);
            }
        }
        if end > self.body_len {
            let from = start.max(self.body_len);
            out[(from - start) as usize..]
                .copy_from_slice(&self.footer[(from - self.body_len) as usize..(end - self.body_len) as usize]);
        }
        Ok(out)
    }

    /// Parses the new footer back and checks it: same rows and chunks, nothing describing a
    /// denied column's values, no pointer into a blanked range. Only a checked footer is served.
    fn verify(&self, original: &ParquetMetaData, is_denied: &dyn Fn(usize) -> bool) -> Result<(), RedactError> {
        let mismatch = |what: String| Err(RedactError::Mismatch(what));
        let meta_len = layout::metadata_len_from_tail(&self.footer)?;
        let meta = ParquetMetaDataReader::decode_metadata(&self.footer[..meta_len as usize])
            .map_err(|e| RedactError::Mismatch(e.to_string()))?;
        if meta.num_row_groups() != original.num_row_groups()
            || meta.file_metadata().num_rows() != original.file_metadata().num_rows()
        {
            return mismatch("row groups or rows differ".into());
        }
        for (new, old) in meta.row_groups().iter().zip(original.row_groups()) {
            if new.num_columns() != old.num_columns() {
                return mismatch("columns differ".into());
            }
            for (leaf, (n, o)) in new.columns().iter().zip(old.columns()).enumerate() {
                if n.byte_range() != o.byte_range() || n.num_values() != o.num_values() {
                    return mismatch(format!("column {} moved", o.column_path()));
                }
                if is_denied(leaf)
                    && (n.statistics().is_some()
                        || n.geo_statistics().is_some()
                        || n.column_index_offset().is_some()
                        || n.offset_index_offset().is_some()
                        || n.bloom_filter_offset().is_some()
                        || n.unencoded_byte_array_data_bytes().is_some()
                        || n.repetition_level_histogram().is_some()
                        || n.definition_level_histogram().is_some())
                {
                    return mismatch(format!("denied column {} still described", o.column_path()));
                }
            }
        }
        Ok(())
    }
}

/// A denied column's metadata built afresh with only what places its chunk: an allow-list, so
/// a field the format grows later is left out rather than carried over.
fn placement_only(col: &ColumnChunkMetaData) -> Result<ColumnChunkMetaData, RedactError> {
    let mut b = ColumnChunkMetaData::builder(col.column_descr_ptr())
        .set_encodings_mask(*col.encodings_mask())
        .set_num_values(col.num_values())
        .set_compression_codec(col.compression_codec())
        .set_total_compressed_size(col.compressed_size())
        .set_total_uncompressed_size(col.uncompressed_size())
        .set_data_page_offset(col.data_page_offset())
        .set_dictionary_page_offset(col.dictionary_page_offset())
        .set_index_page_offset(col.index_page_offset());
    if let Some(path) = col.file_path() {
        b = b.set_file_path(path.to_string());
    }
    if let Some(stats) = col.page_encoding_stats() {
        b = b.set_page_encoding_stats(stats.clone());
    } else if let Some(mask) = col.page_encoding_stats_mask() {
        b = b.set_page_encoding_stats_mask(*mask);
    }
    b.build().map_err(RedactError::Encode)
}

fn rebuilt(rg: &RowGroupMetaData, columns: Vec<ColumnChunkMetaData>) -> Result<RowGroupMetaData, RedactError> {
    rg.clone().into_builder().set_column_metadata(columns).build().map_err(RedactError::Encode)
}

/// The ranges of the body to serve as zeros, sorted, merged and inside the body. A bloom filter
/// without a recorded length (`end == u64::MAX`) runs to the next thing the footer places
/// after it (a chunk, an index, a bloom filter) or the end of the body.
fn blank_ranges(mut ranges: Vec<Range<u64>>, meta: &ParquetMetaData, body_len: u64) -> Vec<Range<u64>> {
    if ranges.iter().any(|r| r.end == u64::MAX) {
        let mut starts: Vec<u64> = Vec::new();
        for (rg_idx, rg) in meta.row_groups().iter().enumerate() {
            for (leaf, col) in rg.columns().iter().enumerate() {
                starts.extend(layout::chunk_range(col, rg_idx, leaf, body_len).map(|r| r.start));
                starts.extend(col.column_index_range().map(|r| r.start));
                starts.extend(col.offset_index_range().map(|r| r.start));
                starts.extend(col.bloom_filter_offset().and_then(|o| u64::try_from(o).ok()));
            }
        }
        starts.sort_unstable();
        for r in ranges.iter_mut().filter(|r| r.end == u64::MAX) {
            r.end = starts.iter().copied().find(|s| *s > r.start).unwrap_or(body_len);
        }
    }
    let mut clipped: Vec<Range<u64>> =
        ranges.into_iter().map(|r| r.start.min(body_len)..r.end.min(body_len)).filter(|r| r.start < r.end).collect();
    clipped.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(clipped.len());
    for r in clipped {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// Redacted footers in memory, by object and denied field ids, so a file is rewritten once and
/// not on every `stat` and read. Bounded by bytes; the oldest are forgotten first (a forgotten
/// one is rewritten again from the footer, which for a table that may not be stored means
/// fetching it again).
pub struct Redactions {
    inner: Mutex<Entries>,
}

/// One object's redactions, by the denied field ids each was made for.
type ByPolicy = Vec<(Arc<[i32]>, Arc<Redacted>)>;

#[derive(Default)]
struct Entries {
    /// By object, then by denied field ids (one set, but while a policy changes): looked up
    /// with a borrowed key on every read of such a file, so no key is copied there.
    map: HashMap<LakeKey, ByPolicy>,
    /// Oldest first, for the budget.
    order: VecDeque<(LakeKey, Arc<[i32]>)>,
    bytes: usize,
}

impl Entries {
    fn get(&self, key: &LakeKey, denied: &[i32]) -> Option<&Arc<Redacted>> {
        self.map.get(key)?.iter().find(|(d, _)| **d == *denied).map(|(_, r)| r)
    }

    fn remove(&mut self, key: &LakeKey, denied: &[i32]) {
        let Some(by_policy) = self.map.get_mut(key) else { return };
        if let Some(i) = by_policy.iter().position(|(d, _)| **d == *denied) {
            let (_, gone) = by_policy.swap_remove(i);
            self.bytes -= gone.footer.len();
        }
        if by_policy.is_empty() {
            self.map.remove(key);
        }
    }
}

/// Bytes of redacted footers kept in memory.
const REDACTIONS_BUDGET: usize = 64 << 20;

impl Redactions {
    pub fn new() -> Self {
        Redactions { inner: Mutex::new(Entries::default()) }
    }

    /// The redaction of `key` under `denied`, computing it with `make` when it is not known.
    pub fn get_or_make<E>(
        &self,
        key: &LakeKey,
        denied: &Arc<[i32]>,
        make: impl FnOnce() -> Result<Redacted, E>,
    ) -> Result<Arc<Redacted>, E> {
        if let Some(known) = self.lock().get(key, denied) {
            return Ok(Arc::clone(known));
        }
        // Made outside the lock: it may fetch the footer from the store.
        let made = Arc::new(make()?);
        let mut entries = self.lock();
        if entries.get(key, denied).is_none() {
            entries.map.entry(key.clone()).or_default().push((Arc::clone(denied), Arc::clone(&made)));
            entries.order.push_back((key.clone(), Arc::clone(denied)));
            entries.bytes += made.footer.len();
        }
        while entries.bytes > REDACTIONS_BUDGET && entries.order.len() > 1 {
            let Some((oldest, denied)) = entries.order.pop_front() else { break };
            entries.remove(&oldest, &denied);
        }
        Ok(made)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for Redactions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
