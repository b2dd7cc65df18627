//! The live policy: real files watched with real `notify`, a central policy in a `file://`
//! store and on a real S3 server (`s3s-fs` on 127.0.0.1). No timing assertions: every wait is
//! "eventually, within 10 s".

mod cache_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warmlake_daemon::policy_source::{
    CentralPolicy, LocalError, LocalPolicy, PolicySource, PolicySourceConfig, PolicySourceError,
};
use warmlake_daemon::store::StoreConfig;
use warmlake_policy::{Action, ColumnRef, Policy, TableRef};

const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `done` until it holds, or fails the test after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a policy satisfying `ok` to be published on `rx`.
async fn published(
    rx: &mut tokio::sync::watch::Receiver<Arc<Policy>>,
    what: &str,
    ok: impl FnMut(&Arc<Policy>) -> bool,
) {
    match tokio::time::timeout(PATIENCE, rx.wait_for(ok)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => panic!("the policy source stopped while waiting for {what}"),
        Err(_) => panic!("not within {PATIENCE:?}: {what}"),
    }
}

/// Saves `text` the way most editors do: a new file renamed over the old one.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename over");
}

fn action(p: &Policy, schema: &str, table: &str) -> Action {
    p.table_action(&TableRef::new(schema, table))
}

fn local_only(path: &Path) -> PolicySourceConfig {
    PolicySourceConfig {
        local: Some(LocalPolicy::explicit(path)),
        central: None,
        // Long, so these tests see the watch at work, not the periodic re-read.
        recheck_interval: Duration::from_secs(3600),
    }
}

const DENY_FINANCE: &str = "[[rule]]\nmatch = \"finance.*\"\naction = \"deny\"\n";
const READ_THROUGH_FINANCE: &str = "[[rule]]\nmatch = \"finance.*\"\naction = \"read-through\"\n";
/// `action` misspelt on line 3, column 10.
const MALFORMED: &str = "[[rule]]\nmatch = \"finance.*\"\naction = \"cach\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_apply_and_a_malformed_edit_keeps_the_last_good_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, DENY_FINANCE).expect("write");
    let source = PolicySource::start(local_only(&path)).await.expect("start");
    let mut rx = source.subscribe();
    assert_eq!(action(&source.current(), "finance", "ledger"), Action::Deny);
    assert_eq!(source.last_error(), None);

    // An editor's save (rename over the file) is seen through the folder watch.
    save_by_rename(&path, READ_THROUGH_FINANCE);
    published(&mut rx, "the renamed-over edit", |p| action(p, "finance", "ledger") == Action::ReadThrough).await;

    // A malformed edit in place: the last good policy stays, the error says where.
    std::fs::write(&path, MALFORMED).expect("write");
    let expected = format!("{}:3:10: unknown action \"cach\"", path.display());
    eventually("the error is reported", || source.last_error().is_some_and(|e| e.contains(&expected))).await;
    assert_eq!(action(&source.current(), "finance", "ledger"), Action::ReadThrough);

    // Fixing it applies the fix and clears the error.
    std::fs::write(&path, DENY_FINANCE).expect("write");
    published(&mut rx, "the fixed file", |p| action(p, "finance", "ledger") == Action::Deny).await;
    eventually("the error is cleared", || source.last_error().is_none()).await;

    // reload_now re-reads without waiting for an event.
    std::fs::write(&path, READ_THROUGH_FINANCE).expect("write");
    let now = source.reload_now().await;
    assert_eq!(action(&now, "finance", "ledger"), Action::ReadThrough);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_good_policy_at_start_is_an_error_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, MALFORMED).expect("write");
    let Err(err) = PolicySource::start(local_only(&path)).await else { panic!("a malformed policy started") };
    let located = err.policy_error().expect("a parse error");
    assert_eq!((located.line, located.column), (3, 10));
    assert!(err.to_string().starts_with(&format!("{}:3:10: unknown action", path.display())), "{err}");

    // A file the user named must exist.
    let missing = dir.path().join("missing.toml");
    let err = PolicySource::start(local_only(&missing)).await.err().expect("a missing file started");
    assert!(matches!(err, PolicySourceError::Local(LocalError::Missing { .. })), "{err}");
    assert!(err.to_string().contains("missing.toml does not exist"), "{err}");

    // A central policy that was fetched but does not parse, with no saved copy to fall back on.
    let central_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(central_dir.path().join("central.toml"), "[local]\nmode = \"off\"\n").expect("write");
    let config = PolicySourceConfig {
        local: None,
        central: Some(central(&central_dir.path().join("central.toml"), None)),
        recheck_interval: Duration::from_secs(3600),
    };
    let err = PolicySource::start(config).await.err().expect("a malformed central policy started");
    assert!(matches!(err, PolicySourceError::CentralInvalid(_)), "{err}");
    assert!(err.to_string().contains("central.toml:2:8: unknown mode \"off\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_file_may_be_absent_and_appear_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    let config =
        PolicySourceConfig { local: Some(LocalPolicy { path: path.clone(), required: false }), ..local_only(&path) };
    let source = PolicySource::start(config).await.expect("start");
    assert_eq!(*source.current(), Policy::default(), "no file: the default policy");
    let mut rx = source.subscribe();
    std::fs::write(&path, DENY_FINANCE).expect("write");
    published(&mut rx, "the new file", |p| action(p, "finance", "ledger") == Action::Deny).await;
    // Removing an optional file removes the local layer.
    std::fs::remove_file(&path).expect("remove");
    published(&mut rx, "the removal", |p| **p == Policy::default()).await;
    assert_eq!(source.last_error(), None);
}

/// A policy file that is a symbolic link (dotfile managers): editing the target in place is
/// seen, though it happens in another folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_to_the_target_of_a_symlinked_file_apply() {
    let dotfiles = tempfile::tempdir().expect("dotfiles");
    let config = tempfile::tempdir().expect("config");
    let target = dotfiles.path().join("warmlake-policy.toml");
    let link = config.path().join("policy.toml");
    std::fs::write(&target, DENY_FINANCE).expect("write");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let source = PolicySource::start(local_only(&link)).await.expect("start");
    assert_eq!(action(&source.current(), "finance", "ledger"), Action::Deny);
    let mut rx = source.subscribe();
    std::fs::write(&target, READ_THROUGH_FINANCE).expect("write");
    published(&mut rx, "the edit of the target", |p| action(p, "finance", "ledger") == Action::ReadThrough).await;
}

/// The organisation's policy: finance denied, PII read-through, a 1 GiB cache, 2 snapshots.
const CENTRAL: &str = r#"[local]
max_cache = "1GiB"
keep_snapshots = 2

[[rule]]
match = "finance.*"
action = "deny"

[[rule]]
tag = { pii = "true" }
action = "read-through"
"#;

/// A local file that tries to loosen all of it, and adds one restriction of its own.
const LOOSER_LOCAL: &str = r#"[local]
mode = "allow"
default_action = "cache"
max_cache = "100GiB"
keep_snapshots = 10

[[rule]]
match = "*.*"
action = "cache"

[[rule]]
match = "finance.*"
action = "cache"

[[rule]]
match = "sales.orders"
columns = ["email"]
action = "deny"
"#;

fn central(path: &Path, saved_copy: Option<PathBuf>) -> CentralPolicy {
    CentralPolicy { url: format!("file://{}", path.display()), store: StoreConfig::default(), saved_copy }
}

/// Uploads `text` as `key` of `store`, from async code.
async fn put(store: &warmlake_daemon::store::Store, key: &str, text: &str) {
    use object_store::ObjectStoreExt as _;
    let path = store.path(key).expect("key");
    store.object_store().put(&path, bytes::Bytes::from(text.to_string()).into()).await.expect("upload");
}

/// The merge of [`CENTRAL`] and [`LOOSER_LOCAL`] is as tight as the central policy, and
/// tighter where the local one says so.
fn assert_tight(p: &Policy) {
    assert_eq!(action(p, "finance", "ledger"), Action::Deny);
    let pii = [("pii".to_string(), "true".to_string())];
    assert_eq!(p.table_action(&TableRef::new("crm", "customers").with_tags(&pii)), Action::ReadThrough);
    let orders = TableRef::new("sales", "orders");
    assert_eq!(p.table_action(&orders), Action::Cache);
    assert_eq!(p.column_action(&orders, &ColumnRef::new("email")), Action::Deny);
    assert_eq!(p.limits().max_cache(), Some(1 << 30));
    assert_eq!(p.limits().keep_snapshots(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_policy_in_a_file_store_is_only_tightened() {
    let bucket = tempfile::tempdir().expect("bucket");
    let state = tempfile::tempdir().expect("state");
    let central_path = bucket.path().join("central.toml");
    let saved = state.path().join("policy/central.toml");
    let local_path = state.path().join("policy.toml");
    std::fs::write(&central_path, CENTRAL).expect("write central");
    std::fs::write(&local_path, LOOSER_LOCAL).expect("write local");
    let config = PolicySourceConfig {
        local: Some(LocalPolicy::explicit(&local_path)),
        central: Some(central(&central_path, Some(saved.clone()))),
        recheck_interval: Duration::from_secs(3600),
    };
    let source = PolicySource::start(config.clone()).await.expect("start");
    assert_tight(&source.current());
    assert_eq!(source.last_error(), None);
    assert_eq!(std::fs::read_to_string(&saved).expect("saved copy"), CENTRAL);
    let url = format!("file://{}", central_path.display());
    let reason = source.current().table_decision(&TableRef::new("finance", "ledger")).reason;
    assert!(reason.contains(&format!("of {url} (line 5")), "{reason}");

    // Unchanged: a conditional fetch, nothing changes.
    assert_tight(&*source.reload_now().await);
    assert_eq!(source.last_error(), None);

    // The central policy changes: applied on reload, saved.
    let relaxed = CENTRAL.replace("action = \"deny\"", "action = \"read-through\"");
    std::fs::write(&central_path, &relaxed).expect("write central");
    let now = source.reload_now().await;
    assert_eq!(action(&now, "finance", "ledger"), Action::ReadThrough);
    assert_eq!(now.limits().max_cache(), Some(1 << 30));
    assert_eq!(std::fs::read_to_string(&saved).expect("saved copy"), relaxed);

    // Malformed: the last good central policy stays, the error says where.
    std::fs::write(&central_path, "[local]\nmax_cache = \"lots\"\n").expect("write central");
    let now = source.reload_now().await;
    assert_eq!(action(&now, "finance", "ledger"), Action::ReadThrough);
    let error = source.last_error().expect("an error");
    assert!(error.contains(&format!("{url}:2:13: bad max_cache \"lots\"")), "{error}");

    // Gone: still the last good one.
    std::fs::remove_file(&central_path).expect("remove central");
    let now = source.reload_now().await;
    assert_eq!(action(&now, "finance", "ledger"), Action::ReadThrough);
    let error = source.last_error().expect("an error");
    assert!(error.contains("not found") && error.contains("keeping the last good central policy"), "{error}");
    drop(source);

    // A start without the central policy uses the saved copy.
    let source = PolicySource::start(config.clone()).await.expect("start from the saved copy");
    assert_eq!(action(&source.current(), "finance", "ledger"), Action::ReadThrough);
    let error = source.last_error().expect("an error");
    assert!(error.contains("using the copy saved at"), "{error}");
    drop(source);

    // Without a saved copy either: fail closed until the policy can be fetched.
    std::fs::remove_file(&saved).expect("remove saved copy");
    let source = PolicySource::start(config).await.expect("start fails closed");
    let reason = source.current().table_decision(&TableRef::new("sales", "orders")).reason;
    assert_eq!(action(&source.current(), "sales", "orders"), Action::Deny);
    assert!(reason.contains("not fetched yet"), "{reason}");
    assert!(source.last_error().expect("an error").contains("nothing of the lake is shown or stored"));
    std::fs::write(&central_path, CENTRAL).expect("publish central");
    assert_tight(&*source.reload_now().await);
    assert_eq!(source.last_error(), None);
}

#[test]
fn a_central_policy_on_s3_is_only_tightened() {
    let Some(server) = cache_support::S3Server::start() else { return };
    let rt = cache_support::runtime();
    let bucket = warmlake_daemon::store::Store::open(
        &format!("s3://{}/.warmlake", cache_support::BUCKET),
        &server.store_config(),
    )
    .expect("store");
    cache_support::upload(&rt, &bucket, "policy.toml", CENTRAL.as_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let local_path = dir.path().join("policy.toml");
    std::fs::write(&local_path, LOOSER_LOCAL).expect("write local");
    let store = StoreConfig { connect_timeout: Duration::from_secs(1), ..server.store_config() };
    let config = PolicySourceConfig {
        local: Some(LocalPolicy::explicit(&local_path)),
        central: Some(CentralPolicy {
            url: format!("s3://{}/.warmlake/policy.toml", cache_support::BUCKET),
            store,
            saved_copy: Some(dir.path().join("central.toml")),
        }),
        recheck_interval: Duration::from_secs(3600),
    };
    rt.block_on(async {
        let source = PolicySource::start(config).await.expect("start");
        assert_tight(&source.current());
        assert_eq!(source.last_error(), None);

        // Unchanged (ETag matches), then changed.
        assert_tight(&*source.reload_now().await);
        assert_eq!(source.last_error(), None);
        let stricter = CENTRAL.replace("max_cache = \"1GiB\"", "max_cache = \"512MiB\"");
        put(&bucket, "policy.toml", &stricter).await;
        assert_eq!(source.reload_now().await.limits().max_cache(), Some(512 << 20));

        // The local file still only tightens, live.
        let mut rx = source.subscribe();
        std::fs::write(&local_path, format!("{LOOSER_LOCAL}\n[[rule]]\nmatch = \"hr.*\"\naction = \"deny\"\n"))
            .expect("write local");
        published(&mut rx, "the local edit", |p| action(p, "hr", "pay") == Action::Deny).await;
        assert_eq!(action(&source.current(), "finance", "ledger"), Action::Deny);

        // The server goes away: the last good central policy stays.
        drop(server);
        let now = source.reload_now().await;
        assert_eq!(now.limits().max_cache(), Some(512 << 20));
        assert_eq!(action(&now, "finance", "ledger"), Action::Deny);
        let error = source.last_error().expect("an error");
        assert!(error.contains("cannot fetch central policy s3://lake/.warmlake/policy.toml"), "{error}");
    });
}
