//! The README's first command, run as a user would: real binary, real generated lake.

use std::process::Command;

fn warmlake(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warmlake")).args(args).output().expect("warmlake runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_prints_real_rows_from_the_generated_lake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lake");
    let (ok, out, err) = warmlake(&["demo", "--dir", &dir.to_string_lossy()]);
    assert!(ok, "demo failed: {err}\n{out}");
    // The sample query's rows: one per region, orders summing to what the generator wrote
    // (3 batches of 2,000, minus ids ending in 3, plus 2,000 appended after the schema change).
    let rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("apac ") || l.starts_with("eu ") || l.starts_with("us "))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    let total: i64 = rows.iter().map(|r| r[1].parse::<i64>().expect("count")).sum();
    assert_eq!(total, 7400, "{out}");
    let app: i64 = rows.iter().map(|r| r[3].parse::<i64>().expect("app orders")).sum();
    assert_eq!(app, 2000, "{out}");
    assert!(dir.join("lake.sql").exists());
    // The demo says plainly what it did not do.
    assert!(out.contains("Not running yet"), "{out}");
}

#[test]
fn dev_query_reads_inlined_rows_and_reports_bad_catalogs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lake");
    let (ok, _, err) =
        warmlake(&["dev", "make-lake", &dir.to_string_lossy(), "--catalog", "sqlite", "--events-rows", "1000"]);
    assert!(ok, "{err}");
    let catalog = dir.join("catalog.sqlite");
    let (ok, out, err) =
        warmlake(&["dev", "query", &catalog.to_string_lossy(), "SELECT reason FROM sales.returns ORDER BY return_id"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("damaged") && out.contains("wrong size") && out.contains("late") && out.contains("(3 rows)"),
        "{out}"
    );

    let (ok, _, err) = warmlake(&["dev", "query", &tmp.path().join("missing.ducklake").to_string_lossy(), "SELECT 1"]);
    assert!(!ok);
    assert!(err.contains("cannot open DuckLake catalog"), "{err}");
}
