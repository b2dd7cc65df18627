//! Backend-neutral catalog rows.
//!
//! The reader casts UUIDs and timestamps to text in its queries, so every catalog value fits
//! one of five shapes whatever the backend. The accessors accept the spellings each backend
//! uses for the same thing (SQLite stores booleans as 0/1).

/// One catalog value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    /// A SQLite BLOB (inlined BLOB values); read as text, it is DuckDB's BLOB text.
    Bytes(Vec<u8>),
}

/// Bytes as DuckDB's BLOB text: every byte written `\xHH`, which `CAST(... AS BLOB)` reads back
/// exactly (printable bytes too, so no byte is taken for the start of an escape).
pub fn blob_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        out.push_str(&format!("\\x{b:02X}"));
    }
    out
}

/// A value did not have the shape the reader expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: expected {expected}, found {found}")]
pub struct RowError {
    pub column: usize,
    pub expected: &'static str,
    pub found: String,
}

/// One result row, accessed by position in the reader's own SELECT lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn value(&self, column: usize) -> &Value {
        self.0.get(column).unwrap_or(&Value::Null)
    }

    fn mismatch(&self, column: usize, expected: &'static str) -> RowError {
        RowError { column, expected, found: format!("{:?}", self.value(column)) }
    }

    pub fn opt_i64(&self, column: usize) -> Result<Option<i64>, RowError> {
        match self.value(column) {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(t) => t.trim().parse().map(Some).map_err(|_| self.mismatch(column, "an integer")),
            _ => Err(self.mismatch(column, "an integer")),
        }
    }

    pub fn i64(&self, column: usize) -> Result<i64, RowError> {
        self.opt_i64(column)?.ok_or_else(|| self.mismatch(column, "an integer"))
    }

    pub fn opt_text(&self, column: usize) -> Result<Option<String>, RowError> {
        match self.value(column) {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.clone())),
            Value::Int(v) => Ok(Some(v.to_string())),
            Value::Float(v) => Ok(Some(v.to_string())),
            Value::Bool(v) => Ok(Some(v.to_string())),
            Value::Bytes(b) => Ok(Some(blob_text(b))),
        }
    }

    pub fn text(&self, column: usize) -> Result<String, RowError> {
        self.opt_text(column)?.ok_or_else(|| self.mismatch(column, "text"))
    }

    pub fn opt_bool(&self, column: usize) -> Result<Option<bool>, RowError> {
        match self.value(column) {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::Int(0) => Ok(Some(false)),
            Value::Int(1) => Ok(Some(true)),
            Value::Text(t) => match t.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" => Ok(Some(true)),
                "false" | "f" | "0" => Ok(Some(false)),
                _ => Err(self.mismatch(column, "a boolean")),
            },
            _ => Err(self.mismatch(column, "a boolean")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_backends_spelling() {
        let row = Row(vec![
            Value::Int(1),
            Value::Text("t".into()),
            Value::Bool(false),
            Value::Null,
            Value::Text("42".into()),
        ]);
        assert_eq!(row.opt_bool(0), Ok(Some(true)));
        assert_eq!(row.opt_bool(1), Ok(Some(true)));
        assert_eq!(row.opt_bool(2), Ok(Some(false)));
        assert_eq!(row.opt_bool(3), Ok(None));
        assert_eq!(row.i64(4), Ok(42));
        assert!(row.i64(3).is_err());
        assert!(row.opt_bool(4).is_err());
    }
}
