//! Locating the shared DuckLake fixtures (`../shared/fixtures/ducklake` beside the checkout).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The fixture root; `WARMLAKE_FIXTURES` overrides it.
pub fn root() -> PathBuf {
    if let Ok(p) = std::env::var("WARMLAKE_FIXTURES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ducklake")
}

/// Unpacks a gzipped fixture catalog into `dir` and returns the unpacked path.
pub fn gunzip(src: &Path, dir: &Path) -> PathBuf {
    let name = src.file_name().and_then(|n| n.to_str()).unwrap_or("catalog.db.gz");
    let out = dir.join(name.trim_end_matches(".gz"));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc '{}' > '{}'", src.display(), out.display()))
        .status()
        .expect("gzip runs");
    assert!(status.success(), "gunzip {}", src.display());
    out
}

/// Types the expected Parquet files cannot hold exactly (Parquet has no HUGEINT, and DuckDB
/// writes TIMESTAMP_MS as a plain TIMESTAMP); values are still compared after a cast.
pub fn same_type(view: &str, expected: &str) -> bool {
    view == expected || matches!((view, expected), ("HUGEINT", "DOUBLE") | ("TIMESTAMP_MS", "TIMESTAMP"))
}

/// Asserts that relation `got` (a view or table in `db`) equals the DuckLake extension's answer
/// stored in the Parquet file `expected`: same column names, compatible types, same multiset
/// of rows. Returns the row count.
pub fn assert_equals_expected(db: &duckdb::Connection, got: &str, expected: &Path, what: &str) -> i64 {
    let want = format!("read_parquet('{}')", expected.display().to_string().replace('\'', "''"));
    let describe = |rel: &str| -> Vec<(String, String)> {
        let mut stmt = db
            .prepare(&format!("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {rel})"))
            .expect("describe");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").map(|r| r.expect("row")).collect()
    };
    let (g, w) = (describe(got), describe(&want));
    assert_eq!(g.len(), w.len(), "{what}: columns {g:?} vs {w:?}");
    for ((gn, gt), (wn, wt)) in g.iter().zip(&w) {
        assert_eq!(gn, wn, "{what}: column names");
        assert!(same_type(gt, wt), "{what}: column {gn} is {gt}, expected {wt}");
    }
    let diff: i64 = db
        .query_row(
            &format!(
                "SELECT count(*) FROM ((SELECT * FROM {got} EXCEPT ALL SELECT * FROM {want}) UNION ALL (SELECT * FROM {want} EXCEPT ALL SELECT * FROM {got}))"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let rows: i64 = db.query_row(&format!("SELECT count(*) FROM {got}"), [], |r| r.get(0)).expect("count");
    assert_eq!(diff, 0, "{what}: {diff} rows differ ({rows} rows)");
    rows
}

/// Whether real FUSE mounts can be made here. On CI (`CI=true`) a missing FUSE is a failure,
/// never a skip; elsewhere the caller skips loudly.
pub fn fuse_available(test: &str) -> bool {
    let ok = Path::new("/dev/fuse").exists()
        && (std::process::Command::new("fusermount3").arg("--version").output().is_ok() || unsafe_is_root());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: FUSE is required on CI (/dev/fuse and fuse3)");
        eprintln!("SKIPPED {test}: no FUSE here (/dev/fuse and fusermount3 from Debian's fuse3 are needed)");
    }
    ok
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
