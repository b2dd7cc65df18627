//! Glob patterns over lake names: `*` (any run of characters, possibly empty) and `?` (exactly
//! one character), matched case-insensitively.
//!
//! Why case-insensitive: DuckDB identifiers are case-insensitive, so `Finance.Ledger` and
//! `finance.ledger` are the same table to every client. A deny rule that silently missed a
//! table because the admin capitalised it differently would be a leak; matching both ways
//! cannot be.
//!
//! Why no `[...]` classes or `{a,b}` alternatives: nothing in Cargo.lock provides a glob crate,
//! these patterns are short, and an unsupported construct read as a literal would quietly
//! match nothing. They are rejected at parse time instead (escape with `\` to mean the
//! character itself).
//!
//! A [`QualifiedGlob`] is `schema.table`: the pattern is split at its one unescaped `.` and each
//! half is matched against the schema and the table name separately, so `*` never has to decide
//! whether it may cross a dot, and a name that itself contains a dot still matches.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// One character, stored lower-cased.
    Literal(char),
    /// `?`
    One,
    /// `*`
    Star,
}

/// A validated glob pattern (see the module docs for the syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl Glob {
    /// Parses `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty pattern".to_string());
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    // `**` means the same as `*`; keeping one keeps matching linear.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::One),
                '\\' => match chars.next() {
                    Some(escaped) => push_literal(&mut tokens, escaped),
                    None => return Err("trailing `\\` escapes nothing".to_string()),
                },
                '[' | ']' | '{' | '}' => {
                    return Err(format!(
                        "`{c}` is not supported (only `*` and `?` are); write `\\{c}` to match it literally"
                    ));
                }
                _ => push_literal(&mut tokens, c),
            }
        }
        Ok(Glob { source: pattern.to_string(), tokens })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` matches, ignoring case.
    pub fn matches(&self, name: &str) -> bool {
        if name.is_ascii() {
            // The common case, on every open and listing: no allocation.
            self.matches_units(name.as_bytes(), |c, b| c == char::from(b.to_ascii_lowercase()))
        } else {
            let name: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
            self.matches_units(&name, |c, n| c == n)
        }
    }

    /// The matcher, over any sequence of name units (ASCII bytes or lower-cased chars).
    fn matches_units<T: Copy>(&self, name: &[T], eq: impl Fn(char, T) -> bool) -> bool {
        let pat = &self.tokens;
        let (mut p, mut n) = (0, 0);
        // Where the last `*` was, and how much of the name it has swallowed so far: on a
        // mismatch, let it swallow one more unit and retry (classic linear backtracking;
        // only the last star ever needs to move).
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pat.get(p) {
                Some(Token::Star) => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                Some(Token::One) => {
                    p += 1;
                    n += 1;
                    continue;
                }
                Some(Token::Literal(c)) if eq(*c, name[n]) => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|t| *t == Token::Star)
    }
}

fn push_literal(tokens: &mut Vec<Token>, c: char) {
    tokens.extend(c.to_lowercase().map(Token::Literal));
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// A `schema.table` glob, such as `finance.*`, `*.orders` or `crm.customer?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualifiedGlob {
    source: String,
    schema: Glob,
    table: Glob,
}

impl QualifiedGlob {
    /// Parses `pattern`, which must hold exactly one unescaped `.`.
    pub fn new(pattern: &str) -> Result<QualifiedGlob, String> {
        let mut dots = Vec::new();
        let mut escaped = false;
        for (i, c) in pattern.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '.' => dots.push(i),
                _ => {}
            }
        }
        let hint = "expected `schema.table`, such as \"finance.*\", \"*.orders\" or \"*.*\"";
        let dot = match dots.as_slice() {
            [dot] => *dot,
            [] => return Err(format!("no `.`: {hint}")),
            _ => {
                return Err(format!(
                    "more than one `.`: {hint} (columns go in `columns = [...]`; escape a dot inside a name as `\\.`)"
                ));
            }
        };
        let (schema, table) = (&pattern[..dot], &pattern[dot + 1..]);
        if schema.is_empty() || table.is_empty() {
            return Err(format!("empty schema or table part: {hint}"));
        }
        Ok(QualifiedGlob { source: pattern.to_string(), schema: Glob::new(schema)?, table: Glob::new(table)? })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the table `schema.table` matches, ignoring case.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.schema.matches(schema) && self.table.matches(table)
    }
}

impl fmt::Display for QualifiedGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for QualifiedGlob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// Whether two names are equal ignoring case, without allocating.
pub(crate) fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::new(p).expect("valid pattern")
    }

    #[test]
    fn matches_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("orders", "orders", true),
            ("orders", "ORDERS", true),
            ("Orders", "orders", true),
            ("orders", "order", false),
            ("orders", "orders2", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("order*", "orders", true),
            ("order*", "order", true),
            ("order*", "orde", false),
            ("*s", "orders", true),
            ("*s", "order", false),
            ("o*s", "os", true),
            ("o*s", "orders", true),
            ("o*s", "ordersx", false),
            ("*der*", "orders", true),
            ("*der*", "ordrs", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("a*b*c", "acb", false),
            ("a**c", "abbc", true),
            ("?", "a", true),
            ("?", "", false),
            ("?", "ab", false),
            ("cust?mer", "customer", true),
            ("cust?mer", "custmer", false),
            ("*?", "", false),
            ("*?", "x", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("a\\?", "a?", true),
            ("a\\?", "ab", false),
            ("a\\\\b", "a\\b", true),
            ("é*", "Éclair", true),
            ("e-mail", "E-Mail", true),
            ("a.b", "a.b", true),
            ("a.b", "axb", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob(pattern).matches(name), *expected, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for (pattern, needle) in [
            ("", "empty"),
            ("a\\", "trailing"),
            ("[ab]", "`[` is not supported"),
            ("a{b,c}", "`{` is not supported"),
            ("x]", "`]`"),
        ] {
            let err = Glob::new(pattern).expect_err(pattern);
            assert!(err.contains(needle), "{pattern:?}: {err}");
        }
        assert!(Glob::new("\\[ab\\]").expect("escaped").matches("[ab]"));
    }

    /// The obvious recursive matcher, as a reference for the linear one.
    fn reference(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(_), None) => false,
            (Some('?'), Some(_)) => reference(&p[1..], &n[1..]),
            (Some(a), Some(b)) => a == b && reference(&p[1..], &n[1..]),
        }
    }

    fn words(alphabet: &[char], max_len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max_len {
            let next: Vec<String> = last.iter().flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}"))).collect();
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    /// Every pattern over {a, b, *, ?} up to 5 tokens against every name over {a, b} up to 5
    /// characters: the linear matcher agrees with the reference everywhere.
    #[test]
    fn agrees_with_reference_exhaustively() {
        let patterns = words(&['a', 'b', '*', '?'], 5);
        let names = words(&['a', 'b'], 5);
        let mut checked = 0;
        for p in patterns.iter().filter(|p| !p.is_empty()) {
            let g = glob(p);
            let pc: Vec<char> = p.chars().collect();
            for n in &names {
                let nc: Vec<char> = n.chars().collect();
                assert_eq!(g.matches(n), reference(&pc, &nc), "{p:?} vs {n:?}");
                checked += 1;
            }
        }
        assert!(checked > 80_000);
    }

    /// The same over a non-ASCII alphabet, which takes the `char` path of the matcher.
    #[test]
    fn agrees_with_reference_exhaustively_non_ascii() {
        let patterns = words(&['a', 'é', '*', '?'], 4);
        let names = words(&['a', 'é'], 4);
        for p in patterns.iter().filter(|p| !p.is_empty()) {
            let g = glob(p);
            let pc: Vec<char> = p.chars().collect();
            for n in names.iter().filter(|n| !n.is_ascii()) {
                let nc: Vec<char> = n.chars().collect();
                assert_eq!(g.matches(n), reference(&pc, &nc), "{p:?} vs {n:?}");
                assert_eq!(g.matches(&n.to_uppercase()), reference(&pc, &nc), "{p:?} vs upper {n:?}");
            }
        }
    }

    #[test]
    fn qualified_globs() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("finance.*", "finance", "ledger", true),
            ("finance.*", "FINANCE", "ledger", true),
            ("finance.*", "finance2", "ledger", false),
            ("*.orders", "sales", "orders", true),
            ("*.orders", "sales", "orders_old", false),
            ("*.*", "a", "b", true),
            ("crm.customers", "crm", "customers", true),
            ("crm.customers", "crm", "customers2", false),
            ("s*.o*", "sales", "orders", true),
            // A dot inside a (quoted) name is matched by `*` or by an escaped dot.
            ("*.*", "my.schema", "t", true),
            ("my\\.schema.t", "my.schema", "t", true),
            ("my\\.schema.t", "myxschema", "t", false),
        ];
        for (pattern, schema, table, expected) in cases {
            let g = QualifiedGlob::new(pattern).expect("valid");
            assert_eq!(g.matches(schema, table), *expected, "{pattern:?} vs {schema}.{table}");
        }
    }

    #[test]
    fn qualified_glob_errors() {
        for (pattern, needle) in [
            ("finance", "no `.`"),
            ("*", "no `.`"),
            ("a.b.c", "more than one `.`"),
            (".orders", "empty schema or table"),
            ("sales.", "empty schema or table"),
            ("sales.[x]", "not supported"),
        ] {
            let err = QualifiedGlob::new(pattern).expect_err(pattern);
            assert!(err.contains(needle), "{pattern:?}: {err}");
        }
    }

    #[test]
    fn eq_ignore_case_works() {
        assert!(eq_ignore_case("PII", "pii"));
        assert!(!eq_ignore_case("pii", "pi"));
    }
}
