//! Heat and refresh through the running daemon (`Daemon::run`), against a lake in a real
//! S3-compatible server: a commit (append + delete) to the catalog is served by the mount and
//! the SQL socket after one refresh, the columns people read are prefetched for the new data
//! file and the others are not, a file that left the lake leaves the cache, and heat outlives a
//! restart.

mod cache_support;
mod fixtures;
mod remote_lake;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cache_support::upload;
use remote_lake::{RemoteLake, sql_value};
use warmlake_daemon::cache::ObjectRef;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, DataFile, LakeSnapshot};
use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;

/// Field ids DuckLake gives the columns of positional delete files.
const DELETE_FILE_PATH_FIELD_ID: i64 = 2_147_483_646;
const DELETE_POS_FIELD_ID: i64 = 2_147_483_645;

#[test]
fn a_new_snapshot_is_served_at_once_and_only_its_hot_columns_are_prefetched() {
    // Plain pages and large files: column chunks are far larger than kernel readahead and the
    // cache's coalescing gap, so which columns a file's cached pieces belong to tells hot
    // columns from cold ones. (The generator's later snapshots only touch small files.)
    let spec = LakeSpec { events_rows: 400_000, events_files: 2, plain: true, ..LakeSpec::default() };
    let Some(remote) =
        RemoteLake::mounted("a_new_snapshot_is_served_at_once_and_only_its_hot_columns_are_prefetched", &spec)
    else {
        return;
    };
    let cfg = config(&remote, "[refresh]\nkeep_snapshots = 1\n");
    let (rt, mnt, latest) = (&remote.rt, remote.mnt(), remote.lake.latest_snapshot);
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    let cache = daemon.cache().expect("a remote lake has a cache").clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(daemon.run(async move {
        let _ = stopped.await;
    }));

    // A query reads two columns of web.events through the mount: they (and neighbours kernel
    // readahead touched) are hot, most columns are not.
    let db = lake_sql(&mnt);
    let n: i64 = db
        .query_row("SELECT count(*) FROM web.events WHERE kind = 'buy' AND session_id > 10", [], |r| r.get(0))
        .expect("query");
    assert!(n > 0);
    drop(db);
    let before = snapshot_at(&remote, latest);
    let events = before.table("web", "events").expect("web.events");
    let all_columns: BTreeSet<i32> = events.columns.iter().flat_map(|c| c.field_ids()).collect();
    let hot = cache.hot_columns("web.events");
    assert!(hot.contains(&4) && hot.contains(&5), "session_id and kind were read: {hot:?}");
    assert!(hot.len() < all_columns.len() / 2, "read columns only: {hot:?}");
    let cold: BTreeSet<i32> = all_columns.difference(&hot).copied().collect();
    let (f0, f1) = (&events.files[0], &events.files[1]);
    assert!(!cache.present(&object(&remote, f1)).is_empty(), "read, so cached");

    // The commit: f0's rows appended again as a new file, every tenth row of f0 deleted, and
    // f1 deleted whole (DuckLake ends a file all of whose rows go): f1 leaves the lake.
    let commit = Commit::write(&remote, events.id, f0, f1);
    let next = latest + 1;
    wait_for("the daemon to serve the new snapshot", || status_snapshot(&mnt) == Some(next));

    // One refresh: the mount shows the new snapshot (status.json is written after the tree and
    // the SQL views are published, and after departed files are evicted).
    assert!(mnt.join("web/events").join(&commit.appended_name).exists(), "the appended file is in the mount");
    assert!(!mnt.join("web/events").join(&f1.name).exists(), "f1 is gone from the mount");
    assert!(cache.present(&object(&remote, f1)).is_empty(), "and from the cache");
    assert!(!cache.present(&object(&remote, f0)).is_empty(), "f0 is still served and stays cached");

    // The refresh started the hot job: it fetches the hot columns of the new file (and the new
    // delete file, whole); nobody else reads the new files meanwhile.
    let appended = ObjectRef::new(remote.store.clone(), commit.appended_key.as_str(), commit.appended_size);
    let deletes = ObjectRef::new(remote.store.clone(), commit.delete_key.as_str(), commit.delete_size);
    let columns_of = |o: &ObjectRef| -> BTreeSet<i32> { cache.pieces(o).iter().filter_map(|p| p.column_id).collect() };
    wait_for("the hot columns of the new file", || {
        columns_of(&appended).is_superset(&hot) && cache.present(&deletes).contains(&(0..commit.delete_size))
    });
    let prefetched = columns_of(&appended);
    assert!(prefetched.is_subset(&hot), "only hot columns of the new file: {prefetched:?}, hot {hot:?}");
    assert!(prefetched.is_disjoint(&cold), "cold columns were not prefetched: {prefetched:?}");
    let cached: u64 = cache.pieces(&appended).iter().map(|p| p.range.end - p.range.start).sum();
    assert!(cached < commit.appended_size / 2, "{cached} of {} bytes", commit.appended_size);

    // Row counts equal DuckDB reading the lake's own files at the new snapshot, through the
    // mount and through the SQL socket.
    let after = snapshot_at(&remote, next);
    let query = "SELECT count(*) FROM web.events";
    let direct = warmlake_daemon::local_query::query_text(&after, query).expect("direct");
    let expected: i64 = direct.rows[0][0].parse().expect("count");
    assert_eq!(expected, 2 * f0.record_count - commit.deleted, "f0 minus the deletes, plus its copy");
    let through_mount: i64 = lake_sql(&mnt).query_row(query, [], |r| r.get(0)).expect("count through the mount");
    assert_eq!(through_mount, expected);
    let through_socket = sql_value(rt, &cfg, query).expect("count through the socket");
    assert_eq!(through_socket.as_deref(), Some(expected.to_string().as_str()));

    let _ = stop.send(());
    rt.block_on(running).expect("join").expect("stops cleanly");
}

#[test]
fn heat_is_saved_while_running_and_outlives_a_restart() {
    let spec = LakeSpec { events_rows: 20_000, events_files: 1, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("heat_is_saved_while_running_and_outlives_a_restart", &spec) else { return };
    let cfg = config(&remote, "");
    let rt = &remote.rt;
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    let cache = daemon.cache().expect("cache").clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(daemon.run(async move {
        let _ = stopped.await;
    }));

    // Reads through the SQL socket (which reads through the mount) heat columns up too.
    let n = sql_value(rt, &cfg, "SELECT count(*) FROM web.events WHERE kind = 'buy'").expect("query");
    assert!(n.is_some_and(|n| n != "0"));
    let read = cache.hot_columns("web.events");
    assert!(read.contains(&5), "kind was read: {read:?}");
    // The running daemon saves heat in batches, without waiting for shutdown (so a crash
    // keeps it too): the rows appear in the index.
    let index = cfg.cache_dir.join("index.sqlite");
    wait_for("heat saved by the periodic loop", || saved_heat(&index).is_superset(&read));
    let _ = stop.send(());
    rt.block_on(running).expect("join").expect("stops cleanly");
    // Stopped (heat saved once more): what it knew last.
    let (hot, scores) = (cache.hot_columns("web.events"), cache.column_heat("web.events"));
    drop(cache);

    // A new daemon on the same folders knows what was hot.
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("restarts");
    let cache = daemon.cache().expect("cache");
    assert_eq!(cache.hot_columns("web.events"), hot);
    let again = cache.column_heat("web.events");
    assert_eq!(again.keys().collect::<Vec<_>>(), scores.keys().collect::<Vec<_>>());
    for (id, score) in &scores {
        // Only seconds of decay (a half-life is a week) between the two readings.
        assert!((again[id] - score).abs() <= score * 1e-3, "column {id}: {score} then {}", again[id]);
    }
    daemon.stop().expect("stop");
}

/// The remote lake's config with an empty policy, more TOML, and refreshes only when the
/// catalog file changes (the interval is an hour).
fn config(remote: &RemoteLake, extra: &str) -> Config {
    let policy_file = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy_file, "").expect("policy");
    let mut cfg = remote.config_with(&format!("[policy]\nfile = \"{}\"\n{extra}", policy_file.display()));
    cfg.refresh_interval = Duration::from_secs(3600);
    cfg
}

/// An in-memory DuckDB with the mount's `lake.sql` views.
fn lake_sql(mnt: &Path) -> duckdb::Connection {
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    db.execute_batch(&std::fs::read_to_string(mnt.join("lake.sql")).expect("lake.sql")).expect("views");
    db
}

/// The catalog at `snapshot`, read directly.
fn snapshot_at(remote: &RemoteLake, snapshot: i64) -> LakeSnapshot {
    let location = CatalogLocation::parse(&format!("sqlite:{}", remote.lake.catalogs[0].display()));
    CatalogReader::open(&location, None).and_then(|r| r.read_snapshot(snapshot)).expect("snapshot")
}

fn object(remote: &RemoteLake, f: &DataFile) -> ObjectRef {
    ObjectRef::new(remote.store.clone(), f.key.as_str(), f.size as u64)
}

/// The snapshot `.warmlake/status.json` says the mount serves.
fn status_snapshot(mnt: &Path) -> Option<i64> {
    std::fs::read(mnt.join(".warmlake/status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["snapshot"].as_i64())
}

/// The columns of web.events with heat rows in the cache index (read beside the daemon).
fn saved_heat(index: &Path) -> BTreeSet<i32> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(index, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return BTreeSet::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT column_id FROM heat WHERE table_name = 'web.events'") else {
        return BTreeSet::new();
    };
    stmt.query_map([], |r| r.get(0)).map(|rows| rows.filter_map(Result::ok).collect()).unwrap_or_default()
}

/// Waits until `done`, polling: background work (a refresh, a prefetch job) has no completion
/// signal a test can join, and a minute is far beyond what it takes.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A commit to web.events, made as the DuckLake extension would: files written and uploaded
/// first, then the catalog rows in one transaction.
struct Commit {
    appended_name: String,
    appended_key: String,
    appended_size: u64,
    delete_key: String,
    delete_size: u64,
    deleted: i64,
}

impl Commit {
    fn write(remote: &RemoteLake, table_id: i64, f0: &DataFile, f1: &DataFile) -> Commit {
        let (rt, data, latest) = (&remote.rt, &remote.lake.data_dir, remote.lake.latest_snapshot);
        let next = latest + 1;
        let folder = f0.key.as_str().rsplit_once('/').map(|(d, _)| d.to_string()).expect("table folder");
        let put = |key: &str, bytes: &[u8]| {
            std::fs::write(data.join(key), bytes).expect("write into the lake folder");
            upload(rt, &remote.store, key, bytes);
        };
        // Append: f0's bytes again, as a new file with new row ids.
        let appended_name = format!("ducklake-appended-{next}.parquet");
        let appended_key = format!("{folder}/{appended_name}");
        let bytes = std::fs::read(data.join(f0.key.as_str())).expect("f0");
        put(&appended_key, &bytes);
        // Delete: every tenth row of f0, in a positional delete file.
        let delete_name = format!("ducklake-deletes-{next}-delete.parquet");
        let delete_key = format!("{folder}/{delete_name}");
        let staging = remote.tmp.path().join(&delete_name);
        let duck = duckdb::Connection::open_in_memory().expect("duckdb");
        duck.execute_batch(&format!(
            "COPY (SELECT 'data/{f0_key}' AS file_path, pos FROM range(0, {rows}, 10) t(pos)) TO '{path}' \
             (FORMAT parquet, FIELD_IDS {{file_path: {DELETE_FILE_PATH_FIELD_ID}, pos: {DELETE_POS_FIELD_ID}}})",
            f0_key = f0.key.as_str(),
            rows = f0.record_count,
            path = staging.display()
        ))
        .expect("write the delete file");
        let delete_bytes = std::fs::read(&staging).expect("delete file");
        put(&delete_key, &delete_bytes);
        let deleted = (f0.record_count + 9) / 10;
        let tail = &delete_bytes[delete_bytes.len() - 8..delete_bytes.len() - 4];
        let delete_footer = u32::from_le_bytes(tail.try_into().expect("four bytes"));

        let conn = rusqlite::Connection::open(&remote.lake.catalogs[0]).expect("catalog");
        let next_file_id: i64 = conn
            .query_row("SELECT next_file_id FROM ducklake_snapshot WHERE snapshot_id = ?1", [latest], |r| r.get(0))
            .expect("next file id");
        let (appended_id, delete_id) = (next_file_id, next_file_id + 1);
        conn.execute_batch(&format!(
            "BEGIN;
             INSERT INTO ducklake_snapshot SELECT {next}, snapshot_time, schema_version, next_catalog_id, {after} \
               FROM ducklake_snapshot WHERE snapshot_id = {latest};
             INSERT INTO ducklake_snapshot_changes VALUES \
               ({next}, 'inserted_into_table:{table_id},deleted_from_table:{table_id}', NULL, NULL, NULL);
             INSERT INTO ducklake_data_file SELECT {appended_id}, table_id, {next}, NULL, file_order, \
               '{appended_name}', path_is_relative, file_format, record_count, file_size_bytes, footer_size, \
               (SELECT max(row_id_start + record_count) FROM ducklake_data_file WHERE table_id = {table_id}), \
               partition_id, encryption_key, mapping_id, partial_max FROM ducklake_data_file WHERE data_file_id = {f0};
             INSERT INTO ducklake_file_column_stats SELECT {appended_id}, table_id, column_id, column_size_bytes, \
               value_count, null_count, min_value, max_value, contains_nan, extra_stats \
               FROM ducklake_file_column_stats WHERE data_file_id = {f0};
             INSERT INTO ducklake_delete_file VALUES ({delete_id}, {table_id}, {next}, NULL, {f0}, '{delete_name}', \
               true, 'parquet', {deleted}, {delete_size}, {delete_footer}, NULL, NULL);
             UPDATE ducklake_data_file SET end_snapshot = {next} WHERE data_file_id = {f1};
             COMMIT;",
            after = next_file_id + 2,
            f0 = f0.id,
            f1 = f1.id,
            delete_size = delete_bytes.len(),
        ))
        .expect("commit");
        Commit {
            appended_name,
            appended_key,
            appended_size: bytes.len() as u64,
            delete_key,
            delete_size: delete_bytes.len() as u64,
            deleted,
        }
    }
}
