//! The chunk cache against a real S3-compatible server (`s3s-fs` on 127.0.0.1): fetch, hit,
//! widening, single-flight, budget, restart, corruption, deleted objects, read-through.
//! Reads go through the blocking API from plain threads, as the FUSE layer calls it.

mod cache_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use cache_support::{S3Server, allocated_bytes, data_files, pattern, runtime, sha256, upload};
use warmlake_daemon::cache::{Cache, CacheConfig, ObjectRef, ReadOptions};
use warmlake_daemon::layout;

const MIB: u64 = 1 << 20;

fn config(dir: &std::path::Path) -> CacheConfig {
    CacheConfig { min_free_disk: 0, ..CacheConfig::new(dir) }
}

/// Writes `select` with DuckDB as a Parquet file with field ids (as DuckLake writes them: `options`
/// holds `ROW_GROUP_SIZE` and `FIELD_IDS`), uploads it as `key`, and returns its bytes, its
/// footer size and its layout.
fn upload_parquet(
    rt: &tokio::runtime::Runtime,
    store: &warmlake_daemon::store::Store,
    key: &str,
    select: &str,
    options: &str,
) -> (Vec<u8>, u64, layout::Layout) {
    let work = tempfile::tempdir().expect("work");
    let file = work.path().join("t.parquet");
    duckdb::Connection::open_in_memory()
        .expect("duckdb")
        .execute_batch(&format!("COPY ({select}) TO '{}' (FORMAT parquet, {options})", file.display()))
        .expect("write parquet");
    let source = std::fs::read(&file).expect("read parquet");
    upload(rt, store, key, &source);
    let size = source.len() as u64;
    let footer_size = layout::metadata_len_from_tail(&source[source.len() - 8..]).expect("tail");
    let footer = layout::footer_range(size, footer_size).expect("range");
    let local = layout::parse_footer(&source[footer.start as usize..], size).expect("layout");
    (source, footer_size, local)
}

/// Reads all of `obj` in `step`-byte reads through the cache.
fn read_all(cache: &Cache, obj: &ObjectRef, step: u64, opts: ReadOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(obj.size as usize);
    let mut at = 0;
    while at < obj.size {
        let b = cache.read_blocking(obj, at, step, opts).expect("read");
        assert!(!b.is_empty(), "short read at {at}");
        out.extend_from_slice(&b);
        at += b.len() as u64;
    }
    out
}

#[test]
fn first_read_fetches_second_hits_and_bytes_match() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    let source = pattern(5 * MIB as usize + 123, 1);
    upload(&rt, &store, "obj.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "obj.bin", source.len() as u64).with_table("web.events");

    let got = cache.read_blocking(&obj, 1000, 100, ReadOptions::default()).expect("first read");
    assert_eq!(&got[..], &source[1000..1100]);
    let s = cache.stats();
    assert_eq!((s.totals.misses, s.totals.hits, s.totals.requests), (1, 0, 1));
    assert_eq!(s.totals.bytes_fetched, 2 * MIB, "widened to one aligned block");
    assert_eq!(counter.gets(), 1);

    let again = cache.read_blocking(&obj, 1000, 100, ReadOptions::default()).expect("second read");
    assert_eq!(&again[..], &source[1000..1100]);
    let s = cache.stats();
    assert_eq!((s.totals.misses, s.totals.hits), (1, 1));
    assert_eq!(s.totals.bytes_served_from_cache, 100);
    assert_eq!(counter.gets(), 1, "a hit makes no request");
    assert_eq!(s.per_table["web.events"].hits, 1);

    // The whole object, in FUSE-sized reads, byte for byte; and past the end reads nothing.
    let all = read_all(&cache, &obj, 128 * 1024, ReadOptions::default());
    assert_eq!(sha256(&all), sha256(&source));
    assert!(cache.read_blocking(&obj, obj.size, 10, ReadOptions::default()).expect("eof").is_empty());
    assert_eq!(cache.stats().bytes_stored, source.len() as u64);
    assert_eq!(counter.bytes_requested(), source.len() as u64, "no byte fetched twice");
}

#[test]
fn parquet_miss_widens_to_the_column_chunk() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    // A DuckDB-written Parquet file with field ids, as DuckLake writes them.
    let (source, footer_size, local) = upload_parquet(
        &rt,
        &store,
        "t.parquet",
        "SELECT i AS id, md5(i::VARCHAR) AS h, i * 0.5 AS x FROM range(200000) t(i)",
        "ROW_GROUP_SIZE 50000, FIELD_IDS {id: 1, h: 2, x: 3}",
    );
    let size = source.len() as u64;
    let chunk = local.chunks_of_field(2).nth(1).expect("second chunk of h").range.clone();

    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let obj = ObjectRef::parquet(store, "t.parquet", size, Some(footer_size), false).with_table("t.t");
    let mid = chunk.start + (chunk.end - chunk.start) / 2;
    let got = cache.read_blocking(&obj, mid, 10, ReadOptions::default()).expect("read");
    assert_eq!(&got[..], &source[mid as usize..mid as usize + 10]);
    let present = cache.present(&obj);
    assert!(present.contains(&chunk), "the whole chunk {chunk:?} is cached: {present:?}");
    assert!(present.contains(&local.footer), "the footer is cached");
    assert_eq!(counter.gets(), 2, "one GET for the footer, one for the chunk");
    // The chunk to the end of its last page (a reader of the chunk reads that page), and the
    // footer: nothing else.
    let exact = (chunk.end - chunk.start) + (local.footer.end - local.footer.start);
    assert!(
        (exact..exact + 64 * 1024).contains(&present.len_bytes()) && present.ranges().len() == 2,
        "{exact} bytes and at most the rest of a page: {present:?}"
    );
    // Pieces inside the chunk are attributed to its column (field id 2) and the table.
    let pieces = cache.pieces(&obj);
    let in_chunk: Vec<_> = pieces.iter().filter(|p| p.range.start >= chunk.start && p.range.end <= chunk.end).collect();
    assert!(!in_chunk.is_empty());
    assert!(in_chunk.iter().all(|p| p.column_id == Some(2) && p.table.as_deref() == Some("t.t")), "{in_chunk:?}");

    // A drifted read elsewhere in the same chunk hits.
    let got = cache.read_blocking(&obj, chunk.start + 3, 50, ReadOptions::default()).expect("read");
    assert_eq!(&got[..], &source[chunk.start as usize + 3..chunk.start as usize + 53]);
    assert_eq!(counter.gets(), 2);

    // Prefetch of every chunk of column x fetches exactly those chunks.
    let x: Vec<_> = local.chunks_of_field(3).map(|c| c.range.clone()).collect();
    cache.prefetch_blocking(&obj, &x).expect("prefetch");
    let present = cache.present(&obj);
    assert!(x.iter().all(|r| present.contains(r)));
    let all = read_all(&cache, &obj, 64 * 1024, ReadOptions::default());
    assert_eq!(sha256(&all), sha256(&source));
}

#[test]
fn concurrent_misses_of_one_range_make_one_request() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    let source = pattern(3 * MIB as usize, 2);
    upload(&rt, &store, "hot.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "hot.bin", source.len() as u64);
    let n = 16;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (cache, obj, barrier) = (cache.clone(), obj.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let off = 4096 + (i as u64) * 100; // different offsets, same block
                (off, cache.read_blocking(&obj, off, 1000, ReadOptions::default()).expect("read"))
            })
        })
        .collect();
    for h in handles {
        let (off, b) = h.join().expect("reader");
        assert_eq!(&b[..], &source[off as usize..off as usize + 1000]);
    }
    assert_eq!(counter.gets(), 1, "{n} concurrent misses of one block made one GET");
}

#[test]
fn budget_holds_while_reading_more_than_the_budget() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, _) = server.counting_store();
    let source = pattern(40 * MIB as usize, 3);
    upload(&rt, &store, "big.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let budget = 6 * MIB;
    let cfg = CacheConfig { max_cache: budget, block_size: MIB, ..config(dir.path()) };
    let cache = Cache::open(cfg, rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "big.bin", source.len() as u64);

    let done = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicU64::new(0));
    let max_disk = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (cache, done, max_seen, max_disk, samples) =
            (cache.clone(), done.clone(), max_seen.clone(), max_disk.clone(), samples.clone());
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let s = cache.stats();
                max_seen.fetch_max(s.bytes_stored + s.bytes_reserved, Ordering::Relaxed);
                max_disk.fetch_max(allocated_bytes(&dir), Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        })
    };
    // Four readers over different quarters, so writes and evictions overlap.
    let quarter = source.len() as u64 / 4;
    let readers: Vec<_> = (0..4u64)
        .map(|q| {
            let (cache, obj) = (cache.clone(), obj.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut at = q * quarter;
                while at < (q + 1) * quarter {
                    let b = cache.read_blocking(&obj, at, 256 * 1024, ReadOptions::default()).expect("read");
                    out.extend_from_slice(&b);
                    at += b.len() as u64;
                }
                (q, out)
            })
        })
        .collect();
    for r in readers {
        let (q, out) = r.join().expect("reader");
        let q = q as usize;
        assert!(out == source[q * quarter as usize..(q + 1) * quarter as usize], "quarter {q} differs");
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let s = cache.stats();
    assert!(samples.load(Ordering::Relaxed) > 0);
    assert!(max_seen.load(Ordering::Relaxed) <= budget, "budget exceeded: {}", max_seen.load(Ordering::Relaxed));
    // Data files never held more than the budget (one filesystem block of rounding per file).
    assert!(max_disk.load(Ordering::Relaxed) <= budget + 4096, "disk use {}", max_disk.load(Ordering::Relaxed));
    assert!(s.bytes_stored <= budget && s.bytes_stored > 0);
    assert!(s.totals.bytes_evicted >= source.len() as u64 - budget - 4 * MIB, "evicted {}", s.totals.bytes_evicted);
}

#[test]
fn no_free_disk_degrades_to_read_through() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, _) = server.counting_store();
    let source = pattern(MIB as usize, 4);
    upload(&rt, &store, "o.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let cfg = CacheConfig { min_free_disk: u64::MAX / 2, ..CacheConfig::new(dir.path()) };
    let cache = Cache::open(cfg, rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "o.bin", source.len() as u64);
    let got = cache.read_blocking(&obj, 0, MIB, ReadOptions::default()).expect("read");
    assert!(got[..] == source[..]);
    let s = cache.stats();
    assert_eq!(s.bytes_stored, 0);
    assert_eq!(s.totals.bytes_not_stored, MIB);
}

#[test]
fn restart_keeps_the_cache() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    let source = pattern(4 * MIB as usize + 7, 5);
    upload(&rt, &store, "keep.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let obj = ObjectRef::new(store, "keep.bin", source.len() as u64);
    {
        let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
        read_all(&cache, &obj, MIB, ReadOptions::default());
    }
    let fetched = counter.gets();
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("reopen");
    // One process per cache folder: a second opener is refused while this one holds it.
    match Cache::open(config(dir.path()), rt.handle().clone()) {
        Err(e @ warmlake_daemon::cache::CacheError::Locked { .. }) => assert!(e.to_string().contains("in use"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("two caches opened the same folder"),
    }
    assert_eq!(cache.stats().bytes_stored, source.len() as u64);
    let all = read_all(&cache, &obj, 300_000, ReadOptions::default());
    assert_eq!(sha256(&all), sha256(&source));
    assert_eq!(counter.gets(), fetched, "served from the cache after restart");
    assert_eq!(cache.stats().totals.misses, 0);
    // Private permissions.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("objects")), 0o700);
    for f in data_files(dir.path()) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn a_corrupted_byte_is_detected_and_refetched() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    let source = pattern(2 * MIB as usize, 6);
    upload(&rt, &store, "c.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "c.bin", source.len() as u64);
    read_all(&cache, &obj, MIB, ReadOptions::default());
    assert_eq!(counter.gets(), 1);
    // Flip one byte in the data file behind the cache's back.
    let files = data_files(dir.path());
    assert_eq!(files.len(), 1);
    let at = 700_000u64;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&files[0]).expect("data file");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).expect("read byte");
        f.write_all_at(&[b[0] ^ 0xff], at).expect("corrupt");
    }
    let got = cache.read_blocking(&obj, at - 10, 20, ReadOptions::default()).expect("read");
    assert_eq!(&got[..], &source[at as usize - 10..at as usize + 10], "the corrupt byte is never served");
    let s = cache.stats();
    assert_eq!(s.totals.corrupt_pieces, 1);
    assert_eq!(counter.gets(), 2, "the dropped piece was refetched");
    // Refetched and stored again: the next read hits and verifies.
    let all = read_all(&cache, &obj, MIB, ReadOptions::default());
    assert_eq!(sha256(&all), sha256(&source));
    assert_eq!(counter.gets(), 2);
}

#[test]
fn a_deleted_object_is_a_clear_not_found() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, _) = server.counting_store();
    let source = pattern(1000, 7);
    upload(&rt, &store, "gone.bin", &source);
    rt.block_on(object_store::ObjectStoreExt::delete(
        store.object_store().as_ref(),
        &store.path("gone.bin").expect("key"),
    ))
    .expect("delete");
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "gone.bin", source.len() as u64);
    let err = cache.read_blocking(&obj, 0, 10, ReadOptions::default()).expect_err("gone");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.errno(), libc::ENOENT);
    assert!(err.to_string().contains("gone.bin"), "the message names the object: {err}");
}

#[test]
fn read_through_stores_nothing() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    let source = pattern(3 * MIB as usize, 8);
    upload(&rt, &store, "secret.bin", &source);
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let obj = ObjectRef::new(store, "secret.bin", source.len() as u64);
    let all = read_all(&cache, &obj, 128 * 1024, ReadOptions::read_through());
    assert_eq!(sha256(&all), sha256(&source));
    let s = cache.stats();
    assert_eq!(s.bytes_stored, 0);
    assert_eq!(s.totals.bytes_not_stored, s.totals.bytes_fetched);
    assert!(counter.gets() > 0);
    assert_eq!(allocated_bytes(dir.path()), 0, "no data file holds a byte");
}

#[test]
fn eviction_apis_free_bytes() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, _) = server.counting_store();
    let a = pattern(2 * MIB as usize, 9);
    let b = pattern(2 * MIB as usize, 10);
    upload(&rt, &store, "a.bin", &a);
    upload(&rt, &store, "b.bin", &b);
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let oa = ObjectRef::new(store.clone(), "a.bin", a.len() as u64).with_table("s.a");
    let ob = ObjectRef::new(store, "b.bin", b.len() as u64).with_table("s.b");
    read_all(&cache, &oa, MIB, ReadOptions::default());
    read_all(&cache, &ob, MIB, ReadOptions::default());
    assert_eq!(cache.stats().bytes_stored, 4 * MIB);
    assert_eq!(cache.evict_object(&oa).expect("evict a"), 2 * MIB);
    assert_eq!(cache.stats().bytes_stored, 2 * MIB);
    assert_eq!(cache.stats().per_table["s.a"].bytes_evicted, 2 * MIB);
    assert_eq!(cache.evict_older_than(std::time::Duration::from_secs(3600)).expect("max age"), 0);
    assert_eq!(cache.evict_older_than(std::time::Duration::ZERO).expect("max age 0"), 2 * MIB);
    assert_eq!(cache.stats().bytes_stored, 0);
    assert_eq!(allocated_bytes(dir.path()), 0);
    read_all(&cache, &ob, MIB, ReadOptions::default());
    assert_eq!(cache.evict_all().expect("evict all"), 2 * MIB);
    assert_eq!(cache.stats().objects, 0);
}

#[test]
fn sequential_and_column_readers_are_fetched_ahead_of_with_no_byte_of_another_column() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let (store, counter) = server.counting_store();
    // 8 columns × 40 row groups: 320 small chunks, as a wide table's files have.
    let columns: Vec<String> = (1..=8).map(|i| format!("md5((i * {i})::VARCHAR) AS c{i}")).collect();
    let ids: Vec<String> = (1..=8).map(|i| format!("c{i}: {i}")).collect();
    let (source, footer_size, local) = upload_parquet(
        &rt,
        &store,
        "w.parquet",
        &format!("SELECT {} FROM range(80000) t(i)", columns.join(", ")),
        &format!("ROW_GROUP_SIZE 2000, FIELD_IDS {{{}}}", ids.join(", ")),
    );
    let size = source.len() as u64;
    assert!(local.chunks.len() >= 300, "{} chunks", local.chunks.len());

    // One column, chunk by chunk in page-sized reads, as DuckDB reads a column through the
    // mount: no sequential run, so exactly its chunks (and the footer) are fetched; the reader
    // going down the column gets its next chunks fetched ahead, in parallel, so it waits for
    // a few of them rather than for each.
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let before = counter.gets();
    let obj = ObjectRef::parquet(store.clone(), "w.parquet", size, Some(footer_size), false);
    let column: Vec<_> = local.chunks_of_field(3).map(|c| c.range.clone()).collect();
    for c in &column {
        let mut at = c.start / 4096 * 4096;
        while at < c.end {
            cache.read_blocking(&obj, at, 4096, ReadOptions::default()).expect("read");
            at += 4096;
        }
    }
    let needed: u64 = column.iter().map(|c| c.end - c.start).sum::<u64>() + (local.footer.end - local.footer.start);
    let fetched = cache.stats().totals.bytes_fetched;
    assert!(fetched < needed + needed / 10, "a column reader gets its chunks, not more: {fetched} of {needed}");
    let misses = cache.stats().totals.misses;
    eprintln!(
        "column reader: {} GETs, {misses} reads that waited, for {} chunks",
        counter.gets() - before,
        column.len()
    );
    assert!(misses * 2 < column.len() as u64, "{misses} reads waited for a fetch, for {} chunks", column.len());

    // The whole file, in order, in page-sized reads (`cp`, a checksum): the reads ahead make
    // it a few dozen requests rather than one or two per chunk, and the bytes are the file's.
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = Cache::open(config(dir.path()), rt.handle().clone()).expect("open");
    let before = counter.gets();
    let all = read_all(&cache, &obj, 4096, ReadOptions::default());
    assert_eq!(sha256(&all), sha256(&source));
    let gets = counter.gets() - before;
    assert!(gets * 4 < local.chunks.len() as u64, "{gets} GETs for {} chunks", local.chunks.len());
    assert!(
        cache.stats().totals.bytes_fetched <= size + size / 50,
        "no byte fetched twice: {:?}",
        cache.stats().totals
    );
}
