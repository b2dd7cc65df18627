//! The generator writes catalogs shaped exactly like the DuckLake extension's, Parquet files
//! with field ids, and the same lake reads back identically from DuckDB and SQLite catalogs.

mod fixtures;

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::local_query::query_text;
use warmlake_daemon::view_sql::literal;

fn small_spec() -> LakeSpec {
    LakeSpec { events_rows: 5_000, events_files: 2, row_group_rows: 1_000, order_batches: 3, plain: false }
}

/// `(table, column, type)` of every catalog table except per-table inlined-data tables.
fn catalog_schema(path: &std::path::Path) -> Vec<(String, String, String)> {
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    db.execute_batch(&format!("ATTACH {} AS c (READ_ONLY)", literal(&path.to_string_lossy()))).expect("attach");
    let mut stmt = db
        .prepare(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_catalog = 'c' \
             AND table_name NOT LIKE 'ducklake_inlined_data\\_%\\_%' ESCAPE '\\' AND table_name NOT LIKE 'ducklake_inlined_delete\\_%' ESCAPE '\\' \
             ORDER BY table_name, ordinal_position",
        )
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("query").map(|r| r.expect("row")).collect()
}

#[test]
fn generated_catalog_schema_equals_the_extensions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate(tmp.path(), &small_spec(), &[CatalogKind::DuckDb]).expect("generate");
    let fixture = fixtures::root().join("reference/shop/catalog.ducklake");
    let want = catalog_schema(&fixture);
    assert!(want.len() > 150, "fixture schema read ({} columns)", want.len());
    assert_eq!(catalog_schema(&lake.catalogs[0]), want);

    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    let keys = |p: &std::path::Path| -> Vec<String> {
        db.execute_batch(&format!("ATTACH {} AS k (READ_ONLY)", literal(&p.to_string_lossy()))).expect("attach");
        let mut s =
            db.prepare("SELECT key FROM k.ducklake_metadata WHERE scope IS NULL ORDER BY key").expect("prepare");
        let out = s.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
        db.execute_batch("DETACH k").expect("detach");
        out
    };
    assert_eq!(keys(&lake.catalogs[0]), keys(&fixture));
}

#[test]
fn generated_files_carry_field_ids_equal_to_column_ids() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate(tmp.path(), &small_spec(), &[CatalogKind::DuckDb]).expect("generate");
    let loc = CatalogLocation::parse(&lake.catalogs[0].to_string_lossy());
    let reader = CatalogReader::open(&loc, None).expect("open");
    let snap = reader.read_snapshot(reader.latest_snapshot().expect("latest").id).expect("read");
    let db = duckdb::Connection::open_in_memory().expect("duckdb");
    let mut checked = 0;
    for table in &snap.tables {
        for file in &table.files {
            let path = format!("{}{}", snap.data_root, file.key);
            let mut stmt = db
                .prepare(&format!(
                    "SELECT name, field_id FROM parquet_schema({}) WHERE num_children IS NULL OR num_children = 0",
                    literal(&path)
                ))
                .expect("schema");
            let fields: Vec<(String, Option<i64>)> =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("q").map(|r| r.expect("row")).collect();
            for (name, id) in fields {
                let id = id.unwrap_or_else(|| panic!("{path}: column {name} has no field id"));
                assert!(
                    table.columns.iter().any(|c| c.id == id),
                    "{path}: field id {id} ({name}) is no column of {}",
                    table.name
                );
                checked += 1;
            }
            let footer = file.footer_size.expect("footer size recorded");
            let bytes = std::fs::read(&path).expect("file");
            assert_eq!(bytes.len() as i64, file.size, "{path}: size");
            assert_eq!(
                u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().expect("4")) as i64,
                footer
            );
        }
    }
    assert!(checked > 20, "checked {checked} fields");
}

fn rows(snap: &LakeSnapshot, sql: &str) -> Vec<Vec<String>> {
    let mut r = query_text(snap, sql).unwrap_or_else(|e| panic!("{sql}: {e}")).rows;
    r.sort();
    r
}

#[test]
fn duckdb_and_sqlite_catalogs_read_back_identically_at_every_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake =
        generate::generate(tmp.path(), &small_spec(), &[CatalogKind::DuckDb, CatalogKind::Sqlite]).expect("generate");
    let open =
        |p: &std::path::Path| CatalogReader::open(&CatalogLocation::parse(&p.to_string_lossy()), None).expect("open");
    let (duck, lite) = (open(&lake.catalogs[0]), open(&lake.catalogs[1]));
    assert!(matches!(lite.location(), CatalogLocation::Sqlite(_)), "sniffed as SQLite");
    let snapshots = duck.snapshots().expect("snapshots");
    assert_eq!(snapshots, lite.snapshots().expect("snapshots"));
    assert_eq!(snapshots.len() as i64, lake.latest_snapshot + 1);
    for s in &snapshots {
        let (a, b) = (duck.read_snapshot(s.id).expect("duck"), lite.read_snapshot(s.id).expect("sqlite"));
        assert_eq!(a.schemas, b.schemas, "snapshot {}", s.id);
        assert_eq!(a.tables.len(), b.tables.len(), "snapshot {}", s.id);
        for (ta, tb) in a.tables.iter().zip(&b.tables) {
            assert_eq!((&ta.name, &ta.columns, &ta.files, &ta.tags), (&tb.name, &tb.columns, &tb.files, &tb.tags));
            let sql = format!("SELECT * FROM \"{}\".\"{}\"", ta.schema, ta.name);
            assert_eq!(rows(&a, &sql), rows(&b, &sql), "snapshot {} table {}", s.id, ta.name);
        }
    }
}

#[test]
fn generated_history_has_ducklake_semantics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate(tmp.path(), &small_spec(), &[CatalogKind::Sqlite]).expect("generate");
    let reader = CatalogReader::open(&CatalogLocation::parse(&lake.catalogs[0].to_string_lossy()), None).expect("open");
    let snap = reader.read_snapshot(lake.latest_snapshot).expect("read");
    let one = |sql: &str| rows(&snap, sql).concat().join(",");
    // 3 batches of 2,000 minus every id ending in 3, then 2,000 more after the schema change.
    assert_eq!(one("SELECT count(*) FROM sales.orders"), "7400");
    assert_eq!(one("SELECT count(*) FROM sales.orders WHERE id % 10 = 3 AND id < 6000"), "0");
    // The renamed column keeps its values; the added one reads its default in old files.
    assert_eq!(one("SELECT comment FROM sales.orders WHERE id = 7"), "note 7");
    assert_eq!(one("SELECT channel, count(*) FROM sales.orders GROUP BY 1 ORDER BY 1"), "app,2000,web,5400");
    // Inlined rows, tags, a dropped table.
    assert_eq!(one("SELECT sum(refund) FROM sales.returns"), "47.75");
    let customers = snap.table("sales", "customers").expect("customers");
    assert_eq!(customers.tags.get("owner").map(String::as_str), Some("crm-team"));
    let email = customers.columns.iter().find(|c| c.name == "email").expect("email");
    assert_eq!(email.tags.get("pii").map(String::as_str), Some("true"));
    assert!(snap.table("web", "scratch").is_none());
    assert!(reader.read_snapshot(lake.latest_snapshot - 1).expect("before drop").table("web", "scratch").is_some());
    assert_eq!(one("SELECT count(*), count(DISTINCT kind) FROM web.events"), "5000,3");
    assert_eq!(snap.table("web", "events").expect("events").columns.len(), 20);
}

#[test]
fn refuses_to_overwrite_an_existing_lake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    generate::generate(tmp.path(), &small_spec(), &[CatalogKind::DuckDb]).expect("first");
    assert!(matches!(
        generate::generate(tmp.path(), &small_spec(), &[CatalogKind::DuckDb]),
        Err(generate::GenerateError::NotEmpty { .. })
    ));
}
