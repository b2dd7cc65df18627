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
    // reading them whole is refused, but the columns that may be read still work through DuckDB.
    let (ok, denied) = read_tree(&mnt.join("sales"));
    assert!(ok > 0, "orders files read");
    assert!(denied > 0, "customers files are refused where the email column lies");
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
