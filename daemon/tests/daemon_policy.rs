//! The governance policy enforced end to end: a lake in a real S3-compatible server, the daemon
//! with its mount, cache, mirror and SQL socket, and policies that deny a column (by tag),
//! make tables read-through, then tighten while files are open, then deny everything.
//!
//! The sentinel checks grep the raw bytes of every file under the cache and state folders for
//! values of what the policy forbids to store. The lake is written with plain, uncompressed
//! Parquet pages, and the test first checks the markers are really in the source files (and an
//! allowed value really is in the cache), so a marker that is absent proves something.

mod cache_support;
mod fixtures;
mod remote_lake;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use remote_lake::{RemoteLake, sql_value};
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;

/// A value of the denied column `sales.customers.email` (tagged `pii = true`).
const EMAIL: &[u8] = b"@example.com";
/// A value of `sales.orders.comment` (read-through table, in Parquet files).
const COMMENT: &[u8] = b"note 1";
/// A value of `sales.returns.reason` (read-through table, rows inlined in the catalog).
const REASON: &[u8] = b"wrong size";
/// A value of `web.events.kind`, which may be cached (until the policy tightens).
const KIND: &[u8] = b"click";

const POLICY: &str = "[[rule]]\ntag = { pii = \"true\" }\naction = \"deny\"\n\n\
                      [[rule]]\nmatch = \"sales.orders\"\naction = \"read-through\"\n\n\
                      [[rule]]\nmatch = \"sales.returns\"\naction = \"read-through\"\n";

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// The files under `dirs` whose raw bytes contain `needle`.
fn holding(dirs: &[PathBuf], needle: &[u8]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    files
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)))
        .collect()
}

fn read_tree(dir: &Path) -> (usize, usize) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    let (mut ok, mut denied) = (0, 0);
    for f in files {
        match std::fs::read(&f) {
            Ok(_) => ok += 1,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied += 1,
            Err(e) => panic!("{}: {e}", f.display()),
        }
    }
    (ok, denied)
}

#[test]
fn sentinels_never_reach_the_disk() {
    let spec = LakeSpec { events_rows: 5_000, events_files: 2, plain: true, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("sentinels_never_reach_the_disk", &spec) else { return };
    let policy_file = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy_file, POLICY).expect("policy");
    let cfg = remote.config_with(&format!("[policy]\nfile = \"{}\"\n", policy_file.display()));
    let mnt = remote.mnt();
    let private = [cfg.cache_dir.clone(), cfg.state_dir.clone()];
    let rt = &remote.rt;

    // The markers are really in the source (so their absence below means something).
    let source = [remote.lake.data_dir.clone()];
    for marker in [EMAIL, COMMENT, KIND] {
        assert!(!holding(&source, marker).is_empty(), "{} not in the source files", String::from_utf8_lossy(marker));
    }
    assert!(!holding(&[remote.lake.catalogs[0].clone()], REASON).is_empty(), "inlined reason in the catalog");

    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    assert!(daemon.status().policy.contains("3 rules"), "{}", daemon.status().policy);

    // Prewarm everything: what may not be stored is skipped (and said so), the rest is fetched.
    let everything = warmlake_daemon::prewarm::all_columns(&["*.*"]).expect("request");
    let report = rt
        .block_on(daemon.prewarm(&everything, &|_| {}, &tokio_util::sync::CancellationToken::new()))
        .expect("prewarm");
    let skipped: Vec<&str> = report.skipped.iter().map(|(t, _)| t.as_str()).collect();
    for t in ["sales.customers", "sales.orders", "sales.returns"] {
        assert!(skipped.contains(&t), "{t} skipped: {report:?}");
    }
    assert!(report.tables.contains(&"web.events".to_string()) && report.progress.bytes_fetched > 0, "{report:?}");

    // Read everything the mount shows. Files of sales.customers hold the denied email column:
    // its bytes are never served, but the columns that may be read still work through DuckDB.
    let (ok, _) = read_tree(&mnt.join("sales"));
    assert!(ok > 0, "orders files read");
    assert!(!holds(&readable_through_the_mount(&mnt.join("sales")).0, EMAIL), "no email through the mount");
    let (ok, _) = read_tree(&mnt.join("web"));
    assert!(ok > 0);
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    db.execute_batch(&std::fs::read_to_string(mnt.join("lake.sql")).expect("lake.sql")).expect("views");
    let names: i64 = db
        .query_row("SELECT count(DISTINCT name) FROM sales.customers", [], |r| r.get(0))
        .expect("allowed columns of a table with a denied column");
    assert_eq!(names, 97);
    assert!(db.execute_batch("SELECT email FROM sales.customers").is_err(), "email is not in the view");
    let reasons: String = db
        .query_row("SELECT string_agg(reason, ',' ORDER BY return_id) FROM sales.returns", [], |r| r.get(0))
        .expect("read-through inlined rows are served");
    assert!(reasons.contains("wrong size"), "{reasons}");

    // The SQL socket: same views, no email column, read-through tables readable.
    let err = sql_value(rt, &cfg, "SELECT email FROM sales.customers").expect_err("denied column");
    assert!(err.to_lowercase().contains("email"), "{err}");
    assert_eq!(sql_value(rt, &cfg, "SELECT count(*) FROM sales.orders").expect("orders").as_deref(), Some("7400"));
    assert_eq!(
        sql_value(rt, &cfg, "SELECT reason FROM sales.returns WHERE return_id = 2").expect("returns").as_deref(),
        Some("wrong size")
    );
    daemon.stop().expect("stop");

    // A restart, everything read again (from the store where nothing may be stored).
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("restart");
    read_tree(&mnt.join("sales"));
    read_tree(&mnt.join("web"));
    for marker in [EMAIL, COMMENT, REASON] {
        let found = holding(&private, marker);
        assert!(found.is_empty(), "{} on disk in {found:?}", String::from_utf8_lossy(marker));
    }
    // ... while allowed data is cached.
    assert!(!holding(std::slice::from_ref(&cfg.cache_dir), KIND).is_empty(), "web.events is cached");
    let stats = daemon.status().cache.expect("cache");
    assert!(stats.per_table.get("sales.orders").is_some_and(|c| c.bytes_not_stored > 0), "{stats:?}");

    // The policy tightens while a file is open: web.* denied.
    let events = std::fs::read_dir(mnt.join("web/events"))
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("an events file");
    let open = std::fs::File::open(&events).expect("open before the change");
    std::fs::write(&policy_file, format!("{POLICY}\n[[rule]]\nmatch = \"web.*\"\naction = \"deny\"\n"))
        .expect("edit policy");
    daemon.reload_policy().expect("reload");
    let mut buf = vec![0u8; 4096];
    use std::os::unix::fs::FileExt as _;
    let err = open.read_at(&mut buf, 0).expect_err("an open file obeys the new policy");
    // EACCES from the read itself, or ENOENT when the kernel first revalidates the (now
    // invalidated) attributes of a path the tree no longer has: either way, no bytes.
    assert!(matches!(err.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound), "{err}");
    assert!(std::fs::File::open(&events).is_err(), "and cannot be opened again");
    assert!(!mnt.join("web").exists(), "web is no longer shown");
    assert!(holding(std::slice::from_ref(&cfg.cache_dir), KIND).is_empty(), "web.events purged from the cache");
    assert!(daemon.status().policy_purged_bytes > 0);

    // Nothing of the lake may stay: local.mode = "deny".
    std::fs::write(&policy_file, "[local]\nmode = \"deny\"\n").expect("deny all");
    daemon.reload_policy().expect("reload");
    assert!(!cfg.mirror_path().exists(), "mirror deleted");
    assert_eq!(daemon.status().cache.expect("cache").bytes_stored, 0);
    assert!(!mnt.join("sales").exists());
    assert!(sql_value(rt, &cfg, "SELECT count(*) FROM sales.orders").is_err(), "no views");
    daemon.stop().expect("stop");
}

#[test]
fn policy_edits_apply_while_running_and_bad_edits_keep_the_last_good() {
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("policy_edits_apply_while_running_and_bad_edits_keep_the_last_good", &spec)
    else {
        return;
    };
    let policy_file = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy_file, "").expect("empty policy");
    let cfg = remote.config_with(&format!("[policy]\nfile = \"{}\"\n", policy_file.display()));
    let mnt = remote.mnt();
    let daemon = Daemon::start(cfg.clone(), remote.rt.handle().clone()).expect("daemon starts");
    assert!(mnt.join("sales/customers").is_dir());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = remote.rt.spawn(daemon.run(async move {
        let _ = stopped.await;
    }));
    // Failures are collected, not raised, so the daemon is always stopped and unmounted.
    let failures = std::cell::RefCell::new(Vec::new());
    let eventually = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            if Instant::now() > deadline {
                failures.borrow_mut().push(format!("{what} did not happen within 10 s"));
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let status = || -> serde_json::Value {
        std::fs::read(mnt.join(".warmlake/status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };

    std::fs::write(&policy_file, "[[rule]]\nmatch = \"sales.customers\"\naction = \"deny\"\n").expect("edit");
    eventually("hiding sales.customers", &|| !mnt.join("sales/customers").exists());

    // A malformed edit: reported with its line, the last good policy stays.
    std::fs::write(&policy_file, "[[rule]]\nmatch = \"sales.customers\"\naction = \"dney\"\n").expect("typo");
    eventually("reporting the malformed policy", &|| {
        status()["policy_error"].as_str().is_some_and(|e| e.contains("policy.toml:3:"))
    });
    if mnt.join("sales/customers").exists() {
        failures.borrow_mut().push("the last good policy no longer applies".into());
    }

    std::fs::write(&policy_file, "").expect("allow again");
    eventually("showing sales.customers again", &|| mnt.join("sales/customers").is_dir());
    eventually("clearing the error", &|| status()["policy_error"].is_null());

    // A scheduled prewarm shows in status as the next one planned.
    std::fs::write(&policy_file, "[[prewarm]]\nname = \"nightly\"\ncron = \"0 0 3 * * *\"\ntables = [\"sales.*\"]\n")
        .expect("schedule");
    eventually("planning the nightly prewarm", &|| status()["next_prewarm"][1][0] == "nightly");
    let last_status = status();

    let _ = stop.send(());
    remote.rt.block_on(running).expect("join").expect("daemon stops cleanly");
    let failures = failures.into_inner();
    assert!(failures.is_empty(), "{failures:?}; status: {last_status}");
}

/// The values of `sales.customers` as the generator writes them (`customers_columns`), written
/// again by another writer: the `parquet` crate, with four row groups, page indexes (column and
/// offset index per column) and bloom filters on every column, uncompressed.
fn customers_by_arrow_rs() -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message duckdb_schema { optional int32 customer_id = 1; optional binary name (STRING) = 2; \
         optional binary email (STRING) = 3; optional binary region (STRING) = 4; }",
    )
    .expect("schema");
    let props = WriterProperties::builder()
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_bloom_filter_enabled(true)
        .set_dictionary_enabled(false)
        .set_data_page_row_count_limit(5)
        .set_write_batch_size(5)
        .build();
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema.into(), props.into()).expect("writer");
    for rows in [0..25, 25..50, 50..75, 75..97] {
        let ids: Vec<i32> = rows.collect();
        let defined = vec![1i16; ids.len()];
        let mut group = writer.next_row_group().expect("row group");
        let mut col = group.next_column().expect("id").expect("column");
        col.typed::<Int32Type>().write_batch(&ids, Some(&defined), None).expect("ids");
        col.close().expect("close");
        let texts: [fn(i32) -> String; 3] = [
            |i| format!("Customer {i}"),
            |i| format!("user{i}@example.com"),
            |i| ["eu", "us", "apac"][(i % 3) as usize].to_string(),
        ];
        for text in texts {
            let values: Vec<ByteArray> = ids.iter().map(|i| ByteArray::from(text(*i).as_str())).collect();
            let mut col = group.next_column().expect("next").expect("column");
            col.typed::<ByteArrayType>().write_batch(&values, Some(&defined), None).expect("values");
            col.close().expect("close");
        }
        group.close().expect("close group");
    }
    writer.close().expect("close file");
    out
}

/// Everything a reader gets of the files under `dir` (but `.snapshots`) through the mount: each file read in
/// 4 KiB blocks (a block the mount refuses adds nothing) and its footer read as readers do
/// (the last 8 bytes, then the metadata before them). Returns the bytes and how many blocks
/// were refused.
fn readable_through_the_mount(dir: &Path) -> (Vec<u8>, usize) {
    use std::os::unix::fs::FileExt as _;
    let mut files = Vec::new();
    files_under(dir, &mut files);
    // Kept snapshots are walked by the caller, table by table.
    files.retain(|f| !f.strip_prefix(dir).is_ok_and(|rel| rel.starts_with(".snapshots")));
    let (mut got, mut refused) = (Vec::new(), 0);
    for f in files {
        let file = std::fs::File::open(&f).expect("open");
        let size = file.metadata().expect("stat").len();
        let mut block = vec![0u8; 4096];
        let mut at = 0;
        while at < size {
            match file.read_at(&mut block, at) {
                Ok(0) => panic!("{}: no bytes at {at} of {size}", f.display()),
                Ok(n) => got.extend_from_slice(&block[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => refused += 1,
                Err(e) => panic!("{}: {e}", f.display()),
            }
            at += 4096;
        }
        if f.extension().is_some_and(|x| x == "parquet") && size >= 12 {
            let mut tail = [0u8; 8];
            file.read_exact_at(&mut tail, size - 8).expect("footer tail");
            assert_eq!(&tail[4..], b"PAR1", "{}", f.display());
            let meta_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
            let mut footer = vec![0u8; meta_len as usize];
            file.read_exact_at(&mut footer, size - 8 - meta_len).expect("the footer is readable");
            got.extend_from_slice(&footer);
        }
    }
    (got, refused)
}

fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_denied_byte_through_the_mount_or_the_socket() {
    let spec = LakeSpec { events_rows: 2_000, events_files: 1, row_group_rows: 25, plain: true, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("no_denied_byte_through_the_mount_or_the_socket", &spec) else { return };
    // sales.customers written again by arrow-rs (page indexes, bloom filters, four row groups),
    // in the store and in the catalog's sizes; its rows are the same.
    let snapshot = remote.snapshot();
    let customers = snapshot.tables.iter().find(|t| t.name == "customers").expect("customers");
    let file = &customers.files[0];
    let original = std::fs::read(remote.lake.data_dir.join(file.key.as_str())).expect("original file");
    let rewritten = customers_by_arrow_rs();
    cache_support::upload(&remote.rt, &remote.store, file.key.as_str(), &rewritten);
    let meta_len = u32::from_le_bytes(rewritten[rewritten.len() - 8..rewritten.len() - 4].try_into().expect("4 bytes"));
    let db = rusqlite::Connection::open(&remote.lake.catalogs[0]).expect("catalog");
    let name = file.key.as_str().rsplit('/').next().expect("name");
    let changed = db
        .execute(
            "UPDATE ducklake_data_file SET file_size_bytes = ?1, footer_size = ?2 WHERE path = ?3",
            rusqlite::params![rewritten.len() as i64, i64::from(meta_len), name],
        )
        .expect("update the catalog");
    assert_eq!(changed, 1);
    drop(db);
    // Markers of the denied column are in the new file's footer and page indexes; an allowed
    // value is too.
    assert!(holds(&rewritten[rewritten.len() - 8 - meta_len as usize..], EMAIL), "email statistics in the footer");
    assert!(holds(&original, EMAIL) && holds(&rewritten, b"Customer 1"));

    let policy_file = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy_file, POLICY).expect("policy");
    // Every snapshot kept, for time travel to before email was tagged.
    let cfg = remote
        .config_with(&format!("[policy]\nfile = \"{}\"\n[refresh]\nkeep_snapshots = 1000\n", policy_file.display()));
    let mnt = remote.mnt();
    let rt = &remote.rt;
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");

    // The mount: every readable byte of every file of the current snapshot, and of the
    // customers' files in every kept one (the same files, governed per snapshot; the other
    // tables' files are the same objects as in the current snapshot, read through each time).
    let (mut bytes, _) = readable_through_the_mount(&mnt);
    for id in daemon.status().kept_snapshots {
        let folder = mnt.join(format!(".snapshots/{id}/sales/customers"));
        if folder.exists() {
            bytes.extend(readable_through_the_mount(&folder).0);
        }
    }
    assert!(!holds(&bytes, EMAIL), "a denied value is readable through the mount");
    assert!(holds(&bytes, b"Customer 0"), "allowed statistics are readable");
    // The file is served shorter (its new footer), and DuckDB reads its allowed columns, page
    // indexes and all, as the lake has them.
    let served = mnt.join("sales/customers").join(&file.name);
    assert!(std::fs::metadata(&served).expect("stat").len() < rewritten.len() as u64);
    // A read where an email chunk starts is refused; one that runs into it from before gets
    // zeros for it.
    let layout = warmlake_daemon::layout::parse_footer(
        &rewritten[rewritten.len() - 8 - meta_len as usize..],
        rewritten.len() as u64,
    )
    .expect("layout");
    let email = layout.chunks_of_field(3).next().expect("an email chunk").range.clone();
    {
        use std::os::unix::fs::FileExt as _;
        let open = std::fs::File::open(&served).expect("open");
        let mut buf = vec![0u8; 64];
        let err = open.read_at(&mut buf, email.start).expect_err("a read of the denied column");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let mut buf = vec![0u8; (email.end - email.start + 32) as usize];
        open.read_exact_at(&mut buf, email.start - 16).expect("a read running into it");
        assert_eq!(buf[..16], rewritten[email.start as usize - 16..email.start as usize]);
        assert!(buf[16..16 + (email.end - email.start) as usize].iter().all(|b| *b == 0));
    }
    let local = duckdb::Connection::open_in_memory().expect("duckdb");
    // As lake.sql does: DuckDB's prefetch would coalesce reads across the email chunks.
    local.execute_batch("SET disable_parquet_prefetching = true").expect("setting");
    let rows = |path: &Path| -> String {
        local
            .query_row(
                &format!(
                    "SELECT string_agg(customer_id || name || region, ',' ORDER BY customer_id) FROM read_parquet('{}')",
                    path.display()
                ),
                [],
                |r| r.get(0),
            )
            .expect("read")
    };
    let original_path = remote.lake.data_dir.join(file.key.as_str());
    assert_eq!(rows(&served), rows(&original_path));

    // The socket: metadata functions, statistics-answered aggregates, bloom probes, errors.
    let glob = format!("{}/sales/customers/*.parquet", mnt.display());
    let one = served.display().to_string();
    for sql in [
        format!("SELECT string_agg(m::VARCHAR, chr(10)) FROM parquet_metadata('{glob}') m"),
        format!("SELECT string_agg(m::VARCHAR, chr(10)) FROM parquet_schema('{glob}') m"),
        format!("SELECT string_agg(m::VARCHAR, chr(10)) FROM parquet_file_metadata('{glob}') m"),
        format!("SELECT string_agg(m::VARCHAR, chr(10)) FROM parquet_kv_metadata('{glob}') m"),
        format!(
            "SELECT string_agg(m::VARCHAR, chr(10)) FROM (EXPLAIN ANALYZE SELECT min(name) FROM read_parquet('{glob}')) m"
        ),
        format!("SELECT min(email) FROM read_parquet('{glob}')"),
        format!("SELECT max(email) FROM read_parquet('{glob}')"),
        format!("SELECT count(*) FROM read_parquet('{glob}') WHERE email = 'user1@example.com'"),
        format!("SELECT string_agg(email, ',') FROM read_parquet('{glob}')"),
        format!("SELECT content FROM read_blob('{one}')"),
        format!("SELECT content FROM read_text('{one}')"),
        "SELECT string_agg(c::VARCHAR, ',') FROM (SELECT * FROM sales.customers) c".to_string(),
    ] {
        let answer = match sql_value(rt, &cfg, &sql) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => e,
        };
        assert!(!holds(answer.as_bytes(), EMAIL), "{sql}: {answer}");
    }
    let stats =
        sql_value(rt, &cfg, &format!("SELECT string_agg(m::VARCHAR, chr(10)) FROM parquet_metadata('{glob}') m"))
            .expect("parquet_metadata")
            .unwrap_or_default();
    assert!(stats.contains("Customer 0"), "allowed statistics are kept: {stats}");
    // whether the row groups' bloom filters exclude a value absent from the file: `all` or any
    let excludes = |all: bool, column: &str, value: &str| {
        let agg = if all { "bool_and" } else { "bool_or" };
        let sql = format!(
            "SELECT {agg}(bloom_filter_excludes)::VARCHAR FROM parquet_bloom_probe('{one}', '{column}', '{value}')"
        );
        sql_value(rt, &cfg, &sql).expect("bloom probe")
    };
    assert_eq!(
        excludes(false, "email", "nobody@example.com").as_deref(),
        Some("false"),
        "no bloom filter of the denied column is left to probe"
    );
    assert_eq!(excludes(true, "name", "nobody").as_deref(), Some("true"), "the allowed columns' bloom filters work");

    // Time travel: email was tagged `pii` after the customers were written, and the snapshots
    // before the tag are governed by what the column is now: no email in their views, and
    // their allowed columns read.
    let kept = daemon.status().kept_snapshots;
    let mut with_customers = 0;
    for id in kept {
        let lake_sql = std::fs::read_to_string(mnt.join(format!(".snapshots/{id}/lake.sql"))).expect("lake.sql");
        assert!(!lake_sql.contains("email"), "snapshot {id}'s lake.sql names the denied column");
        let sql = format!("SELECT string_agg(c::VARCHAR, ',') FROM \"sales@{id}\".customers c");
        match sql_value(rt, &cfg, &sql) {
            // None: the table was created empty in the snapshot before its rows.
            Ok(None) => {}
            Ok(Some(rows)) => {
                with_customers += 1;
                assert!(rows.contains("Customer 96") && !holds(rows.as_bytes(), EMAIL), "{sql}: {rows}");
            }
            Err(e) if e.contains("does not exist") => {}
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    assert!(with_customers >= 3, "snapshots before and after the tag");
    daemon.stop().expect("stop");
}
