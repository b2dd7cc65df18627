//! `SAVEPOINT`, `RELEASE [SAVEPOINT]` and `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT]`:
//! what clients that nest transactions send (psycopg's `conn.transaction()` inside one, which
//! SQLAlchemy's dialect does on connect; SQLAlchemy's `begin_nested`). A session only reads, so
//! there is nothing to undo: savepoints are names on a stack, checked as PostgreSQL checks them,
//! and a rollback to one takes a failed transaction back to a working one.

use super::error::QueryError;

/// A savepoint statement, its name folded as PostgreSQL folds identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavepointStatement {
    Set(String),
    Release(String),
    RollbackTo(String),
}

impl SavepointStatement {
    /// The statement's keyword, for errors.
    pub fn keyword(&self) -> &'static str {
        match self {
            SavepointStatement::Set(_) => "SAVEPOINT",
            SavepointStatement::Release(_) => "RELEASE SAVEPOINT",
            SavepointStatement::RollbackTo(_) => "ROLLBACK TO SAVEPOINT",
        }
    }
}

/// Parses `stmt` if it is a savepoint statement (`ROLLBACK` alone is not: it ends the
/// transaction). None for any other statement, or a malformed one (refused then, as every
/// statement the socket does not run).
pub fn parse(stmt: &str) -> Option<SavepointStatement> {
    let tokens: Vec<&str> = stmt.trim().trim_end_matches(';').split_whitespace().collect();
    let upper: Vec<String> = tokens.iter().map(|t| t.to_ascii_uppercase()).collect();
    let keywords: Vec<&str> = upper.iter().map(String::as_str).collect();
    let name = |i: usize| (tokens.len() == i + 1).then(|| identifier(tokens[i]));
    match keywords.as_slice() {
        ["SAVEPOINT", _] => name(1).map(SavepointStatement::Set),
        ["RELEASE", "SAVEPOINT", _] => name(2).map(SavepointStatement::Release),
        ["RELEASE", _] => name(1).map(SavepointStatement::Release),
        ["ROLLBACK" | "ABORT", rest @ ..] => {
            let rest = match rest {
                ["WORK" | "TRANSACTION", rest @ ..] => rest,
                rest => rest,
            };
            let at = tokens.len() - rest.len();
            match rest {
                ["TO", "SAVEPOINT", _] => name(at + 2).map(SavepointStatement::RollbackTo),
                ["TO", _] => name(at + 1).map(SavepointStatement::RollbackTo),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An identifier as PostgreSQL reads it: quoted keeps its case, unquoted is lowercased.
fn identifier(token: &str) -> String {
    match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => token.to_ascii_lowercase(),
    }
}

/// A transaction's savepoints, oldest first.
#[derive(Debug, Default)]
pub struct Savepoints(Vec<String>);

impl Savepoints {
    /// Runs `statement` (inside a transaction block); returns its command tag.
    pub fn apply(&mut self, statement: &SavepointStatement) -> Result<&'static str, QueryError> {
        match statement {
            SavepointStatement::Set(name) => {
                self.0.push(name.clone());
                Ok("SAVEPOINT")
            }
            // the newest of that name, and every one after it
            SavepointStatement::Release(name) => {
                self.0.truncate(self.position(name)?);
                Ok("RELEASE")
            }
            // every one after it; it stays
            SavepointStatement::RollbackTo(name) => {
                self.0.truncate(self.position(name)? + 1);
                Ok("ROLLBACK")
            }
        }
    }

    /// The transaction ended: its savepoints with it.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    fn position(&self, name: &str) -> Result<usize, QueryError> {
        self.0.iter().rposition(|n| n == name).ok_or_else(|| QueryError::UnknownSavepoint(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_forms() {
        use SavepointStatement as S;
        assert_eq!(parse("SAVEPOINT _pg3_1"), Some(S::Set("_pg3_1".into())));
        assert_eq!(parse("savepoint \"Mixed\";"), Some(S::Set("Mixed".into())));
        assert_eq!(parse("RELEASE SAVEPOINT sp"), Some(S::Release("sp".into())));
        assert_eq!(parse("release SP"), Some(S::Release("sp".into())));
        assert_eq!(parse("ROLLBACK TO SAVEPOINT sp"), Some(S::RollbackTo("sp".into())));
        assert_eq!(parse("rollback work to sp"), Some(S::RollbackTo("sp".into())));
        assert_eq!(parse("ROLLBACK TRANSACTION TO SAVEPOINT sp"), Some(S::RollbackTo("sp".into())));
        for other in ["ROLLBACK", "ROLLBACK WORK", "SAVEPOINT", "RELEASE", "ROLLBACK TO", "SAVEPOINT a b", "SELECT 1"] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn release_and_rollback_to_act_on_the_newest_of_a_name() {
        let mut s = Savepoints::default();
        for name in ["a", "b", "a", "c"] {
            assert_eq!(s.apply(&SavepointStatement::Set(name.into())).expect("set"), "SAVEPOINT");
        }
        assert_eq!(s.apply(&SavepointStatement::RollbackTo("a".into())).expect("to a"), "ROLLBACK");
        assert_eq!(s.0, ["a", "b", "a"]);
        s.apply(&SavepointStatement::Release("a".into())).expect("release a");
        assert_eq!(s.0, ["a", "b"]);
        let missing = s.apply(&SavepointStatement::Release("c".into())).expect_err("c was rolled back");
        assert_eq!((missing.sqlstate(), missing.to_string().as_str()), ("3B001", "savepoint \"c\" does not exist"));
        s.clear();
        assert!(s.apply(&SavepointStatement::RollbackTo("a".into())).is_err());
    }
}
