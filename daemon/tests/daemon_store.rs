//! The daemon over a lake whose data lives in a real S3-compatible server (`s3s-fs` on
//! 127.0.0.1): the mount reads through the chunk cache, the SQL socket reads through the
//! mount, a restart serves warm files with the store down, a cold file then fails with `EIO`
//! (not a hang, not zeros), and an object deleted from the store is `ENOENT`.

mod cache_support;
mod fixtures;
mod remote_lake;

use cache_support::sha256;
use object_store::ObjectStoreExt as _;
use remote_lake::{RemoteLake, sql_value};
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;

#[test]
fn remote_lake_through_cache_mount_and_socket() {
    let spec = LakeSpec { events_rows: 20_000, events_files: 3, ..LakeSpec::default() };
    let Some(mut remote) = RemoteLake::mounted("remote_lake_through_cache_mount_and_socket", &spec) else { return };
    let cfg = remote.config();
    let mnt = remote.mnt();
    let (rt, lake, store) = (&remote.rt, &remote.lake, &remote.store);

    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    let status = daemon.status();
    assert_eq!(status.data, "s3://lake/data/");
    assert!(status.cache.is_some(), "remote data is read through the cache");

    // The data files of web.events: keep two cold (never read before the checks below).
    let snapshot = remote.snapshot();
    let events = snapshot.table("web", "events").expect("events");
    let (cold_missing, cold_offline) = (&events.files[1], &events.files[2]);
    let mut warm = Vec::new();
    for t in &snapshot.tables {
        for f in &t.files {
            if f.id == cold_missing.id || f.id == cold_offline.id {
                continue;
            }
            let through = mnt.join(&t.schema).join(&t.name).join(&f.name);
            let bytes = std::fs::read(&through).unwrap_or_else(|e| panic!("{}: {e}", through.display()));
            let source = std::fs::read(lake.data_dir.join(f.key.as_str())).expect("source");
            assert_eq!(sha256(&bytes), sha256(&source), "{}", through.display());
            warm.push((through, sha256(&source)));
        }
    }
    let stats = daemon.status().cache.expect("cache stats");
    assert!(stats.totals.bytes_fetched > 0 && stats.totals.misses > 0, "{stats:?}");
    assert!(stats.per_table.contains_key("sales.orders"), "{stats:?}");
    let status_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join(".warmlake/status.json")).expect("status")).expect("json");
    assert!(status_json["cache"]["bytes_stored"].as_u64().unwrap_or(0) > 0, "{status_json}");

    // The SQL socket reads the same files through the mount (sales.orders is warm by now).
    let query = "SELECT count(*)::VARCHAR || ' ' || sum(amount)::VARCHAR FROM sales.orders";
    let through_socket = sql_value(rt, &cfg, query).expect("socket query");
    let direct = warmlake_daemon::local_query::query_text(&snapshot, query).expect("direct");
    assert_eq!(through_socket.as_deref(), Some(direct.rows[0][0].as_str()));

    // An object the catalog lists but the store lost: ENOENT, not zeros.
    let path = store.path(cold_missing.key.as_str()).expect("key");
    rt.block_on(store.object_store().delete(&path)).expect("delete");
    let missing = mnt.join("web/events").join(&cold_missing.name);
    let err = std::fs::read(&missing).expect_err("gone from the store");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    daemon.stop().expect("stop");

    // The store goes away. A restart (no kernel page cache left) still serves every warm file
    // from the cache; the cold one fails with EIO once the store's retries are spent.
    remote.stop_store();
    let daemon = Daemon::start(cfg, remote.rt.handle().clone()).expect("restarts with the store down");
    for (path, digest) in &warm {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("warm {}: {e}", path.display()));
        assert_eq!(&sha256(&bytes), digest, "{}", path.display());
    }
    let stats = daemon.status().cache.expect("cache stats");
    assert_eq!(stats.totals.bytes_fetched, 0, "warm reads need no store: {stats:?}");
    assert!(stats.totals.hits > 0);
    let cold = mnt.join("web/events").join(&cold_offline.name);
    let err = std::fs::read(&cold).expect_err("cold file with the store down");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    daemon.stop().expect("stop");
}

#[test]
fn a_file_that_leaves_the_lake_leaves_the_cache() {
    let spec = LakeSpec { events_rows: 20_000, events_files: 3, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("a_file_that_leaves_the_lake_leaves_the_cache", &spec) else { return };
    let policy_file = remote.tmp.path().join("policy.toml");
    std::fs::write(&policy_file, "").expect("policy");
    let cfg =
        remote.config_with(&format!("[policy]\nfile = \"{}\"\n[refresh]\nkeep_snapshots = 1\n", policy_file.display()));
    let daemon = Daemon::start(cfg, remote.rt.handle().clone()).expect("daemon starts");
    let cache = daemon.cache().expect("cache").clone();
    let mnt = remote.mnt();
    let catalog = &remote.lake.catalogs[0];
    let snapshot = remote.snapshot();
    let events = snapshot.table("web", "events").expect("events");
    let object = |f: &warmlake_daemon::catalog::DataFile| {
        warmlake_daemon::cache::ObjectRef::new(remote.store.clone(), f.key.as_str(), f.size as u64)
    };
    for f in &events.files {
        std::fs::read(mnt.join("web/events").join(&f.name)).expect("read");
        assert!(!cache.present(&object(f)).is_empty(), "cached after reading");
    }

    // A new snapshot in which the first events file is compacted away (its row ends).
    let (gone, kept) = (&events.files[0], &events.files[1]);
    let next = remote.lake.latest_snapshot + 1;
    let conn = rusqlite::Connection::open(catalog).expect("open catalog");
    conn.execute_batch(&format!(
        "INSERT INTO ducklake_snapshot SELECT {next}, snapshot_time, schema_version, next_catalog_id, next_file_id \
         FROM ducklake_snapshot WHERE snapshot_id = {latest};
         UPDATE ducklake_data_file SET end_snapshot = {next} WHERE data_file_id = {id};",
        latest = remote.lake.latest_snapshot,
        id = gone.id
    ))
    .expect("commit a snapshot");
    drop(conn);
    assert_eq!(daemon.refresh().expect("refresh"), next);
    assert!(!mnt.join("web/events").join(&gone.name).exists(), "gone from the mount");
    assert!(cache.present(&object(gone)).is_empty(), "and from the cache");
    assert!(!cache.present(&object(kept)).is_empty(), "other files stay cached");
    daemon.stop().expect("stop");
}

/// Opening one file of a table has the daemon fetch the footers of the table's other files in
/// the background (a scan reads each file from its footer, a round trip each when the reader
/// reaches it): after an `open` and no read, the cache holds every file's footer and nothing
/// else.
#[test]
fn opening_a_file_prefetches_the_footers_of_its_table() {
    let spec = LakeSpec { events_rows: 40_000, events_files: 6, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("opening_a_file_prefetches_the_footers_of_its_table", &spec) else { return };
    // No SQL socket: its views would open the tables' files at start.
    let cfg = remote.config_with("[sql]\nenabled = false\n");
    let daemon = Daemon::start(cfg, remote.rt.handle().clone()).expect("daemon starts");
    let snapshot = remote.snapshot();
    let events = snapshot.table("web", "events").expect("events");
    assert_eq!(events.files.len(), 6);
    let footers: u64 = events.files.iter().map(|f| f.footer_size.expect("footer size") as u64 + 8).sum();
    let opened = std::fs::File::open(remote.mnt().join("web/events").join(&events.files[0].name)).expect("open");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let cache = daemon.status().cache.expect("cache");
        if cache.objects == 6 && cache.bytes_stored == footers {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "footers not prefetched: {cache:?}, footers {footers} bytes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(opened);
    daemon.stop().expect("stop");
}

/// A lake on a drive that is not there right now: its data a `file://` folder and its catalog
/// beside it, both gone at start (the drive not mounted). The daemon starts from its mirror and
/// cache, warm files read, a cold one fails with `EIO` (the store unreachable, not the file gone),
/// and once the folder is back the cold file reads.
#[test]
fn a_file_store_that_is_not_there_is_unreachable_and_the_cache_serves() {
    if !fixtures::fuse_available("a_file_store_that_is_not_there_is_unreachable_and_the_cache_serves") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let drive = tmp.path().join("drive");
    let spec = LakeSpec { events_rows: 4_000, events_files: 2, ..LakeSpec::default() };
    let lake = warmlake_daemon::generate::generate(
        &drive.join("lake"),
        &spec,
        &[warmlake_daemon::generate::CatalogKind::Sqlite],
    )
    .expect("generate");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let text = format!(
        "[lake]\nname = \"drive\"\ncatalog = \"sqlite:{}\"\ndata = \"file://{}/\"\n[state]\ndir = \"{}\"\n\
         [cache]\ndir = \"{}\"\nmin_free_disk = \"0B\"\n[mount]\npath = \"{}\"\n",
        lake.catalogs[0].display(),
        lake.data_dir.display(),
        tmp.path().join("state").display(),
        tmp.path().join("cache").display(),
        mnt.display()
    );
    let cfg = warmlake_daemon::config::Config::parse(&text, &tmp.path().join("config.toml")).expect("config");
    let rt = cache_support::runtime();
    let events = |n: usize| -> std::path::PathBuf {
        let mut files: Vec<_> = std::fs::read_dir(mnt.join("web/events"))
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        files.swap_remove(n)
    };

    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    assert!(daemon.status().cache.is_some(), "a file:// store is read through the cache");
    let warm = events(0);
    let warm_bytes = std::fs::read(&warm).expect("read through the cache");
    daemon.stop().expect("stop");

    // The drive goes away: data folder and catalog with it.
    let away = tmp.path().join("drive-unmounted");
    std::fs::rename(&drive, &away).expect("unmount the drive");
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("the daemon starts without its drive");
    assert!(daemon.status().offline, "served from the mirror");
    assert_eq!(std::fs::read(&warm).expect("a warm file reads from the cache"), warm_bytes);
    let cold = events(1);
    let err = std::fs::read(&cold).expect_err("a cold file cannot be read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "unreachable, not gone: {err}");

    // The drive is back: the cold file reads.
    std::fs::rename(&away, &drive).expect("mount the drive again");
    let bytes = std::fs::read(&cold).expect("the cold file reads once the folder is back");
    let name = cold.file_name().expect("name");
    assert_eq!(bytes, std::fs::read(lake.data_dir.join("web/events").join(name)).expect("the file itself"));
    daemon.stop().expect("stop");
}
