//! The one DuckDB database behind the socket: opened in memory, locked down so sessions can
//! read only the lake's folders, and holding the lake's views. Publishing a snapshot replaces
//! every view in one DuckDB transaction, so each statement of every session sees one whole
//! snapshot: the one before the swap or the one after it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use duckdb::Connection;

use super::SqlLake;
use super::error::SqlError;
use crate::view_sql;

/// The shared database. Lock order: `admin` is the only lock, held only on blocking threads
/// (publishing, cloning a connection), never across an `.await`.
pub struct Engine {
    admin: Mutex<Connection>,
    /// Views published so far; moves only after a publish has committed, so an answer
    /// computed at a generation never reflects older views than that generation's.
    generation: AtomicU64,
}

impl Engine {
    /// Opens the database and locks it down: no access to files outside `readable_dirs`
    /// (and `spill_dir`, where DuckDB writes what does not fit in memory), no extension
    /// loading, and a locked configuration, so no session can undo any of it. Parquet reads
    /// are not coalesced across column chunks (`disable_parquet_prefetching`): the files are
    /// local (the mount, or a local folder), and in the mount a chunk of a column the policy
    /// denies is unreadable, so a read of allowed columns must not reach into it. DuckDB keeps
    /// no copy of the files' bytes or footers (`cache_local_files`, `parquet_metadata_cache`:
    /// its defaults, pinned): a policy that tightens then leaves nothing to purge in here, and
    /// every read goes through the mount, which serves what the policy in force allows.
    pub fn open(readable_dirs: &[PathBuf], spill_dir: &Path, memory_limit: Option<&str>) -> Result<Self, SqlError> {
        let conn = Connection::open_in_memory().map_err(SqlError::Engine)?;
        let dirs: Vec<String> = readable_dirs.iter().map(|d| view_sql::literal(&dir_with_slash(d))).collect();
        let mut setup = format!(
            "SET temp_directory = {spill};
             SET allowed_directories = [{dirs}];
             SET autoinstall_known_extensions = false;
             SET autoload_known_extensions = false;
             SET enable_external_access = false;
             SET disable_parquet_prefetching = true;
             SET cache_local_files = false;
             SET parquet_metadata_cache = false;",
            spill = view_sql::literal(&dir_with_slash(spill_dir)),
            dirs = dirs.join(", "),
        );
        if let Some(limit) = memory_limit {
            setup.push_str(&format!("SET memory_limit = {};", view_sql::literal(limit)));
        }
        setup.push_str(&super::pg_compat::macros());
        setup.push_str("SET lock_configuration = true;");
        conn.execute_batch(&setup).map_err(SqlError::Engine)?;
        Ok(Self { admin: Mutex::new(conn), generation: AtomicU64::new(0) })
    }

    /// A connection for one client session (blocking: call from a blocking thread).
    pub fn connect(&self) -> Result<Connection, SqlError> {
        self.lock().try_clone().map_err(SqlError::Engine)
    }

    /// Replaces the lake's views with `lake`'s, atomically (blocking). Views of tables that
    /// left the lake are dropped in the same transaction. A view DuckDB refuses to create (a
    /// file missing or unreadable) is replaced by one that says why
    /// ([`view_sql::unreadable_view`]) and the publish starts over, so one table never keeps
    /// the others from being served; returns the tables served that way, with their reasons.
    pub fn publish(&self, lake: &SqlLake) -> Result<Vec<(String, String)>, SqlError> {
        let conn = self.lock();
        let fail = |source| SqlError::Publish { snapshot: lake.snapshot, source };
        let mut script = lake.script.clone();
        let statements = &mut script.statements;
        loop {
            conn.execute_batch("BEGIN TRANSACTION").map_err(fail)?;
            match replace_views(&conn, statements) {
                Ok(()) => {
                    conn.execute_batch("COMMIT").map_err(fail)?;
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    return Ok(script.unreadable());
                }
                Err(e) => {
                    // the old views stay; the transaction's changes are discarded
                    let _ = conn.execute_batch("ROLLBACK");
                    match e {
                        Failed::View(i, reason) => {
                            let Some(mut view) = statements[i].view.clone() else { return Err(fail(reason)) };
                            if let Some(why) = &statements[i].unreadable {
                                // Its column types are what DuckDB refused: the view keeps only
                                // the reason (and gives up if even that fails).
                                if view.columns.is_empty() {
                                    return Err(fail(reason));
                                }
                                view.columns.clear();
                                statements[i] = view_sql::unreadable_view(&view, why);
                                continue;
                            }
                            tracing::warn!(snapshot = lake.snapshot, table = %view.qualified(), error = %reason,
                                "the SQL socket serves the table as unreadable");
                            statements[i] = view_sql::unreadable_view(&view, &reason.to_string());
                        }
                        Failed::Other(e) => return Err(fail(e)),
                    }
                }
            }
        }
    }

    /// How many times the views were replaced: what a session's remembered describes
    /// ([`super::described`]) are valid for.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // a panic while holding the lock leaves a usable connection: DuckDB rolls back
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why [`replace_views`] failed: statement `i` of the script (which a publish can replace and
/// retry, when it creates a view), or anything else.
enum Failed {
    View(usize, duckdb::Error),
    Other(duckdb::Error),
}

impl From<duckdb::Error> for Failed {
    fn from(e: duckdb::Error) -> Self {
        Failed::Other(e)
    }
}

fn replace_views(conn: &Connection, statements: &[view_sql::Statement]) -> Result<(), Failed> {
    let mut stmt = conn.prepare(
        "SELECT schema_name, view_name FROM duckdb_views() \
         WHERE NOT internal AND database_name = current_database()",
    )?;
    let old: Vec<(String, String)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut drop = String::new();
    for (schema, view) in &old {
        drop.push_str(&format!("DROP VIEW {}.{};", view_sql::ident(schema), view_sql::ident(view)));
    }
    conn.execute_batch(&drop)?;
    for (i, statement) in statements.iter().enumerate() {
        conn.execute_batch(&statement.sql).map_err(|e| Failed::View(i, e))?;
    }
    // Schemas left without views (a snapshot that left time travel, a dropped lake schema).
    let mut stmt = conn.prepare(
        "SELECT schema_name FROM duckdb_schemas() s WHERE NOT internal AND database_name = current_database() \
         AND schema_name <> 'main' AND NOT EXISTS (SELECT 1 FROM duckdb_views() v WHERE NOT v.internal \
         AND v.database_name = s.database_name AND v.schema_name = s.schema_name)",
    )?;
    let empty: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut drop = String::new();
    for schema in &empty {
        drop.push_str(&format!("DROP SCHEMA {};", view_sql::ident(schema)));
    }
    Ok(conn.execute_batch(&drop)?)
}

fn dir_with_slash(p: &Path) -> String {
    let s = p.to_string_lossy().into_owned();
    if s.ends_with('/') { s } else { format!("{s}/") }
}
