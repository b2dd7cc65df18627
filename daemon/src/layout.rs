//! Parquet layout: where each column chunk of each row group lives in a file, keyed by the
//! column's Parquet field id (DuckLake's column id).
//!
//! The cache uses it to widen a miss to the whole column chunk that holds it, so the next
//! query, whose byte ranges drift a little (another predicate, another reader), still hits;
//! prewarm uses it to fetch exactly the chunks of the wanted columns.
//!
//! A Parquet file ends with `<metadata><metadata length: u32 LE>PAR1`. DuckLake records the
//! metadata length as `footer_size`, so the whole footer is one ranged GET of
//! `footer_size + 8` bytes at the end of the file ([`footer_range`]). The metadata is parsed by
//! the `parquet` crate's [`ParquetMetaDataReader`]; nothing here decodes thrift by hand.
//! Encrypted files (a footer ending in `PARE`, or a catalog `encryption_key`) are never
//! parsed: the `parquet` crate cannot decrypt DuckDB's encryption, so the cache keeps such
//! files whole.

use std::ops::Range;

use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData, ParquetMetaDataReader};

/// Bytes after the metadata: its length (u32 LE) and the magic `PAR1`.
pub const FOOTER_TAIL_LEN: u64 = 8;

/// The footer could not be turned into a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The file is too small to hold the footer it claims.
    #[error("a {file_size}-byte file cannot hold a {footer_len}-byte footer")]
    FooterTooLarge { file_size: u64, footer_len: u64 },
    /// The last four bytes are not `PAR1`.
    #[error("not a Parquet footer (ends in {found:?})")]
    BadMagic { found: [u8; 4] },
    /// The footer is encrypted (`PARE`): cache the file whole instead.
    #[error("the footer is encrypted")]
    Encrypted,
    /// The metadata length in the file disagrees with the catalog's `footer_size`.
    #[error("footer holds {in_file} bytes of metadata, the catalog says {expected}")]
    FooterSizeMismatch { in_file: u64, expected: u64 },
    /// The `parquet` crate could not parse the metadata.
    #[error("cannot parse the Parquet metadata: {0}")]
    Parse(#[from] parquet::errors::ParquetError),
    /// A column chunk lies outside the file's data region.
    #[error("column chunk {column} of row group {row_group} has an impossible range {start}+{len}")]
    BadChunk { row_group: usize, column: usize, start: i64, len: i64 },
}

/// One column chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChunk {
    /// Row group index.
    pub row_group: usize,
    /// Leaf column index in the file schema.
    pub column: usize,
    /// The leaf's Parquet field id (DuckLake column id), when the writer set one.
    pub field_id: Option<i32>,
    /// The leaf's dotted path, for messages.
    pub path: String,
    /// Bytes from the dictionary page (or first data page) to the end of the chunk.
    pub range: Range<u64>,
}

/// Where everything is in one Parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The file's size.
    pub file_size: u64,
    /// The footer: metadata plus the 8-byte tail.
    pub footer: Range<u64>,
    /// Every column chunk, ordered by start offset.
    pub chunks: Vec<ColumnChunk>,
}

/// The footer's byte range given the file size and the catalog's `footer_size`.
pub fn footer_range(file_size: u64, footer_size: u64) -> Result<Range<u64>, LayoutError> {
    let footer_len = footer_size.saturating_add(FOOTER_TAIL_LEN);
    // 4 bytes of leading magic come before any footer.
    if footer_len.saturating_add(4) > file_size {
        return Err(LayoutError::FooterTooLarge { file_size, footer_len });
    }
    Ok(file_size - footer_len..file_size)
}

/// The metadata length stored in the last 8 bytes of a file, for when the catalog lacks
/// `footer_size`.
pub fn metadata_len_from_tail(tail: &[u8]) -> Result<u64, LayoutError> {
    let n = tail.len();
    if n < FOOTER_TAIL_LEN as usize {
        return Err(LayoutError::FooterTooLarge { file_size: n as u64, footer_len: FOOTER_TAIL_LEN });
    }
    let magic: [u8; 4] = [tail[n - 4], tail[n - 3], tail[n - 2], tail[n - 1]];
    match &magic {
        b"PAR1" => {}
        b"PARE" => return Err(LayoutError::Encrypted),
        _ => return Err(LayoutError::BadMagic { found: magic }),
    }
    let len = u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]);
    Ok(u64::from(len))
}

/// Decodes a footer (metadata plus the 8-byte tail, exactly the bytes of [`footer_range`]) of a
/// file of `file_size` bytes: its metadata, and where the footer lies in the file.
pub fn decode_footer(footer: &[u8], file_size: u64) -> Result<(ParquetMetaData, Range<u64>), LayoutError> {
    let meta_len = metadata_len_from_tail(footer)?;
    let in_buf = footer.len() as u64 - FOOTER_TAIL_LEN;
    if meta_len != in_buf {
        return Err(LayoutError::FooterSizeMismatch { in_file: meta_len, expected: in_buf });
    }
    let range = footer_range(file_size, meta_len)?;
    Ok((ParquetMetaDataReader::decode_metadata(&footer[..in_buf as usize])?, range))
}

/// The bytes of column chunk `column` of row group `row_group`: from its dictionary page (or
/// first data page) to its end, which must lie between the leading magic and the footer at
/// `footer_start`. Some writers store a dictionary offset of 0 when there is none: it is only
/// trusted when it lies before the first data page.
pub fn chunk_range(
    col: &ColumnChunkMetaData,
    row_group: usize,
    column: usize,
    footer_start: u64,
) -> Result<Range<u64>, LayoutError> {
    let bad = || LayoutError::BadChunk {
        row_group,
        column,
        start: col.dictionary_page_offset().unwrap_or(col.data_page_offset()),
        len: col.compressed_size(),
    };
    let data = col.data_page_offset();
    let start = match col.dictionary_page_offset() {
        Some(d) if d >= 4 && d <= data => d,
        _ => data,
    };
    let start = u64::try_from(start).map_err(|_| bad())?;
    let len = u64::try_from(col.compressed_size()).map_err(|_| bad())?;
    let end = start.checked_add(len).ok_or_else(bad)?;
    if start < 4 || end > footer_start {
        return Err(bad());
    }
    Ok(start..end)
}

/// Parses a footer (metadata plus the 8-byte tail, exactly the bytes of [`footer_range`]) of a
/// file of `file_size` bytes.
pub fn parse_footer(footer: &[u8], file_size: u64) -> Result<Layout, LayoutError> {
    let (meta, footer_range) = decode_footer(footer, file_size)?;
    let schema = meta.file_metadata().schema_descr();
    let mut chunks = Vec::new();
    for (rg_idx, rg) in meta.row_groups().iter().enumerate() {
        for (col_idx, col) in rg.columns().iter().enumerate() {
            let range = chunk_range(col, rg_idx, col_idx, footer_range.start)?;
            let leaf = schema.column(col_idx);
            let info = leaf.self_type().get_basic_info();
            chunks.push(ColumnChunk {
                row_group: rg_idx,
                column: col_idx,
                field_id: info.has_id().then(|| info.id()),
                path: leaf.path().string(),
                range,
            });
        }
    }
    chunks.sort_by_key(|c| c.range.start);
    Ok(Layout { file_size, footer: footer_range, chunks })
}

impl Layout {
    /// The column chunk holding `offset`, if any (bytes between chunks, such as page indexes,
    /// belong to none).
    pub fn chunk_at(&self, offset: u64) -> Option<&ColumnChunk> {
        let i = self.chunks.partition_point(|c| c.range.end <= offset);
        self.chunks.get(i).filter(|c| c.range.start <= offset)
    }

    /// The column chunks that share a byte with `range`, in file order (a binary search: this
    /// runs on every read).
    pub fn chunks_overlapping(&self, range: Range<u64>) -> impl Iterator<Item = &ColumnChunk> {
        let first = self.chunks.partition_point(|c| c.range.end <= range.start);
        self.chunks[first..].iter().take_while(move |c| c.range.start < range.end)
    }

    /// The unit a miss at `offset` widens to: its column chunk, or the footer.
    pub fn unit_at(&self, offset: u64) -> Option<Range<u64>> {
        if self.footer.contains(&offset) {
            return Some(self.footer.clone());
        }
        self.chunk_at(offset).map(|c| c.range.clone())
    }

    /// Every chunk of the column with this field id, in file order.
    pub fn chunks_of_field(&self, field_id: i32) -> impl Iterator<Item = &ColumnChunk> {
        self.chunks.iter().filter(move |c| c.field_id == Some(field_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a Parquet file with DuckDB (as DuckLake does, with field ids) and returns its bytes.
    fn duckdb_parquet(dir: &std::path::Path) -> Vec<u8> {
        let path = dir.join("t.parquet");
        let conn = duckdb::Connection::open_in_memory().expect("duckdb");
        conn.execute_batch(&format!(
            "COPY (SELECT i AS a, i::VARCHAR AS b, i * 2.5 AS c FROM range(5000) t(i)) TO '{}' \
             (FORMAT parquet, ROW_GROUP_SIZE 2048, FIELD_IDS {{a: 7, b: 8, c: 9}})",
            path.display()
        ))
        .expect("copy");
        std::fs::read(&path).expect("read parquet")
    }

    #[test]
    fn chunks_by_field_id_from_a_duckdb_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = duckdb_parquet(dir.path());
        let size = file.len() as u64;
        let meta_len = metadata_len_from_tail(&file[file.len() - 8..]).expect("tail");
        let range = footer_range(size, meta_len).expect("footer range");
        let layout = parse_footer(&file[range.start as usize..], size).expect("layout");
        assert_eq!(layout.footer, range);
        // 5000 rows in groups of 2048: 3 row groups × 3 columns.
        assert_eq!(layout.chunks.len(), 9);
        for id in [7, 8, 9] {
            assert_eq!(layout.chunks_of_field(id).count(), 3, "field {id}");
        }
        // Chunks are disjoint, inside the data region, and each maps back to itself.
        for w in layout.chunks.windows(2) {
            assert!(w[0].range.end <= w[1].range.start);
        }
        for c in &layout.chunks {
            assert!(c.range.start >= 4 && c.range.end <= range.start);
            assert_eq!(layout.unit_at(c.range.start), Some(c.range.clone()));
            assert_eq!(layout.unit_at(c.range.end - 1), Some(c.range.clone()));
        }
        assert_eq!(layout.unit_at(size - 1), Some(range.clone()));
        assert_eq!(layout.chunk_at(0), None, "the leading magic belongs to no chunk");
    }

    #[test]
    fn rejects_bad_footers() {
        assert!(matches!(metadata_len_from_tail(b"\x10\0\0\0PARE"), Err(LayoutError::Encrypted)));
        assert!(matches!(metadata_len_from_tail(b"\x10\0\0\0ABCD"), Err(LayoutError::BadMagic { .. })));
        assert!(matches!(metadata_len_from_tail(b"PAR1"), Err(LayoutError::FooterTooLarge { .. })));
        assert!(matches!(footer_range(100, 95), Err(LayoutError::FooterTooLarge { .. })));
        assert_eq!(footer_range(100, 10).expect("fits"), 82..100);
        // A tail claiming more metadata than the buffer holds.
        let mut buf = vec![0u8; 20];
        buf.extend_from_slice(&100u32.to_le_bytes());
        buf.extend_from_slice(b"PAR1");
        assert!(matches!(parse_footer(&buf, 1000), Err(LayoutError::FooterSizeMismatch { .. })));
        // Garbage metadata of the right length.
        let mut buf = vec![0xffu8; 20];
        buf.extend_from_slice(&20u32.to_le_bytes());
        buf.extend_from_slice(b"PAR1");
        assert!(matches!(parse_footer(&buf, 1000), Err(LayoutError::Parse(_))));
    }
}
