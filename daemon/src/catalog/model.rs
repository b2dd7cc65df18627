//! One snapshot of a DuckLake catalog, with every path resolved.
//!
//! This is what the mirror stores and what the mount and the SQL views are built from, so it
//! holds everything needed to answer `SELECT * FROM t AT (VERSION => s)` exactly: the columns
//! by field id, the data files valid at the snapshot, their delete files, inlined rows and
//! inlined deletes, and `partial_max` of merged files.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ducklake_type::{self, TypeError};
use crate::lake_path::LakeKey;

/// A row of `ducklake_snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: i64,
    /// When the snapshot was taken, RFC 3339 in UTC with microseconds
    /// (`2026-11-25T14:13:08.519889Z`), whatever spelling the backend stores.
    pub time: String,
    pub schema_version: i64,
    /// `ducklake_snapshot_changes.changes_made`, e.g. `inserted_into_table:3`.
    pub changes: Option<String>,
}

/// The lake at one snapshot. `Default` is an empty lake (nothing to show).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LakeSnapshot {
    pub snapshot: SnapshotInfo,
    /// The catalog's format version (`ducklake_metadata`).
    pub version: String,
    /// The data root every [`LakeKey`] is relative to: an absolute local directory or a URL,
    /// ending in `/`.
    pub data_root: String,
    /// Schema names valid at the snapshot, including empty ones.
    pub schemas: Vec<String>,
    pub tables: Vec<TableDef>,
    pub views: Vec<ViewDef>,
    /// Files the catalog has scheduled for deletion: they will vanish from the store.
    pub scheduled_for_deletion: Vec<LakeKey>,
}

impl LakeSnapshot {
    /// The table `schema.name`, if it exists at this snapshot.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.schema == schema && t.name == name)
    }

    /// Makes each file of this snapshot that `other` holds unchanged (same table, same id, equal
    /// in every field) the very allocation `other` holds. Consecutive snapshots share almost all
    /// their files: the kept snapshots of a lake of 100,000 files then cost one copy of each file,
    /// not one per snapshot.
    pub fn share_files(&mut self, other: &LakeSnapshot) {
        for table in &mut self.tables {
            let Some(theirs) = other.tables.iter().find(|t| t.id == table.id) else { continue };
            let by_id: HashMap<i64, &Arc<DataFile>> = theirs.files.iter().map(|f| (f.id, f)).collect();
            for file in &mut table.files {
                if let Some(same) = by_id.get(&file.id)
                    && same == &file
                {
                    *file = Arc::clone(same);
                }
            }
        }
    }
}

/// A table at one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: i64,
    pub uuid: String,
    pub schema: String,
    pub name: String,
    /// The table's folder under the data root; data files usually live below it.
    pub dir: LakeKey,
    /// Top-level columns in order; nested fields are their children.
    pub columns: Vec<ColumnDef>,
    /// `ducklake_tag` entries valid at the snapshot (`comment` included).
    pub tags: BTreeMap<String, String>,
    /// Shared between the snapshots that hold the same file ([`LakeSnapshot::share_files`]).
    pub files: Vec<Arc<DataFile>>,
    /// Inlined rows valid at the snapshot, one entry per inlined-data table that has any.
    pub inlined: Vec<InlinedRows>,
    /// `(data_file_id, row position)` pairs from `ducklake_inlined_delete_<table>`.
    pub inlined_deletes: Vec<(i64, i64)>,
    /// Why the table cannot be served, when its catalog rows hold what warmlake cannot use
    /// (a path outside the lake, a malformed row). The table is still listed, without files,
    /// so that it names itself: one bad table must not take the lake down with it.
    #[serde(default)]
    pub unreadable: Option<String>,
}

/// A column (or nested field) at one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The DuckLake column id, which is also the Parquet field id.
    pub id: i64,
    pub name: String,
    /// The DuckLake type name, e.g. `int64`, `decimal(12,2)`, `struct`.
    pub ducklake_type: String,
    pub nullable: bool,
    /// Value for rows in files written before this column existed.
    pub initial_default: Option<String>,
    /// Value new rows get when none is given.
    pub default_value: Option<String>,
    pub children: Vec<ColumnDef>,
    /// `ducklake_column_tag` entries valid at the snapshot.
    pub tags: BTreeMap<String, String>,
}

impl ColumnDef {
    /// The Parquet field ids of this column and its nested children (leaf chunks carry the
    /// children's ids), depth first.
    pub fn field_ids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(c) = stack.pop() {
            if let Ok(id) = i32::try_from(c.id) {
                out.push(id);
            }
            stack.extend(c.children.iter().rev());
        }
        out
    }

    /// The column's type in DuckDB SQL, nested types spelled out from the children.
    pub fn sql_type(&self) -> Result<String, TypeError> {
        if let Some(t) = ducklake_type::primitive(&self.ducklake_type)? {
            return Ok(t);
        }
        let children = |expected: &'static str, n: usize| -> Result<(), TypeError> {
            if self.children.len() == n || (n == 0 && !self.children.is_empty()) {
                Ok(())
            } else {
                Err(TypeError::Children {
                    kind: "nested",
                    name: self.name.clone(),
                    found: self.children.len(),
                    expected,
                })
            }
        };
        match self.ducklake_type.to_ascii_lowercase().as_str() {
            "list" => {
                children("1", 1)?;
                Ok(format!("{}[]", self.children[0].sql_type()?))
            }
            "map" => {
                children("2", 2)?;
                Ok(format!("MAP({}, {})", self.children[0].sql_type()?, self.children[1].sql_type()?))
            }
            _ => {
                children("at least 1", 0)?;
                let fields: Result<Vec<String>, TypeError> = self
                    .children
                    .iter()
                    .map(|c| Ok(format!("{} {}", crate::view_sql::ident(&c.name), c.sql_type()?)))
                    .collect();
                Ok(format!("STRUCT({})", fields?.join(", ")))
            }
        }
    }
}

/// How much of a merged file belongs to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partial {
    /// Rows carry `_ducklake_internal_snapshot_id`; rows newer than the snapshot are hidden.
    /// The value is the newest snapshot in the file.
    MaxSnapshot(i64),
    /// Older catalogs (`partial_file_info = 's1:n1|s2:n2'`): at snapshot `s`, the first `n`
    /// rows of the largest `si <= s` are visible.
    RowsBySnapshot(Vec<(i64, i64)>),
}

/// A data file valid at the snapshot. `Eq`, so that comparing two `Arc`s of the same file
/// returns at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub id: i64,
    pub key: LakeKey,
    /// The file's path below the table folder (partition folders kept), used for its name in
    /// the mount. Files stored outside the table folder are named by their last segment.
    pub name: String,
    pub format: String,
    pub record_count: i64,
    pub size: i64,
    pub footer_size: Option<i64>,
    pub row_id_start: Option<i64>,
    pub begin_snapshot: i64,
    pub encryption_key: Option<String>,
    pub partial: Option<Partial>,
    /// `(partition_key_index, value)` pairs.
    pub partition_values: Vec<(i64, Option<String>)>,
    pub deletes: Vec<DeleteFile>,
}

/// A positional delete file valid at the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFile {
    pub id: i64,
    pub key: LakeKey,
    pub name: String,
    pub format: String,
    pub delete_count: i64,
    pub size: i64,
    pub footer_size: Option<i64>,
    pub begin_snapshot: i64,
    pub encryption_key: Option<String>,
    /// Set when the file holds deletes of several snapshots (`_ducklake_internal_snapshot_id`).
    pub partial_max: Option<i64>,
}

/// Rows of one `ducklake_inlined_data_<table>_<schema version>` table valid at the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InlinedRows {
    pub schema_version: i64,
    /// The column id of each stored value, in order (`None`: a column that no longer exists).
    pub column_ids: Vec<Option<i64>>,
    /// Values as DuckDB text literals (`NULL` is `None`); the view casts them to the column type.
    pub rows: Vec<Vec<Option<String>>>,
}

/// A view defined in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub id: i64,
    pub schema: String,
    pub name: String,
    pub dialect: String,
    pub sql: String,
}
