//! Every table of every reference lake, at every snapshot the DuckLake extension recorded,
//! read through warmlake's catalog reader and view SQL, equals the extension's own answer.

mod fixtures;
mod reference_support;

use reference_support::{expected_answers, open_lake};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::governance::MirrorScrub;
use warmlake_daemon::mirror::Mirror;
use warmlake_daemon::view_sql::table_select;

/// Compares every expected answer of lake `name` with what `reader` (the lake's catalog, or a
/// mirror of it) gives.
fn check_lake(name: &str, reader: &CatalogReader) -> usize {
    let root = reader.data_root().to_string();
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    let mut checked = 0;
    for expected in expected_answers(name) {
        let (stem, snapshot) = (&expected.stem, expected.snapshot);
        let lake_at = reader.read_snapshot(snapshot).expect("snapshot reads");
        let def = lake_at.table(&expected.schema, &expected.table).unwrap_or_else(|| panic!("{stem}: table missing"));
        let url = |k: &warmlake_daemon::lake_path::LakeKey| format!("{root}{k}");
        let select = table_select(def, snapshot, &url).expect("view sql");
        db.execute_batch(&format!("CREATE OR REPLACE TEMP VIEW v AS {select}"))
            .unwrap_or_else(|e| panic!("{stem}: {e}\n{select}"));
        fixtures::assert_equals_expected(&db, "v", &expected.path, stem);
        checked += 1;
    }
    checked
}

#[test]
fn shop_matches_the_extension_at_every_snapshot() {
    assert_eq!(check_lake("shop", &open_lake("shop")), 50);
}

#[test]
fn types_match_the_extension_at_every_snapshot() {
    assert_eq!(check_lake("types", &open_lake("types")), 3);
}

/// The same answers come from the local mirror, read with no access to the source catalog.
#[test]
fn mirrors_of_the_reference_lakes_give_the_same_answers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, tables) in [("shop", 50), ("types", 3)] {
        let path = tmp.path().join(format!("mirror/{name}.sqlite"));
        let mut mirror = Mirror::open(&path).expect("mirror opens");
        let report = mirror.sync(&open_lake(name), &MirrorScrub::default()).expect("mirror syncs");
        assert!(report.full && report.rows > 0, "{report:?}");
        drop(mirror);
        let offline = CatalogReader::open(&CatalogLocation::Sqlite(path), None).expect("mirror reads");
        assert_eq!(check_lake(name, &offline), tables);
    }
}

/// Time travel by timestamp, change detection and files scheduled for deletion, checked
/// against the shop catalog's tables as read by hand with DuckDB.
#[test]
fn shop_time_travel_changes_and_scheduled_deletions() {
    let reader = open_lake("shop");
    let ids: Vec<i64> = reader.snapshots().expect("snapshots").iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 29, "snapshot 3 was expired");
    assert!(!ids.contains(&3));
    let since: Vec<(i64, Option<String>)> =
        reader.snapshots_since(27).expect("since").into_iter().map(|s| (s.id, s.changes)).collect();
    assert_eq!(since, [(28, Some("altered_table:3".to_string())), (29, Some("inserted_into_table:3".to_string()))]);
    // snapshot 10 was taken at 14:13:08.607767, snapshot 11 at 14:13:08.614302 (UTC)
    assert_eq!(reader.snapshot_at_time("2026-11-25 14:13:08.610000+00").expect("at time").id, 10);
    assert_eq!(reader.snapshot_at_time("2026-11-25T14:13:08.614302Z").expect("at time").id, 11);
    assert!(reader.snapshot_at_time("2020-01-01 00:00:00+00").is_err(), "before the first snapshot");
    let scheduled: Vec<String> =
        reader.scheduled_for_deletion().expect("scheduled").iter().map(|k| k.to_string()).collect();
    assert_eq!(scheduled.len(), 7);
    assert!(
        scheduled.contains(&"sales/orders/ducklake-01a2130d-9b68-7c7e-a725-e5c2760c4302-delete.parquet".to_string())
    );
    assert_eq!(scheduled.iter().filter(|k| k.starts_with("web/events/kind=")).count(), 6);
}
