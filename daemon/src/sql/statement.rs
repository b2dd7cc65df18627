//! What a client's SQL text is, decided before DuckDB sees it: statements are split on `;`
//! outside quotes and comments, and each is classified by its leading keyword. Session
//! commands (`SET`, `SHOW`, `BEGIN` ...) are answered by the session itself, because DuckDB's
//! configuration is locked; only read statements reach DuckDB, everything else is refused.
//! DuckDB's own lock-down (no external access, allowed directories) is the second wall behind
//! this one, for what a read statement can reach through table functions.

use super::copy::{self, CopyError, CopyOut};
use super::cursor::{self, CursorError, CursorStatement};
use super::savepoint::{self, SavepointStatement};

/// One classified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// A read statement DuckDB runs (`SELECT`, `WITH`, `VALUES`, `FROM`, `SHOW TABLES`, ...).
    Query(String),
    /// `BEGIN` / `START TRANSACTION`: sessions are read-only, so a transaction only changes
    /// the status reported to the client.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO` (see [`savepoint`]).
    Savepoint(SavepointStatement),
    /// `SET [SESSION|LOCAL] name {=|TO} value`, or `RESET name` (value `None`).
    Set { name: String, value: Option<String> },
    /// `SHOW name` for a session setting (not DuckDB's `SHOW TABLES`).
    Show(String),
    /// Accepted and ignored (`DISCARD ALL`, `DEALLOCATE`, `LISTEN` ...), answered with this tag.
    Ignored(&'static str),
    /// `COPY ... TO STDOUT` of a read query: rows to the client, never to a server file.
    CopyOut(CopyOut),
    /// A COPY to the client that cannot be served (bad syntax, binary format ...).
    BadCopy(CopyError),
    /// `DECLARE ... CURSOR FOR`, `FETCH`, `MOVE`, `CLOSE` (see [`cursor`]).
    Cursor(CursorStatement),
    /// A cursor statement that cannot be run (bad syntax, scrolling backward).
    BadCursor(CursorError),
    /// Refused by policy: the keyword that started it.
    Refused(String),
}

/// Splits SQL text into statements on `;` outside quotes, dollar quotes and comments.
/// Empty statements are dropped.
pub fn split(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(sql, i),
            b';' => {
                push_nonempty(&mut out, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push_nonempty(&mut out, &sql[start..]);
    out
}

fn push_nonempty<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    if !strip_leading_noise(s).is_empty() {
        out.push(s.trim());
    }
}

/// Index after a quoted run starting at `i` (`'...'` or `"..."`, doubled quote escapes;
/// a backslash escapes in `E'...'` strings). The one SQL quote scanner of the socket.
pub(super) fn skip_quoted(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let backslash = quote == b'\'' && i > 0 && matches!(bytes[i - 1], b'e' | b'E');
    let mut j = i + 1;
    while j < bytes.len() {
        if backslash && bytes[j] == b'\\' {
            j += 2;
            continue;
        }
        if bytes[j] == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// Index after a (possibly nested) `/* ... */` comment starting at `i`.
fn skip_block_comment(bytes: &[u8], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < bytes.len() {
        if bytes[j] == b'/' && bytes.get(j + 1) == Some(&b'*') {
            depth += 1;
            j += 2;
        } else if bytes[j] == b'*' && bytes.get(j + 1) == Some(&b'/') {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    bytes.len()
}

/// Index after a `$tag$ ... $tag$` string starting at `i`, or `i + 1` when `$` starts no
/// dollar quote (a parameter such as `$1`).
fn skip_dollar_quoted(sql: &str, i: usize) -> usize {
    let rest = &sql[i + 1..];
    let tag_len = rest.find('$');
    let Some(tag_len) = tag_len else { return i + 1 };
    let tag = &rest[..tag_len];
    if !tag.chars().all(|c| c.is_alphanumeric() || c == '_') || tag.starts_with(|c: char| c.is_ascii_digit()) {
        return i + 1;
    }
    let delimiter = &sql[i..i + tag_len + 2];
    let body_start = i + tag_len + 2;
    match sql[body_start..].find(delimiter) {
        Some(end) => body_start + end + delimiter.len(),
        None => sql.len(),
    }
}

/// The statement without leading whitespace, comments and opening parentheses.
pub(super) fn strip_leading_noise(s: &str) -> &str {
    let mut s = s;
    loop {
        let t = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if t.starts_with("/*") {
            let end = skip_block_comment(t.as_bytes(), 0);
            s = &t[end..];
        } else {
            return t;
        }
    }
}

/// The words of a statement, upper-cased, for keyword matching (at most `n`).
fn words(s: &str, n: usize) -> Vec<String> {
    strip_leading_noise(s)
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Keywords that start a read statement DuckDB may run.
const READ_KEYWORDS: &[&str] =
    &["SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "SUMMARIZE"];

/// Classifies one statement (as returned by [`split`]).
pub fn classify(stmt: &str) -> Statement {
    let w = words(stmt, 3);
    let first = w.first().map(String::as_str).unwrap_or("");
    if matches!(first, "SAVEPOINT" | "RELEASE" | "ROLLBACK" | "ABORT")
        && let Some(s) = savepoint::parse(strip_leading_noise(stmt))
    {
        return Statement::Savepoint(s);
    }
    match first {
        "BEGIN" | "START" => Statement::Begin,
        "COMMIT" | "END" => Statement::Commit,
        "ROLLBACK" | "ABORT" => Statement::Rollback,
        "SET" => parse_set(stmt),
        "RESET" => {
            let name = w.get(1).map(|n| n.to_ascii_lowercase()).unwrap_or_default();
            Statement::Set { name, value: None }
        }
        "SHOW" => {
            let rest = strip_leading_noise(stmt)[4..].trim().trim_end_matches(';').trim();
            // PostgreSQL's multi-word names for settings (SQLAlchemy asks for the first on connect)
            let words: Vec<String> = rest.split_whitespace().map(str::to_ascii_lowercase).collect();
            match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["transaction", "isolation", "level"] => return Statement::Show("transaction_isolation".to_owned()),
                ["time", "zone"] => return Statement::Show("timezone".to_owned()),
                _ => {}
            }
            let is_setting = !rest.is_empty()
                && rest.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '"')
                && !matches!(w.get(1).map(String::as_str), Some("TABLES" | "ALL" | "DATABASES"));
            if is_setting && !rest.contains('.') || rest.to_ascii_lowercase().starts_with("warmlake.") {
                Statement::Show(rest.trim_matches('"').to_ascii_lowercase())
            } else {
                Statement::Query(stmt.trim().to_owned())
            }
        }
        "COPY" => match copy::parse(stmt) {
            Ok(Some(c)) => nested(&c.query.clone(), "COPY", || Statement::CopyOut(c)),
            Ok(None) => Statement::Refused("COPY".to_owned()),
            Err(e) => Statement::BadCopy(e),
        },
        "DECLARE" | "FETCH" | "MOVE" | "CLOSE" => match cursor::parse(stmt) {
            Ok(CursorStatement::Declare { name, query, binary, hold }) => nested(&query.clone(), "DECLARE", || {
                Statement::Cursor(CursorStatement::Declare { name, query, binary, hold })
            }),
            Ok(c) => Statement::Cursor(c),
            Err(e) => Statement::BadCursor(e),
        },
        "DISCARD" => Statement::Ignored("DISCARD ALL"),
        "DEALLOCATE" => Statement::Ignored("DEALLOCATE"),
        "LISTEN" => Statement::Ignored("LISTEN"),
        "UNLISTEN" => Statement::Ignored("UNLISTEN"),
        k if READ_KEYWORDS.contains(&k) => Statement::Query(stmt.trim().to_owned()),
        k => Statement::Refused(k.to_owned()),
    }
}

/// A statement wrapping `query` (COPY's, DECLARE's): `wrapped()` when `query` is a read query,
/// else what refuses it. The leading keyword is checked first, so a statement nested in itself
/// thousands of times is refused without recursing into it.
fn nested(query: &str, outer: &str, wrapped: impl FnOnce() -> Statement) -> Statement {
    let first = words(query, 1).pop().unwrap_or_default();
    if !READ_KEYWORDS.contains(&first.as_str()) {
        return Statement::Refused(if first.is_empty() { outer.to_owned() } else { first });
    }
    match classify(query) {
        Statement::Query(_) => wrapped(),
        Statement::Refused(k) => Statement::Refused(k),
        _ => Statement::Refused(outer.to_owned()),
    }
}

/// `SET [SESSION|LOCAL] name {=|TO} value` (the value unquoted) or `SET TIME ZONE value`.
fn parse_set(stmt: &str) -> Statement {
    let body = strip_leading_noise(stmt)[3..].trim().trim_end_matches(';').trim();
    let mut body = body;
    for scope in ["SESSION ", "LOCAL "] {
        if starts_with_ignore_case(body, scope) {
            body = body[scope.len()..].trim_start();
        }
    }
    if starts_with_ignore_case(body, "TIME ZONE") {
        return Statement::Set { name: "timezone".into(), value: Some(unquote(body[9..].trim())) };
    }
    let split_at = body.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(body.len());
    let name = body[..split_at].trim().trim_matches('"').to_ascii_lowercase();
    let mut rest = body[split_at..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r;
    } else if starts_with_ignore_case(rest, "TO") {
        rest = &rest[2..];
    }
    let value = rest.trim();
    let value = if value.eq_ignore_ascii_case("DEFAULT") { None } else { Some(unquote(value)) };
    Statement::Set { name, value }
}

/// Whether `s` starts with `prefix`, ASCII case ignored: false when `s` is shorter, or when
/// the prefix's length would end inside one of `s`'s characters (no slicing panic).
pub(super) fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].replace("''", "'")
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "select ';' as a; -- x;y\nselect \"a;b\" from t /* ; */; select $$;$$, $1;;";
        assert_eq!(split(sql), vec!["select ';' as a", "-- x;y\nselect \"a;b\" from t /* ; */", "select $$;$$, $1"]);
        assert!(split(" ; ;").is_empty());
        assert_eq!(split("select E'\\';' as x"), vec!["select E'\\';' as x"]);
    }

    #[test]
    fn classifies_by_leading_keyword() {
        assert_eq!(classify("  (select 1)"), Statement::Query("(select 1)".into()));
        assert_eq!(classify("/* c */ begin"), Statement::Begin);
        assert_eq!(classify("START TRANSACTION READ ONLY"), Statement::Begin);
        assert_eq!(classify("ROLLBACK"), Statement::Rollback);
        assert_eq!(
            classify("ROLLBACK TO SAVEPOINT a"),
            Statement::Savepoint(SavepointStatement::RollbackTo("a".into()))
        );
        assert_eq!(classify("commit"), Statement::Commit);
        assert_eq!(classify("ATTACH 'x.db'"), Statement::Refused("ATTACH".into()));
        assert_eq!(classify("copy (select 1) to '/tmp/x'"), Statement::Refused("COPY".into()));
        assert_eq!(classify("copy (attach 'x.db') to stdout"), Statement::Refused("ATTACH".into()));
        assert!(matches!(classify("copy (select 1) to stdout csv"), Statement::CopyOut(_)));
        assert_eq!(classify("create table t as select 1"), Statement::Refused("CREATE".into()));
        assert_eq!(classify("show tables"), Statement::Query("show tables".into()));
        assert_eq!(classify("SHOW server_version"), Statement::Show("server_version".into()));
        assert_eq!(classify("show warmlake.snapshot"), Statement::Show("warmlake.snapshot".into()));
        assert_eq!(classify("show transaction  isolation LEVEL;"), Statement::Show("transaction_isolation".into()));
        assert_eq!(classify("SHOW TIME ZONE"), Statement::Show("timezone".into()));
        assert!(matches!(classify("DECLARE c CURSOR FOR SELECT 1"), Statement::Cursor(_)));
        assert_eq!(classify("DECLARE c CURSOR FOR ATTACH 'x.db'"), Statement::Refused("ATTACH".into()));
        assert_eq!(classify("DECLARE c CURSOR FOR SET a = 1"), Statement::Refused("SET".into()));
        assert_eq!(classify("DECLARE c CURSOR FOR SHOW search_path"), Statement::Refused("DECLARE".into()));
        assert_eq!(classify("FETCH BACKWARD 1 FROM c"), Statement::BadCursor(CursorError::ForwardOnly));
    }

    #[test]
    fn statements_nested_in_themselves_are_refused_without_recursing() {
        let n = 100_000;
        let declare = format!("{}SELECT 1", "DECLARE c CURSOR FOR ".repeat(n));
        assert_eq!(classify(&declare), Statement::Refused("DECLARE".into()));
        let copy = format!("{}SELECT 1{}", "COPY (".repeat(n), ") TO STDOUT".repeat(n));
        assert_eq!(classify(&copy), Statement::Refused("COPY".into()));
    }

    #[test]
    fn parses_set_forms() {
        let set = |n: &str, v: Option<&str>| Statement::Set { name: n.into(), value: v.map(Into::into) };
        assert_eq!(classify("SET extra_float_digits = 3"), set("extra_float_digits", Some("3")));
        assert_eq!(classify("set session statement_timeout to '5s'"), set("statement_timeout", Some("5s")));
        assert_eq!(classify("SET TIME ZONE 'UTC'"), set("timezone", Some("UTC")));
        assert_eq!(classify("SET warmlake.snapshot = 42"), set("warmlake.snapshot", Some("42")));
        assert_eq!(classify("RESET statement_timeout"), set("statement_timeout", None));
        assert_eq!(classify("SET datestyle TO DEFAULT"), set("datestyle", None));
        // a multi-byte character where a keyword's end would fall (found by the SQL fuzzer)
        assert_eq!(classify("SET HEADER =ৠ\" x"), set("header", Some("ৠ\" x")));
        assert_eq!(classify("SET é"), set("é", Some("")));
        assert_eq!(classify("SET a Tৠ"), set("a", Some("Tৠ")));
    }
}
