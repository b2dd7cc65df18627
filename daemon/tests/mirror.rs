//! The snapshot mirror: offline reads equal the source, refreshes are incremental, and a
//! mirror survives restarts and rebuilds itself when the source's history was rewritten.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::governance::MirrorScrub;
use warmlake_daemon::local_query::query_text;
use warmlake_daemon::mirror::Mirror;

fn spec() -> LakeSpec {
    LakeSpec { events_rows: 2_000, events_files: 2, row_group_rows: 500, order_batches: 3, plain: false }
}

fn open(path: &Path) -> CatalogReader {
    CatalogReader::open(&CatalogLocation::Sqlite(path.to_path_buf()), None).expect("catalog opens")
}

/// Rewinds a SQLite DuckLake catalog to how it was at snapshot `n` (the generator writes a
/// whole history at once; this gives a source that can then "move forward").
fn rewind(catalog: &Path, n: i64) {
    let c = rusqlite::Connection::open(catalog).expect("open");
    let mut sql = format!(
        "DELETE FROM ducklake_snapshot WHERE snapshot_id > {n}; DELETE FROM ducklake_snapshot_changes WHERE snapshot_id > {n};"
    );
    let versioned: Vec<String> = c
        .prepare("SELECT m.name FROM sqlite_master m WHERE m.type = 'table' AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'begin_snapshot')")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    for t in versioned {
        sql.push_str(&format!("DELETE FROM {t} WHERE begin_snapshot > {n};"));
        let has_end: bool = c
            .query_row(
                &format!("SELECT count(*) > 0 FROM pragma_table_info('{t}') WHERE name = 'end_snapshot'"),
                [],
                |r| r.get(0),
            )
            .expect("pragma");
        if has_end {
            sql.push_str(&format!("UPDATE {t} SET end_snapshot = NULL WHERE end_snapshot > {n};"));
        }
    }
    sql.push_str("DELETE FROM ducklake_file_column_stats WHERE data_file_id NOT IN (SELECT data_file_id FROM ducklake_data_file);");
    c.execute_batch(&sql).expect("rewind");
}

fn all_rows(snap: &LakeSnapshot) -> Vec<(String, Vec<Vec<String>>)> {
    snap.tables
        .iter()
        .map(|t| {
            let mut rows =
                query_text(snap, &format!("SELECT * FROM \"{}\".\"{}\"", t.schema, t.name)).expect("query").rows;
            rows.sort();
            (format!("{}.{}", t.schema, t.name), rows)
        })
        .collect()
}

fn assert_same_history(source: &CatalogReader, mirror: &CatalogReader) {
    let snaps = source.snapshots().expect("snapshots");
    assert_eq!(snaps, mirror.snapshots().expect("mirror snapshots"));
    for s in &snaps {
        let (a, b) = (source.read_snapshot(s.id).expect("source"), mirror.read_snapshot(s.id).expect("mirror"));
        assert_eq!(a.data_root, b.data_root);
        assert_eq!(
            a.tables.iter().map(|t| (&t.name, &t.columns, &t.files, &t.tags)).collect::<Vec<_>>(),
            b.tables.iter().map(|t| (&t.name, &t.columns, &t.files, &t.tags)).collect::<Vec<_>>(),
            "snapshot {}",
            s.id
        );
        assert_eq!(all_rows(&a), all_rows(&b), "snapshot {}", s.id);
    }
}

#[test]
fn incremental_refresh_copies_only_what_changed_and_equals_the_source() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate(&tmp.path().join("lake"), &spec(), &[CatalogKind::Sqlite]).expect("generate");
    let catalog = &lake.catalogs[0];
    let past = tmp.path().join("lake/past.sqlite");
    std::fs::copy(catalog, &past).expect("copy");
    let middle = lake.latest_snapshot - 6;
    rewind(&past, middle);

    let mirror_path = tmp.path().join("state/mirror/lake.sqlite");
    let mut mirror = Mirror::open(&mirror_path).expect("open");
    let first = mirror.sync(&open(&past), &MirrorScrub::default()).expect("first sync");
    assert!(first.full);
    assert_eq!((first.from, first.to), (None, middle));

    // Move the source forward; only the new snapshots' rows are copied.
    std::fs::copy(catalog, &past).expect("advance source");
    let source = open(&past);
    let second = mirror.sync(&source, &MirrorScrub::default()).expect("second sync");
    assert!(!second.full, "{second:?}");
    assert_eq!((second.from, second.to), (Some(middle), lake.latest_snapshot));
    assert!(second.rows < first.rows, "incremental copied {} rows, full copied {}", second.rows, first.rows);
    let again = mirror.sync(&source, &MirrorScrub::default()).expect("no-op sync");
    assert_eq!(again.rows, 0);
    drop(mirror);

    // A restart reads the same mirror; with the source gone, every snapshot still reads.
    let offline = open(&mirror_path);
    assert_same_history(&open(catalog), &offline);
    std::fs::remove_file(&past).expect("source gone");
    assert_eq!(Mirror::open(&mirror_path).expect("reopen").last_snapshot().expect("state"), Some(lake.latest_snapshot));

    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&mirror_path), 0o600);
    assert_eq!(mode(mirror_path.parent().expect("dir")), 0o700);
}

#[test]
fn expired_snapshots_rebuild_the_mirror() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate(&tmp.path().join("lake"), &spec(), &[CatalogKind::Sqlite]).expect("generate");
    let catalog = &lake.catalogs[0];
    let mut mirror = Mirror::open(&tmp.path().join("m.sqlite")).expect("open");
    mirror.sync(&open(catalog), &MirrorScrub::default()).expect("sync");
    // expire_snapshots removes a snapshot row: the mirror must not keep serving it.
    rusqlite::Connection::open(catalog)
        .and_then(|c| c.execute_batch("DELETE FROM ducklake_snapshot WHERE snapshot_id = 2; DELETE FROM ducklake_snapshot_changes WHERE snapshot_id = 2;"))
        .expect("expire");
    let report = mirror.sync(&open(catalog), &MirrorScrub::default()).expect("resync");
    assert!(report.full, "{report:?}");
    assert_same_history(&open(catalog), &open(&tmp.path().join("m.sqlite")));
}

#[test]
fn a_failed_refresh_leaves_the_previous_mirror_intact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate(&tmp.path().join("lake"), &spec(), &[CatalogKind::Sqlite]).expect("generate");
    let catalog = &lake.catalogs[0];
    let past = tmp.path().join("past.sqlite");
    std::fs::copy(catalog, &past).expect("copy");
    rewind(&past, lake.latest_snapshot - 3);
    let mirror_path = tmp.path().join("m.sqlite");
    let mut mirror = Mirror::open(&mirror_path).expect("open");
    mirror.sync(&open(&past), &MirrorScrub::default()).expect("sync");
    // The source moves forward, but a table vanishes while the refresh reads it: the refresh
    // fails as a whole, after it has already written other tables, and the mirror still
    // answers at the old snapshot.
    std::fs::copy(catalog, &past).expect("advance");
    let source = open(&past);
    rusqlite::Connection::open(&past)
        .and_then(|c| c.execute_batch("DROP TABLE ducklake_file_column_stats"))
        .expect("break");
    let err = mirror.sync(&source, &MirrorScrub::default()).expect_err("refresh fails");
    assert!(err.to_string().contains("ducklake_file_column_stats"), "{err}");
    assert_eq!(mirror.last_snapshot().expect("state"), Some(lake.latest_snapshot - 3));
    let offline = open(&mirror_path);
    assert_eq!(offline.latest_snapshot().expect("latest").id, lake.latest_snapshot - 3);
    offline.read_snapshot(lake.latest_snapshot - 3).expect("old snapshot still reads");
}
