//! The daemon end to end: mirror, mount, refresh to a new snapshot, and offline operation.

mod fixtures;

use std::path::Path;

use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::{Daemon, DaemonError};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};

fn config(dir: &Path, catalog: &Path, mount: bool) -> Config {
    let text = format!(
        "[lake]\nname = \"test\"\ncatalog = \"sqlite:{}\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n{}",
        catalog.display(),
        dir.join("state").display(),
        dir.join("cache").display(),
        if mount { format!("[mount]\npath = \"{}\"\n", dir.join("mnt").display()) } else { String::new() }
    );
    Config::parse(&text, &dir.join("config.toml")).expect("config")
}

#[test]
fn daemon_mounts_refreshes_and_survives_losing_the_catalog() {
    if !fixtures::fuse_available("daemon_mounts_refreshes_and_survives_losing_the_catalog") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
    // The daemon follows a copy of the catalog that starts before web.scratch was created.
    let live = tmp.path().join("lake/live.sqlite");
    std::fs::copy(&lake.catalogs[0], &live).expect("copy");
    let conn = rusqlite::Connection::open(&live).expect("open");
    let cut = lake.latest_snapshot - 3;
    conn.execute_batch(&format!(
        "DELETE FROM ducklake_snapshot WHERE snapshot_id > {cut}; DELETE FROM ducklake_snapshot_changes WHERE snapshot_id > {cut};
         DELETE FROM ducklake_table WHERE begin_snapshot > {cut}; DELETE FROM ducklake_column WHERE begin_snapshot > {cut};
         DELETE FROM ducklake_data_file WHERE begin_snapshot > {cut}; DELETE FROM ducklake_schema_versions WHERE begin_snapshot > {cut};"
    ))
    .expect("rewind");
    drop(conn);
    std::fs::create_dir(tmp.path().join("mnt")).expect("mountpoint");
    let cfg = config(tmp.path(), &live, true);
    let mnt = tmp.path().join("mnt");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    assert_eq!(daemon.status().snapshot, Some(cut));
    // The SQL socket serves the same snapshot, reading through the mount.
    let socket = daemon.status().sql_socket.expect("SQL socket on by default");
    assert_eq!(socket, tmp.path().join("state/.s.PGSQL.5433"));
    let tables_at_cut =
        sql_count(&rt, &cfg, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'web'");
    assert!(mnt.join("sales/orders").is_dir());
    assert!(!mnt.join("web/scratch").exists());
    let kept: Vec<String> = std::fs::read_dir(mnt.join(".snapshots"))
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");

    // A new snapshot in the catalog: one refresh and the mount shows it.
    std::fs::copy(&lake.catalogs[0], &live).expect("advance");
    assert_eq!(daemon.refresh().expect("refresh"), lake.latest_snapshot);
    // ... and so does the SQL socket, from its next statement on (web.scratch came and went,
    // so compare the new snapshot's orders with the mount's lake.sql instead).
    let orders = sql_count(&rt, &cfg, "SELECT count(*) FROM sales.orders");
    assert_eq!(orders, 7400);
    // Time travel: every kept snapshot's tables as "<schema>@<id>".
    let kept =
        sql_count(&rt, &cfg, "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'sales@%'");
    assert_eq!(kept, 3, "one sales schema per kept snapshot");
    let at_latest = sql_count(&rt, &cfg, &format!("SELECT count(*) FROM \"sales@{}\".orders", lake.latest_snapshot));
    assert_eq!(at_latest, 7400);
    assert!(tables_at_cut >= 1);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join(".warmlake/status.json")).expect("status")).expect("json");
    assert_eq!(status["snapshot"], lake.latest_snapshot);
    assert!(mnt.join(format!(".snapshots/{}", lake.latest_snapshot)).is_dir());

    // The catalog disappears: refresh fails, the mount keeps serving the last good snapshot.
    std::fs::remove_file(&live).expect("lose catalog");
    assert!(daemon.refresh().is_err());
    assert!(daemon.status().last_error.is_some());
    assert!(mnt.join("sales/orders").is_dir());
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    db.execute_batch(&std::fs::read_to_string(mnt.join("lake.sql")).expect("lake.sql")).expect("views");
    let n: i64 = db.query_row("SELECT count(*) FROM sales.orders", [], |r| r.get(0)).expect("count");
    assert_eq!(n, 7400);
    daemon.stop().expect("stop");
    assert!(!fixtures_mounted(&mnt), "unmounted on stop");

    // A restart with the catalog still gone serves the mirror, offline.
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("starts offline from the mirror");
    assert!(daemon.status().offline);
    assert_eq!(daemon.status().snapshot, Some(lake.latest_snapshot));
    assert!(mnt.join("sales/orders").is_dir());
    daemon.stop().expect("stop");
}

/// One `count(*)`-like integer through the daemon's SQL socket, with a real PostgreSQL client.
fn sql_count(rt: &tokio::runtime::Runtime, cfg: &Config, sql: &str) -> i64 {
    let settings = cfg.sql.as_ref().expect("sql settings");
    rt.block_on(async {
        let mut pg = tokio_postgres::Config::new();
        pg.host_path(&settings.socket_dir).port(settings.port).dbname("lake").user("test");
        let (client, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect to the SQL socket");
        let driver = tokio::spawn(conn);
        let rows = client.simple_query(sql).await.expect("query");
        let value = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .expect("one row");
        drop(client);
        let _ = driver.await;
        value.parse().expect("an integer")
    })
}

fn fixtures_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(4) == Some(&*path.to_string_lossy())))
        .unwrap_or(false)
}

#[test]
fn no_catalog_and_no_mirror_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &tmp.path().join("missing.sqlite"), false);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match Daemon::start(cfg, rt.handle().clone()) {
        Err(e @ DaemonError::NoMirror(_)) => assert!(e.to_string().contains("no local mirror"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started without a catalog"),
    }
}

#[test]
fn a_commit_to_a_local_catalog_is_served_without_waiting_for_the_interval() {
    if !fixtures::fuse_available("a_commit_to_a_local_catalog_is_served_without_waiting_for_the_interval") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
    std::fs::create_dir(tmp.path().join("mnt")).expect("mountpoint");
    std::fs::write(tmp.path().join("policy.toml"), "").expect("policy");
    let mut cfg = config(tmp.path(), &lake.catalogs[0], true);
    cfg.refresh_interval = std::time::Duration::from_secs(3600);
    cfg.policy_file = Some(tmp.path().join("policy.toml"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(daemon.run(async move {
        let _ = stopped.await;
    }));
    let next = lake.latest_snapshot + 1;
    let conn = rusqlite::Connection::open(&lake.catalogs[0]).expect("open");
    conn.execute_batch(&format!(
        "INSERT INTO ducklake_snapshot SELECT {next}, snapshot_time, schema_version, next_catalog_id, next_file_id \
         FROM ducklake_snapshot WHERE snapshot_id = {};",
        lake.latest_snapshot
    ))
    .expect("commit");
    drop(conn);
    let status = tmp.path().join("mnt/.warmlake/status.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        seen = std::fs::read(&status)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["snapshot"].as_i64());
        if seen == Some(next) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = stop.send(());
    rt.block_on(running).expect("join").expect("stops cleanly");
    assert_eq!(seen, Some(next), "the commit was not served within 10 s (refresh interval is an hour)");
}

#[test]
fn sql_over_tcp_needs_the_password_and_listens_on_loopback_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
    std::fs::write(tmp.path().join("policy.toml"), "").expect("policy");
    let text = format!(
        "[lake]\nname = \"tcp\"\ncatalog = \"sqlite:{}\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n\
         [policy]\nfile = \"{}\"\n[sql]\ntcp = true\ntcp_port = 0\npassword = \"correct horse\"\n",
        lake.catalogs[0].display(),
        tmp.path().join("state").display(),
        tmp.path().join("cache").display(),
        tmp.path().join("policy.toml").display()
    );
    if std::env::var_os("WARMLAKE_SQL_PASSWORD").is_some() {
        eprintln!("SKIPPED: WARMLAKE_SQL_PASSWORD is set and would replace the test's password");
        return;
    }
    let cfg = Config::parse(&text, &tmp.path().join("config.toml")).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("starts");
    let addr: std::net::SocketAddr = daemon.status().sql_tcp.expect("TCP listener").parse().expect("address");
    assert!(addr.ip().is_loopback(), "{addr}");
    let connect = |password: &str| {
        let mut pg = tokio_postgres::Config::new();
        pg.host("127.0.0.1").port(addr.port()).dbname("lake").user("analyst").password(password);
        rt.block_on(async {
            let (client, conn) = pg.connect(tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(conn);
            let rows = client.simple_query("SELECT count(*) FROM sales.orders").await;
            drop(client);
            let _ = driver.await;
            rows
        })
    };
    let rows = connect("correct horse").expect("the right password connects");
    let n = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(n.as_deref(), Some("7400"));
    let err = connect("battery staple").expect_err("a wrong password is refused");
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("28P01"), "{err}");
    daemon.stop().expect("stop");
}

/// A lake on local disk served without a mount: its SQL sessions read the lake's own files,
/// whole, so while the policy denies a column (or a table) there is no socket, and status says
/// why; a policy that starts denying while it runs closes it.
#[test]
fn an_unmounted_local_lake_gets_no_socket_while_the_policy_denies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
    let policy = tmp.path().join("policy.toml");
    let deny_email = "[[rule]]\nmatch = \"sales.customers\"\ncolumns = [\"email\"]\naction = \"deny\"\n";
    let read_through = "[[rule]]\nmatch = \"sales.orders\"\naction = \"read-through\"\n";
    let text = format!(
        "[lake]\nname = \"local\"\ncatalog = \"sqlite:{}\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n\
         [policy]\nfile = \"{}\"\n",
        lake.catalogs[0].display(),
        tmp.path().join("state").display(),
        tmp.path().join("cache").display(),
        policy.display()
    );
    let cfg = Config::parse(&text, &tmp.path().join("config.toml")).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    std::fs::write(&policy, deny_email).expect("policy");
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("starts");
    let status = daemon.status();
    assert!(status.sql_socket.is_none(), "{status:?}");
    assert!(status.sql_unavailable.as_deref().is_some_and(|w| w.contains("[mount] path")), "{status:?}");
    daemon.stop().expect("stop");

    // Read-through alone hides nothing: the socket is there. Then a column is denied.
    std::fs::write(&policy, read_through).expect("policy");
    let daemon = Daemon::start(cfg, rt.handle().clone()).expect("starts");
    let socket = daemon.status().sql_socket.expect("a socket while nothing is denied");
    assert!(socket.exists());
    std::fs::write(&policy, format!("{read_through}{deny_email}")).expect("tighten");
    daemon.reload_policy().expect("reload");
    let status = daemon.status();
    assert!(status.sql_socket.is_none() && status.sql_unavailable.is_some(), "{status:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!socket.exists(), "the socket is closed");
    daemon.stop().expect("stop");
}
