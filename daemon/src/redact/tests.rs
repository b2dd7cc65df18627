use std::ops::Range;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::*;

/// What a denied value looks like: it must appear nowhere a reader of the served file can get.
const MARKER: &str = "SSN-MARKER-";

/// Field ids of the test files: `id` 1, `ssn` 2, `name` 3.
const SSN: i32 = 2;

/// A file written by DuckDB as DuckLake writes them (field ids), three row groups; DuckDB adds a
/// bloom filter to dictionary-encoded columns.
fn duckdb_file(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("duck.parquet");
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    conn.execute_batch(&format!(
        "COPY (SELECT i AS id, '{MARKER}' || (i % 40) AS ssn, 'name ' || (i % 7) AS name FROM range(6000) t(i)) \
         TO '{}' (FORMAT parquet, ROW_GROUP_SIZE 2048, FIELD_IDS {{id: 1, ssn: 2, name: 3}})",
        path.display()
    ))
    .expect("copy");
    std::fs::read(&path).expect("read")
}

/// A file written by the `parquet` crate with page indexes (column and offset index) and bloom
/// filters for every column, three row groups of several pages each.
fn page_index_file() -> Vec<u8> {
    let schema = Arc::new(
        parse_message_type(
            "message m { required int64 id = 1; required binary ssn (STRING) = 2; required binary name (STRING) = 3; }",
        )
        .expect("schema"),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_bloom_filter_enabled(true)
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build(),
    );
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).expect("writer");
    for rg in 0..3i64 {
        let mut group = writer.next_row_group().expect("row group");
        let ids: Vec<i64> = (rg * 1000..(rg + 1) * 1000).collect();
        let mut col = group.next_column().expect("id").expect("column");
        col.typed::<Int64Type>().write_batch(&ids, None, None).expect("ids");
        col.close().expect("close");
        for values in [
            ids.iter().map(|i| ByteArray::from(format!("{MARKER}{i:05}").as_str())).collect::<Vec<_>>(),
            ids.iter().map(|i| ByteArray::from(format!("name {i}").as_str())).collect(),
        ] {
            let mut col = group.next_column().expect("next").expect("column");
            col.typed::<ByteArrayType>().write_batch(&values, None, None).expect("values");
            col.close().expect("close");
        }
        group.close().expect("close group");
    }
    writer.close().expect("close file");
    out
}

fn footer_of(file: &[u8]) -> &[u8] {
    let size = file.len() as u64;
    let meta_len = layout::metadata_len_from_tail(&file[file.len() - 8..]).expect("tail");
    let range = layout::footer_range(size, meta_len).expect("range");
    &file[range.start as usize..]
}

/// The served bytes of `range`, read from `file`.
fn read(file: &[u8], r: &Redacted, range: Range<u64>) -> Vec<u8> {
    r.read(range, |part| Ok::<_, ()>(file[part.start as usize..part.end as usize].to_vec())).expect("read")
}

/// The served file whole (denied chunks as zeros).
fn served(file: &[u8], r: &Redacted) -> Vec<u8> {
    read(file, r, 0..r.size())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every served byte a reader can get, in 512-byte reads (those the mount refuses add nothing).
fn readable(file: &[u8], r: &Redacted) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < r.size() {
        let end = (at + 512).min(r.size());
        if r.check(at..end).is_ok() {
            out.extend_from_slice(&read(file, r, at..end));
        }
        at = end;
    }
    out
}

#[test]
fn duckdb_files_lose_the_denied_column_statistics_and_bloom_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = duckdb_file(dir.path());
    assert!(contains(footer_of(&file), MARKER), "the original footer holds the denied column's min/max");
    let r = Redacted::new(footer_of(&file), file.len() as u64, &[SSN]).expect("redact");
    assert!(!contains(&r.footer, MARKER), "the new footer holds no denied value");
    assert!(!r.blanked.is_empty(), "DuckDB's bloom filters of the denied column are blanked");
    assert!(!contains(&readable(&file, &r), MARKER), "no readable byte holds a denied value");

    // DuckDB reads the allowed columns of the served file as of the original, with their
    // statistics; the denied column has none left, nor a bloom filter.
    let path = dir.path().join("served.parquet");
    std::fs::write(&path, served(&file, &r)).expect("write");
    let original = dir.path().join("duck.parquet");
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    let same: bool = conn
        .query_row(
            &format!(
                "SELECT (SELECT list((id, name) ORDER BY id) FROM '{}') = \
                        (SELECT list((id, name) ORDER BY id) FROM '{}')",
                path.display(),
                original.display()
            ),
            [],
            |row| row.get(0),
        )
        .expect("compare");
    assert!(same);
    let stats = |file: &std::path::Path, column: &str| -> (i64, i64, i64) {
        conn.query_row(
            &format!(
                "SELECT count(stats_min_value), count(stats_max_value), count(bloom_filter_offset) \
                 FROM parquet_metadata('{}') WHERE path_in_schema = '{column}'",
                file.display()
            ),
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("parquet_metadata")
    };
    assert_eq!(stats(&original, "ssn"), (3, 3, 3));
    assert_eq!(stats(&path, "ssn"), (0, 0, 0));
    assert_eq!(stats(&path, "name"), stats(&original, "name"));
    assert_eq!(stats(&path, "id"), stats(&original, "id"));
    let pruned: i64 = conn
        .query_row(&format!("SELECT count(*) FROM '{}' WHERE id >= 5000", path.display()), [], |row| row.get(0))
        .expect("filtered read");
    assert_eq!(pruned, 1000);
}

#[test]
fn page_indexes_of_denied_columns_are_blanked_and_the_others_still_read() {
    let file = page_index_file();
    let r = Redacted::new(footer_of(&file), file.len() as u64, &[SSN]).expect("redact");
    assert!(!contains(&r.footer, MARKER));
    assert!(!contains(&readable(&file, &r), MARKER), "no readable byte holds a denied value");
    // The original has them outside the chunks too (column indexes): the blanking hid them.
    let mut outside_chunks = file[..r.body_len() as usize].to_vec();
    for (chunk, _) in &r.denied_chunks {
        outside_chunks[chunk.start as usize..chunk.end as usize].fill(0);
    }
    assert!(contains(&outside_chunks, MARKER), "the test file puts denied values outside the chunks");

    // arrow-rs reads the served file's page indexes: the allowed columns keep theirs.
    let whole = bytes::Bytes::from(served(&file, &r));
    let meta = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&whole)
        .expect("served file with page indexes");
    for rg in 0..3 {
        let cols = meta.row_group(rg).columns();
        assert!(cols[0].column_index_offset().is_some() && cols[2].column_index_offset().is_some());
        assert!(cols[1].column_index_offset().is_none() && cols[1].bloom_filter_offset().is_none());
        assert!(cols[1].statistics().is_none() && cols[0].statistics().is_some());
        let index = meta.page_index_for_row_group(rg);
        assert!(matches!(index.column_index(0), Some(ColumnIndexMetaData::INT64(_))));
        assert!(matches!(index.column_index(2), Some(ColumnIndexMetaData::BYTE_ARRAY(_))));
        assert!(index.column_index(1).is_none());
    }
}

#[test]
fn reads_starting_in_denied_chunks_are_refused_and_reads_into_them_get_zeros() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = duckdb_file(dir.path());
    let r = Redacted::new(footer_of(&file), file.len() as u64, &[SSN]).expect("redact");
    let (chunk, column) = r.denied_chunks[0].clone();
    assert_eq!(column, "ssn");
    assert_eq!(r.check(chunk.start..chunk.start + 1), Err(DeniedRead { column: "ssn".into() }));
    assert_eq!(r.check(chunk.end - 1..chunk.end + 10).map_err(|d| d.column), Err("ssn".into()));
    assert!(r.check(0..4).is_ok());
    // A read from before the chunk into it (a page header read, a coalesced prefetch): the
    // denied bytes are zeros and never fetched.
    let mut fetched = Vec::new();
    let got = r
        .read(chunk.start - 16..chunk.end + 16, |part| {
            fetched.push(part.clone());
            Ok::<_, ()>(file[part.start as usize..part.end as usize].to_vec())
        })
        .expect("read");
    assert_eq!(fetched, vec![chunk.start - 16..chunk.start, chunk.end..chunk.end + 16]);
    assert_eq!(got[..16], file[chunk.start as usize - 16..chunk.start as usize]);
    assert!(got[16..got.len() - 16].iter().all(|b| *b == 0));
    // A read across the body's end and into the new footer, and one past the served end.
    let whole = served(&file, &r);
    let from = r.body_len() - 3;
    assert_eq!(read(&file, &r, from..from + 10), whole[from as usize..from as usize + 10]);
    assert_eq!(read(&file, &r, r.size() - 4..r.size() + 100), b"PAR1");
    assert!(read(&file, &r, r.size() + 5..r.size() + 100).is_empty());
    assert!(r.size() < file.len() as u64, "the new footer is smaller");
}

#[test]
fn nothing_denied_in_the_file_changes_nothing_but_the_encoding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = duckdb_file(dir.path());
    let r = Redacted::new(footer_of(&file), file.len() as u64, &[99]).expect("redact");
    assert!(r.denied_chunks.is_empty() && r.blanked.is_empty());
    assert!(contains(&r.footer, MARKER), "allowed statistics stay");
}

#[test]
fn bad_footers_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = duckdb_file(dir.path());
    let mut footer = footer_of(&file).to_vec();
    let n = footer.len();
    footer[n - 1] = b'E';
    assert!(matches!(
        Redacted::new(&footer, file.len() as u64, &[SSN]),
        Err(RedactError::Layout(LayoutError::Encrypted))
    ));
    let mut garbage = vec![0xffu8; 64];
    garbage.extend_from_slice(&64u32.to_le_bytes());
    garbage.extend_from_slice(b"PAR1");
    assert!(Redacted::new(&garbage, 1000, &[SSN]).is_err());
}

#[test]
fn redactions_are_made_once_per_object_and_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = duckdb_file(dir.path());
    let cache = Redactions::new();
    let key = LakeKey::parse("main/t/a.parquet").expect("key");
    let ssn: Arc<[i32]> = Arc::from(vec![SSN]);
    let mut made = 0;
    for _ in 0..3 {
        cache
            .get_or_make(&key, &ssn, || {
                made += 1;
                Redacted::new(footer_of(&file), file.len() as u64, &ssn)
            })
            .expect("redaction");
    }
    assert_eq!(made, 1);
    let other: Arc<[i32]> = Arc::from(vec![SSN, 3]);
    let both = cache.get_or_make(&key, &other, || Redacted::new(footer_of(&file), file.len() as u64, &other));
    assert_eq!(both.expect("second policy").denied_chunks.len(), 6);
}
