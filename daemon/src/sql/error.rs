//! What can fail in the SQL socket, and the one place failures become SQLSTATEs.

use std::path::PathBuf;

use pgwire::error::{ErrorInfo, PgWireError};

/// The server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot prepare the socket folder {path}: {source}")]
    SocketDir { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    ListenTcp { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot open the SQL engine: {0}")]
    Engine(#[source] duckdb::Error),
    #[error("cannot publish snapshot {snapshot} to the SQL engine: {source}")]
    Publish { snapshot: i64, source: duckdb::Error },
    #[error("the SQL engine's thread stopped")]
    EngineGone,
}

/// Why a running statement was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// A CancelRequest from the client (psql's Ctrl-C).
    User,
    /// `statement_timeout` elapsed.
    Timeout,
}

/// One statement failed; the session goes on.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Refused by policy before DuckDB saw it (`ATTACH`, `COPY`, `CREATE` ...).
    #[error("{keyword} is not allowed: warmlake's SQL socket is read-only and reads only the lake")]
    Refused { keyword: String },
    #[error("{0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("{}", match .0 {
        CancelReason::User => "canceling statement due to user request",
        CancelReason::Timeout => "canceling statement due to statement timeout",
    })]
    Canceled(CancelReason),
    #[error("invalid value for parameter ${index}: {message}")]
    Parameter { index: usize, message: String },
    #[error("invalid value for setting \"{name}\": {message}")]
    Setting { name: String, message: String },
    #[error("unrecognized configuration parameter \"{0}\"")]
    UnknownSetting(String),
    #[error("snapshot {0} is not kept by warmlake (SHOW warmlake.snapshots lists the kept ones)")]
    UnknownSnapshot(i64),
    #[error("cannot encode the result: {0}")]
    Encode(String),
    #[error("{0}")]
    Copy(#[from] super::copy::CopyError),
    #[error("cannot insert multiple commands into a prepared statement")]
    MultipleStatements,
    #[error("the session's engine thread stopped")]
    SessionGone,
    #[error("a session holds at most {0} open cursors (portals read in parts); close one first")]
    TooManyCursors(usize),
    #[error("cannot open a cursor: {0}")]
    CursorOpen(String),
    #[error("{0}")]
    Cursor(#[from] super::cursor::CursorError),
    #[error("{0} can only be used in transaction blocks")]
    OutsideTransaction(&'static str),
    #[error("savepoint \"{0}\" does not exist")]
    UnknownSavepoint(String),
}

impl QueryError {
    /// The SQLSTATE a client sees: the only mapping from failures to codes.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            QueryError::Refused { .. } => "42501",
            QueryError::DuckDb(e) => duckdb_sqlstate(&e.to_string()),
            QueryError::Canceled(_) => "57014",
            QueryError::Parameter { .. } => "22P02",
            QueryError::Setting { .. } => "22023",
            QueryError::UnknownSetting(_) => "42704",
            QueryError::UnknownSnapshot(_) => "22023",
            QueryError::Encode(_) => "XX000",
            QueryError::Copy(super::copy::CopyError::Syntax(_)) => "42601",
            QueryError::Copy(super::copy::CopyError::Unsupported(_)) => "0A000",
            QueryError::MultipleStatements => "42601",
            QueryError::SessionGone => "57P01",
            QueryError::TooManyCursors(_) => "54000",
            QueryError::CursorOpen(_) => "53000",
            QueryError::Cursor(e) => e.sqlstate(),
            QueryError::OutsideTransaction(_) => "25P01",
            QueryError::UnknownSavepoint(_) => "3B001",
        }
    }
}

/// DuckDB reports its error class as the message's prefix ("Permission Error: ...").
fn duckdb_sqlstate(message: &str) -> &'static str {
    let class = message.split(':').next().unwrap_or("");
    match class {
        "Permission Error" => "42501",
        "Parser Error" => "42601",
        "Catalog Error" => "42P01",
        "Binder Error" => "42703",
        "Conversion Error" | "Invalid Input Error" => "22P02",
        "Out of Range Error" => "22003",
        "Out of Memory Error" => "53200",
        "IO Error" => "58030",
        "INTERRUPT Error" | "Interrupt Error" => "57014",
        "Not implemented Error" => "0A000",
        _ => "XX000",
    }
}

impl From<QueryError> for PgWireError {
    fn from(e: QueryError) -> Self {
        PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), e.sqlstate().to_owned(), e.to_string())))
    }
}

impl From<super::cursor::CursorError> for PgWireError {
    fn from(e: super::cursor::CursorError) -> Self {
        QueryError::from(e).into()
    }
}

/// A FATAL error that ends a connection during startup (authentication failures).
pub fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_error_classes_map_to_sqlstates() {
        assert_eq!(duckdb_sqlstate("Permission Error: Cannot access file \"/etc/passwd\""), "42501");
        assert_eq!(duckdb_sqlstate("Catalog Error: Table with name x does not exist!"), "42P01");
        assert_eq!(duckdb_sqlstate("Parser Error: syntax error at or near \"selec\""), "42601");
        assert_eq!(duckdb_sqlstate("something else"), "XX000");
        assert_eq!(QueryError::Refused { keyword: "ATTACH".into() }.sqlstate(), "42501");
    }
}
