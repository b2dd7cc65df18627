//! Reads snapshots out of a DuckLake catalog.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::backend::{Backend, DuckDbBackend, SqliteBackend};
use super::features::{Features, SUPPORTED_VERSIONS};
use super::model::{
    ColumnDef, DataFile, DeleteFile, InlinedRows, LakeSnapshot, Partial, SnapshotInfo, TableDef, ViewDef,
};
use super::postgres::PostgresBackend;
use super::row::{Row, RowError};
use super::{CatalogError, CatalogLocation};
use crate::lake_path::{self, LakeKey};

/// An open catalog. Cheap to query repeatedly; holds one read-only connection.
///
/// Every method blocks its thread until the catalog database answers (a DuckDB or SQLite file,
/// or a PostgreSQL server over the network). From async code, use it inside
/// `tokio::task::spawn_blocking`: it does not panic inside a runtime (the PostgreSQL client runs
/// on a thread of its own), but it would stall the runtime's worker meanwhile.
pub struct CatalogReader {
    location: CatalogLocation,
    backend: Box<dyn Backend>,
    features: Features,
    data_root: String,
}

/// The SQL condition "row valid at snapshot `s`" over DuckLake's `[begin, end)` columns.
fn valid_at(s: i64) -> String {
    format!("begin_snapshot <= {s} AND (end_snapshot IS NULL OR end_snapshot > {s})")
}

impl CatalogReader {
    /// Opens a catalog and probes its format.
    ///
    /// `data_override` replaces the catalog's `data_path` (the config's `lake.data`), for
    /// users whose catalog names a bucket path they reach under another URL.
    pub fn open(location: &CatalogLocation, data_override: Option<&str>) -> Result<Self, CatalogError> {
        let unreachable = |source| CatalogError::Unreachable { location: location.to_string(), source };
        let backend: Box<dyn Backend> = match location {
            CatalogLocation::DuckDb(p) => Box::new(DuckDbBackend::open(p).map_err(unreachable)?),
            CatalogLocation::Sqlite(p) => Box::new(SqliteBackend::open(p).map_err(unreachable)?),
            CatalogLocation::Postgres(conn) => Box::new(PostgresBackend::connect(conn).map_err(unreachable)?),
        };
        let (tables, types) = backend.table_columns().map_err(unreachable)?;
        for required in ["ducklake_metadata", "ducklake_snapshot", "ducklake_table", "ducklake_data_file"] {
            if !tables.contains_key(required) {
                return Err(CatalogError::NotDuckLake {
                    location: location.to_string(),
                    reason: format!("it has no {required} table"),
                });
            }
        }
        let scoped = tables.get("ducklake_metadata").is_some_and(|c| c.iter().any(|x| x == "scope"));
        let mut reader = CatalogReader {
            location: location.clone(),
            backend,
            features: Features::probe(String::new(), tables, types),
            data_root: String::new(),
        };
        let meta = reader.global_metadata(scoped)?;
        let version = meta.get("version").cloned().ok_or_else(|| CatalogError::NotDuckLake {
            location: location.to_string(),
            reason: "ducklake_metadata has no version".into(),
        })?;
        if !Features::version_supported(&version) {
            return Err(CatalogError::UnsupportedVersion {
                location: location.to_string(),
                version,
                supported: SUPPORTED_VERSIONS,
            });
        }
        reader.features.version = version;
        let data_path = match data_override {
            Some(d) => d.to_string(),
            None => meta.get("data_path").cloned().ok_or_else(|| CatalogError::NotDuckLake {
                location: location.to_string(),
                reason: "ducklake_metadata has no data_path".into(),
            })?,
        };
        reader.data_root = resolve_data_root(&data_path, location.base_dir());
        Ok(reader)
    }

    /// What this catalog has (version, optional tables and columns).
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Where the catalog lives.
    pub fn location(&self) -> &CatalogLocation {
        &self.location
    }

    /// The data root every file key is relative to (local directory or URL, ending in `/`).
    pub fn data_root(&self) -> &str {
        &self.data_root
    }

    pub(crate) fn query(&self, table: &str, sql: &str) -> Result<Vec<Row>, CatalogError> {
        self.backend.query(sql).map_err(|source| CatalogError::Query {
            location: self.location.to_string(),
            table: table.to_string(),
            source,
        })
    }

    /// Runs `sql` (on `table`) and hands each row to `each` as it is read (see
    /// [`super::backend::Backend::query_each`]).
    pub(crate) fn query_each(
        &self,
        table: &str,
        sql: &str,
        each: super::backend::RowSink<'_>,
    ) -> Result<(), CatalogError> {
        self.backend.query_each(sql, each).map_err(|source| CatalogError::Query {
            location: self.location.to_string(),
            table: table.to_string(),
            source,
        })
    }

    fn malformed(&self, table: &str) -> impl Fn(RowError) -> CatalogError + '_ {
        let table = table.to_string();
        move |e| CatalogError::Malformed {
            location: self.location.to_string(),
            table: table.clone(),
            reason: e.to_string(),
        }
    }

    fn global_metadata(&self, scoped: bool) -> Result<HashMap<String, String>, CatalogError> {
        let filter = if scoped { " WHERE scope IS NULL" } else { "" };
        let rows = self.query("ducklake_metadata", &format!("SELECT key, value FROM ducklake_metadata{filter}"))?;
        let bad = self.malformed("ducklake_metadata");
        rows.iter().map(|r| Ok((r.text(0).map_err(&bad)?, r.text(1).map_err(&bad)?))).collect()
    }

    /// Every snapshot still in the catalog, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, CatalogError> {
        self.snapshot_rows("")
    }

    /// The newest snapshot.
    pub fn latest_snapshot(&self) -> Result<SnapshotInfo, CatalogError> {
        let rows = self.snapshot_rows(" WHERE s.snapshot_id = (SELECT max(snapshot_id) FROM ducklake_snapshot)")?;
        rows.into_iter().next().ok_or_else(|| CatalogError::NotDuckLake {
            location: self.location.to_string(),
            reason: "it has no snapshot".into(),
        })
    }

    /// Snapshots newer than `after`, oldest first: what a refresh must apply.
    pub fn snapshots_since(&self, after: i64) -> Result<Vec<SnapshotInfo>, CatalogError> {
        self.snapshot_rows(&format!(" WHERE s.snapshot_id > {after}"))
    }

    /// The newest snapshot taken at or before `time` (a timestamp literal such as
    /// `2026-11-25 14:13:08+00`), for `AT (TIMESTAMP => ...)`-style time travel.
    pub fn snapshot_at_time(&self, time: &str) -> Result<SnapshotInfo, CatalogError> {
        let all = self.snapshots()?;
        let wanted = parse_time(time).ok_or_else(|| CatalogError::Malformed {
            location: self.location.to_string(),
            table: "ducklake_snapshot".into(),
            reason: format!("cannot parse timestamp {time:?}"),
        })?;
        all.into_iter()
            .rfind(|s| parse_time(&s.time).is_some_and(|t| t <= wanted))
            .ok_or_else(|| CatalogError::SnapshotNotFound { location: self.location.to_string(), snapshot: -1 })
    }

    fn snapshot_rows(&self, filter: &str) -> Result<Vec<SnapshotInfo>, CatalogError> {
        let (changes, join) = if self.features.snapshot_changes {
            ("c.changes_made", " LEFT JOIN ducklake_snapshot_changes c ON c.snapshot_id = s.snapshot_id")
        } else {
            ("CAST(NULL AS VARCHAR)", "")
        };
        let sql = format!(
            "SELECT s.snapshot_id, CAST(s.snapshot_time AS VARCHAR), s.schema_version, {changes} \
             FROM ducklake_snapshot s{join}{filter} ORDER BY s.snapshot_id"
        );
        let bad = self.malformed("ducklake_snapshot");
        self.query("ducklake_snapshot", &sql)?
            .iter()
            .map(|r| {
                Ok(SnapshotInfo {
                    id: r.i64(0).map_err(&bad)?,
                    time: canonical_time(r.opt_text(1).map_err(&bad)?.unwrap_or_default()),
                    schema_version: r.opt_i64(2).map_err(&bad)?.unwrap_or(0),
                    changes: r.opt_text(3).map_err(&bad)?,
                })
            })
            .collect()
    }

    /// Data files that the catalog has scheduled for deletion (they will vanish from the
    /// store; the cache evicts them). Paths that would escape the lake are skipped.
    pub fn scheduled_for_deletion(&self) -> Result<Vec<LakeKey>, CatalogError> {
        if !self.features.scheduled_deletions {
            return Ok(Vec::new());
        }
        let t = "ducklake_files_scheduled_for_deletion";
        let bad = self.malformed(t);
        let mut out = Vec::new();
        for r in self.query(t, &format!("SELECT path, path_is_relative FROM {t}"))? {
            let path = r.text(0).map_err(&bad)?;
            let relative = r.opt_bool(1).map_err(&bad)?.unwrap_or(true);
            match lake_path::resolve(&self.data_root, &LakeKey::root(), &path, relative) {
                Ok(key) => out.push(key),
                Err(e) => tracing::warn!(catalog = %self.location, error = %e, "ignoring file scheduled for deletion"),
            }
        }
        Ok(out)
    }

    /// Reads the whole lake as it was at snapshot `id`.
    pub fn read_snapshot(&self, id: i64) -> Result<LakeSnapshot, CatalogError> {
        let snapshot = self
            .snapshot_rows(&format!(" WHERE s.snapshot_id = {id}"))?
            .into_iter()
            .next()
            .ok_or_else(|| CatalogError::SnapshotNotFound { location: self.location.to_string(), snapshot: id })?;

        // Schemas.
        let paths = self.features.object_paths;
        let cols = if paths { "schema_id, schema_name, path, path_is_relative" } else { "schema_id, schema_name" };
        let bad = self.malformed("ducklake_schema");
        // A schema whose path leaves the lake makes its tables unreadable, not the snapshot.
        let mut schemas: BTreeMap<i64, (String, Result<LakeKey, String>)> = BTreeMap::new();
        for r in self.query("ducklake_schema", &format!("SELECT {cols} FROM ducklake_schema WHERE {}", valid_at(id)))? {
            let name = r.text(1).map_err(&bad)?;
            let (path, relative) = if paths {
                (
                    r.opt_text(2).map_err(&bad)?.unwrap_or_else(|| format!("{name}/")),
                    r.opt_bool(3).map_err(&bad)?.unwrap_or(true),
                )
            } else {
                (format!("{name}/"), true)
            };
            let dir = lake_path::resolve(&self.data_root, &LakeKey::root(), &path, relative)
                .map_err(|e| format!("its schema's path: {e}"));
            schemas.insert(r.i64(0).map_err(&bad)?, (name, dir));
        }

        // Tables.
        let cols = if paths {
            "table_id, CAST(table_uuid AS VARCHAR), schema_id, table_name, path, path_is_relative"
        } else {
            "table_id, CAST(table_uuid AS VARCHAR), schema_id, table_name"
        };
        let bad = self.malformed("ducklake_table");
        let mut tables: BTreeMap<i64, TableDef> = BTreeMap::new();
        for r in self.query("ducklake_table", &format!("SELECT {cols} FROM ducklake_table WHERE {}", valid_at(id)))? {
            let table_id = r.i64(0).map_err(&bad)?;
            let schema_id = r.i64(2).map_err(&bad)?;
            let name = r.text(3).map_err(&bad)?;
            let Some((schema, schema_dir)) = schemas.get(&schema_id) else {
                return Err(CatalogError::Malformed {
                    location: self.location.to_string(),
                    table: "ducklake_table".into(),
                    reason: format!("table {name} names schema {schema_id}, which does not exist at snapshot {id}"),
                });
            };
            let (path, relative) = if paths {
                (
                    r.opt_text(4).map_err(&bad)?.unwrap_or_else(|| format!("{name}/")),
                    r.opt_bool(5).map_err(&bad)?.unwrap_or(true),
                )
            } else {
                (format!("{name}/"), true)
            };
            let dir = schema_dir.as_ref().map_err(Clone::clone).and_then(|schema_dir| {
                lake_path::resolve(&self.data_root, schema_dir, &path, relative).map_err(|e| format!("its path: {e}"))
            });
            let (dir, unreadable) = match dir {
                Ok(dir) => (dir, None),
                Err(reason) => (LakeKey::root(), Some(reason)),
            };
            tables.insert(
                table_id,
                TableDef {
                    id: table_id,
                    uuid: r.opt_text(1).map_err(&bad)?.unwrap_or_default(),
                    schema: schema.clone(),
                    name,
                    dir,
                    columns: Vec::new(),
                    tags: BTreeMap::new(),
                    files: Vec::new(),
                    inlined: Vec::new(),
                    inlined_deletes: Vec::new(),
                    unreadable,
                },
            );
        }

        self.read_columns(id, &mut tables)?;
        self.read_tags(id, &mut tables)?;
        self.read_files(id, &mut tables)?;
        self.read_inlined(id, &mut tables)?;
        let views = self.read_views(id, &schemas)?;
        for table in tables.values_mut() {
            if let Some(reason) = &table.unreadable {
                tracing::warn!(catalog = %self.location, table = %format!("{}.{}", table.schema, table.name),
                    snapshot = id, reason = %reason, "table cannot be served; the rest of the lake is");
                // Nothing of it is served: no file of it is listed or read.
                table.files.clear();
                table.inlined.clear();
                table.inlined_deletes.clear();
            }
        }

        Ok(LakeSnapshot {
            snapshot,
            version: self.features.version.clone(),
            data_root: self.data_root.clone(),
            schemas: schemas.into_values().map(|(name, _)| name).collect(),
            tables: tables.into_values().collect(),
            views,
            scheduled_for_deletion: self.scheduled_for_deletion()?,
        })
    }

    /// Columns of every table valid at `id`, assembled into trees by `parent_column`.
    fn read_columns(&self, id: i64, tables: &mut BTreeMap<i64, TableDef>) -> Result<(), CatalogError> {
        let t = "ducklake_column";
        let bad = self.malformed(t);
        let sql = format!(
            "SELECT table_id, column_id, column_name, column_type, initial_default, default_value, nulls_allowed, parent_column \
             FROM {t} WHERE {} ORDER BY table_id, column_order",
            valid_at(id)
        );
        // (table, parent) -> children in order; assembled bottom-up afterwards.
        let mut by_parent: BTreeMap<(i64, Option<i64>), Vec<ColumnDef>> = BTreeMap::new();
        for r in self.query(t, &sql)? {
            let col = ColumnDef {
                id: r.i64(1).map_err(&bad)?,
                name: r.text(2).map_err(&bad)?,
                ducklake_type: r.text(3).map_err(&bad)?,
                initial_default: r.opt_text(4).map_err(&bad)?,
                default_value: r.opt_text(5).map_err(&bad)?,
                nullable: r.opt_bool(6).map_err(&bad)?.unwrap_or(true),
                children: Vec::new(),
                tags: BTreeMap::new(),
            };
            by_parent.entry((r.i64(0).map_err(&bad)?, r.opt_i64(7).map_err(&bad)?)).or_default().push(col);
        }
        fn attach(table: i64, col: &mut ColumnDef, by_parent: &mut BTreeMap<(i64, Option<i64>), Vec<ColumnDef>>) {
            if let Some(mut children) = by_parent.remove(&(table, Some(col.id))) {
                for child in &mut children {
                    attach(table, child, by_parent);
                }
                col.children = children;
            }
        }
        for (table_id, table) in tables.iter_mut() {
            let mut top = by_parent.remove(&(*table_id, None)).unwrap_or_default();
            for col in &mut top {
                attach(*table_id, col, &mut by_parent);
            }
            table.columns = top;
        }
        Ok(())
    }

    fn read_tags(&self, id: i64, tables: &mut BTreeMap<i64, TableDef>) -> Result<(), CatalogError> {
        if !self.features.tags {
            return Ok(());
        }
        let bad = self.malformed("ducklake_tag");
        let sql = format!("SELECT object_id, key, value FROM ducklake_tag WHERE {}", valid_at(id));
        for r in self.query("ducklake_tag", &sql)? {
            if let Some(table) = tables.get_mut(&r.i64(0).map_err(&bad)?) {
                table.tags.insert(r.text(1).map_err(&bad)?, r.opt_text(2).map_err(&bad)?.unwrap_or_default());
            }
        }
        let bad = self.malformed("ducklake_column_tag");
        let sql = format!("SELECT table_id, column_id, key, value FROM ducklake_column_tag WHERE {}", valid_at(id));
        for r in self.query("ducklake_column_tag", &sql)? {
            let Some(table) = tables.get_mut(&r.i64(0).map_err(&bad)?) else { continue };
            let column_id = r.i64(1).map_err(&bad)?;
            if let Some(col) = find_column(&mut table.columns, column_id) {
                col.tags.insert(r.text(2).map_err(&bad)?, r.opt_text(3).map_err(&bad)?.unwrap_or_default());
            }
        }
        Ok(())
    }

    fn read_files(&self, id: i64, tables: &mut BTreeMap<i64, TableDef>) -> Result<(), CatalogError> {
        let t = "ducklake_data_file";
        let bad = self.malformed(t);
        let partial_max = if self.features.partial_max { "partial_max" } else { "CAST(NULL AS BIGINT)" };
        let partial_info = if self.features.partial_file_info { "partial_file_info" } else { "CAST(NULL AS VARCHAR)" };
        let sql = format!(
            "SELECT data_file_id, table_id, begin_snapshot, path, path_is_relative, file_format, record_count, \
             file_size_bytes, footer_size, row_id_start, encryption_key, {partial_max}, {partial_info} \
             FROM {t} WHERE {} ORDER BY table_id, data_file_id",
            valid_at(id)
        );
        let mut file_table: HashMap<i64, i64> = HashMap::new();
        for r in self.query(t, &sql)? {
            let table_id = r.i64(1).map_err(&bad)?;
            let Some(table) = tables.get_mut(&table_id) else { continue };
            if table.unreadable.is_some() {
                continue;
            }
            let path = r.text(3).map_err(&bad)?;
            let relative = r.opt_bool(4).map_err(&bad)?.unwrap_or(true);
            let file_id = r.i64(0).map_err(&bad)?;
            let Some(key) = self.file_key(table, &format!("data file {file_id}"), &path, relative) else { continue };
            let partial = match (r.opt_i64(11).map_err(&bad)?, r.opt_text(12).map_err(&bad)?) {
                (Some(max), _) => Some(Partial::MaxSnapshot(max)),
                (None, Some(info)) => match parse_partial_file_info(&info) {
                    Ok(partial) => partial,
                    Err(reason) => {
                        table.unreadable = Some(format!("data file {file_id}: {reason}"));
                        continue;
                    }
                },
                (None, None) => None,
            };
            file_table.insert(file_id, table_id);
            table.files.push(Arc::new(DataFile {
                id: file_id,
                name: name_in_table(&key, &table.dir),
                key,
                format: r.opt_text(5).map_err(&bad)?.unwrap_or_else(|| "parquet".into()),
                record_count: r.opt_i64(6).map_err(&bad)?.unwrap_or(0),
                size: r.opt_i64(7).map_err(&bad)?.unwrap_or(0),
                footer_size: r.opt_i64(8).map_err(&bad)?,
                row_id_start: r.opt_i64(9).map_err(&bad)?,
                begin_snapshot: r.i64(2).map_err(&bad)?,
                encryption_key: r.opt_text(10).map_err(&bad)?,
                partial,
                partition_values: Vec::new(),
                deletes: Vec::new(),
            }));
        }

        if self.features.tables.contains_key("ducklake_file_partition_value") {
            let t = "ducklake_file_partition_value";
            let bad = self.malformed(t);
            let sql = format!(
                "SELECT v.data_file_id, v.partition_key_index, v.partition_value FROM {t} v \
                 JOIN ducklake_data_file f ON f.data_file_id = v.data_file_id \
                 WHERE f.begin_snapshot <= {id} AND (f.end_snapshot IS NULL OR f.end_snapshot > {id}) \
                 ORDER BY v.data_file_id, v.partition_key_index"
            );
            for r in self.query(t, &sql)? {
                let file_id = r.i64(0).map_err(&bad)?;
                if let Some(file) = file_table
                    .get(&file_id)
                    .and_then(|tid| tables.get_mut(tid))
                    .and_then(|t| t.files.iter_mut().find(|f| f.id == file_id))
                {
                    // Not shared yet (shared only once the snapshot is read): no copy.
                    Arc::make_mut(file).partition_values.push((r.i64(1).map_err(&bad)?, r.opt_text(2).map_err(&bad)?));
                }
            }
        }

        let t = "ducklake_delete_file";
        let bad = self.malformed(t);
        let partial_max = if self.features.delete_partial_max { "partial_max" } else { "CAST(NULL AS BIGINT)" };
        let sql = format!(
            "SELECT delete_file_id, table_id, data_file_id, begin_snapshot, path, path_is_relative, format, delete_count, \
             file_size_bytes, footer_size, encryption_key, {partial_max} FROM {t} WHERE {} ORDER BY delete_file_id",
            valid_at(id)
        );
        for r in self.query(t, &sql)? {
            let Some(table) = tables.get_mut(&r.i64(1).map_err(&bad)?) else { continue };
            if table.unreadable.is_some() {
                continue;
            }
            let data_file_id = r.i64(2).map_err(&bad)?;
            let path = r.text(4).map_err(&bad)?;
            let relative = r.opt_bool(5).map_err(&bad)?.unwrap_or(true);
            let delete_id = r.i64(0).map_err(&bad)?;
            let Some(key) = self.file_key(table, &format!("delete file {delete_id}"), &path, relative) else {
                continue;
            };
            let delete = DeleteFile {
                id: delete_id,
                name: name_in_table(&key, &table.dir),
                key,
                format: r.opt_text(6).map_err(&bad)?.unwrap_or_else(|| "parquet".into()),
                delete_count: r.opt_i64(7).map_err(&bad)?.unwrap_or(0),
                size: r.opt_i64(8).map_err(&bad)?.unwrap_or(0),
                footer_size: r.opt_i64(9).map_err(&bad)?,
                begin_snapshot: r.i64(3).map_err(&bad)?,
                encryption_key: r.opt_text(10).map_err(&bad)?,
                partial_max: r.opt_i64(11).map_err(&bad)?,
            };
            match table.files.iter_mut().find(|f| f.id == data_file_id) {
                Some(file) => Arc::make_mut(file).deletes.push(delete),
                None => tracing::warn!(catalog = %self.location, delete_file = delete.id, data_file_id, snapshot = id,
                    "delete file refers to a data file that is not valid at this snapshot; ignored"),
            }
        }
        Ok(())
    }

    /// The key of a file of `table` at `path`, or `None` after marking the table unreadable
    /// when the path leaves the lake (the file, `what`, is named in the reason).
    fn file_key(&self, table: &mut TableDef, what: &str, path: &str, relative: bool) -> Option<LakeKey> {
        match lake_path::resolve(&self.data_root, &table.dir, path, relative) {
            Ok(key) => Some(key),
            Err(e) => {
                table.unreadable = Some(format!("{what}: {e}"));
                None
            }
        }
    }

    fn read_inlined(&self, id: i64, tables: &mut BTreeMap<i64, TableDef>) -> Result<(), CatalogError> {
        if self.features.inlined_data_tables {
            let types = &self.features.types;
            let t = "ducklake_inlined_data_tables";
            let bad = self.malformed(t);
            let entries = self
                .query(t, &format!("SELECT table_id, table_name, schema_version FROM {t} ORDER BY schema_version"))?;
            for r in entries {
                let table_id = r.i64(0).map_err(&bad)?;
                let Some(table) = tables.get_mut(&table_id) else { continue };
                let name = r.text(1).map_err(&bad)?;
                let schema_version = r.i64(2).map_err(&bad)?;
                let stored: Vec<String> = self
                    .features
                    .columns(&name)
                    .iter()
                    .filter(|c| !matches!(c.as_str(), "row_id" | "begin_snapshot" | "end_snapshot"))
                    .cloned()
                    .collect();
                if stored.is_empty() || !is_plain_identifier(&name) {
                    continue;
                }
                let ids = self.column_ids_at_schema_version(table_id, schema_version)?;
                let reads: Vec<(String, bool)> = stored
                    .iter()
                    .map(|c| {
                        let id = ids.get(c).copied();
                        let column = table.columns.iter().find(|col| Some(col.id) == id);
                        let blob = column.is_some_and(|col| col.ducklake_type.eq_ignore_ascii_case("blob"));
                        let bytea = types.get(&(name.clone(), c.clone())).is_some_and(|t| t == "bytea");
                        self.inlined_text(c, blob, bytea)
                    })
                    .collect();
                let selects: Vec<&str> = reads.iter().map(|(sql, _)| sql.as_str()).collect();
                let sql = format!("SELECT {} FROM {name} WHERE {} ORDER BY row_id", selects.join(", "), valid_at(id));
                let bad = self.malformed(&name);
                let rows: Result<Vec<Vec<Option<String>>>, CatalogError> = self
                    .query(&name, &sql)?
                    .iter()
                    .map(|r| {
                        reads
                            .iter()
                            .enumerate()
                            .map(|(i, (_, hex))| {
                                let text = r.opt_text(i).map_err(&bad)?;
                                if *hex {
                                    text.map(|h| blob_literal(&h, i)).transpose().map_err(&bad)
                                } else {
                                    Ok(text)
                                }
                            })
                            .collect()
                    })
                    .collect();
                let rows = rows?;
                if rows.is_empty() {
                    continue;
                }
                table.inlined.push(InlinedRows {
                    schema_version,
                    column_ids: stored.iter().map(|c| ids.get(c).copied()).collect(),
                    rows,
                });
            }
        }
        for (table_id, table) in tables.iter_mut() {
            let name = format!("ducklake_inlined_delete_{table_id}");
            if !self.features.tables.contains_key(&name) {
                continue;
            }
            let bad = self.malformed(&name);
            let sql = format!("SELECT file_id, row_id FROM {name} WHERE begin_snapshot <= {id}");
            for r in self.query(&name, &sql)? {
                table.inlined_deletes.push((r.i64(0).map_err(&bad)?, r.i64(1).map_err(&bad)?));
            }
        }
        Ok(())
    }

    /// How a column of an inlined-data table is selected as DuckDB literal text, and whether
    /// the SQL yields hex digits (turned into `\xHH` escapes by [`blob_literal`]). DuckDB casts
    /// any value to such text itself. SQLite would hand a BLOB's bytes back as text, so BLOB
    /// columns are read as they are (bytes read as text are DuckDB's BLOB text; a mirror of a
    /// DuckDB catalog holds that text already); PostgreSQL catalogs store BLOB and VARCHAR
    /// values as `bytea` (whose text is hex), read as hex or decoded from UTF-8.
    fn inlined_text(&self, column: &str, blob: bool, bytea: bool) -> (String, bool) {
        let c = crate::view_sql::ident(column);
        match (&self.location, blob) {
            (CatalogLocation::Sqlite(_), true) => (c, false),
            (CatalogLocation::Postgres(_), true) if bytea => (format!("encode({c}, 'hex')"), true),
            (CatalogLocation::Postgres(_), false) if bytea => (format!("convert_from({c}, 'UTF8')"), false),
            _ => (format!("CAST({c} AS VARCHAR)"), false),
        }
    }

    /// `(inlined data table, column)` of every column of inlined data that holds a BLOB column's
    /// values (by the DuckLake type of any column of the table that ever had the name). Only a
    /// PostgreSQL catalog needs telling (it keeps VARCHAR values as `bytea` too): empty for others.
    pub(crate) fn inlined_blob_columns(&self) -> Result<HashSet<(String, String)>, CatalogError> {
        if !matches!(self.location, CatalogLocation::Postgres(_)) || !self.features.inlined_data_tables {
            return Ok(HashSet::new());
        }
        let t = "ducklake_inlined_data_tables";
        let bad = self.malformed(t);
        let sql = format!(
            "SELECT i.table_name, c.column_name FROM {t} i JOIN ducklake_column c ON c.table_id = i.table_id \
             WHERE c.parent_column IS NULL AND lower(c.column_type) = 'blob'"
        );
        self.query(t, &sql)?.iter().map(|r| Ok((r.text(0).map_err(&bad)?, r.text(1).map_err(&bad)?))).collect()
    }

    /// Top-level column name → id for a table as it was at a schema version: inlined-data
    /// tables name their columns as they were then, and renames are resolved by id.
    fn column_ids_at_schema_version(
        &self,
        table_id: i64,
        schema_version: i64,
    ) -> Result<HashMap<String, i64>, CatalogError> {
        let begin_sql = if self.features.schema_versions {
            format!("SELECT min(begin_snapshot) FROM ducklake_schema_versions WHERE schema_version = {schema_version}")
        } else {
            format!("SELECT min(snapshot_id) FROM ducklake_snapshot WHERE schema_version >= {schema_version}")
        };
        let bad = self.malformed("ducklake_schema_versions");
        let begin = self
            .query("ducklake_schema_versions", &begin_sql)?
            .first()
            .map(|r| r.opt_i64(0))
            .transpose()
            .map_err(&bad)?
            .flatten();
        let Some(begin) = begin else { return Ok(HashMap::new()) };
        let sql = format!(
            "SELECT column_name, column_id FROM ducklake_column WHERE table_id = {table_id} AND parent_column IS NULL AND {}",
            valid_at(begin)
        );
        let bad = self.malformed("ducklake_column");
        self.query("ducklake_column", &sql)?
            .iter()
            .map(|r| Ok((r.text(0).map_err(&bad)?, r.i64(1).map_err(&bad)?)))
            .collect()
    }

    fn read_views(
        &self,
        id: i64,
        schemas: &BTreeMap<i64, (String, Result<LakeKey, String>)>,
    ) -> Result<Vec<ViewDef>, CatalogError> {
        if !self.features.views {
            return Ok(Vec::new());
        }
        let t = "ducklake_view";
        let bad = self.malformed(t);
        let sql = format!(
            "SELECT view_id, schema_id, view_name, dialect, sql FROM {t} WHERE {} ORDER BY view_id",
            valid_at(id)
        );
        let mut out = Vec::new();
        for r in self.query(t, &sql)? {
            let Some((schema, _)) = schemas.get(&r.i64(1).map_err(&bad)?) else { continue };
            out.push(ViewDef {
                id: r.i64(0).map_err(&bad)?,
                schema: schema.clone(),
                name: r.text(2).map_err(&bad)?,
                dialect: r.opt_text(3).map_err(&bad)?.unwrap_or_default(),
                sql: r.opt_text(4).map_err(&bad)?.unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

/// Hex digits (PostgreSQL's `encode(x, 'hex')`) as DuckDB's BLOB text; `column` is where they
/// were read, for the error.
fn blob_literal(hex: &str, column: usize) -> Result<String, RowError> {
    let bytes = hex::decode(hex).map_err(|_| RowError { column, expected: "hex digits", found: hex.to_string() })?;
    Ok(super::row::blob_text(&bytes))
}

fn find_column(columns: &mut [ColumnDef], id: i64) -> Option<&mut ColumnDef> {
    for col in columns {
        if col.id == id {
            return Some(col);
        }
        if let Some(found) = find_column(&mut col.children, id) {
            return Some(found);
        }
    }
    None
}

/// Catalog table names are interpolated into SQL; only plain identifiers are accepted.
fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn name_in_table(key: &LakeKey, table_dir: &LakeKey) -> String {
    match key.strip_prefix(table_dir) {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => key.segments().last().unwrap_or_default().to_string(),
    }
}

/// `data_path` as an absolute root ending in `/`: URLs as they are, local paths made absolute
/// against the catalog file's folder (DuckLake resolves a relative data path that way).
fn resolve_data_root(data_path: &str, base: Option<&Path>) -> String {
    let mut root = if data_path.contains("://") || Path::new(data_path).is_absolute() {
        data_path.to_string()
    } else {
        let base = match base {
            Some(b) if !b.as_os_str().is_empty() => b.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let joined = base.join(data_path);
        let absolute = std::path::absolute(&joined).unwrap_or(joined);
        normalize(&absolute).to_string_lossy().into_owned()
    };
    if !root.ends_with('/') {
        root.push('/');
    }
    root
}

/// Removes `.` segments and folds `..` lexically (the data directory may not exist yet).
fn normalize(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Parses `partial_file_info` of catalogs before 0.4: `partial_max:N` or `s1:n1|s2:n2`.
fn parse_partial_file_info(info: &str) -> Result<Option<Partial>, String> {
    let info = info.trim();
    if info.is_empty() {
        return Ok(None);
    }
    if let Some(max) = info.strip_prefix("partial_max:") {
        return max
            .trim()
            .parse()
            .map(|m| Some(Partial::MaxSnapshot(m)))
            .map_err(|_| format!("bad partial_file_info {info:?}"));
    }
    let mut pairs = Vec::new();
    for part in info.split('|') {
        let (s, n) = part.split_once(':').ok_or_else(|| format!("bad partial_file_info {info:?}"))?;
        let s = s.trim().parse().map_err(|_| format!("bad partial_file_info {info:?}"))?;
        let n = n.trim().parse().map_err(|_| format!("bad partial_file_info {info:?}"))?;
        pairs.push((s, n));
    }
    pairs.sort();
    Ok(Some(Partial::RowsBySnapshot(pairs)))
}

/// Backends spell the same instant differently (DuckDB drops trailing zeros of the fraction,
/// SQLite keeps the text as written), so snapshot times are normalised to RFC 3339 UTC with
/// microseconds; a value that does not parse is kept as it was.
fn canonical_time(raw: String) -> String {
    match parse_time(&raw) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => raw,
    }
}

/// Parses the timestamp spellings catalogs use (`2026-11-25 14:13:08.519889+00`, RFC 3339).
fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&chrono::Utc));
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, fmt) {
            return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_becomes_duckdb_blob_text() {
        assert_eq!(blob_literal("0cC1ff00", 0).ok().as_deref(), Some("\\x0C\\xC1\\xFF\\x00"));
        assert_eq!(blob_literal("", 0).ok().as_deref(), Some(""));
        assert!(blob_literal("abc", 0).is_err());
        assert!(blob_literal("zz", 0).is_err());
    }

    #[test]
    fn parses_both_partial_file_info_spellings() {
        assert_eq!(parse_partial_file_info("partial_max:9"), Ok(Some(Partial::MaxSnapshot(9))));
        assert_eq!(parse_partial_file_info("6:7|2:4"), Ok(Some(Partial::RowsBySnapshot(vec![(2, 4), (6, 7)]))));
        assert!(parse_partial_file_info("x").is_err());
    }

    #[test]
    fn parses_catalog_timestamps() {
        let a = parse_time("2026-11-25 14:13:08.519889+00");
        let b = parse_time("2026-11-25T14:13:08.519889Z");
        assert!(a.is_some());
        assert_eq!(a, b);
    }

    #[test]
    fn resolves_relative_data_paths_against_the_catalog_folder() {
        assert_eq!(resolve_data_root("data/", Some(Path::new("/lakes/acme"))), "/lakes/acme/data/");
        assert_eq!(resolve_data_root("s3://b/p", None), "s3://b/p/");
        assert_eq!(resolve_data_root("./x/../data", Some(Path::new("/l"))), "/l/data/");
    }
}
