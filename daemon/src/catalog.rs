//! Reading DuckLake catalogs without the DuckLake extension.
//!
//! A DuckLake catalog is a set of `ducklake_*` tables in a DuckDB file, a SQLite file or a
//! PostgreSQL database. Every backend is reached through the small [`backend::Backend`] seam
//! (run a query, list the catalog's tables and columns), and every query the reader sends is
//! plain SQL that all three accept, so the same reader code serves them all.
//!
//! Catalogs written by different DuckLake releases differ (formats 0.1 to 1.1-dev1; two real
//! catalogs both labelled `0.3-dev1` have different tables), so the reader decides what to do by
//! probing which tables and columns exist ([`Features`]), and uses the version string only to
//! refuse versions it does not know.
//!
//! The result of a read is a [`LakeSnapshot`]: the schemas, tables, columns, files, deletes and
//! inlined rows of one snapshot, with every file path resolved and validated as a
//! [`LakeKey`](crate::lake_path::LakeKey).

mod backend;
mod ducklake_type;
mod features;
mod location;
mod model;
pub(crate) mod postgres;
mod reader;
pub(crate) mod row;

pub use backend::BackendError;
pub use ducklake_type::TypeError;
pub use features::Features;
pub use location::CatalogLocation;
pub use model::{ColumnDef, DataFile, DeleteFile, InlinedRows, LakeSnapshot, Partial, SnapshotInfo, TableDef, ViewDef};
pub use reader::CatalogReader;

/// What can go wrong reading a catalog. Each variant names the catalog it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog could not be opened or reached (missing file, server down, locked).
    #[error("cannot open DuckLake catalog {location}: {source}")]
    Unreachable { location: String, source: BackendError },
    /// The database opened, but it holds no DuckLake catalog.
    #[error("{location} is not a DuckLake catalog: {reason}")]
    NotDuckLake { location: String, reason: String },
    /// A DuckLake catalog of a format this build does not understand.
    #[error(
        "{location} is a DuckLake catalog of version {version}, which warmlake does not support (supported: {supported})"
    )]
    UnsupportedVersion { location: String, version: String, supported: &'static str },
    /// A query against the catalog failed.
    #[error("reading {table} from {location} failed: {source}")]
    Query { location: String, table: String, source: BackendError },
    /// A catalog row holds something the format does not allow.
    #[error("malformed row in {table} of {location}: {reason}")]
    Malformed { location: String, table: String, reason: String },
    /// The snapshot asked for is not (or no longer) in the catalog.
    #[error("snapshot {snapshot} is not in {location} (expired, or not yet written)")]
    SnapshotNotFound { location: String, snapshot: i64 },
}
