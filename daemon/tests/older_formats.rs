//! Every catalog format in the fixtures opens, and reads back the facts checked by hand with
//! DuckDB against the catalog tables (version, tables, columns, files, deletes, rows).

mod fixtures;

use warmlake_daemon::catalog::{CatalogError, CatalogLocation, CatalogReader};
use warmlake_daemon::local_query::query_text;

struct Expect {
    file: &'static str,
    version: &'static str,
    latest: i64,
    /// `(table, data files, delete files, top-level columns)` at the latest snapshot.
    tables: &'static [(&'static str, usize, usize, &'static [&'static str])],
}

const OLD: &[Expect] = &[
    Expect { file: "old_ducklake/v01.db.gz", version: "0.1", latest: 1, tables: &[("test", 0, 0, &["i"])] },
    Expect {
        file: "old_ducklake/v01_partitioned.db.gz",
        version: "0.1",
        latest: 4,
        tables: &[
            ("other_partitioned_tbl", 0, 0, &["other_part_key", "values"]),
            ("partitioned_tbl", 0, 0, &["s", "part_key", "values"]),
        ],
    },
    Expect { file: "old_ducklake/v02.db.gz", version: "0.3-dev1", latest: 1, tables: &[("test", 0, 0, &["i"])] },
    Expect { file: "old_ducklake/v03-dev1.db.gz", version: "0.3-dev1", latest: 1, tables: &[("test", 0, 0, &["i"])] },
    Expect { file: "old_ducklake/v03.db.gz", version: "0.3", latest: 1, tables: &[("test", 0, 0, &["i"])] },
    Expect {
        file: "old_ducklake/v03_types.db.gz",
        version: "0.3",
        latest: 3,
        tables: &[("geo_tbl", 1, 0, &["g"]), ("test", 0, 0, &["i"])],
    },
    Expect { file: "old_ducklake/v04-dev1.db.gz", version: "0.4-dev1", latest: 1, tables: &[("test", 0, 0, &["i"])] },
    Expect {
        file: "old_ducklake/v04-dev1_types.db.gz",
        version: "0.4-dev1",
        latest: 5,
        tables: &[("geo_tbl", 1, 0, &["g"]), ("test", 0, 0, &["i"]), ("variant_tbl", 1, 0, &["v"])],
    },
    Expect { file: "old_ducklake/v04.db.gz", version: "0.4", latest: 1, tables: &[("test", 0, 0, &["i"])] },
    Expect { file: "old_ducklake/compacted_files.db.gz", version: "0.3", latest: 10, tables: &[("t1", 2, 0, &["a"])] },
    Expect {
        file: "old_ducklake/per_table_schema.db.gz",
        version: "0.3",
        latest: 6,
        tables: &[("T", 0, 0, &["a"]), ("T_1", 0, 0, &["b"]), ("T_2", 0, 0, &["a", "b"])],
    },
    Expect {
        file: "iceberg_deletes/delete_ignore_extra_columns.db.gz",
        version: "0.3",
        latest: 2,
        tables: &[("test", 1, 1, &["id"])],
    },
];

#[test]
fn every_old_format_opens_with_the_facts_read_by_hand() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for e in OLD {
        let path = fixtures::gunzip(&fixtures::root().join("ducklake-repo").join(e.file), tmp.path());
        let reader = CatalogReader::open(&CatalogLocation::parse(&path.to_string_lossy()), None)
            .unwrap_or_else(|err| panic!("{}: {err}", e.file));
        assert_eq!(reader.features().version, e.version, "{}", e.file);
        let latest = reader.latest_snapshot().expect("latest");
        assert_eq!(latest.id, e.latest, "{}", e.file);
        let snap = reader.read_snapshot(latest.id).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let mut got: Vec<(String, usize, usize, Vec<String>)> = snap
            .tables
            .iter()
            .map(|t| {
                let deletes = t.files.iter().map(|f| f.deletes.len()).sum();
                (t.name.clone(), t.files.len(), deletes, t.columns.iter().map(|c| c.name.clone()).collect())
            })
            .collect();
        got.sort();
        let want: Vec<(String, usize, usize, Vec<String>)> = e
            .tables
            .iter()
            .map(|(n, f, d, c)| (n.to_string(), *f, *d, c.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(got, want, "{}", e.file);
        // Every earlier snapshot reads too (time travel over old formats).
        for s in reader.snapshots().expect("snapshots") {
            reader.read_snapshot(s.id).unwrap_or_else(|err| panic!("{} @ {}: {err}", e.file, s.id));
        }
    }
}

#[test]
fn compacted_files_in_the_0_3_format_keep_their_partial_file_info() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = fixtures::gunzip(&fixtures::root().join("ducklake-repo/old_ducklake/compacted_files.db.gz"), tmp.path());
    let reader = CatalogReader::open(&CatalogLocation::parse(&path.to_string_lossy()), None).expect("open");
    let snap = reader.read_snapshot(10).expect("read");
    let files = &snap.table("main", "t1").expect("t1").files;
    use warmlake_daemon::catalog::Partial;
    let partials: Vec<Option<Partial>> = files.iter().map(|f| f.partial.clone()).collect();
    assert!(partials.contains(&Some(Partial::RowsBySnapshot(vec![(2, 4), (6, 7)]))), "{partials:?}");
    assert!(partials.contains(&Some(Partial::MaxSnapshot(9))), "{partials:?}");
    // data_path './bla/' is relative to the catalog's folder.
    assert_eq!(snap.data_root, format!("{}/bla/", tmp.path().display()));
}

#[test]
fn iceberg_style_delete_files_without_field_ids_apply() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = fixtures::root().join("ducklake-repo/iceberg_deletes");
    let path = fixtures::gunzip(&dir.join("delete_ignore_extra_columns.db.gz"), tmp.path());
    let data = format!("{}/", dir.join("delete_ignore_extra_columns").display());
    let reader = CatalogReader::open(&CatalogLocation::parse(&path.to_string_lossy()), Some(&data)).expect("open");
    let before = reader.read_snapshot(1).expect("snapshot 1");
    let after = reader.read_snapshot(2).expect("snapshot 2");
    let count = |s| query_text(s, "SELECT count(*) FROM main.test").expect("query").rows.concat().join("");
    // 100 rows written at snapshot 1; a delete file of 9 positions at snapshot 2.
    assert_eq!(count(&before), "100");
    assert_eq!(count(&after), "91");
}

#[test]
fn malloy_lakes_in_0_4_and_1_0_read_their_rows() {
    for lake in ["v0.4_from_duckdb_1.5.1", "v1.0_from_duckdb_1.5.2"] {
        let path = fixtures::root().join("malloy").join(lake).join("catalog.ducklake");
        let reader = CatalogReader::open(&CatalogLocation::parse(&path.to_string_lossy()), None).expect("open");
        let snap = reader.read_snapshot(reader.latest_snapshot().expect("latest").id).expect("read");
        let result = query_text(&snap, "SELECT id, label FROM main.items ORDER BY id").expect("query");
        assert_eq!(result.columns, ["id", "label"], "{lake}");
        assert_eq!(result.rows, [["1", "alpha"], ["2", "beta"], ["3", "gamma"]], "{lake}");
    }
}

#[test]
fn clear_errors_for_what_is_not_a_lake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing =
        CatalogReader::open(&CatalogLocation::parse(&tmp.path().join("nope.ducklake").to_string_lossy()), None);
    assert!(matches!(missing, Err(CatalogError::Unreachable { .. })), "missing file");

    let plain = tmp.path().join("plain.sqlite");
    rusqlite::Connection::open(&plain).and_then(|c| c.execute_batch("CREATE TABLE t(x INTEGER)")).expect("sqlite");
    let err = CatalogReader::open(&CatalogLocation::parse(&plain.to_string_lossy()), None).err().expect("refused");
    assert!(matches!(err, CatalogError::NotDuckLake { .. }), "{err}");
    assert!(err.to_string().contains("ducklake_metadata"), "{err}");

    let future = tmp.path().join("future.sqlite");
    rusqlite::Connection::open(&future)
        .and_then(|c| {
            c.execute_batch(&format!(
                "{}\nINSERT INTO ducklake_metadata VALUES ('version', '9.9', NULL, NULL);",
                warmlake_daemon::generate::CATALOG_DDL
            ))
        })
        .expect("sqlite");
    let err = CatalogReader::open(&CatalogLocation::parse(&future.to_string_lossy()), None).err().expect("refused");
    assert!(matches!(err, CatalogError::UnsupportedVersion { ref version, .. } if version == "9.9"), "{err}");
}

/// A file path that leaves the lake is never followed: its table is served as unreadable,
/// naming the file, and every other table is read as before.
#[test]
fn file_paths_that_escape_the_lake_make_only_their_table_unreadable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = warmlake_daemon::generate::generate(
        tmp.path(),
        &warmlake_daemon::generate::LakeSpec { events_rows: 100, events_files: 1, ..Default::default() },
        &[warmlake_daemon::generate::CatalogKind::Sqlite],
    )
    .expect("generate");
    let conn = rusqlite::Connection::open(&lake.catalogs[0]).expect("open");
    let reader = CatalogReader::open(&CatalogLocation::parse(&lake.catalogs[0].to_string_lossy()), None).expect("open");
    let before = reader.read_snapshot(lake.latest_snapshot).expect("read");
    let (victim, file) = before
        .tables
        .iter()
        .find_map(|t| t.files.first().map(|f| (format!("{}.{}", t.schema, t.name), f.id)))
        .expect("a table with a file");
    for tamper in [
        format!("UPDATE ducklake_data_file SET path = '../../../etc/passwd' WHERE data_file_id = {file}"),
        format!(
            "UPDATE ducklake_data_file SET path = '/etc/passwd', path_is_relative = false WHERE data_file_id = {file}"
        ),
    ] {
        conn.execute_batch(&tamper).expect("tamper");
        let after = reader.read_snapshot(lake.latest_snapshot).expect("the snapshot is still read");
        for (old, new) in before.tables.iter().zip(&after.tables) {
            if format!("{}.{}", new.schema, new.name) == victim {
                let reason = new.unreadable.as_deref().expect("the tampered table is unreadable");
                assert!(reason.contains(&format!("data file {file}")), "{reason}");
                assert!(new.files.is_empty(), "no file of an unreadable table is served");
            } else {
                assert_eq!(old, new, "other tables are untouched");
            }
        }
    }
}
