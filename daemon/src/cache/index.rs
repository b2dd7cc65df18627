//! The cache index: a SQLite database (`index.sqlite`) recording, per cached object, its
//! identity and the byte ranges ("pieces") of its data file that hold verified bytes.
//!
//! **The rule that makes the cache crash-safe:** a piece row is inserted only after its bytes
//! are written to the data file and `fsync`ed, and a piece row is deleted before its bytes are
//! punched out. A crash at any moment therefore leaves the index claiming only bytes that are
//! on disk; bytes on disk that no row claims are punched out at the next start. Each piece
//! carries the CRC32C of its bytes, checked on every read, which catches what the rule cannot
//! (a disk that lies, a user editing the file).
//!
//! The schema is versioned by `PRAGMA user_version` ([`FORMAT_VERSION`]); a golden test pins
//! it, so changing it without bumping the version fails the build. An older index that an
//! [`UPGRADES`] step brings up to date is upgraded in place (its cached bytes stay); an index
//! of any other version is discarded with the data files (the cache is a cache: rebuilding is
//! always correct).
//!
//! Besides the pieces, the index keeps column heat (`heat`, see `cache/heat.rs`): it is not
//! part of the crash-safety rule, and a lost batch only forgets a few seconds of reads.

use std::path::Path;

use rusqlite::{Connection, params};

use super::heat::{HeatRow, Score};

/// Version of the on-disk format (index schema and data file naming). Bump on any change, and
/// add the step from the previous version to [`UPGRADES`] when one exists.
pub const FORMAT_VERSION: i64 = 2;

/// What turns an index of version `i + 1` into version `i + 2`: each step only adds, so the
/// cached bytes an older daemon left stay valid. Version 2 added column heat.
const UPGRADES: [&str; 1] = [HEAT_SCHEMA];
const _: () = assert!(UPGRADES.len() as i64 == FORMAT_VERSION - 1, "one upgrade step per version");

/// Column heat: a decayed read score per table and column (field id), as of `updated_unix`.
const HEAT_SCHEMA: &str = "\
CREATE TABLE heat (
    table_name TEXT NOT NULL,
    column_id INTEGER NOT NULL,
    score REAL NOT NULL,
    updated_unix INTEGER NOT NULL,
    PRIMARY KEY (table_name, column_id)
) WITHOUT ROWID;
";

/// The schema of version 1, exactly as created; a new index is this plus every [`UPGRADES`]
/// step, so a new index and an upgraded one are identical. Pinned by `schema_is_pinned`.
const BASE_SCHEMA: &str = "\
CREATE TABLE objects (
    id INTEGER PRIMARY KEY,
    cache_key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    etag TEXT,
    file_name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE pieces (
    object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    len INTEGER NOT NULL,
    crc32c INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    last_access INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    pinned INTEGER NOT NULL,
    table_name TEXT,
    column_id INTEGER,
    PRIMARY KEY (object_id, start)
) WITHOUT ROWID;
";

/// One object row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub id: i64,
    pub cache_key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub file_name: String,
}

/// One piece row: `len` bytes at `start` of the object's data file, verified by `crc32c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceRow {
    pub object_id: i64,
    pub start: u64,
    pub len: u64,
    pub crc32c: u32,
    /// Unix seconds the bytes were stored (for `max_age`).
    pub stored_at: i64,
    /// Unix seconds of the last read (for LRU).
    pub last_access: i64,
    pub hits: u64,
    pub pinned: bool,
    /// Qualified table name the bytes belong to, when known.
    pub table_name: Option<String>,
    /// Parquet field id of the column chunk the bytes belong to, when known.
    pub column_id: Option<i32>,
}

/// The open index. Not thread-safe by itself: the cache keeps it behind its state mutex.
#[derive(Debug)]
pub struct Index {
    conn: Connection,
}

/// What opening found.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// An index of this version (or a new one).
    Current,
    /// An index of an older version was brought up to date in place; its pieces stay.
    Upgraded { found: i64 },
    /// An index of another version was found and emptied; its data files must go too.
    Reset { found: i64 },
}

// SQLite integers are i64; sizes and offsets never reach 2^63.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Index {
    /// Opens or creates the index at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<(Index, Opened)> {
        let conn = Connection::open(path)?;
        // WAL: readers do not block the writer. synchronous=NORMAL is durable across a process
        // crash (kill -9); a power cut may forget the last commits, which only forgets pieces
        // (their bytes are punched at the next start), never invents them.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let has_tables: bool = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get::<_, i64>(0))
            .map(|n| n > 0)?;
        // An older version that the upgrade steps lead from: upgrade in place.
        let first_upgrade =
            if (1..FORMAT_VERSION).contains(&version) { usize::try_from(version - 1).ok() } else { None };
        let opened = if version == FORMAT_VERSION {
            Opened::Current
        } else if let Some(first) = first_upgrade {
            let tx = conn.unchecked_transaction()?;
            for step in UPGRADES.get(first..).unwrap_or_default() {
                tx.execute_batch(step)?;
            }
            tx.pragma_update(None, "user_version", FORMAT_VERSION)?;
            tx.commit()?;
            Opened::Upgraded { found: version }
        } else {
            let tx = conn.unchecked_transaction()?;
            let names: Vec<String> = {
                let mut stmt = tx.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
                stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            for name in names {
                tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{}\"", name.replace('"', "\"\"")))?;
            }
            tx.execute_batch(BASE_SCHEMA)?;
            for step in UPGRADES {
                tx.execute_batch(step)?;
            }
            tx.pragma_update(None, "user_version", FORMAT_VERSION)?;
            tx.commit()?;
            if has_tables { Opened::Reset { found: version } } else { Opened::Current }
        };
        Ok((Index { conn }, opened))
    }

    /// Every object.
    pub fn objects(&self) -> rusqlite::Result<Vec<ObjectRow>> {
        let mut stmt = self.conn.prepare("SELECT id, cache_key, size, etag, file_name FROM objects ORDER BY id")?;
        stmt.query_map([], |r| {
            Ok(ObjectRow {
                id: r.get(0)?,
                cache_key: r.get(1)?,
                size: to_u64(r.get(2)?),
                etag: r.get(3)?,
                file_name: r.get(4)?,
            })
        })?
        .collect()
    }

    /// Every piece, ordered by object and start.
    pub fn pieces(&self) -> rusqlite::Result<Vec<PieceRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT object_id, start, len, crc32c, stored_at, last_access, hits, pinned, table_name, column_id \
             FROM pieces ORDER BY object_id, start",
        )?;
        stmt.query_map([], |r| {
            Ok(PieceRow {
                object_id: r.get(0)?,
                start: to_u64(r.get(1)?),
                len: to_u64(r.get(2)?),
                crc32c: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                stored_at: r.get(4)?,
                last_access: r.get(5)?,
                hits: to_u64(r.get(6)?),
                pinned: r.get(7)?,
                table_name: r.get(8)?,
                column_id: r.get(9)?,
            })
        })?
        .collect()
    }

    /// Adds an object and returns its id and data file name, which `name` derives from the id
    /// (one transaction, so no row ever lacks its file name).
    pub fn insert_object(
        &mut self,
        cache_key: &str,
        size: u64,
        etag: Option<&str>,
        now: i64,
        name: impl Fn(i64) -> String,
    ) -> rusqlite::Result<(i64, String)> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO objects (cache_key, size, etag, file_name, created_at) VALUES (?1, ?2, ?3, '', ?4)",
            params![cache_key, to_i64(size), etag, now],
        )?;
        let id = tx.last_insert_rowid();
        let file_name = name(id);
        tx.execute("UPDATE objects SET file_name = ?2 WHERE id = ?1", params![id, file_name])?;
        tx.commit()?;
        Ok((id, file_name))
    }

    /// Looks an object up by key.
    #[cfg(test)]
    pub fn object_id(&self, cache_key: &str) -> rusqlite::Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.conn.query_row("SELECT id FROM objects WHERE cache_key = ?1", [cache_key], |r| r.get(0)).optional()
    }

    /// Records the object's ETag.
    pub fn set_etag(&self, id: i64, etag: Option<&str>) -> rusqlite::Result<()> {
        self.conn.execute("UPDATE objects SET etag = ?2 WHERE id = ?1", params![id, etag])?;
        Ok(())
    }

    /// Removes an object and (by cascade) its pieces.
    pub fn delete_object(&self, id: i64) -> rusqlite::Result<()> {
        self.conn.execute("DELETE FROM objects WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Adds pieces in one transaction. Call only after their bytes are durably written.
    pub fn insert_pieces(&mut self, rows: &[PieceRow]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO pieces \
                 (object_id, start, len, crc32c, stored_at, last_access, hits, pinned, table_name, column_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for p in rows {
                stmt.execute(params![
                    p.object_id,
                    to_i64(p.start),
                    to_i64(p.len),
                    i64::from(p.crc32c),
                    p.stored_at,
                    p.last_access,
                    to_i64(p.hits),
                    p.pinned,
                    p.table_name,
                    p.column_id
                ])?;
            }
        }
        tx.commit()
    }

    /// Removes pieces (object id, start) in one transaction. Call before punching their bytes.
    pub fn delete_pieces(&mut self, keys: &[(i64, u64)]) -> rusqlite::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM pieces WHERE object_id = ?1 AND start = ?2")?;
            for (id, start) in keys {
                stmt.execute(params![id, to_i64(*start)])?;
            }
        }
        tx.commit()
    }

    /// Writes access statistics (last access, hits) and pin flags back, in one transaction.
    pub fn update_access(&mut self, rows: &[(i64, u64, i64, u64, bool)]) -> rusqlite::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE pieces SET last_access = ?3, hits = ?4, pinned = ?5 WHERE object_id = ?1 AND start = ?2",
            )?;
            for (id, start, at, hits, pinned) in rows {
                stmt.execute(params![id, to_i64(*start), at, to_i64(*hits), pinned])?;
            }
        }
        tx.commit()
    }

    /// Every saved heat score.
    pub fn load_heat(&self) -> rusqlite::Result<Vec<HeatRow>> {
        let mut stmt = self.conn.prepare("SELECT table_name, column_id, score, updated_unix FROM heat")?;
        stmt.query_map([], |r| {
            Ok(HeatRow {
                table_name: r.get(0)?,
                column_id: r.get(1)?,
                score: Score { value: r.get(2)?, updated_unix: r.get(3)? },
            })
        })?
        .collect()
    }

    /// Deletes the heat rows of these tables and columns, in one transaction.
    pub fn forget_heat(&mut self, rows: &[HeatRow]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM heat WHERE table_name = ?1 AND column_id = ?2")?;
            for r in rows {
                stmt.execute(params![r.table_name, r.column_id])?;
            }
        }
        tx.commit()
    }

    /// Saves a batch of heat scores (replacing the rows of the same table and column), in one
    /// transaction.
    pub fn save_heat(&mut self, rows: &[HeatRow]) -> rusqlite::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO heat (table_name, column_id, score, updated_unix) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in rows {
                stmt.execute(params![r.table_name, r.column_id, r.score.value, r.score.updated_unix])?;
            }
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The on-disk schema is part of the format: changing it needs a FORMAT_VERSION bump, and
    /// this test is updated together with that bump.
    #[test]
    fn schema_is_pinned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (index, _) = Index::open(&dir.path().join("index.sqlite")).expect("open");
        let mut stmt =
            index.conn.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' ORDER BY name").expect("prepare");
        let sql: Vec<String> = stmt.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
        let expected = [
            "CREATE TABLE heat (\n    table_name TEXT NOT NULL,\n    column_id INTEGER NOT NULL,\n    \
             score REAL NOT NULL,\n    updated_unix INTEGER NOT NULL,\n    \
             PRIMARY KEY (table_name, column_id)\n) WITHOUT ROWID",
            "CREATE TABLE objects (\n    id INTEGER PRIMARY KEY,\n    cache_key TEXT NOT NULL UNIQUE,\n    \
             size INTEGER NOT NULL,\n    etag TEXT,\n    file_name TEXT NOT NULL,\n    created_at INTEGER NOT NULL\n)",
            "CREATE TABLE pieces (\n    object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,\n    \
             start INTEGER NOT NULL,\n    len INTEGER NOT NULL,\n    crc32c INTEGER NOT NULL,\n    \
             stored_at INTEGER NOT NULL,\n    last_access INTEGER NOT NULL,\n    hits INTEGER NOT NULL,\n    \
             pinned INTEGER NOT NULL,\n    table_name TEXT,\n    column_id INTEGER,\n    \
             PRIMARY KEY (object_id, start)\n) WITHOUT ROWID",
        ];
        assert_eq!(sql, expected, "index schema changed: bump FORMAT_VERSION and update this test");
        assert_eq!(FORMAT_VERSION, 2, "format version changed: update the golden record below too");
    }

    /// A record written and read back keeps every field; pins the row encoding.
    #[test]
    fn record_round_trip_is_pinned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut index, _) = Index::open(&dir.path().join("index.sqlite")).expect("open");
        let (id, _) = index
            .insert_object("s3://b/lake/x.parquet", 1 << 40, Some("\"e1\""), 7, |id| format!("ab/{id}.data"))
            .expect("obj");
        let row = PieceRow {
            object_id: id,
            start: 4,
            len: 262_144,
            crc32c: 0xdead_beef,
            stored_at: 1_700_000_000,
            last_access: 1_700_000_100,
            hits: 3,
            pinned: true,
            table_name: Some("sales.orders".into()),
            column_id: Some(12),
        };
        index.insert_pieces(std::slice::from_ref(&row)).expect("insert");
        assert_eq!(index.pieces().expect("pieces"), vec![row]);
        let raw: String = index
            .conn
            .query_row(
                "SELECT quote(object_id) || '|' || quote(start) || '|' || quote(len) || '|' || quote(crc32c) || '|' || \
                 quote(stored_at) || '|' || quote(last_access) || '|' || quote(hits) || '|' || quote(pinned) || '|' || \
                 quote(table_name) || '|' || quote(column_id) FROM pieces",
                [],
                |r| r.get(0),
            )
            .expect("raw");
        assert_eq!(raw, "1|4|262144|3735928559|1700000000|1700000100|3|1|'sales.orders'|12");
        let obj = &index.objects().expect("objects")[0];
        assert_eq!(obj.size, 1 << 40);
        assert_eq!(obj.etag.as_deref(), Some("\"e1\""));
    }

    #[test]
    fn another_version_is_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("CREATE TABLE old (x); PRAGMA user_version = 99;").expect("old");
        }
        let (index, opened) = Index::open(&path).expect("open");
        assert_eq!(opened, Opened::Reset { found: 99 });
        assert!(index.objects().expect("objects").is_empty());
        drop(index);
        let (_, again) = Index::open(&path).expect("reopen");
        assert_eq!(again, Opened::Current);
    }

    /// A version 1 index (before heat) is upgraded in place: its pieces stay, and its schema
    /// becomes exactly a new index's.
    #[test]
    fn version_1_is_upgraded_and_keeps_its_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(BASE_SCHEMA).expect("v1 schema");
            conn.execute_batch(
                "INSERT INTO objects VALUES (1, 'k', 10, NULL, 'f', 0);
                 INSERT INTO pieces VALUES (1, 0, 10, 7, 0, 0, 2, 0, 'a.b', 3);
                 PRAGMA user_version = 1;",
            )
            .expect("v1 rows");
        }
        let (mut index, opened) = Index::open(&path).expect("open");
        assert_eq!(opened, Opened::Upgraded { found: 1 });
        assert_eq!(index.pieces().expect("pieces").len(), 1, "cached bytes survive the upgrade");
        let row = HeatRow { table_name: "a.b".into(), column_id: 3, score: Score { value: 1.5, updated_unix: 9 } };
        index.save_heat(std::slice::from_ref(&row)).expect("heat table exists");
        assert_eq!(index.load_heat().expect("load"), vec![row]);
        let schema = |p: &Path| -> Vec<String> {
            let conn = Connection::open(p).expect("open");
            let mut stmt =
                conn.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' ORDER BY name").expect("prepare");
            stmt.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect()
        };
        drop(index);
        let fresh = dir.path().join("fresh.sqlite");
        Index::open(&fresh).expect("fresh");
        assert_eq!(schema(&path), schema(&fresh));
        let (_, again) = Index::open(&path).expect("reopen");
        assert_eq!(again, Opened::Current);
    }

    #[test]
    fn deleting_an_object_cascades() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut index, _) = Index::open(&dir.path().join("index.sqlite")).expect("open");
        let (id, _) = index.insert_object("k", 10, None, 0, |_| "f".into()).expect("obj");
        let row = PieceRow {
            object_id: id,
            start: 0,
            len: 10,
            crc32c: 1,
            stored_at: 0,
            last_access: 0,
            hits: 0,
            pinned: false,
            table_name: None,
            column_id: None,
        };
        index.insert_pieces(&[row]).expect("insert");
        index.delete_object(id).expect("delete");
        assert!(index.pieces().expect("pieces").is_empty());
        assert_eq!(index.object_id("k").expect("lookup"), None);
    }
}
