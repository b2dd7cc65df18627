//! Hostile catalog rows: a DuckLake catalog is written by whoever can write to the lake, so the
//! daemon must survive any row in it. A generated SQLite catalog has values overwritten at
//! random — NULLs where values are expected, huge and negative numbers, strings in number
//! columns, unknown type names, paths that leave the lake — and reading every snapshot,
//! writing the view script and syncing the mirror must each succeed or fail with an error,
//! never panic or hang, and whatever is read must name only files inside the lake.

mod fuzz_support;

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use rusqlite::types::Value;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::governance::MirrorScrub;
use warmlake_daemon::mirror::Mirror;
use warmlake_daemon::sql::split_statements;
use warmlake_daemon::view_sql;

/// The pristine catalog, generated once, and every (table, column) of its `ducklake_*` tables.
struct Pristine {
    _dir: tempfile::TempDir,
    catalog: std::path::PathBuf,
    columns: Vec<(String, String)>,
}

fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = LakeSpec { events_rows: 2_000, events_files: 2, ..LakeSpec::default() };
        let lake = generate::generate(&dir.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
        let catalog = lake.catalogs[0].clone();
        let db = rusqlite::Connection::open(&catalog).expect("catalog");
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ducklake%' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("tables");
        let mut columns = Vec::new();
        for t in tables {
            let names: Vec<String> = db
                .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .expect("columns");
            columns.extend(names.into_iter().map(|c| (t.clone(), c)));
        }
        assert!(columns.len() > 50, "{columns:?}");
        Pristine { _dir: dir, catalog, columns }
    })
}

/// What a hostile writer puts in a cell.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Integer(i64::MAX)),
        Just(Value::Integer(i64::MIN)),
        Just(Value::Integer(-1)),
        Just(Value::Integer(0)),
        Just(Value::Real(1e308)),
        Just(Value::Real(f64::NAN)),
        Just(Value::Text(String::new())),
        Just(Value::Text("../../../etc/passwd".into())),
        Just(Value::Text("/etc/passwd".into())),
        Just(Value::Text("s3://elsewhere/secret.parquet".into())),
        Just(Value::Text("geometry_of_the_future".into())),
        Just(Value::Text("STRUCT(a INTEGER".into())),
        Just(Value::Text("x\"; ATTACH '/tmp/evil.db'; --".into())),
        Just(Value::Text("x'; ATTACH '/tmp/evil.db'; --".into())),
        Just(Value::Text("2026-01-01\nATTACH '/tmp/evil.db';\n".into())),
        Just(Value::Text("ü\u{0}\u{7}".into())),
        Just(Value::Text("9".repeat(400))),
        Just(Value::Blob(vec![0xff, 0x00, 0xfe])),
        any::<i64>().prop_map(Value::Integer),
    ]
}

/// One overwrite: the `column`-th column (modulo their number), in the `row`-th row of its table.
#[derive(Debug, Clone)]
struct Overwrite {
    column: usize,
    row: usize,
    value: Value,
}

fn overwrite() -> impl Strategy<Value = Overwrite> {
    (any::<usize>(), any::<usize>(), hostile_value()).prop_map(|(column, row, value)| Overwrite { column, row, value })
}

/// Copies the pristine catalog into `dir` and applies `edits`; returns the copy.
fn hostile_copy(dir: &Path, edits: &[Overwrite]) -> std::path::PathBuf {
    let p = pristine();
    let path = dir.join("catalog.sqlite");
    std::fs::copy(&p.catalog, &path).expect("copy");
    let db = rusqlite::Connection::open(&path).expect("open copy");
    for e in edits {
        let (table, column) = &p.columns[e.column % p.columns.len()];
        let rows: i64 = db.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get(0)).expect("count");
        if rows == 0 {
            continue;
        }
        let offset = e.row as i64 % rows;
        // The schema's own constraints (NOT NULL, primary keys) may refuse a value: that edit is
        // then one a writer could not make either.
        let _ = db.execute(
            &format!(
                "UPDATE \"{table}\" SET \"{column}\" = ?1 WHERE rowid = (SELECT rowid FROM \"{table}\" LIMIT 1 OFFSET ?2)"
            ),
            rusqlite::params![e.value, offset],
        );
    }
    path
}

/// Everything the daemon does with a catalog it did not write: read every snapshot, build the
/// view script, sync the mirror. Counts the snapshots that read cleanly.
fn read_everything(catalog: &Path, dir: &Path) -> usize {
    let location = CatalogLocation::parse(&format!("sqlite:{}", catalog.display()));
    let Ok(reader) = CatalogReader::open(&location, None) else { return 0 };
    let Ok(snapshots) = reader.snapshots() else { return 0 };
    let mut read = 0;
    for s in snapshots {
        let Ok(lake) = reader.read_snapshot(s.id) else { continue };
        read += 1;
        for table in &lake.tables {
            for f in &table.files {
                let key = f.key.as_str();
                assert!(!key.starts_with('/') && !key.split('/').any(|c| c == ".."), "escapes the lake: {key}");
            }
        }
        let url = |k: &warmlake_daemon::lake_path::LakeKey| format!("/lake/{}", k.as_str());
        let script = view_sql::lake_script(&lake, &url);
        // Names and times from the catalog stay inside their quotes and comments: the script is
        // exactly one CREATE per schema and per view it made, nothing a row smuggled in.
        let statements = split_statements(&script);
        let creates = lake.schemas.len() + script.matches("\nCREATE OR REPLACE VIEW ").count();
        assert_eq!(statements.len(), creates, "{script}");
        for s in statements {
            let code = s.lines().skip_while(|l| l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
            assert!(
                code.starts_with("CREATE SCHEMA IF NOT EXISTS ") || code.starts_with("CREATE OR REPLACE VIEW "),
                "{code}\nin\n{script}"
            );
        }
    }
    let _ = reader.scheduled_for_deletion();
    if let Ok(mut mirror) = Mirror::open(&dir.join("mirror.sqlite")) {
        let _ = mirror.sync(&reader, &MirrorScrub::default());
    }
    read
}

#[test]
fn the_pristine_catalog_reads_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = hostile_copy(dir.path(), &[]);
    assert!(read_everything(&copy, dir.path()) >= 3);
}

/// Found by the fuzz above: a line break in a snapshot time ended the script's header comment
/// and ran the rest as SQL. Kept as a fixed case so it is checked on every run.
#[test]
fn a_snapshot_time_cannot_end_the_header_comment() {
    let p = pristine();
    let column = p
        .columns
        .iter()
        .position(|(t, c)| t == "ducklake_snapshot" && c == "snapshot_time")
        .expect("ducklake_snapshot.snapshot_time");
    let dir = tempfile::tempdir().expect("tempdir");
    let edits: Vec<Overwrite> = (0..4)
        .map(|row| Overwrite { column, row, value: Value::Text("2026-01-01\nATTACH '/tmp/evil.db';\n".into()) })
        .collect();
    let copy = hostile_copy(dir.path(), &edits);
    read_everything(&copy, dir.path());
}

#[test]
fn hostile_rows_are_errors_not_crashes() {
    let regressions = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/catalog.proptest-regressions");
    let strategy = proptest::collection::vec(overwrite(), 1..4);
    fuzz_support::fuzz("catalog fuzz", regressions, 300, strategy, |edits| {
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = hostile_copy(dir.path(), &edits);
        read_everything(&copy, dir.path());
        Ok(())
    });
}
