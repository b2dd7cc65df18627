//! What a particular catalog has, found by probing its tables and columns.

use super::backend::{ColumnTypes, TableColumns};

/// DuckLake format versions this build reads. Catalogs are read by probing, so a listed version
/// with an unusual table layout still works; an unlisted version is refused by name.
pub const SUPPORTED_VERSIONS: &str = "0.1, 0.2, 0.3-dev1, 0.3, 0.4-dev1, 0.4, 1.0, 1.1-dev1";

/// The shape of one catalog: which optional tables and columns exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// `ducklake_metadata.value` for `key = 'version'`.
    pub version: String,
    /// `ducklake_metadata` has `scope` (0.2+): global keys are those with `scope IS NULL`.
    pub metadata_scope: bool,
    /// Schemas and tables carry their own `path` (0.2+); before that, paths are implied by names.
    pub object_paths: bool,
    /// `ducklake_data_file.partial_max` (0.4-dev1+).
    pub partial_max: bool,
    /// `ducklake_data_file.partial_file_info` (0.1 to 0.4-dev1), the older spelling of the same.
    pub partial_file_info: bool,
    /// `ducklake_delete_file.partial_max` (0.4-dev1+).
    pub delete_partial_max: bool,
    /// `ducklake_schema_versions` exists (0.3-dev1+), mapping schema versions to snapshots.
    pub schema_versions: bool,
    /// `ducklake_inlined_data_tables` exists (0.2+).
    pub inlined_data_tables: bool,
    /// `ducklake_column_tag` and `ducklake_tag` exist.
    pub tags: bool,
    /// `ducklake_view` exists.
    pub views: bool,
    /// `ducklake_files_scheduled_for_deletion` exists.
    pub scheduled_deletions: bool,
    /// `ducklake_snapshot_changes` exists.
    pub snapshot_changes: bool,
    /// Tables named `ducklake_inlined_data_<table>_<schema version>` and their columns.
    pub tables: TableColumns,
    /// Every column's data type in the catalog's database: a PostgreSQL catalog's inlined BLOB
    /// and VARCHAR values are `bytea`, and the mirror declares its columns by them.
    pub types: ColumnTypes,
}

impl Features {
    /// Derives the features from the catalog's table list; `version` is read separately.
    pub fn probe(version: String, tables: TableColumns, types: ColumnTypes) -> Features {
        let has_col = |t: &str, c: &str| tables.get(t).is_some_and(|cols| cols.iter().any(|x| x == c));
        Features {
            metadata_scope: has_col("ducklake_metadata", "scope"),
            object_paths: has_col("ducklake_table", "path") && has_col("ducklake_schema", "path"),
            partial_max: has_col("ducklake_data_file", "partial_max"),
            partial_file_info: has_col("ducklake_data_file", "partial_file_info"),
            delete_partial_max: has_col("ducklake_delete_file", "partial_max"),
            schema_versions: tables.contains_key("ducklake_schema_versions"),
            inlined_data_tables: tables.contains_key("ducklake_inlined_data_tables"),
            tags: tables.contains_key("ducklake_tag") && tables.contains_key("ducklake_column_tag"),
            views: tables.contains_key("ducklake_view"),
            scheduled_deletions: tables.contains_key("ducklake_files_scheduled_for_deletion"),
            snapshot_changes: tables.contains_key("ducklake_snapshot_changes"),
            version,
            tables,
            types,
        }
    }

    /// Whether `version` is one this build reads.
    pub fn version_supported(version: &str) -> bool {
        SUPPORTED_VERSIONS.split(", ").any(|v| v == version)
    }

    /// The columns of a catalog table, in order (empty if the table does not exist).
    pub fn columns(&self, table: &str) -> &[String] {
        self.tables.get(table).map(Vec::as_slice).unwrap_or(&[])
    }
}
