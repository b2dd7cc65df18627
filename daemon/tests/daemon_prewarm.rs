//! Prewarming through the daemon, against a lake in a real S3-compatible server: all columns
//! of a table, idempotence, progress, policy skips, and `hot` columns learned from reads.

mod cache_support;
mod fixtures;
mod remote_lake;

use std::collections::BTreeSet;
use std::sync::Mutex;

use remote_lake::RemoteLake;
use tokio_util::sync::CancellationToken;
use warmlake_daemon::cache::ObjectRef;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;
use warmlake_daemon::prewarm::{self, PrewarmError, PrewarmProgress, PrewarmRequest};
use warmlake_policy::{ColumnSelection, QualifiedGlob};

#[test]
fn prewarm_fetches_what_was_asked_once_and_learns_hot_columns() {
    // Plain pages and one large file, so column chunks are far larger than the kernel's
    // readahead and a query's reads touch only the columns it reads (and their neighbours).
    let spec = LakeSpec { events_rows: 400_000, events_files: 2, plain: true, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("prewarm_fetches_what_was_asked_once_and_learns_hot_columns", &spec) else {
        return;
    };
    let policy_file = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy_file, "").expect("policy");
    // Every snapshot kept, so a prewarm can name one whose files differ from the current ones.
    let cfg = remote
        .config_with(&format!("[policy]\nfile = \"{}\"\n[refresh]\nkeep_snapshots = 1000\n", policy_file.display()));
    let rt = &remote.rt;
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("daemon starts");
    let cache = daemon.cache().expect("remote lake has a cache").clone();

    // All columns of sales.orders: progress after each file, then a report.
    let events = Mutex::new(Vec::<PrewarmProgress>::new());
    let record = |p: &PrewarmProgress| events.lock().expect("lock").push(p.clone());
    let request = prewarm::all_columns(&["sales.orders"]).expect("request");
    let report = rt.block_on(daemon.prewarm(&request, &record, &CancellationToken::new())).expect("prewarm");
    assert_eq!(report.tables, ["sales.orders"]);
    assert!(!report.cancelled && report.skipped.is_empty(), "{report:?}");
    let p = &report.progress;
    assert!(p.files_total >= 4, "data and delete files: {p:?}");
    assert_eq!((p.files_done, p.bytes_done), (p.files_total, p.bytes_total), "{p:?}");
    // Everything was fetched (chunk ranges may share a few bytes, so within a few percent).
    assert!(p.bytes_fetched * 100 >= p.bytes_total * 95, "{p:?}");
    let seen = events.into_inner().expect("events");
    assert_eq!(seen.len() as u64, p.files_total, "one progress event per file");
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done && w[0].files_done < w[1].files_done));
    assert!(cache.stats().per_table["sales.orders"].bytes_fetched > 0);

    // Again: everything is cached, nothing is fetched.
    let again = rt.block_on(daemon.prewarm(&request, &|_| {}, &CancellationToken::new())).expect("again");
    assert_eq!(again.progress.bytes_fetched, 0, "{again:?}");

    // Hot columns: a query reads two columns of web.events; one file then leaves the cache;
    // a `hot` prewarm brings back only the columns that were read.
    let mnt = remote.mnt();
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    db.execute_batch(&std::fs::read_to_string(mnt.join("lake.sql")).expect("lake.sql")).expect("views");
    let n: i64 = db
        .query_row("SELECT count(*) FROM web.events WHERE kind = 'buy' AND session_id > 10", [], |r| r.get(0))
        .expect("query");
    assert!(n > 0);
    let snapshot = remote.snapshot();
    let events_table = snapshot.table("web", "events").expect("events");
    let f = &events_table.files[0];
    let object =
        ObjectRef::parquet(remote.store.clone(), f.key.as_str(), f.size as u64, f.footer_size.map(|s| s as u64), false)
            .with_table("web.events");
    let hot: BTreeSet<i32> = cache.hot_columns("web.events");
    assert!(!hot.is_empty() && hot.len() < events_table.columns.len() / 2, "read columns only: {hot:?}");
    cache.evict_object(&object).expect("evict");
    let hot_request = PrewarmRequest {
        tables: vec![QualifiedGlob::new("web.*").expect("glob")],
        columns: ColumnSelection::Hot,
        pin: false,
        snapshot: None,
    };
    let warmed = rt.block_on(daemon.prewarm(&hot_request, &|_| {}, &CancellationToken::new())).expect("hot");
    assert!(warmed.progress.bytes_fetched > 0, "{warmed:?}");
    // Kernel readahead warms a read column's neighbours too; columns far from the ones the
    // query read stay cold.
    assert!(warmed.progress.bytes_fetched < f.size as u64, "only hot columns of the evicted file: {warmed:?}");
    let columns: BTreeSet<i32> = cache.pieces(&object).iter().filter_map(|p| p.column_id).collect();
    assert!(!columns.is_empty() && columns.is_subset(&hot), "{columns:?} not within {hot:?}");

    // Pinned: sales.orders (already cached) is marked pinned, and a budget squeeze evicts
    // every unpinned byte before any of it; unpinned, it goes like the rest.
    let pin = PrewarmRequest { pin: true, ..prewarm::all_columns(&["sales.orders"]).expect("request") };
    let report = rt.block_on(daemon.prewarm(&pin, &|_| {}, &CancellationToken::new())).expect("pin");
    assert_eq!(report.progress.bytes_fetched, 0, "already cached: only marked");
    // Every object of sales.orders: data files and their delete files.
    let orders = snapshot.table("sales", "orders").expect("orders");
    let orders_objects: Vec<ObjectRef> = orders
        .files
        .iter()
        .flat_map(|f| {
            std::iter::once((f.key.as_str(), f.size)).chain(f.deletes.iter().map(|d| (d.key.as_str(), d.size)))
        })
        .map(|(key, size)| ObjectRef::new(remote.store.clone(), key, size as u64))
        .collect();
    let bytes_of = |pinned_only: bool| -> u64 {
        orders_objects
            .iter()
            .flat_map(|o| cache.pieces(o))
            .filter(|p| p.pinned || !pinned_only)
            .map(|p| p.range.end - p.range.start)
            .sum()
    };
    let pinned_bytes = bytes_of(true);
    assert!(pinned_bytes > 0 && pinned_bytes == bytes_of(false), "every cached byte of the table is pinned");
    cache.shrink_to(pinned_bytes).expect("squeeze");
    let left = bytes_of(false);
    assert_eq!(left, pinned_bytes, "pinned bytes survive the squeeze");
    assert_eq!(cache.stats().bytes_stored, pinned_bytes, "everything unpinned went first");
    assert_eq!(cache.unpin_table("sales.orders"), pinned_bytes);
    cache.shrink_to(0).expect("evict all");
    assert_eq!(cache.stats().bytes_stored, 0, "unpinned, they go too");

    // A table the policy does not let be stored is skipped, not fetched.
    let rule = "[[rule]]\nmatch = \"sales.customers\"\naction = \"read-through\"\n";
    std::fs::write(&policy_file, rule).expect("edit");
    daemon.reload_policy().expect("reload");
    let request = prewarm::all_columns(&["sales.*"]).expect("request");
    let report = rt.block_on(daemon.prewarm(&request, &|_| {}, &CancellationToken::new())).expect("prewarm");
    assert_eq!(report.skipped.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["sales.customers"]);
    assert!(!cache.stats().per_table.contains_key("sales.customers"));

    // A kept snapshot older than the served one: its files are fetched, not the current ones.
    let kept = daemon.status().kept_snapshots;
    assert!(kept.len() >= 2, "the config keeps every snapshot: {kept:?}");
    let reader = warmlake_daemon::catalog::CatalogReader::open(
        &warmlake_daemon::catalog::CatalogLocation::parse(&format!("sqlite:{}", remote.lake.catalogs[0].display())),
        None,
    )
    .expect("catalog");
    let keys_at = |id: i64| -> BTreeSet<(String, u64)> {
        let lake = reader.read_snapshot(id).expect("snapshot");
        lake.tables
            .iter()
            .filter(|t| !(t.schema == "sales" && t.name == "customers")) // read-through now
            .flat_map(|t| &t.files)
            .flat_map(|f| {
                std::iter::once((f.key.as_str().to_string(), f.size as u64))
                    .chain(f.deletes.iter().map(|d| (d.key.as_str().to_string(), d.size as u64)))
            })
            .collect()
    };
    let now = keys_at(*kept.last().expect("kept"));
    // The newest kept snapshot whose files differ from the current ones (an earlier append).
    let (older, then) = kept
        .iter()
        .rev()
        .map(|id| (*id, keys_at(*id)))
        .find(|(_, keys)| !keys.is_empty() && *keys != now)
        .expect("the lake's snapshots change its files");
    cache.evict_all().expect("evict");
    let at = PrewarmRequest { snapshot: Some(older), ..prewarm::all_columns(&["*.*"]).expect("request") };
    let report = rt.block_on(daemon.prewarm(&at, &|_| {}, &CancellationToken::new())).expect("older snapshot");
    assert!(report.progress.bytes_fetched > 0, "{report:?}");
    let cached =
        |(key, size): &(String, u64)| !cache.present(&ObjectRef::new(remote.store.clone(), key, *size)).is_empty();
    assert!(then.iter().all(cached), "every file of snapshot {older} is cached");
    let only_now: Vec<_> = now.difference(&then).collect();
    assert!(only_now.iter().all(|k| !cached(k)), "files of later snapshots are not: {only_now:?}");
    let gone = PrewarmRequest { snapshot: Some(older - 1000), ..prewarm::all_columns(&["*.*"]).expect("request") };
    match rt.block_on(daemon.prewarm(&gone, &|_| {}, &CancellationToken::new())) {
        Err(e @ PrewarmError::SnapshotNotKept { .. }) => assert!(e.to_string().contains("keep_snapshots"), "{e}"),
        other => panic!("a snapshot that is not kept: {other:?}"),
    }

    // Cancelled before it starts: nothing done, reported as such.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let request = prewarm::all_columns(&["web.events"]).expect("request");
    let report = rt.block_on(daemon.prewarm(&request, &|_| {}, &cancel)).expect("cancelled");
    assert!(report.cancelled);
    daemon.stop().expect("stop");
}

#[test]
fn a_local_lake_has_nothing_to_prewarm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let lake = warmlake_daemon::generate::generate(
        &tmp.path().join("lake"),
        &spec,
        &[warmlake_daemon::generate::CatalogKind::Sqlite],
    )
    .expect("generate");
    std::fs::write(tmp.path().join("policy.toml"), "").expect("policy");
    let text = format!(
        "[lake]\ncatalog = \"sqlite:{}\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n[sql]\nenabled = false\n\
         [policy]\nfile = \"{}\"\n",
        lake.catalogs[0].display(),
        tmp.path().join("state").display(),
        tmp.path().join("cache").display(),
        tmp.path().join("policy.toml").display()
    );
    let cfg = warmlake_daemon::config::Config::parse(&text, &tmp.path().join("c.toml")).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("starts");
    let request = prewarm::all_columns(&["*.*"]).expect("request");
    match rt.block_on(daemon.prewarm(&request, &|_| {}, &CancellationToken::new())) {
        Err(e @ PrewarmError::LocalLake(_)) => assert!(e.to_string().contains("nothing to prewarm"), "{e}"),
        other => panic!("unexpected {other:?}"),
    }
    daemon.stop().expect("stop");
}
