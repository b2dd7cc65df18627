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

use arrow::array::RecordBatch;
use futures::{Stream, StreamExt, stream};
use pgwire::api::results::FieldInfo;

use super::encode::{self, Column};
use super::error::QueryError;
use super::reply::Rows;
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
}

impl CursorError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CursorError::Syntax(_) => "42601",
            CursorError::ForwardOnly => "55000",
            CursorError::Unknown(_) => "34000",
            CursorError::Exists(_) => "42P03",
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

/// How far a FETCH or MOVE goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Every remaining row.
    All,
    /// The next `n` rows (`FORWARD n`; `NEXT` is 1).
    Rows(u64),
    /// The row `n` ahead (`RELATIVE n`): FETCH returns that one row, MOVE moves onto it.
    Relative(u64),
    /// Row `n` of the result, counted from 1 (`ABSOLUTE n`; `FIRST` is 1): forward only.
    Absolute(u64),
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
        ["FIRST"] => Count::Absolute(1),
        ["PRIOR" | "LAST" | "BACKWARD", ..] => return Err(CursorError::ForwardOnly),
        ["RELATIVE", n] => Count::Relative(forward(n, what)?),
        ["ABSOLUTE", n] => Count::Absolute(forward(n, what)?),
        [n] | ["FORWARD", n] => Count::Rows(forward(n, what)?),
        _ => return Err(CursorError::Syntax(what)),
    };
    Ok(CursorStatement::Fetch { name: identifier(name), count, send })
}

/// A count or row number; a negative one would scan backward (or count from the end).
fn forward(n: &str, what: &'static str) -> Result<u64, CursorError> {
    match n.parse::<i64>() {
        Ok(n) => u64::try_from(n).map_err(|_| CursorError::ForwardOnly),
        Err(_) => Err(CursorError::Syntax(what)),
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

/// Where a declared cursor's query is: DuckDB's batches still to come, and the batch a FETCH
/// stopped in with how many of its rows were read.
struct Position {
    batches: Pin<Box<dyn Stream<Item = Result<RecordBatch, QueryError>> + Send>>,
    current: Option<(RecordBatch, usize)>,
    /// Rows read (fetched or skipped) so far: the row the cursor is on, counted from 1.
    read: u64,
}

impl Position {
    /// The next rows, at most `n` (part of one batch); None at the end.
    async fn next_rows(&mut self, n: usize) -> Option<Result<RecordBatch, QueryError>> {
        loop {
            if let Some((batch, read)) = &mut self.current
                && *read < batch.num_rows()
            {
                let take = n.min(batch.num_rows() - *read);
                let rows = batch.slice(*read, take);
                *read += take;
                self.read += take as u64;
                return Some(Ok(rows));
            }
            match self.batches.next().await? {
                Ok(batch) => self.current = Some((batch, 0)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A declared cursor.
pub struct OpenCursor {
    /// Its columns; each FETCH gives them its own formats.
    columns: Vec<Column>,
    position: Arc<tokio::sync::Mutex<Position>>,
    /// The formats of its DECLARE (`BINARY`, or the DECLARE's own): how Describe shows it.
    pub declared: ResultFormats,
    /// Declared `WITH HOLD`: survives the end of its transaction.
    hold: bool,
    /// Interrupts the cursor's query (a CancelRequest or timeout during a FETCH).
    pub canceler: Canceler,
}

impl OpenCursor {
    pub fn new(
        columns: Vec<Column>,
        batches: impl Stream<Item = Result<RecordBatch, QueryError>> + Send + 'static,
        declared: ResultFormats,
        hold: bool,
        canceler: Canceler,
    ) -> Self {
        // fused: FETCHes go on asking after the last batch
        let position = Position { batches: Box::pin(batches.fuse()), current: None, read: 0 };
        Self { columns, position: Arc::new(tokio::sync::Mutex::new(position)), declared, hold, canceler }
    }

    /// The cursor's columns in `formats`.
    fn columns_in(&self, formats: &ResultFormats) -> Vec<Column> {
        let with_format = |(i, c): (usize, &Column)| Column { format: formats.get(i), ..c.clone() };
        self.columns.iter().enumerate().map(with_format).collect()
    }

    /// The cursor's columns in `formats`, as a RowDescription announces them.
    pub fn fields(&self, formats: &ResultFormats) -> Vec<FieldInfo> {
        self.columns_in(formats).iter().map(Column::field_info).collect()
    }

    /// The rows `count` asks for in `formats` (the FETCH's), encoded and streamed as they are
    /// read (a FETCH ALL holds at most a batch); `guard` is held until the last of them is read
    /// (the FETCH's timer).
    pub async fn fetch(
        &self,
        count: Count,
        formats: &ResultFormats,
        guard: impl Send + 'static,
    ) -> Result<Rows, QueryError> {
        let (skip, read) = match count {
            Count::All => (0, u64::MAX),
            Count::Rows(n) => (0, n),
            // the row the cursor is on cannot be read again
            Count::Relative(0) => return Err(CursorError::ForwardOnly.into()),
            Count::Relative(n) => (n - 1, 1),
            Count::Absolute(n) => match n.checked_sub(self.position.lock().await.read) {
                Some(ahead @ 1..) => (ahead - 1, 1),
                _ => return Err(CursorError::ForwardOnly.into()),
            },
        };
        self.skip(skip).await?;
        Ok(self.rows(read, formats, guard))
    }

    /// Moves as `count` says; returns how many rows it passed.
    pub async fn advance(&self, count: Count) -> Result<u64, QueryError> {
        let rows = match count {
            Count::All => u64::MAX,
            Count::Rows(n) | Count::Relative(n) => n,
            Count::Absolute(n) => n.checked_sub(self.position.lock().await.read).ok_or(CursorError::ForwardOnly)?,
        };
        self.skip(rows).await
    }

    /// The next `left` rows in `formats`, streamed (see [`OpenCursor::fetch`]).
    fn rows(&self, left: u64, formats: &ResultFormats, guard: impl Send + 'static) -> Rows {
        let columns = self.columns_in(formats);
        let fields = Arc::new(columns.iter().map(Column::field_info).collect::<Vec<_>>());
        let state = (self.position.clone(), left, columns, guard);
        let frames = stream::unfold(state, |(position, left, columns, guard)| async move {
            if left == 0 {
                return None;
            }
            let next = position.lock().await.next_rows(usize::try_from(left).unwrap_or(usize::MAX)).await?;
            match next.and_then(|rows| encode::encode_batch(&rows, &columns).map_err(QueryError::Encode)) {
                Ok(frames) => {
                    let left = left.saturating_sub(frames.rows as u64);
                    Some((Ok(frames), (position, left, columns, guard)))
                }
                // the FETCH ends with its error
                Err(e) => Some((Err(e.into()), (position, 0, columns, guard))),
            }
        });
        Rows { fields, frames: frames.boxed(), command: "FETCH", source: Some(self.canceler.clone()) }
    }

    /// Skips the next `rows` rows; returns how many there were.
    async fn skip(&self, rows: u64) -> Result<u64, QueryError> {
        let mut left = rows;
        let mut position = self.position.lock().await;
        let mut skipped = 0;
        while left > 0 {
            match position.next_rows(usize::try_from(left).unwrap_or(usize::MAX)).await {
                Some(rows) => {
                    let n = rows?.num_rows() as u64;
                    skipped += n;
                    left -= n;
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
        assert_eq!(parse("FETCH RELATIVE 3 FROM c"), Ok(fetch("c", Count::Relative(3), true)));
        assert_eq!(parse("MOVE ABSOLUTE 7 IN c"), Ok(fetch("c", Count::Absolute(7), false)));
        assert_eq!(parse("FETCH FIRST FROM c"), Ok(fetch("c", Count::Absolute(1), true)));
        assert_eq!(parse("FETCH ABSOLUTE -1 FROM c"), Err(CursorError::ForwardOnly));
        assert_eq!(parse("FETCH LAST FROM c"), Err(CursorError::ForwardOnly));
        assert_eq!(parse("FETCH PRIOR FROM c"), Err(CursorError::ForwardOnly));
        assert_eq!(parse("FETCH x y z FROM c"), Err(CursorError::Syntax("FETCH")));
        assert_eq!(parse("FETCH"), Err(CursorError::Syntax("FETCH")));
        assert_eq!(parse("CLOSE \"c\""), Ok(CursorStatement::Close(Some("c".into()))));
        assert_eq!(parse("close all"), Ok(CursorStatement::Close(None)));
        assert_eq!(parse("CLOSE a b"), Err(CursorError::Syntax("CLOSE")));
    }
}
