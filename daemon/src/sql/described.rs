//! Statements a session has described, remembered until the lake's views change. Drivers
//! describe the same statements again and again (tokio-postgres and pgjdbc before running a
//! query string, psycopg a portal before executing it), and a describe costs a DuckDB prepare
//! and an empty run (about 5 ms on a view over a few files): as much as a small query.

use duckdb::types::{Type, Value};
use pgwire::api::results::FieldInfo;

use super::session::ResultFormats;

/// Answers kept per session; the oldest goes first when full.
const CAPACITY: usize = 64;

/// What a describe's answer depends on besides the views: the statement, the types of the
/// values bound to it (`SELECT $1` is of its parameter's type) and the result formats.
#[derive(Debug, PartialEq)]
pub struct Key {
    sql: String,
    params: Vec<Type>,
    formats: ResultFormats,
}

impl Key {
    pub fn new(sql: &str, params: &[Value], formats: &ResultFormats) -> Self {
        Self { sql: sql.to_owned(), params: params.iter().map(Value::data_type).collect(), formats: formats.clone() }
    }
}

/// One session's described statements, each with the views generation it was described at.
#[derive(Default)]
pub struct Described {
    answers: Vec<(Key, u64, Vec<FieldInfo>)>,
}

impl Described {
    /// The columns described for `key` at `generation` of the views, if any.
    pub fn get(&self, key: &Key, generation: u64) -> Option<Vec<FieldInfo>> {
        self.answers.iter().find(|(k, g, _)| *g == generation && k == key).map(|(_, _, fields)| fields.clone())
    }

    /// Remembers `fields` for `key`, replacing an answer for an older generation.
    pub fn put(&mut self, key: Key, generation: u64, fields: Vec<FieldInfo>) {
        self.answers.retain(|(k, _, _)| *k != key);
        if self.answers.len() >= CAPACITY {
            self.answers.remove(0);
        }
        self.answers.push((key, generation, fields));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgwire::api::Type as PgType;
    use pgwire::api::results::FieldFormat;

    fn fields(name: &str) -> Vec<FieldInfo> {
        vec![FieldInfo::new(name.to_owned(), None, None, PgType::INT8, FieldFormat::Text)]
    }

    #[test]
    fn an_answer_holds_for_its_statement_parameter_types_formats_and_generation() {
        let mut d = Described::default();
        let key = || Key::new("SELECT $1", &[Value::BigInt(1)], &ResultFormats::Text);
        d.put(key(), 3, fields("a"));
        assert_eq!(d.get(&key(), 3).map(|f| f[0].name().to_owned()), Some("a".to_owned()));
        assert!(d.get(&key(), 4).is_none(), "the views changed");
        assert!(d.get(&Key::new("SELECT $1", &[Value::Text("x".into())], &ResultFormats::Text), 3).is_none());
        assert!(d.get(&Key::new("SELECT $1", &[Value::BigInt(1)], &ResultFormats::Binary), 3).is_none());
        assert!(d.get(&Key::new("SELECT $2", &[Value::BigInt(1)], &ResultFormats::Text), 3).is_none());
        // a new answer replaces the old one
        d.put(key(), 4, fields("b"));
        assert_eq!(d.answers.len(), 1);
        assert_eq!(d.get(&key(), 4).map(|f| f[0].name().to_owned()), Some("b".to_owned()));
    }

    #[test]
    fn the_oldest_answer_goes_first() {
        let mut d = Described::default();
        for i in 0..=CAPACITY {
            d.put(Key::new(&format!("SELECT {i}"), &[], &ResultFormats::Text), 1, fields("x"));
        }
        assert_eq!(d.answers.len(), CAPACITY);
        assert!(d.get(&Key::new("SELECT 0", &[], &ResultFormats::Text), 1).is_none());
        assert!(d.get(&Key::new(&format!("SELECT {CAPACITY}"), &[], &ResultFormats::Text), 1).is_some());
    }
}
