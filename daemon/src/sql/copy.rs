//! `COPY ... TO STDOUT`: the copy-out psql's `\copy (query) to 'file'` sends. The statement
//! is parsed here (a query or a table, then `TO STDOUT` and its options, in both PostgreSQL
//! spellings); the rows are the query's values (text, or binary for `FORMAT binary`) written as
//! COPY data by pgwire's `CopyEncoder`. COPY to or from anything but the client (server files,
//! programs) stays refused.

use super::statement::skip_quoted;
use std::sync::Arc;

use bytes::BytesMut;
use futures::{Stream, StreamExt, stream};
use pgwire::api::Type;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyTextOptions, FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;

use super::encode::Frames;
use super::error::QueryError;

/// A COPY to the client that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("syntax error in COPY: {0}")]
    Syntax(&'static str),
    #[error("COPY option {0} is not supported (text and CSV copy to STDOUT are)")]
    Unsupported(String),
}

/// A `COPY ... TO STDOUT` statement: what to run and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOut {
    /// The query whose rows are copied (`SELECT * FROM t` for `COPY t TO STDOUT`).
    pub query: String,
    pub format: CopyFormat,
    /// A first line of column names (CSV only, as in PostgreSQL).
    pub header: bool,
    /// The field delimiter; tab for text, comma for CSV unless given.
    pub delimiter: Option<String>,
    /// How NULL is written; `\N` for text, empty for CSV unless given.
    pub null: Option<String>,
    /// The CSV quote character; `"` unless given.
    pub quote: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    /// PostgreSQL's binary COPY: each value in its binary wire form.
    Binary,
}

/// Parses `COPY {(query) | table [(columns)]} TO STDOUT [[WITH] options]`; None for any other
/// COPY (to or from a file or program, from STDIN), which the caller refuses.
pub fn parse(stmt: &str) -> Result<Option<CopyOut>, CopyError> {
    let tokens = tokenize(stmt);
    let mut t = tokens.iter().map(String::as_str).peekable();
    if !t.next().is_some_and(|w| w.eq_ignore_ascii_case("COPY")) {
        return Ok(None);
    }
    let query = match t.next() {
        Some("(") => {
            // the query's own text, between the outer parentheses, as the client wrote it
            let open = stmt.find('(').unwrap_or(0);
            let close = matching_paren(stmt, open).ok_or_else(|| bad("unbalanced parentheses"))?;
            let mut depth = 1;
            for tok in t.by_ref() {
                depth += i32::from(tok == "(") - i32::from(tok == ")");
                if depth == 0 {
                    break;
                }
            }
            stmt[open + 1..close].trim().to_owned()
        }
        Some(table) => {
            let mut columns = Vec::new();
            if t.peek() == Some(&"(") {
                t.next();
                for tok in t.by_ref() {
                    match tok {
                        ")" => break,
                        "," => {}
                        c => columns.push(c.to_owned()),
                    }
                }
            }
            let list = if columns.is_empty() { "*".to_owned() } else { columns.join(", ") };
            format!("SELECT {list} FROM {table}")
        }
        None => return Ok(None),
    };
    let to = t.next().is_some_and(|w| w.eq_ignore_ascii_case("TO"));
    let stdout = t.next().is_some_and(|w| w.eq_ignore_ascii_case("STDOUT"));
    if !to || !stdout {
        return Ok(None);
    }
    let mut copy = CopyOut { query, format: CopyFormat::Text, header: false, delimiter: None, null: None, quote: None };
    let options: Vec<&str> = t.filter(|w| !matches!(*w, "(" | ")" | ",")).collect();
    let mut i = 0;
    let value = |i: &mut usize| -> Result<String, CopyError> {
        // `DELIMITER AS ','` (old spelling) or `DELIMITER ','`
        if options.get(*i + 1).is_some_and(|w| w.eq_ignore_ascii_case("AS")) {
            *i += 1;
        }
        *i += 1;
        options.get(*i).map(|v| unquote(v)).ok_or_else(|| bad("an option lacks its value"))
    };
    while i < options.len() {
        match options[i].to_ascii_uppercase().as_str() {
            "WITH" => {}
            "CSV" => copy.format = CopyFormat::Csv,
            "TEXT" => copy.format = CopyFormat::Text,
            "FORMAT" => {
                copy.format = match value(&mut i)?.to_ascii_lowercase().as_str() {
                    "csv" => CopyFormat::Csv,
                    "text" => CopyFormat::Text,
                    "binary" => CopyFormat::Binary,
                    other => return Err(unsupported(&format!("FORMAT {other}"))),
                }
            }
            "BINARY" => copy.format = CopyFormat::Binary,
            "HEADER" => {
                copy.header = match options.get(i + 1).map(|w| w.to_ascii_lowercase()) {
                    Some(w) if matches!(w.as_str(), "true" | "on" | "1") => {
                        i += 1;
                        true
                    }
                    Some(w) if matches!(w.as_str(), "false" | "off" | "0") => {
                        i += 1;
                        false
                    }
                    _ => true,
                }
            }
            "DELIMITER" => copy.delimiter = Some(value(&mut i)?),
            "NULL" => copy.null = Some(value(&mut i)?),
            "QUOTE" => copy.quote = Some(value(&mut i)?),
            other => return Err(unsupported(other)),
        }
        i += 1;
    }
    if copy.header && copy.format != CopyFormat::Csv {
        return Err(bad("COPY HEADER is available only in CSV mode"));
    }
    Ok(Some(copy))
}

impl CopyOut {
    /// Whether rows are copied in binary (COPY's format code 1).
    pub fn binary(&self) -> bool {
        self.format == CopyFormat::Binary
    }

    /// The encoder for a result with `fields`.
    pub fn encoder(&self, fields: Arc<Vec<FieldInfo>>) -> CopyEncoder {
        match self.format {
            CopyFormat::Binary => CopyEncoder::new_binary(fields),
            CopyFormat::Text => {
                let mut o = CopyTextOptions::default();
                if let Some(d) = &self.delimiter {
                    o.delimiter = d.as_str().into();
                }
                if let Some(n) = &self.null {
                    o.null_string = n.as_str().into();
                }
                CopyEncoder::new_text(fields, o)
            }
            CopyFormat::Csv => {
                let mut o = CopyCsvOptions::default();
                if let Some(d) = &self.delimiter {
                    o.delimiter = d.as_str().into();
                }
                if let Some(n) = &self.null {
                    o.null_string = n.as_str().into();
                }
                if let Some(q) = &self.quote {
                    o.quote = q.as_str().into();
                }
                CopyEncoder::new_csv(fields, o)
            }
        }
    }
}

/// The schema the encoder writes: the rows are encoded already, so every column is passed on
/// as its bytes.
pub fn text_fields(names: &[String]) -> Arc<Vec<FieldInfo>> {
    Arc::new(names.iter().map(|n| FieldInfo::new(n.clone(), None, None, Type::TEXT, FieldFormat::Text)).collect())
}

/// One line of column names.
pub fn header(encoder: &mut CopyEncoder, names: &[String]) -> Result<CopyData, QueryError> {
    for n in names {
        encoder.encode_field(&Some(n.as_str())).map_err(|e| QueryError::Encode(e.to_string()))?;
    }
    Ok(encoder.take_copy())
}

/// The lines after the `header` line, which travels in the first line's message: pgwire
/// counts messages for the `COPY n` tag, and PostgreSQL does not count the header.
pub fn with_header(
    header: Option<CopyData>,
    lines: impl Stream<Item = PgWireResult<CopyData>> + Send + 'static,
) -> impl Stream<Item = PgWireResult<CopyData>> + Send + 'static {
    // fused: after a header alone, the finished rows are polled once more
    let lines = Box::pin(lines.fuse());
    stream::unfold((header, lines), |(header, mut lines)| async move {
        let next = lines.next().await;
        match (header, next) {
            (Some(h), Some(Ok(first))) => {
                let mut both = BytesMut::from(h.data.as_ref());
                both.extend_from_slice(&first.data);
                Some((Ok(CopyData::new(both.freeze())), (None, lines)))
            }
            // no rows: the header alone
            (Some(h), None) => Some((Ok(h), (None, lines))),
            (_, Some(item)) => Some((item, (None, lines))),
            (None, None) => None,
        }
    })
}

/// Re-encodes rows (length-prefixed fields, -1 for NULL; binary values when `binary`, else
/// text) as COPY lines, one each.
pub fn lines(encoder: &mut CopyEncoder, frames: Frames, binary: bool) -> PgWireResult<Vec<CopyData>> {
    let rows = frames.into_data_rows().map_err(QueryError::Encode)?;
    rows.iter().map(|row| line(encoder, row, binary)).collect()
}

/// One row as one COPY line.
fn line(encoder: &mut CopyEncoder, row: &DataRow, binary: bool) -> PgWireResult<CopyData> {
    let mut data = row.data.as_ref();
    for _ in 0..row.field_count {
        let (len, rest) = data.split_at_checked(4).ok_or_else(|| QueryError::Encode("truncated row".into()))?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let value = match usize::try_from(len) {
            Ok(n) => {
                let (v, rest) = rest.split_at_checked(n).ok_or_else(|| QueryError::Encode("truncated row".into()))?;
                data = rest;
                Some(v)
            }
            Err(_) => {
                data = rest;
                None
            }
        };
        if binary {
            encoder.encode_field(&value)?;
        } else {
            let text = value.map(std::str::from_utf8).transpose().map_err(|e| QueryError::Encode(e.to_string()))?;
            encoder.encode_field(&text)?;
        }
    }
    Ok(encoder.take_copy())
}

fn bad(message: &'static str) -> CopyError {
    CopyError::Syntax(message)
}

fn unsupported(option: &str) -> CopyError {
    CopyError::Unsupported(option.to_owned())
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => v.to_owned(),
    }
}

/// Words, quoted strings (kept with their quotes), and single punctuation characters.
fn tokenize(s: &str) -> Vec<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() || c == b';' {
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let end = skip_quoted(bytes, i);
            out.push(s[i..end].to_owned());
            i = end;
        } else if matches!(c, b'(' | b')' | b',') {
            out.push((c as char).to_string());
            i += 1;
        } else {
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'(' | b')' | b',' | b';') {
                i = if matches!(bytes[i], b'\'' | b'"') { skip_quoted(bytes, i) } else { i + 1 };
            }
            out.push(s[start..i].to_owned());
        }
    }
    out
}

/// The index of the `)` closing the `(` at `open`, outside quotes.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                i = skip_quoted(bytes, i);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(query: &str, format: CopyFormat) -> CopyOut {
        CopyOut { query: query.into(), format, header: false, delimiter: None, null: None, quote: None }
    }

    #[test]
    fn parses_what_psql_sends() {
        let q = "COPY ( SELECT id, ')' AS p FROM sales.orders ORDER BY id LIMIT 3 ) TO STDOUT csv";
        assert_eq!(
            parse(q).expect("valid"),
            Some(out("SELECT id, ')' AS p FROM sales.orders ORDER BY id LIMIT 3", CopyFormat::Csv))
        );
        let q = "copy sales.orders (id, region) to stdout with (format csv, header true, delimiter ';', null 'NA')";
        let expected = CopyOut {
            header: true,
            delimiter: Some(";".into()),
            null: Some("NA".into()),
            ..out("SELECT id, region FROM sales.orders", CopyFormat::Csv)
        };
        assert_eq!(parse(q).expect("valid"), Some(expected));
        let q = "COPY t TO STDOUT DELIMITER AS '|' NULL AS ''";
        let expected = CopyOut {
            delimiter: Some("|".into()),
            null: Some(String::new()),
            ..out("SELECT * FROM t", CopyFormat::Text)
        };
        assert_eq!(parse(q).expect("valid"), Some(expected));
    }

    #[test]
    fn other_copies_are_not_copy_out() {
        assert_eq!(parse("COPY (SELECT 1) TO '/tmp/x'").expect("parsed"), None);
        assert_eq!(parse("COPY t FROM STDIN").expect("parsed"), None);
        assert_eq!(parse("COPY t TO PROGRAM 'sh'").expect("parsed"), None);
        assert!(parse("COPY t TO STDOUT (FORMAT parquet)").is_err());
        assert!(parse("COPY t TO STDOUT HEADER").is_err());
    }
}
