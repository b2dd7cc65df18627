//! Every table of every reference lake, at every snapshot the DuckLake extension recorded,
//! read through warmlake's catalog reader and view SQL, equals the extension's own answer.

mod fixtures;

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::view_sql::{literal, table_select};

/// Types the expected Parquet files cannot hold exactly (Parquet has no HUGEINT, and DuckDB
/// writes TIMESTAMP_MS as a plain TIMESTAMP); values are still compared after a cast.
fn same_type(view: &str, expected: &str) -> bool {
    view == expected || matches!((view, expected), ("HUGEINT", "DOUBLE") | ("TIMESTAMP_MS", "TIMESTAMP"))
}

fn check_lake(name: &str) -> usize {
    let lake = fixtures::root().join("reference").join(name);
    let location = CatalogLocation::parse(&lake.join("catalog.ducklake").to_string_lossy());
    let reader = CatalogReader::open(&location, None).expect("reference catalog opens");
    assert_eq!(reader.features().version, "1.0");
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
        db.execute_batch(&format!(
            "CREATE OR REPLACE TEMP VIEW v AS {select}; CREATE OR REPLACE TEMP VIEW e AS SELECT * FROM read_parquet({});",
            literal(&path.to_string_lossy())
        ))
        .unwrap_or_else(|e| panic!("{stem}: {e}\n{select}"));
        let describe = |v: &str| -> Vec<(String, String)> {
            let mut stmt =
                db.prepare(&format!("SELECT column_name, column_type FROM (DESCRIBE {v})")).expect("describe");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").map(|r| r.expect("row")).collect()
        };
        let (got, want) = (describe("v"), describe("e"));
        assert_eq!(got.len(), want.len(), "{stem}: columns {got:?} vs {want:?}");
        for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
            assert_eq!(gn, wn, "{stem}: column names");
            assert!(same_type(gt, wt), "{stem}: column {gn} is {gt}, expected {wt}");
        }
        let diff: i64 = db
            .query_row(
                "SELECT count(*) FROM ((SELECT * FROM v EXCEPT ALL SELECT * FROM e) UNION ALL (SELECT * FROM e EXCEPT ALL SELECT * FROM v))",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        let rows: i64 = db.query_row("SELECT count(*) FROM v", [], |r| r.get(0)).expect("count");
        assert_eq!(diff, 0, "{stem}: {diff} rows differ ({rows} rows in the view)");
        checked += 1;
    }
    checked
}

#[test]
fn shop_matches_the_extension_at_every_snapshot() {
    assert_eq!(check_lake("shop"), 50);
}

#[test]
fn types_match_the_extension_at_every_snapshot() {
    assert_eq!(check_lake("types"), 3);
}
