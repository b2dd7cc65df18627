//! The reference lakes (`fixtures/ducklake/reference/<name>`) and the DuckLake extension's own
//! answers for them, one Parquet file per table and snapshot. Test crates using this declare
//! `mod fixtures;` too.

#![allow(dead_code)]

use std::path::PathBuf;

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};

use crate::fixtures;

/// The folder of reference lake `name`.
pub fn lake_dir(name: &str) -> PathBuf {
    fixtures::root().join("reference").join(name)
}

/// The catalog of reference lake `name` (format 1.0).
pub fn open_lake(name: &str) -> CatalogReader {
    let location = CatalogLocation::parse(&lake_dir(name).join("catalog.ducklake").to_string_lossy());
    let reader = CatalogReader::open(&location, None).expect("reference catalog opens");
    assert_eq!(reader.features().version, "1.0");
    reader
}

/// What the extension returns for `SELECT * FROM <schema>.<table> AT (VERSION => <snapshot>)`.
pub struct Expected {
    /// The answer, as Parquet.
    pub path: PathBuf,
    /// `<schema>.<table>@<snapshot>`, for messages.
    pub stem: String,
    pub schema: String,
    pub table: String,
    pub snapshot: i64,
}

/// Every expected answer of lake `name`, by file name (schema, table, then snapshot as text).
pub fn expected_answers(name: &str) -> Vec<Expected> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(lake_dir(name).join("expected"))
        .expect("expected dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("name").to_string();
            let (qualified, snap) = stem.split_once('@').expect("name@snapshot");
            let (schema, table) = qualified.split_once('.').expect("schema.table");
            let (schema, table) = (schema.to_owned(), table.to_owned());
            let snapshot = snap.parse().expect("snapshot id");
            Expected { path, stem, schema, table, snapshot }
        })
        .collect()
}
