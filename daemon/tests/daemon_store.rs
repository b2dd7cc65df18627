//! The daemon over a lake whose data lives in a real S3-compatible server (`s3s-fs` on
//! 127.0.0.1): the mount reads through the chunk cache, the SQL socket reads through the
//! mount, a restart serves warm files with the store down, a cold file then fails with `EIO`
//! (not a hang, not zeros), and an object deleted from the store is `ENOENT`.

mod cache_support;
mod fixtures;

use std::path::{Path, PathBuf};

use cache_support::{S3Server, runtime, sha256, upload};
use object_store::ObjectStoreExt as _;
use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::store::Store;

fn config(dir: &Path, catalog: &Path, server: &S3Server) -> Config {
    let text = format!(
        "[lake]\nname = \"remote\"\ncatalog = \"sqlite:{catalog}\"\ndata = \"s3://{bucket}/data/\"\n\
         [state]\ndir = \"{state}\"\n[cache]\ndir = \"{cache}\"\nmax_cache = \"1GiB\"\nmin_free_disk = \"0B\"\n\
         [mount]\npath = \"{mnt}\"\n\
         [store]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\naccess_key_id = \"{key}\"\n\
         secret_access_key = \"{secret}\"\nvirtual_hosted_style_request = false\nallow_http = true\n\
         max_retries = 1\nretry_timeout = \"3s\"\nconnect_timeout = \"2s\"\n",
        catalog = catalog.display(),
        bucket = cache_support::BUCKET,
        state = dir.join("state").display(),
        cache = dir.join("cache").display(),
        mnt = dir.join("mnt").display(),
        endpoint = server.endpoint(),
        key = cache_support::ACCESS_KEY,
        secret = cache_support::SECRET_KEY,
    );
    Config::parse(&text, &dir.join("config.toml")).expect("config")
}

/// Every file under `dir`, relative to it.
fn relative_files(dir: &Path, at: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(at).expect("ls") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            relative_files(dir, &p, out);
        } else {
            out.push(p.strip_prefix(dir).expect("under").to_path_buf());
        }
    }
}

#[test]
fn remote_lake_through_cache_mount_and_socket() {
    if !fixtures::fuse_available("remote_lake_through_cache_mount_and_socket") {
        return;
    }
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 20_000, events_files: 3, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
    let store = Store::open(&format!("s3://{}/data", cache_support::BUCKET), &server.store_config()).expect("store");
    let mut files = Vec::new();
    relative_files(&lake.data_dir, &lake.data_dir, &mut files);
    for f in &files {
        upload(&rt, &store, &f.to_string_lossy(), &std::fs::read(lake.data_dir.join(f)).expect("read"));
    }
    std::fs::create_dir(tmp.path().join("mnt")).expect("mountpoint");
    let cfg = config(tmp.path(), &lake.catalogs[0], &server);
    let mnt = tmp.path().join("mnt");

    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    let status = daemon.status();
    assert_eq!(status.data, "s3://lake/data/");
    assert!(status.cache.is_some(), "remote data is read through the cache");

    // The data files of web.events: keep two cold (never read before the checks below).
    let snapshot = warmlake_daemon::catalog::CatalogReader::open(
        &warmlake_daemon::catalog::CatalogLocation::parse(&format!("sqlite:{}", lake.catalogs[0].display())),
        None,
    )
    .and_then(|r| r.read_snapshot(lake.latest_snapshot))
    .expect("snapshot");
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
    let settings = cfg.sql.as_ref().expect("sql");
    let revenue = rt.block_on(async {
        let mut pg = tokio_postgres::Config::new();
        pg.host_path(&settings.socket_dir).port(settings.port).dbname("lake").user("test");
        let (client, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect");
        let driver = tokio::spawn(conn);
        let row = client
            .query_one("SELECT count(*)::BIGINT, CAST(sum(amount) AS DOUBLE) FROM sales.orders", &[])
            .await
            .expect("query");
        drop(client);
        let _ = driver.await;
        (row.get::<_, i64>(0), row.get::<_, f64>(1))
    });
    let direct = warmlake_daemon::local_query::query_text(
        &snapshot,
        "SELECT count(*)::BIGINT, CAST(sum(amount) AS DOUBLE) FROM sales.orders",
    )
    .expect("direct");
    assert_eq!(revenue.0.to_string(), direct.rows[0][0]);
    assert!((revenue.1 - direct.rows[0][1].parse::<f64>().expect("sum")).abs() < 1e-6);

    // An object the catalog lists but the store lost: ENOENT, not zeros.
    let path = store.path(cold_missing.key.as_str()).expect("key");
    rt.block_on(store.object_store().delete(&path)).expect("delete");
    let missing = mnt.join("web/events").join(&cold_missing.name);
    let err = std::fs::read(&missing).expect_err("gone from the store");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    daemon.stop().expect("stop");

    // The store goes away. A restart (no kernel page cache left) still serves every warm file
    // from the cache; the cold one fails with EIO once the store's retries are spent.
    drop(server);
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("restarts with the store down");
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
