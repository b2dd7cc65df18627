//! A DuckLake lake generator: writes a valid DuckLake 1.0 catalog (DuckDB file, SQLite file
//! and/or a PostgreSQL database) plus Parquet data and delete files, without the DuckLake
//! extension.
//!
//! Data files are written by DuckDB's own Parquet writer with field ids equal to the
//! catalog's column ids, exactly as the extension does, and the catalog tables are created with
//! the extension's DDL ([`CATALOG_DDL`], checked against the fixtures by a test). The generated
//! history exercises what warmlake must get right: appends over many snapshots, positional
//! deletes, a renamed and an added column, inlined rows, tags on a table and a column, a
//! dropped table, and a wide `web.events` table whose size is configurable for benchmarks.

mod builder;

use std::path::{Path, PathBuf};

pub use builder::CATALOG_DDL;

use crate::catalog::{BackendError, CatalogLocation};

/// What to generate. The defaults make the small demo lake (a few MB, about a second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeSpec {
    /// Rows of `web.events` (20 columns, web-analytics shaped).
    pub events_rows: u64,
    /// Data files `web.events` is split into.
    pub events_files: u64,
    /// Rows per Parquet row group (DuckDB's `ROW_GROUP_SIZE`).
    pub row_group_rows: u64,
    /// Append snapshots of `sales.orders` (2,000 rows each) before the schema changes.
    pub order_batches: u64,
    /// Write Parquet uncompressed and without dictionaries, so tests can grep raw bytes for
    /// marker strings (see DESIGN.md §8); off for realistic sizes.
    pub plain: bool,
}

impl Default for LakeSpec {
    fn default() -> Self {
        LakeSpec { events_rows: 100_000, events_files: 4, row_group_rows: 122_880, order_batches: 3, plain: false }
    }
}

/// Which catalog databases to write; the data files are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// `catalog.ducklake`, a DuckDB file (what `ATTACH 'ducklake:catalog.ducklake'` makes).
    DuckDb,
    /// `catalog.sqlite`, what `ATTACH 'ducklake:sqlite:catalog.sqlite'` makes.
    Sqlite,
}

impl CatalogKind {
    /// The file name of this kind of catalog inside the lake folder.
    pub fn file_name(self) -> &'static str {
        match self {
            CatalogKind::DuckDb => "catalog.ducklake",
            CatalogKind::Sqlite => "catalog.sqlite",
        }
    }
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct GeneratedLake {
    /// Catalog files written, in the order of the kinds asked for.
    pub catalogs: Vec<PathBuf>,
    /// The PostgreSQL catalog written, if one was asked for ([`generate_with_postgres`]).
    pub postgres: Option<CatalogLocation>,
    /// The data folder (the catalogs' `data_path`, `data/` relative to them).
    pub data_dir: PathBuf,
    /// The newest snapshot id.
    pub latest_snapshot: i64,
    /// Parquet files written (data and delete files).
    pub files: u64,
    /// Bytes of Parquet written.
    pub bytes: u64,
}

/// Generation failed; nothing partial is left claiming to be a lake.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path} already holds a lake; choose an empty folder")]
    NotEmpty { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("duckdb failed while {doing}: {source}")]
    DuckDb { doing: String, source: duckdb::Error },
    #[error("sqlite failed while writing {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    /// `location` is the connection string with any password hidden.
    #[error("writing the catalog into {location} failed: {source}")]
    Postgres { location: String, source: BackendError },
}

/// Generates a lake into `dir` (created if missing; must not already hold a catalog).
pub fn generate(dir: &Path, spec: &LakeSpec, kinds: &[CatalogKind]) -> Result<GeneratedLake, GenerateError> {
    generate_catalogs(dir, spec, kinds, None)
}

/// Like [`generate`], and also writes the same catalog into the PostgreSQL database `conn`
/// names (a libpq connection string or URL; the tables go to the first schema of its
/// `search_path`, which must exist and hold no DuckLake catalog yet). The data files are the
/// ones in `dir`, so every catalog written describes the same lake; the PostgreSQL catalog's
/// `data_path` is the absolute path of `dir/data/`, since it has no file to be relative to.
///
/// The PostgreSQL catalog is written first, in one transaction: if the server refuses it, no
/// catalog file exists yet and the folder can be reused.
pub fn generate_with_postgres(
    dir: &Path,
    spec: &LakeSpec,
    kinds: &[CatalogKind],
    conn: &str,
) -> Result<GeneratedLake, GenerateError> {
    generate_catalogs(dir, spec, kinds, Some(conn))
}

fn generate_catalogs(
    dir: &Path,
    spec: &LakeSpec,
    kinds: &[CatalogKind],
    postgres: Option<&str>,
) -> Result<GeneratedLake, GenerateError> {
    for kind in [CatalogKind::DuckDb, CatalogKind::Sqlite] {
        if dir.join(kind.file_name()).exists() {
            return Err(GenerateError::NotEmpty { path: dir.to_path_buf() });
        }
    }
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|source| GenerateError::Io { path: data_dir.clone(), source })?;
    let mut b = builder::Builder::new(dir, spec.clone())?;
    b.write_history()?;
    if let Some(conn) = postgres {
        b.write_postgres_catalog(conn)?;
    }
    let mut catalogs = Vec::new();
    for kind in kinds {
        let path = dir.join(kind.file_name());
        match kind {
            CatalogKind::DuckDb => b.write_duckdb_catalog(&path)?,
            CatalogKind::Sqlite => b.write_sqlite_catalog(&path)?,
        }
        catalogs.push(path);
    }
    Ok(GeneratedLake {
        catalogs,
        postgres: postgres.map(|conn| CatalogLocation::Postgres(conn.to_string())),
        data_dir,
        latest_snapshot: b.latest_snapshot(),
        files: b.files_written(),
        bytes: b.bytes_written(),
    })
}
