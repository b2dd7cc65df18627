//! `warmlake policy check` and `warmlake policy explain`, run as a user would: the real binary,
//! real files, a real generated lake for catalog tags.

use std::path::Path;
use std::process::Command;

struct Run {
    ok: bool,
    out: String,
    err: String,
}

fn warmlake<S: AsRef<std::ffi::OsStr>>(args: &[S], config_home: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_warmlake"))
        .args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("RUST_LOG")
        .output()
        .expect("warmlake runs");
    Run {
        ok: out.status.success(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const POLICY: &str = r#"[local]
max_cache = "20GiB"
keep_snapshots = 2

[[rule]]
match = "finance.*"
except = ["finance.rates"]
action = "deny"
reason = "Finance data stays in the bucket"

[[rule]]
tag = { pii = "true" }
action = "read-through"

[[prewarm]]
name = "monday-review"
cron = "45 8 * * Mon"
tables = ["sales.*"]
"#;

fn write_policy(dir: &Path, text: &str) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    path.display().to_string()
}

#[test]
fn check_prints_the_effective_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_policy(dir.path(), POLICY);
    let r = warmlake(&["policy", "check", &file], dir.path());
    assert!(r.ok, "{}\n{}", r.out, r.err);
    assert!(r.out.contains(&format!("{file} is valid.")), "{}", r.out);
    for line in [
        "mode            allow (default)",
        &format!("max_cache       20 GiB ({file}:2)"),
        &format!("keep_snapshots  2 ({file}:3)"),
        &format!("rules of {file}, default action cache (default):"),
        "  1. line 5: match = \"finance.*\", except = [\"finance.rates\"] -> deny",
        "  2. line 11: tag = { pii = \"true\" } -> read-through",
        "prewarm         \"monday-review\": tables [\"sales.*\"], hot columns, cron \"45 8 * * Mon\"",
    ] {
        assert!(r.out.contains(line), "missing {line:?} in\n{}", r.out);
    }
}

#[test]
fn check_reads_the_default_file_and_accepts_its_absence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = warmlake(&["policy", "check"], dir.path());
    assert!(r.ok, "{}\n{}", r.out, r.err);
    assert!(r.out.contains("No policy file at"), "{}", r.out);
    assert!(r.out.contains("rules: none; everything may be cached"), "{}", r.out);

    std::fs::create_dir(dir.path().join("warmlake")).expect("mkdir");
    let file = write_policy(&dir.path().join("warmlake"), POLICY);
    let r = warmlake(&["policy", "check"], dir.path());
    assert!(r.ok, "{}\n{}", r.out, r.err);
    assert!(r.out.contains(&format!("{file} is valid.")), "{}", r.out);
}

#[test]
fn check_reports_a_malformed_file_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file =
        write_policy(dir.path(), "[local]\nmax_cache = \"20GiB\"\n\n[[rule]]\nmatch = \"a.b\"\naction = \"cach\"\n");
    let r = warmlake(&["policy", "check", &file], dir.path());
    assert!(!r.ok, "a malformed policy passed: {}", r.out);
    let first = r.err.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("{file}:6:10: unknown action \"cach\"")), "{}", r.err);
    assert!(r.err.contains("6 | action = \"cach\"\n  |          ^"), "{}", r.err);

    let missing = dir.path().join("nope.toml").display().to_string();
    let r = warmlake(&["policy", "check", &missing], dir.path());
    assert!(!r.ok);
    assert!(r.err.contains("does not exist"), "{}", r.err);
}

/// The first line of `explain`: `object: action`.
fn verdict(args: &[String], dir: &Path) -> String {
    let r = warmlake(args, dir);
    assert!(r.ok, "{args:?}: {}\n{}", r.out, r.err);
    r.out.lines().next().unwrap_or_default().to_string()
}

#[test]
fn explain_says_which_rule_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_policy(dir.path(), POLICY);
    let explain = |args: &[&'static str]| -> Vec<String> {
        ["policy", "explain"].iter().chain(args).chain(&["--policy", file.as_str()]).map(|s| s.to_string()).collect()
    };
    assert_eq!(verdict(&explain(&["sales.orders"]), dir.path()), "sales.orders: cache");
    assert_eq!(verdict(&explain(&["finance.rates"]), dir.path()), "finance.rates: cache");

    let r = warmlake(&explain(&["finance.ledger"]), dir.path());
    assert!(r.out.starts_with("finance.ledger: deny\n"), "{}", r.out);
    assert!(r.out.contains("rule 1, line 5: match = \"finance.*\", except = [\"finance.rates\"] -> deny  <- decides"));
    assert!(r.out.contains("Finance data stays in the bucket"), "{}", r.out);

    // Tag-based: on the table, then on the column only.
    assert_eq!(verdict(&explain(&["crm.customers", "--tag", "pii=true"]), dir.path()), "crm.customers: read-through");
    let r = warmlake(&explain(&["crm.customers.email", "--column-tag", "pii=true"]), dir.path());
    assert!(r.out.starts_with("crm.customers.email: read-through\n"), "{}", r.out);
    assert!(r.out.contains("applies to the column: tag pii=\"true\" found on column email"), "{}", r.out);
    assert!(r.out.contains("table crm.customers: cache"), "{}", r.out);

    // JSON for scripts.
    let r = warmlake(&explain(&["finance.ledger.amount", "--json"]), dir.path());
    assert!(r.ok, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(json["column"]["action"], "deny");
    assert_eq!(json["column"]["rule"]["index"], 0);

    // A column tag without a column is a usage error.
    let r = warmlake(&explain(&["crm.customers", "--column-tag", "pii=true"]), dir.path());
    assert!(!r.ok && r.err.contains("--column-tag needs a column"), "{}", r.err);
}

#[test]
fn explain_reads_tags_from_a_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let r = warmlake(&["dev", "make-lake", &lake.display().to_string()], dir.path());
    assert!(r.ok, "make-lake: {}\n{}", r.out, r.err);
    let catalog = lake.join("catalog.ducklake").display().to_string();
    // The generated lake tags sales.customers owner=crm-team and its column email pii=true.
    let file = write_policy(
        dir.path(),
        "[[rule]]\ntag = { pii = \"true\" }\naction = \"deny\"\n\n[[rule]]\ntag = { owner = \"crm-*\" }\naction = \"read-through\"\n",
    );
    let explain = |object: &str| {
        let args = ["policy", "explain", object, "--policy", &file, "--catalog", &catalog];
        warmlake(&args, dir.path())
    };
    let r = explain("sales.customers.email");
    assert!(r.ok, "{}\n{}", r.out, r.err);
    assert!(r.out.starts_with("sales.customers.email: deny\n"), "{}", r.out);
    assert!(r.out.contains("table tags: owner=\"crm-team\"; column tags: pii=\"true\""), "{}", r.out);
    assert!(explain("sales.customers.name").out.starts_with("sales.customers.name: read-through\n"));
    assert!(explain("sales.orders").out.starts_with("sales.orders: cache\n"));
    let r = explain("sales.nope");
    assert!(!r.ok && r.err.contains("no table sales.nope"), "{}", r.err);
}
