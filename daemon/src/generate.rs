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
//!
//! The data files go to the lake folder's `data/` by default, or to any object store
//! ([`Targets::data`]): DuckDB then writes them into a staging folder inside the lake folder
//! and each is uploaded under the same key (see `upload`), so the catalog rows are the same
//! either way and only `data_path` differs.

mod builder;
mod upload;

use std::path::{Path, PathBuf};

pub use builder::CATALOG_DDL;

use crate::catalog::{BackendError, CatalogLocation};
use crate::store::{StoreConfig, StoreError};

/// `data_path` of a catalog file whose data is local: the `data/` folder beside it.
const RELATIVE_DATA_PATH: &str = "data/";

/// Where DuckDB writes the files of a lake whose data goes to an object store. Inside the lake
/// folder rather than the system's temporary folder, which is often a small RAM disk while a
/// benchmark lake's files can reach gigabytes. Removed once the files are uploaded (or fail).
const STAGING_DIR: &str = ".warmlake-staging";

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

/// An object store the data files are uploaded to, instead of the lake folder's `data/`.
#[derive(Debug, Clone)]
pub struct DataStore {
    /// `s3://bucket/prefix/`, `gs://`, `az://`, `file:///dir/` or a local path. It becomes every
    /// catalog's `data_path` (with a trailing `/`; a local path made absolute), and each file
    /// lands at it plus the file's key (`schema/table/ducklake-....parquet`). Nothing may exist
    /// under it yet.
    pub url: String,
    /// How to reach the store (endpoint, region, credentials, ...); what it leaves out comes
    /// from the usual environment variables (`AWS_*`, ...), as for the daemon.
    pub config: StoreConfig,
}

/// Where a lake goes besides the catalog files in its folder. The default writes nothing else:
/// data in the folder's `data/`, no PostgreSQL catalog.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Also write the catalog into this PostgreSQL database (see [`generate_with_postgres`]).
    pub postgres: Option<String>,
    /// Upload the data files to this store instead of writing them to the folder's `data/`.
    pub data: Option<DataStore>,
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct GeneratedLake {
    /// Catalog files written, in the order of the kinds asked for.
    pub catalogs: Vec<PathBuf>,
    /// The PostgreSQL catalog written, if one was asked for ([`generate_with_postgres`]).
    pub postgres: Option<CatalogLocation>,
    /// The local data folder (the catalog files' `data_path`, `data/` relative to them). Not
    /// created when the files went to `data_url` instead.
    pub data_dir: PathBuf,
    /// The store URL the data files were uploaded to, as written into every catalog's
    /// `data_path` (ends in `/`); `None` for a lake with its data in `data_dir`.
    pub data_url: Option<String>,
    /// The newest snapshot id.
    pub latest_snapshot: i64,
    /// Parquet files written (data and delete files, including those of the dropped table).
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
    /// The data store's URL or options are invalid (boxed: it is large and rare).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The data store already holds objects under the data URL: its lake (or anything else)
    /// is never overwritten.
    #[error("{url} already holds objects; choose an empty prefix")]
    StoreNotEmpty { url: String },
    /// A request to the data store failed after every retry (unreachable, credentials refused,
    /// ...). `url` is the object or prefix it was for.
    #[error("cannot {doing} {url}: {source}")]
    StoreRequest { doing: &'static str, url: String, source: object_store::Error },
    /// No runtime could be started to talk to the data store.
    #[error("cannot start the upload runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl From<StoreError> for GenerateError {
    fn from(e: StoreError) -> Self {
        GenerateError::Store(Box::new(e))
    }
}

/// Commits an empty snapshot to the SQLite catalog at `catalog` (a copy of the newest one's
/// counters, as DuckLake writes a commit that changed nothing) and returns its id: the next
/// refresh publishes a new snapshot without the data changing under running queries.
pub fn commit_empty_snapshot(catalog: &Path) -> Result<i64, GenerateError> {
    let sqlite = |source| GenerateError::Sqlite { path: catalog.to_path_buf(), source };
    let db = rusqlite::Connection::open(catalog).map_err(sqlite)?;
    let tx = db.unchecked_transaction().map_err(sqlite)?;
    let id: i64 =
        tx.query_row("SELECT max(snapshot_id) + 1 FROM ducklake_snapshot", [], |r| r.get(0)).map_err(sqlite)?;
    tx.execute(
        "INSERT INTO ducklake_snapshot SELECT ?1, strftime('%Y-%m-%d %H:%M:%f+00', 'now'), schema_version, \
         next_catalog_id, next_file_id FROM ducklake_snapshot WHERE snapshot_id = ?1 - 1",
        [id],
    )
    .and_then(|_| tx.execute("INSERT INTO ducklake_snapshot_changes (snapshot_id, changes_made) VALUES (?1, '')", [id]))
    .and_then(|_| tx.commit())
    .map_err(sqlite)?;
    Ok(id)
}

/// Generates a lake into `dir` (created if missing; must not already hold a catalog).
pub fn generate(dir: &Path, spec: &LakeSpec, kinds: &[CatalogKind]) -> Result<GeneratedLake, GenerateError> {
    generate_to(dir, spec, kinds, &Targets::default())
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
    generate_to(dir, spec, kinds, &Targets { postgres: Some(conn.to_string()), data: None })
}

/// Generates a lake whose catalog files (`kinds`) go to `dir` and whose other parts go where
/// `targets` says: a PostgreSQL catalog, and the data files to an object store.
///
/// With a data store, the store is checked first (reachable, nothing under the URL), then the
/// files are generated and uploaded, and only then are catalogs written: a failure leaves no
/// catalog pointing at missing files. Blocks the calling thread while uploading; it may be
/// called from inside a tokio runtime.
pub fn generate_to(
    dir: &Path,
    spec: &LakeSpec,
    kinds: &[CatalogKind],
    targets: &Targets,
) -> Result<GeneratedLake, GenerateError> {
    for kind in [CatalogKind::DuckDb, CatalogKind::Sqlite] {
        if dir.join(kind.file_name()).exists() {
            return Err(GenerateError::NotEmpty { path: dir.to_path_buf() });
        }
    }
    let data_dir = dir.join("data");
    let (b, data_url) = match &targets.data {
        None => {
            std::fs::create_dir_all(&data_dir)
                .map_err(|source| GenerateError::Io { path: data_dir.clone(), source })?;
            let mut b = builder::Builder::new(&data_dir, spec.clone())?;
            b.write_history()?;
            (b, None)
        }
        Some(store) => {
            let store = DataStore { url: data_url(&store.url)?, config: store.config.clone() };
            upload::ensure_empty(&store)?;
            let staging = Staging::create(&dir.join(STAGING_DIR))?;
            let mut b = builder::Builder::new(&staging.0, spec.clone())?;
            b.write_history()?;
            upload::upload_all(&store, &staging.0, b.written())?;
            (b, Some(store.url))
        }
    };
    if let Some(conn) = &targets.postgres {
        let data_path = match &data_url {
            Some(url) => url.clone(),
            None => absolute_data_path(&data_dir)?,
        };
        b.write_postgres_catalog(conn, &data_path)?;
    }
    let file_data_path = data_url.as_deref().unwrap_or(RELATIVE_DATA_PATH);
    let mut catalogs = Vec::new();
    for kind in kinds {
        let path = dir.join(kind.file_name());
        match kind {
            CatalogKind::DuckDb => b.write_duckdb_catalog(&path, file_data_path)?,
            CatalogKind::Sqlite => b.write_sqlite_catalog(&path, file_data_path)?,
        }
        catalogs.push(path);
    }
    Ok(GeneratedLake {
        catalogs,
        postgres: targets.postgres.as_ref().map(|conn| CatalogLocation::Postgres(conn.clone())),
        data_dir,
        data_url,
        latest_snapshot: b.latest_snapshot(),
        files: b.written().len() as u64,
        bytes: b.bytes_written(),
    })
}

/// A PostgreSQL catalog's `data_path` for local data: the absolute data folder, since the
/// catalog has no file to be relative to.
fn absolute_data_path(data_dir: &Path) -> Result<String, GenerateError> {
    let abs = std::path::absolute(data_dir).map_err(|source| GenerateError::Io { path: data_dir.into(), source })?;
    match abs.to_str() {
        Some(path) => Ok(format!("{path}/")),
        None => Err(GenerateError::Io {
            path: abs.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "a PostgreSQL data_path must be UTF-8"),
        }),
    }
}

/// The data store URL as a catalog's `data_path`: ending in `/` (DuckLake joins keys to it
/// as text), and a local path made absolute, since catalogs resolve relative ones against
/// their own folder. A local folder is created, as the store needs it to exist.
fn data_url(url: &str) -> Result<String, GenerateError> {
    let local = if url.contains("://") {
        url::Url::parse(url).ok().filter(|u| u.scheme() == "file").and_then(|u| u.to_file_path().ok())
    } else {
        Some(PathBuf::from(url))
    };
    let url = match local {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| GenerateError::Io { path: dir.clone(), source })?;
            if url.contains("://") {
                url.to_string()
            } else {
                let abs =
                    std::path::absolute(&dir).map_err(|source| GenerateError::Io { path: dir.clone(), source })?;
                abs.to_string_lossy().into_owned()
            }
        }
        None => url.to_string(),
    };
    Ok(if url.ends_with('/') { url } else { format!("{url}/") })
}

/// The staging folder of a lake whose data goes to a store, removed however generation ends:
/// after an upload its files are copies, after a failure they belong to no lake.
struct Staging(PathBuf);

impl Staging {
    /// Creates the folder empty (a left-over from a killed run is ours and is replaced).
    fn create(path: &Path) -> Result<Staging, GenerateError> {
        let io = |source| GenerateError::Io { path: path.to_path_buf(), source };
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        std::fs::create_dir_all(path).map_err(io)?;
        Ok(Staging(path.to_path_buf()))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: a left-over is replaced by the next run into this folder.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
