//! SQL cursors: `DECLARE name CURSOR FOR query`, `FETCH`, `MOVE` and `CLOSE`, what psycopg's
//! named cursors, psycopg2 and SQLAlchemy's `stream_results` send to read a large result in
//! parts. A declared query runs as a cursor of the session ([`super::session::Place::Cursor`]):
//! on a connection and thread of its own, its rows encoded in the format asked for when it was
//! declared, and read as FETCHes ask for them. Cursors read forward only (`NO SCROLL`, which is
//! PostgreSQL's default for most plans); one declared without `WITH HOLD` closes when its
//! transaction ends, and may only be declared inside one, as in PostgreSQL.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use super::session::{Canceler, ResultFormats};
use super::statement::{skip_quoted, strip_leading_noise};

/// A cursor statement that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("syntax error in {0}")]
    Syntax(&'static str),
    #[error("cursor can only scan forward")]
    ForwardOnly,
    #[error("cursor \"{0}\" does not exist")]
    Unknown(String),
    #[error("cursor \"{0}\" already exists")]
    Exists(String),
    #[error("DECLARE CURSOR can only be used in transaction blocks")]
    OutsideTransaction,
    /// Rows are encoded as the cursor runs, in the formats of its DECLARE.
    #[error(
        "cursor \"{0}\" was declared for {1} results: FETCH it in that format (DECLARE ... BINARY CURSOR for binary)"
    )]
    Format(String, &'static str),
}

impl CursorError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CursorError::Syntax(_) => "42601",
            CursorError::ForwardOnly => "55000",
            CursorError::Unknown(_) => "34000",
            CursorError::Exists(_) => "42P03",
            CursorError::OutsideTransaction => "25P01",
            CursorError::Format(..) => "0A000",
        }
    }
}

/// A parsed cursor statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorStatement {
    /// `DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE] [NO SCROLL] CURSOR [{WITH | WITHOUT}
    /// HOLD] FOR query`.
    Declare { name: String, query: String, binary: bool, hold: bool },
    /// `FETCH [NEXT | FORWARD [count | ALL] | count | ALL] [FROM | IN] name`; `MOVE` (same
    /// form) skips the rows instead of sending them.
    Fetch { name: String, count: Count, send: bool },
    /// `CLOSE name`, or `CLOSE ALL` (None).
    Close(Option<String>),
}

/// How many rows a FETCH or MOVE reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    All,
    Rows(u64),
}

/// Parses a statement that starts with DECLARE, FETCH, MOVE or CLOSE.
pub fn parse(stmt: &str) -> Result<CursorStatement, CursorError> {
    let mut words = Words { s: strip_leading_noise(stmt).trim_end().trim_end_matches(';'), at: 0 };
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    match first.as_str() {
        "DECLARE" => parse_declare(&mut words),
        "FETCH" | "MOVE" => parse_fetch(&mut words, first == "FETCH"),
        _ => parse_close(&mut words),
    }
}

fn parse_declare(words: &mut Words<'_>) -> Result<CursorStatement, CursorError> {
    const WHAT: &str = "DECLARE";
    let name = words.next().map(identifier).ok_or(CursorError::Syntax(WHAT))?;
    let (mut binary, mut hold) = (false, false);
    loop {
        match words.next().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("BINARY") => binary = true,
            Some("ASENSITIVE" | "INSENSITIVE") => {}
            Some("NO") if words.next().is_some_and(|w| w.eq_ignore_ascii_case("SCROLL")) => {}
            Some("SCROLL") => return Err(CursorError::ForwardOnly),
            Some("CURSOR") => break,
            _ => return Err(CursorError::Syntax(WHAT)),
        }
    }
    loop {
        match words.next().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some(w @ ("WITH" | "WITHOUT")) => {
                if !words.next().is_some_and(|h| h.eq_ignore_ascii_case("HOLD")) {
                    return Err(CursorError::Syntax(WHAT));
                }
                hold = w == "WITH";
            }
            Some("FOR") => break,
            _ => return Err(CursorError::Syntax(WHAT)),
        }
    }
    let query = words.rest().trim().to_owned();
    if query.is_empty() {
        return Err(CursorError::Syntax(WHAT));
    }
    Ok(CursorStatement::Declare { name, query, binary, hold })
}

fn parse_fetch(words: &mut Words<'_>, send: bool) -> Result<CursorStatement, CursorError> {
    let what = if send { "FETCH" } else { "MOVE" };
    let all: Vec<&str> = std::iter::from_fn(|| words.next()).collect();
    let (name, direction) = match all.as_slice() {
        [direction @ .., from, name] if from.eq_ignore_ascii_case("FROM") || from.eq_ignore_ascii_case("IN") => {
            (*name, direction)
        }
        [direction @ .., name] => (*name, direction),
        [] => return Err(CursorError::Syntax(what)),
    };
    let upper: Vec<String> = direction.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let count = match upper.as_slice() {
        [] | ["NEXT"] | ["FORWARD"] => Count::Rows(1),
        ["ALL"] | ["FORWARD", "ALL"] => Count::All,
        ["PRIOR" | "FIRST" | "LAST" | "BACKWARD" | "ABSOLUTE", ..] => return Err(CursorError::ForwardOnly),
        [n] | ["FORWARD", n] | ["RELATIVE", n] => rows(n)?,
        _ => return Err(CursorError::Syntax(what)),
    };
    Ok(CursorStatement::Fetch { name: identifier(name), count, send })
}

/// A forward count; a negative one would scan backward.
fn rows(n: &str) -> Result<Count, CursorError> {
    match n.parse::<i64>() {
        Ok(n) => u64::try_from(n).map(Count::Rows).map_err(|_| CursorError::ForwardOnly),
        Err(_) => Err(CursorError::Syntax("FETCH")),
    }
}

fn parse_close(words: &mut Words<'_>) -> Result<CursorStatement, CursorError> {
    let name = words.next().ok_or(CursorError::Syntax("CLOSE"))?;
    if words.next().is_some() {
        return Err(CursorError::Syntax("CLOSE"));
    }
    Ok(CursorStatement::Close((!name.eq_ignore_ascii_case("ALL")).then(|| identifier(name))))
}

/// An identifier as PostgreSQL resolves it: quoted kept as written, unquoted folded to lower case.
fn identifier(word: &str) -> String {
    match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => word.to_ascii_lowercase(),
    }
}

/// The words of a statement (a quoted identifier is one word), with what follows each.
struct Words<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        while self.at < bytes.len() && bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        if self.at >= bytes.len() {
            return None;
        }
        let start = self.at;
        while self.at < bytes.len() && !bytes[self.at].is_ascii_whitespace() {
            self.at = if bytes[self.at] == b'"' { skip_quoted(bytes, self.at) } else { self.at + 1 };
        }
        Some(&self.s[start..self.at])
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
}

/// A declared cursor's rows: a stream several FETCHes read in turn.
type Rows = Arc<tokio::sync::Mutex<Pin<Box<dyn Stream<Item = PgWireResult<DataRow>> + Send>>>>;

/// A declared cursor.
pub struct OpenCursor {
    pub fields: Arc<Vec<FieldInfo>>,
    rows: Rows,
    /// Declared `WITH HOLD`: survives the end of its transaction.
    hold: bool,
    /// Interrupts the cursor's query (a CancelRequest or timeout during a FETCH).
    pub canceler: Canceler,
}

impl OpenCursor {
    pub fn new(
        fields: Arc<Vec<FieldInfo>>,
        rows: impl Stream<Item = PgWireResult<DataRow>> + Send + 'static,
        hold: bool,
        canceler: Canceler,
    ) -> Self {
        // fused: FETCHes go on asking after the last row
        Self { fields, rows: Arc::new(tokio::sync::Mutex::new(Box::pin(rows.fuse()))), hold, canceler }
    }

    /// The next `count` rows, streamed as they are read (a FETCH ALL holds none of them), if
    /// `formats` (the FETCH's) are those the cursor encodes its rows in; `guard` is held until
    /// the last of them is read (the FETCH's timer).
    pub fn fetch(
        &self,
        name: &str,
        count: Count,
        formats: &ResultFormats,
        guard: impl Send + 'static,
    ) -> Result<QueryResponse, CursorError> {
        if let Some(declared) =
            self.fields.iter().enumerate().find_map(|(i, f)| (formats.get(i) != f.format()).then_some(f.format()))
        {
            let declared = if declared == FieldFormat::Binary { "binary" } else { "text" };
            return Err(CursorError::Format(name.to_owned(), declared));
        }
        let limit = match count {
            Count::All => u64::MAX,
            Count::Rows(n) => n,
        };
        let rows = stream::unfold((self.rows.clone(), limit, guard), |(rows, left, guard)| async move {
            if left == 0 {
                return None;
            }
            let row = rows.lock().await.next().await?;
            Some((row, (rows, left - 1, guard)))
        });
        let mut response = QueryResponse::new(self.fields.clone(), rows);
        response.set_command_tag("FETCH");
        Ok(response)
    }

    /// Skips the next `count` rows; returns how many there were.
    pub async fn skip(&self, count: Count) -> PgWireResult<u64> {
        let limit = match count {
            Count::All => u64::MAX,
            Count::Rows(n) => n,
        };
        let mut rows = self.rows.lock().await;
        let mut skipped = 0;
        while skipped < limit {
            match rows.next().await {
                Some(row) => {
                    row?;
                    skipped += 1;
                }
                None => break,
            }
        }
        Ok(skipped)
    }
}

/// A session's declared cursors, by name.
#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, Arc<OpenCursor>>,
}

impl Cursors {
    pub fn get(&self, name: &str) -> Result<Arc<OpenCursor>, CursorError> {
        self.open.get(name).cloned().ok_or_else(|| CursorError::Unknown(name.to_owned()))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.open.contains_key(name)
    }

    pub fn insert(&mut self, name: String, cursor: OpenCursor) -> Result<(), CursorError> {
        if self.open.contains_key(&name) {
            return Err(CursorError::Exists(name));
        }
        self.open.insert(name, Arc::new(cursor));
        Ok(())
    }

    /// Closes `name`, or every cursor (None); its query stops at its next batch.
    pub fn close(&mut self, name: Option<&str>) -> Result<(), CursorError> {
        match name {
            Some(n) => self.open.remove(n).map(drop).ok_or_else(|| CursorError::Unknown(n.to_owned())),
            None => {
                self.open.clear();
                Ok(())
            }
        }
    }

    /// The transaction ended: cursors not declared `WITH HOLD` close.
    pub fn end_transaction(&mut self) {
        self.open.retain(|_, c| c.hold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declare(name: &str, query: &str, binary: bool, hold: bool) -> CursorStatement {
        CursorStatement::Declare { name: name.into(), query: query.into(), binary, hold }
    }

    fn fetch(name: &str, count: Count, send: bool) -> CursorStatement {
        CursorStatement::Fetch { name: name.into(), count, send }
    }

    #[test]
    fn parses_declare_as_psycopg_and_psycopg2_send_it() {
        assert_eq!(parse("DECLARE \"My c\" CURSOR FOR SELECT 1"), Ok(declare("My c", "SELECT 1", false, false)));
        assert_eq!(
            parse("declare c no scroll cursor with hold for\n select * from t where a = $1;"),
            Ok(declare("c", "select * from t where a = $1", false, true))
        );
        assert_eq!(
            parse("DECLARE c BINARY CURSOR WITHOUT HOLD FOR SELECT 1"),
            Ok(declare("c", "SELECT 1", true, false))
        );
        assert_eq!(parse("DECLARE c SCROLL CURSOR FOR SELECT 1"), Err(CursorError::ForwardOnly));
        assert_eq!(parse("DECLARE c CURSOR FOR"), Err(CursorError::Syntax("DECLARE")));
        assert_eq!(parse("DECLARE c FOR SELECT 1"), Err(CursorError::Syntax("DECLARE")));
    }

    #[test]
    fn parses_fetch_move_and_close() {
        assert_eq!(parse("FETCH FORWARD 100 FROM \"c\""), Ok(fetch("c", Count::Rows(100), true)));
        assert_eq!(parse("fetch forward all from c"), Ok(fetch("c", Count::All, true)));
        assert_eq!(parse("FETCH c"), Ok(fetch("c", Count::Rows(1), true)));
        assert_eq!(parse("FETCH NEXT IN c"), Ok(fetch("c", Count::Rows(1), true)));
        assert_eq!(parse("FETCH 5 C"), Ok(fetch("c", Count::Rows(5), true)));
        assert_eq!(parse("MOVE 10 FROM c"), Ok(fetch("c", Count::Rows(10), false)));
        assert_eq!(parse("MOVE -1 FROM c"), Err(CursorError::ForwardOnly));
        assert_eq!(parse("FETCH PRIOR FROM c"), Err(CursorError::ForwardOnly));
        assert_eq!(parse("FETCH x y z FROM c"), Err(CursorError::Syntax("FETCH")));
        assert_eq!(parse("FETCH"), Err(CursorError::Syntax("FETCH")));
        assert_eq!(parse("CLOSE \"c\""), Ok(CursorStatement::Close(Some("c".into()))));
        assert_eq!(parse("close all"), Ok(CursorStatement::Close(None)));
        assert_eq!(parse("CLOSE a b"), Err(CursorError::Syntax("CLOSE")));
    }
}
