//! The snapshot mirror: a local copy of the catalog, so the lake stays browsable and queryable
//! with no network and across restarts.
//!
//! The mirror is itself a DuckLake catalog in a SQLite file: the source's `ducklake_*` tables,
//! row for row, with `data_path` pinned to the source's resolved data root. The catalog reader
//! therefore reads the mirror exactly as it reads any SQLite catalog, and one code path serves
//! online and offline use.
//!
//! Refreshing copies only what changed since the last mirrored snapshot `L`: new snapshots,
//! rows that begin after `L`, `end_snapshot` of rows that ended after `L`, the statistics and
//! partition values of new files; small mutable tables (metadata, table statistics, inlined
//! data, schema versions, ...) are replaced whole. If snapshots the mirror holds have vanished
//! from the source (`expire_snapshots`), or the source's table layout changed, the mirror is
//! rebuilt from scratch. Every refresh is one SQLite transaction: a crash leaves the previous
//! mirror intact.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::catalog::row::Value;
use crate::catalog::{CatalogError, CatalogLocation, CatalogReader};
use crate::governance::MirrorScrub;

/// Version of the mirror's own bookkeeping; a mirror written by another version is rebuilt.
const MIRROR_FORMAT: &str = "3";

/// What went wrong keeping the mirror.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror {path}: {source}")]
    Sqlite { path: PathBuf, source: Box<rusqlite::Error> },
    #[error("mirror {path}: cannot create its folder: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The newest snapshot mirrored before, if any.
    pub from: Option<i64>,
    /// The newest snapshot mirrored now.
    pub to: i64,
    /// Whether the mirror was rebuilt from scratch.
    pub full: bool,
    /// Catalog rows written (inserted or updated).
    pub rows: u64,
}

/// How each catalog table is kept up to date.
enum Sync {
    /// `snapshot_id` only grows: copy the new ones.
    BySnapshotId,
    /// Rows valid over `[begin_snapshot, end_snapshot)`, identified by these key columns.
    Versioned(&'static [&'static str]),
    /// Rows belonging to a data file: copy those of files that began after `L`.
    PerNewFile,
    /// Small or mutable: replace the whole table.
    Replace,
}

fn sync_kind(table: &str) -> Sync {
    match table {
        "ducklake_snapshot" | "ducklake_snapshot_changes" => Sync::BySnapshotId,
        "ducklake_schema" => Sync::Versioned(&["schema_id"]),
        "ducklake_table" => Sync::Versioned(&["table_id", "begin_snapshot"]),
        "ducklake_view" => Sync::Versioned(&["view_id", "begin_snapshot"]),
        "ducklake_column" => Sync::Versioned(&["table_id", "column_id", "begin_snapshot"]),
        "ducklake_data_file" => Sync::Versioned(&["data_file_id"]),
        "ducklake_delete_file" => Sync::Versioned(&["delete_file_id"]),
        "ducklake_tag" => Sync::Versioned(&["object_id", "key", "begin_snapshot"]),
        "ducklake_column_tag" => Sync::Versioned(&["table_id", "column_id", "key", "begin_snapshot"]),
        "ducklake_partition_info" => Sync::Versioned(&["partition_id", "table_id"]),
        "ducklake_sort_info" => Sync::Versioned(&["sort_id", "table_id"]),
        "ducklake_macro" => Sync::Versioned(&["macro_id"]),
        "ducklake_file_column_stats"
        | "ducklake_file_column_statistics"
        | "ducklake_file_partition_value"
        | "ducklake_file_variant_stats" => Sync::PerNewFile,
        // Inlined data and inlined deletes are rewritten by flushes (rows deleted outright),
        // and are small by design: replace them.
        _ => Sync::Replace,
    }
}

/// How one column is copied into the mirror, and declared there. The mirror is laid out as the
/// DuckLake extension lays out a SQLite catalog, so the extension attaches it too: integers and
/// booleans in `BIGINT` columns, an inlined BLOB column's values as bytes in a `BLOB` column,
/// everything else as text in `VARCHAR` columns (timestamps, UUIDs, HUGEINTs, doubles, nested
/// values as DuckDB prints them). A SQLite catalog is copied as it is, declarations included.
/// (Untyped columns read as BLOB through DuckDB's SQLite scanner, which the extension refuses.)
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColumnCopy {
    /// As the SQLite source has it, under its declared type.
    Verbatim(String),
    /// `BIGINT`: a DuckDB source's integers and booleans come typed; a PostgreSQL one's as
    /// text (SQLite's INTEGER affinity stores `'10'` as the number 10: as text,
    /// `snapshot_id = 10` would match nothing and `max()` would pick `'9'`), its booleans cast
    /// to integers.
    Integer { cast: bool },
    /// `BLOB`: bytes; a PostgreSQL `bytea` is read as hex.
    Bytes { hex: bool },
    /// `VARCHAR`: the value cast to text; a PostgreSQL `bytea` of an inlined VARCHAR column
    /// decoded from UTF-8.
    Text { utf8: bool },
}

impl ColumnCopy {
    /// How `column` of `table` in the catalog at `source` is copied, given its data type there
    /// (`source_type`) and, for a column of inlined data, the DuckLake type of the table column
    /// it holds (a PostgreSQL catalog keeps both BLOB and VARCHAR values as `bytea`).
    fn of(source: &CatalogLocation, source_type: Option<&str>, inlined_blob: bool) -> ColumnCopy {
        let t = source_type.unwrap_or_default().to_ascii_lowercase();
        match source {
            CatalogLocation::Sqlite(_) => ColumnCopy::Verbatim(source_type.unwrap_or_default().to_owned()),
            CatalogLocation::Postgres(_) => match t.as_str() {
                "smallint" | "integer" | "bigint" => ColumnCopy::Integer { cast: false },
                "boolean" => ColumnCopy::Integer { cast: true },
                "bytea" if inlined_blob => ColumnCopy::Bytes { hex: true },
                "bytea" => ColumnCopy::Text { utf8: true },
                _ => ColumnCopy::Text { utf8: false },
            },
            CatalogLocation::DuckDb(_) => match t.as_str() {
                "boolean" | "tinyint" | "smallint" | "integer" | "bigint" | "utinyint" | "usmallint" | "uinteger" => {
                    ColumnCopy::Integer { cast: false }
                }
                "blob" => ColumnCopy::Bytes { hex: false },
                _ => ColumnCopy::Text { utf8: false },
            },
        }
    }

    /// The column's type in the mirror's `CREATE TABLE`.
    fn declared(&self) -> &str {
        match self {
            ColumnCopy::Verbatim(t) => t,
            ColumnCopy::Integer { .. } => "BIGINT",
            ColumnCopy::Bytes { .. } => "BLOB",
            ColumnCopy::Text { .. } => "VARCHAR",
        }
    }

    /// The column in the SELECT that reads the source.
    fn select(&self, column: &str) -> String {
        let c = quote(column);
        match self {
            ColumnCopy::Verbatim(_) | ColumnCopy::Integer { cast: false } | ColumnCopy::Bytes { hex: false } => c,
            ColumnCopy::Integer { cast: true } => format!("CAST({c} AS INTEGER)"),
            ColumnCopy::Bytes { hex: true } => format!("encode({c}, 'hex')"),
            ColumnCopy::Text { utf8: true } => format!("convert_from({c}, 'UTF8')"),
            ColumnCopy::Text { utf8: false } => format!("CAST({c} AS VARCHAR)"),
        }
    }

    /// The value as SQLite binds it: borrowed (no copy of text per value), but for bytes.
    fn value<'a>(&self, v: &'a Value) -> rusqlite::types::ToSqlOutput<'a> {
        match (self, v) {
            (ColumnCopy::Bytes { hex: true }, Value::Text(h)) => match hex::decode(h) {
                Ok(bytes) => rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Blob(bytes)),
                Err(_) => to_sqlite(v),
            },
            _ => to_sqlite(v),
        }
    }
}

fn quote(name: &str) -> String {
    crate::view_sql::ident(name)
}

/// The local mirror of one lake's catalog.
pub struct Mirror {
    path: PathBuf,
    conn: rusqlite::Connection,
}

impl Mirror {
    /// Opens (or creates) the mirror at `path`. Its folder is created private to the user
    /// (0700) and the file is 0600: the mirror holds the lake's metadata.
    pub fn open(path: &Path) -> Result<Mirror, MirrorError> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(|source| MirrorError::Io { path: dir.to_path_buf(), source })?;
        }
        let err = |e| MirrorError::Sqlite { path: path.to_path_buf(), source: Box::new(e) };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        set_private_file(path).map_err(|source| MirrorError::Io { path: path.to_path_buf(), source })?;
        // secure_delete: bytes a scrub removes are overwritten in the file, not left in free space.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; \
             CREATE TABLE IF NOT EXISTS warmlake_mirror(key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(err)?;
        Ok(Mirror { path: path.to_path_buf(), conn })
    }

    /// The mirror as a catalog location, for [`CatalogReader::open`] (works offline).
    pub fn location(&self) -> CatalogLocation {
        CatalogLocation::Sqlite(self.path.clone())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> MirrorError + '_ {
        |e| MirrorError::Sqlite { path: self.path.clone(), source: Box::new(e) }
    }

    fn state(&self, key: &str) -> Result<Option<String>, MirrorError> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row("SELECT value FROM warmlake_mirror WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// The newest snapshot in the mirror, if it holds one.
    pub fn last_snapshot(&self) -> Result<Option<i64>, MirrorError> {
        if self.state("format")?.as_deref() != Some(MIRROR_FORMAT) {
            return Ok(None);
        }
        Ok(self.state("last_snapshot")?.and_then(|v| v.parse().ok()))
    }

    /// Removes what `scrub` names from the mirror (statistics and inlined values the policy
    /// forbids to store) and rewrites the file, so that no copy of them is left in free pages or
    /// the write-ahead log. Returns values cleared. Used when the policy tightens.
    pub fn scrub(&mut self, scrub: &MirrorScrub) -> Result<u64, MirrorError> {
        let path = self.path.clone();
        let err = |e| MirrorError::Sqlite { path: path.clone(), source: Box::new(e) };
        let tx = self.conn.transaction().map_err(err)?;
        let cleared = apply_scrub(&tx, scrub).map_err(err)?;
        tx.commit().map_err(err)?;
        if cleared > 0 {
            self.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(err)?;
        }
        Ok(cleared)
    }

    /// Deletes the mirror and everything it holds (`local.mode = "deny"`). The mirror is
    /// unusable afterwards; open a new one to start again.
    pub fn destroy(self) -> Result<(), MirrorError> {
        let Mirror { path, conn } = self;
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(MirrorError::Io { path: p, source }),
            }
        }
        Ok(())
    }

    /// Brings the mirror up to the source's newest snapshot, in one transaction, dropping what
    /// `scrub` names before the transaction commits (so it never reaches the file).
    pub fn sync(&mut self, source: &CatalogReader, scrub: &MirrorScrub) -> Result<SyncReport, MirrorError> {
        let latest = source.latest_snapshot()?.id;
        let from = self.last_snapshot()?;
        let layout = layout_signature(source);
        let incremental = match from {
            Some(l) => {
                l <= latest
                    && self.state("layout")?.as_deref() == Some(layout.as_str())
                    && self.state("source")?.as_deref() == Some(source.location().to_string().as_str())
                    && self.mirrored_snapshots_still_exist(source, l)?
            }
            None => false,
        };
        if incremental && from == Some(latest) {
            return Ok(SyncReport { from, to: latest, full: false, rows: 0 });
        }
        let path = self.path.clone();
        let tx =
            self.conn.transaction().map_err(|e| MirrorError::Sqlite { path: path.clone(), source: Box::new(e) })?;
        let err = |e| MirrorError::Sqlite { path: path.clone(), source: Box::new(e) };
        let mut rows = 0u64;
        let features = source.features().clone();
        let since = if incremental { from } else { None };
        if since.is_none() {
            let existing: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ducklake\\_%' ESCAPE '\\'",
                    )
                    .map_err(err)?;
                stmt.query_map([], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>().map_err(err)?
            };
            for t in existing {
                tx.execute_batch(&format!("DROP TABLE {}", quote(&t))).map_err(err)?;
            }
        }
        let blobs = source.inlined_blob_columns()?;
        for (table, columns) in &features.tables {
            let copies: Vec<ColumnCopy> = columns
                .iter()
                .map(|c| {
                    let key = (table.clone(), c.clone());
                    ColumnCopy::of(
                        source.location(),
                        features.types.get(&key).map(String::as_str),
                        blobs.contains(&key),
                    )
                })
                .collect();
            let cols: Vec<String> =
                columns.iter().zip(&copies).map(|(c, copy)| format!("{} {}", quote(c), copy.declared())).collect();
            tx.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {}({})", quote(table), cols.join(", ")))
                .map_err(err)?;
            let select: Vec<String> = columns.iter().zip(&copies).map(|(c, copy)| copy.select(c)).collect();
            let base = format!("SELECT {} FROM {}", select.join(", "), quote(table));
            let (filter, replace) = match (since, sync_kind(table)) {
                (None, _) => (String::new(), false),
                (Some(l), Sync::BySnapshotId) => (format!(" WHERE snapshot_id > {l}"), false),
                (Some(l), Sync::Versioned(key)) => {
                    rows += update_ended(&tx, &path, source, table, key, l)?;
                    (format!(" WHERE begin_snapshot > {l}"), false)
                }
                (Some(l), Sync::PerNewFile) => (
                    format!(
                        " WHERE data_file_id IN (SELECT data_file_id FROM ducklake_data_file WHERE begin_snapshot > {l})"
                    ),
                    false,
                ),
                (Some(_), Sync::Replace) => (String::new(), true),
            };
            if replace {
                tx.execute_batch(&format!("DELETE FROM {}", quote(table))).map_err(err)?;
            }
            let placeholders = vec!["?"; columns.len()].join(", ");
            let mut insert =
                tx.prepare(&format!("INSERT INTO {} VALUES ({placeholders})", quote(table))).map_err(err)?;
            // Rows go straight from the source's cursor into the insert: a full mirror of a big
            // catalog (millions of rows) never holds more than one row in memory.
            let mut failed = None;
            source.query_each(table, &format!("{base}{filter}"), &mut |row| match insert
                .execute(rusqlite::params_from_iter(row.0.iter().zip(&copies).map(|(v, copy)| copy.value(v))))
            {
                Ok(_) => {
                    rows += 1;
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            })?;
            if let Some(e) = failed {
                return Err(err(e));
            }
        }
        // Tables that vanished from the source (an inlined-data table after a flush).
        let present: BTreeSet<&str> = features.tables.keys().map(String::as_str).collect();
        let mirrored: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ducklake\\_%' ESCAPE '\\'")
                .map_err(err)?;
            stmt.query_map([], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>().map_err(err)?
        };
        for t in mirrored.iter().filter(|t| !present.contains(t.as_str())) {
            tx.execute_batch(&format!("DROP TABLE {}", quote(t))).map_err(err)?;
        }
        // The mirror's files live where the source's do.
        let scoped = features.metadata_scope;
        tx.execute(
            &format!(
                "UPDATE ducklake_metadata SET value = ?1 WHERE key = 'data_path'{}",
                if scoped { " AND scope IS NULL" } else { "" }
            ),
            [source.data_root()],
        )
        .map_err(err)?;
        for (k, v) in [
            ("format", MIRROR_FORMAT.to_string()),
            ("source", source.location().to_string()),
            ("layout", layout),
            ("last_snapshot", latest.to_string()),
        ] {
            tx.execute("INSERT OR REPLACE INTO warmlake_mirror VALUES (?1, ?2)", [k, v.as_str()]).map_err(err)?;
        }
        apply_scrub(&tx, scrub).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(SyncReport { from, to: latest, full: since.is_none(), rows })
    }

    fn mirrored_snapshots_still_exist(&self, source: &CatalogReader, l: i64) -> Result<bool, MirrorError> {
        let mine: BTreeSet<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT snapshot_id FROM ducklake_snapshot WHERE snapshot_id <= ?1")
                .map_err(self.err())?;
            stmt.query_map([l], |r| r.get(0)).map_err(self.err())?.collect::<Result<_, _>>().map_err(self.err())?
        };
        let theirs: BTreeSet<i64> = source.snapshots()?.into_iter().map(|s| s.id).filter(|id| *id <= l).collect();
        Ok(mine == theirs)
    }
}

/// Copies `end_snapshot` of rows that began at or before `l` and ended after it.
fn update_ended(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    source: &CatalogReader,
    table: &str,
    key: &[&str],
    l: i64,
) -> Result<u64, MirrorError> {
    let keys: Vec<String> = key.iter().map(|k| quote(k)).collect();
    let sql = format!(
        "SELECT end_snapshot, {} FROM {} WHERE end_snapshot > {l} AND begin_snapshot <= {l}",
        keys.join(", "),
        quote(table)
    );
    let ended = source.query(table, &sql)?;
    let cond: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k} = ?{}", i + 2)).collect();
    let mut update = tx
        .prepare(&format!("UPDATE {} SET end_snapshot = ?1 WHERE {}", quote(table), cond.join(" AND ")))
        .map_err(|e| MirrorError::Sqlite { path: path.to_path_buf(), source: Box::new(e) })?;
    for row in &ended {
        update
            .execute(rusqlite::params_from_iter(row.0.iter().map(to_sqlite)))
            .map_err(|e| MirrorError::Sqlite { path: path.to_path_buf(), source: Box::new(e) })?;
    }
    Ok(ended.len() as u64)
}

/// The source's table layout, ignoring per-table inlined-data tables (which come and go):
/// when it changes (a DuckLake upgrade), the mirror is rebuilt.
fn layout_signature(source: &CatalogReader) -> String {
    source
        .features()
        .tables
        .iter()
        .filter(|(t, _)| !t.starts_with("ducklake_inlined_data_") && !t.starts_with("ducklake_inlined_delete_"))
        .map(|(t, cols)| format!("{t}({})", cols.join(",")))
        .collect::<Vec<_>>()
        .join(";")
}

/// Clears, in the mirror's tables, the values `scrub` names: min/max statistics of the columns
/// (all columns of the tables), and their values in inlined-data tables. Row structure stays,
/// so snapshots still read. Returns values cleared.
fn apply_scrub(tx: &rusqlite::Transaction<'_>, scrub: &MirrorScrub) -> rusqlite::Result<u64> {
    if scrub.is_empty() {
        return Ok(0);
    }
    let existing: BTreeSet<String> = {
        let mut stmt = tx.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
        stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    let columns_of = |table: &str| -> rusqlite::Result<Vec<String>> {
        let mut stmt = tx.prepare(&format!("SELECT name FROM pragma_table_info({})", sql_text(table)))?;
        stmt.query_map([], |r| r.get(0))?.collect()
    };
    let id_list = |ids: &BTreeSet<i64>| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let mut cleared = 0u64;
    // Statistics: every min/max of a scrubbed column, every column of a scrubbed table.
    for stats in ["ducklake_file_column_stats", "ducklake_table_column_stats"] {
        if !existing.contains(stats) {
            continue;
        }
        let cols = columns_of(stats)?;
        let set: Vec<String> = ["min_value", "max_value", "extra_stats"]
            .iter()
            .filter(|c| cols.iter().any(|x| x == *c))
            .map(|c| format!("{c} = NULL"))
            .collect();
        if set.is_empty() {
            continue;
        }
        let mut wheres = Vec::new();
        if scrub.everything {
            wheres.push("1".to_string());
        }
        if !scrub.tables.is_empty() {
            wheres.push(format!("table_id IN ({})", id_list(&scrub.tables)));
        }
        for (table, ids) in &scrub.columns {
            wheres.push(format!("(table_id = {table} AND column_id IN ({}))", id_list(ids)));
        }
        cleared +=
            tx.execute(&format!("UPDATE {stats} SET {} WHERE {}", set.join(", "), wheres.join(" OR ")), [])? as u64;
    }
    // Inlined rows: values of scrubbed columns (by every name the column has had).
    if existing.contains("ducklake_inlined_data_tables") {
        let inlined: Vec<(i64, String)> = {
            let mut stmt = tx.prepare("SELECT table_id, table_name FROM ducklake_inlined_data_tables")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
        };
        for (table_id, name) in inlined {
            if !existing.contains(&name) {
                continue;
            }
            let whole = scrub.everything || scrub.tables.contains(&table_id);
            let names: BTreeSet<String> = match scrub.columns.get(&table_id) {
                _ if whole => columns_of(&name)?
                    .into_iter()
                    .filter(|c| !matches!(c.as_str(), "row_id" | "begin_snapshot" | "end_snapshot"))
                    .collect(),
                Some(ids) => {
                    let mut stmt = tx.prepare(&format!(
                        "SELECT DISTINCT column_name FROM ducklake_column WHERE table_id = ?1 AND column_id IN ({})",
                        id_list(ids)
                    ))?;
                    let scrubbed: BTreeSet<String> =
                        stmt.query_map([table_id], |r| r.get(0))?.collect::<Result<_, _>>()?;
                    columns_of(&name)?.into_iter().filter(|c| scrubbed.contains(c)).collect()
                }
                None => continue,
            };
            if names.is_empty() {
                continue;
            }
            let set: Vec<String> = names.iter().map(|c| format!("{} = NULL", quote(c))).collect();
            cleared += tx.execute(&format!("UPDATE {} SET {}", quote(&name), set.join(", ")), [])? as u64;
        }
    }
    Ok(cleared)
}

/// A SQL string literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The value as SQLite binds it, borrowed (no copy of text per value).
fn to_sqlite(v: &Value) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::ValueRef as S;
    rusqlite::types::ToSqlOutput::Borrowed(match v {
        Value::Null => S::Null,
        Value::Int(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        Value::Text(t) => S::Text(t.as_bytes()),
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Bytes(b) => S::Blob(b),
    })
}

/// Creates `dir` (and parents) readable only by the user.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn set_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}
