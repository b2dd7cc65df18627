//! Where a catalog lives, as written in the config.

use std::fmt;
use std::path::{Path, PathBuf};

/// A catalog's location: a DuckDB file, a SQLite file, or a PostgreSQL connection string.
///
/// Config strings follow the DuckLake extension's own conventions: `sqlite:PATH`,
/// `duckdb:PATH`, `postgres:...` / `postgresql://...`; a bare libpq keyword/value string
/// (`host=db dbname=lake`) is PostgreSQL too; a bare path is sniffed (SQLite files start with
/// `SQLite format 3`, anything else is opened as DuckDB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// A DuckDB database file.
    DuckDb(PathBuf),
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A libpq connection string or URL.
    Postgres(String),
}

impl CatalogLocation {
    /// Parses a config string; see the type's documentation for the accepted forms.
    pub fn parse(s: &str) -> CatalogLocation {
        let s = s.strip_prefix("ducklake:").unwrap_or(s);
        if let Some(rest) = s.strip_prefix("sqlite:") {
            return CatalogLocation::Sqlite(PathBuf::from(rest));
        }
        if let Some(rest) = s.strip_prefix("duckdb:") {
            return CatalogLocation::DuckDb(PathBuf::from(rest));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return CatalogLocation::Postgres(s.to_string());
        }
        if let Some(rest) = s.strip_prefix("postgres:") {
            return CatalogLocation::Postgres(rest.to_string());
        }
        if looks_like_libpq(s) {
            return CatalogLocation::Postgres(s.to_string());
        }
        let path = PathBuf::from(s);
        if is_sqlite_file(&path) { CatalogLocation::Sqlite(path) } else { CatalogLocation::DuckDb(path) }
    }

    /// The directory a relative `data_path` is resolved against (the catalog file's folder).
    pub fn base_dir(&self) -> Option<&Path> {
        match self {
            CatalogLocation::DuckDb(p) | CatalogLocation::Sqlite(p) => p.parent(),
            CatalogLocation::Postgres(_) => None,
        }
    }
}

/// Whether `s` starts like a libpq keyword/value connection string. No catalog file is named
/// `host=...`, and opening one as a DuckDB path would print its password in the "does not exist"
/// error (a path is shown as it is; only PostgreSQL locations are redacted).
fn looks_like_libpq(s: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "options",
        "application_name",
        "sslmode",
        "connect_timeout",
        "target_session_attrs",
    ];
    s.split_whitespace().next().and_then(|token| token.split_once('=')).is_some_and(|(key, _)| KEYWORDS.contains(&key))
}

fn is_sqlite_file(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok() && &header == b"SQLite format 3\0"
}

impl fmt::Display for CatalogLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogLocation::DuckDb(p) => write!(f, "duckdb:{}", p.display()),
            CatalogLocation::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // Never print a password that may sit in the connection string.
            CatalogLocation::Postgres(conn) => write!(f, "postgres:{}", redact_password(conn)),
        }
    }
}

fn redact_password(conn: &str) -> String {
    if let Some((scheme, rest)) = conn.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    conn.split_whitespace()
        .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_locations() {
        assert_eq!(CatalogLocation::parse("sqlite:/a/b.sqlite"), CatalogLocation::Sqlite("/a/b.sqlite".into()));
        assert_eq!(CatalogLocation::parse("ducklake:duckdb:x.db"), CatalogLocation::DuckDb("x.db".into()));
        assert_eq!(
            CatalogLocation::parse("postgresql://u:p@h/db"),
            CatalogLocation::Postgres("postgresql://u:p@h/db".into())
        );
        assert_eq!(
            CatalogLocation::parse("host=db password=secret dbname=lake"),
            CatalogLocation::Postgres("host=db password=secret dbname=lake".into())
        );
        assert_eq!(CatalogLocation::parse("lake=1.duckdb"), CatalogLocation::DuckDb("lake=1.duckdb".into()));
        assert_eq!(
            CatalogLocation::parse("/missing/file.ducklake"),
            CatalogLocation::DuckDb("/missing/file.ducklake".into())
        );
    }

    #[test]
    fn display_hides_passwords() {
        let url = CatalogLocation::Postgres("postgresql://u:secret@h/db".into()).to_string();
        assert!(!url.contains("secret"), "{url}");
        let kv = CatalogLocation::Postgres("host=h password=secret dbname=x".into()).to_string();
        assert!(!kv.contains("secret"), "{kv}");
    }
}
