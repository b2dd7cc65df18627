//! Every table of every reference lake, at every snapshot the DuckLake extension recorded,
//! read through warmlake's catalog reader and view SQL, equals the extension's own answer.

mod fixtures;

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::mirror::Mirror;
use warmlake_daemon::view_sql::table_select;

fn open_lake(name: &str) -> CatalogReader {
    let lake = fixtures::root().join("reference").join(name);
    let location = CatalogLocation::parse(&lake.join("catalog.ducklake").to_string_lossy());
    let reader = CatalogReader::open(&location, None).expect("reference catalog opens");
    assert_eq!(reader.features().version, "1.0");
    reader
}

/// Compares every expected answer of lake `name` with what `reader` (the lake's catalog, or a
/// mirror of it) gives.
fn check_lake(name: &str, reader: &CatalogReader) -> usize {
    let lake = fixtures::root().join("reference").join(name);
    let root = reader.data_root().to_string();
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    let mut checked = 0;
    let mut expected: Vec<_> = std::fs::read_dir(lake.join("expected"))
        .expect("expected dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    expected.sort();
    for path in expected {
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name").to_string();
        let (qualified, snap) = stem.split_once('@').expect("name@snapshot");
        let (schema, table) = qualified.split_once('.').expect("schema.table");
        let snapshot: i64 = snap.parse().expect("snapshot id");
        let lake_at = reader.read_snapshot(snapshot).expect("snapshot reads");
        let def = lake_at.table(schema, table).unwrap_or_else(|| panic!("{stem}: table missing"));
        let url = |k: &warmlake_daemon::lake_path::LakeKey| format!("{root}{k}");
        let select = table_select(def, snapshot, &url).expect("view sql");
        db.execute_batch(&format!("CREATE OR REPLACE TEMP VIEW v AS {select}"))
            .unwrap_or_else(|e| panic!("{stem}: {e}\n{select}"));
        fixtures::assert_equals_expected(&db, "v", &path, &stem);
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
        let report = mirror.sync(&open_lake(name)).expect("mirror syncs");
        assert!(report.full && report.rows > 0, "{report:?}");
        drop(mirror);
        let offline = CatalogReader::open(&CatalogLocation::Sqlite(path), None).expect("mirror reads");
        assert_eq!(check_lake(name, &offline), tables);
    }
}
