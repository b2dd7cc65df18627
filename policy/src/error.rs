//! [`PolicyError`]: what is wrong with a policy file, and exactly where.
//!
//! Every error, syntactic or semantic, carries the file name, a 1-based line and a 1-based
//! column (counted in characters) of the offending value, so an admin (or an editor jumping
//! to `file:line:column`) lands on it. The daemon shows the same text in its log and in
//! `warmlake status` while it keeps the last good policy in force.

use std::ops::Range;

/// A policy file that could not be parsed or validated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {kind}")]
pub struct PolicyError {
    /// The file name the caller passed to [`crate::Policy::parse`].
    pub file: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// 1-based column (in characters) of the offending value.
    pub column: usize,
    /// What is wrong (boxed to keep `Result<_, PolicyError>` small).
    pub kind: Box<ErrorKind>,
    /// The text of the offending line, for [`PolicyError::snippet`].
    pub source_line: String,
}

impl PolicyError {
    /// The offending line with a caret under the column, compiler-style:
    ///
    /// ```text
    ///    12 | action = "cach"
    ///       |          ^
    /// ```
    pub fn snippet(&self) -> String {
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        let indent: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{pad} |\n{number} | {}\n{pad} | {indent}^", self.source_line)
    }
}

/// What is wrong with a policy file. Each variant's message names the value and what was
/// expected; the position is in [`PolicyError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// TOML syntax, a value of the wrong type, an unknown key (typos are errors) or a missing
    /// required key. The message is toml's.
    #[error("{0}")]
    Toml(String),
    /// `action` or `default_action` is not `cache`, `read-through` or `deny`.
    #[error("unknown action {found:?}: expected \"cache\", \"read-through\" or \"deny\"")]
    UnknownAction {
        /// The value as written.
        found: String,
    },
    /// `mode` is not `allow` or `deny`.
    #[error("unknown mode {found:?}: expected \"allow\" or \"deny\"")]
    UnknownMode {
        /// The value as written.
        found: String,
    },
    /// A size (`max_cache`, `min_free_disk`) or percentage that does not parse.
    #[error("bad {field} {value:?}: {reason}")]
    BadSize {
        /// The key.
        field: &'static str,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A duration (`max_age`, `lead`) that does not parse.
    #[error("bad {field} {value:?}: {reason}")]
    BadDuration {
        /// The key.
        field: &'static str,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A glob (`match`, `except`, `columns`, tag values, `tables`, `title`) that does not parse.
    #[error("bad pattern {pattern:?} in `{field}`: {reason}")]
    BadGlob {
        /// The key.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A cron expression the `cron` crate rejects, or a numeric day of week (see
    /// [`crate::Cron`]).
    #[error("bad cron expression {expr:?}: {reason}")]
    BadCron {
        /// The expression as written.
        expr: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Two `[[prewarm]]` jobs with the same name (the CLI and `status` refer to jobs by name).
    #[error("duplicate prewarm job name {name:?} (first defined on line {first_line})")]
    DuplicatePrewarmName {
        /// The repeated name.
        name: String,
        /// Line of the first job with that name.
        first_line: usize,
    },
    /// A `[[rule]]` with none of `match`, `columns` or `tag`. Such a rule would select every
    /// object; write `match = "*.*"` if that is meant.
    #[error("this rule selects nothing: give `match`, `columns` or `tag` (write match = \"*.*\" to select everything)")]
    RuleWithoutSelector,
    /// Any other value that is well-typed but out of range or inconsistent.
    #[error("bad `{field}`: {reason}")]
    BadValue {
        /// The key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The text being parsed, able to turn byte offsets into line/column positions.
pub(crate) struct Source<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Source<'a> {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Source { file, text, line_starts }
    }

    pub(crate) fn file(&self) -> &'a str {
        self.file
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_index = self.line_starts.partition_point(|start| *start <= offset).saturating_sub(1);
        let start = self.line_starts[line_index];
        // A span never starts inside a UTF-8 sequence, but stay safe if one did.
        let column = self.text.get(start..offset).map_or(offset - start, |prefix| prefix.chars().count());
        (line_index + 1, column + 1)
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }

    fn line_text(&self, line: usize) -> String {
        let start = self.line_starts[line - 1];
        let end = self.line_starts.get(line).map_or(self.text.len(), |next| next - 1);
        self.text.get(start..end).unwrap_or_default().trim_end_matches('\r').to_string()
    }

    /// An error at the start of `span`.
    pub(crate) fn error(&self, span: Range<usize>, kind: ErrorKind) -> PolicyError {
        let (line, column) = self.position(span.start);
        PolicyError {
            file: self.file.to_string(),
            line,
            column,
            kind: Box::new(kind),
            source_line: self.line_text(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "a = 1\n\nbé = \"x\"\r\nlast";
        let src = Source::new("p.toml", text);
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(4), (1, 5));
        assert_eq!(src.position(5), (1, 6)); // the newline itself
        assert_eq!(src.position(6), (2, 1));
        assert_eq!(src.position(7), (3, 1));
        // `é` is two bytes but one column.
        assert_eq!(&text[11..12], "=");
        assert_eq!(src.position(11), (3, 4));
        assert_eq!(src.position(text.len()), (4, 5));
        assert_eq!(src.position(text.len() + 10), (4, 5));
        assert_eq!(src.line_text(3), "bé = \"x\"");
        assert_eq!(src.line_text(4), "last");
    }

    #[test]
    fn display_and_snippet() {
        let src = Source::new("policy.toml", "[[rule]]\naction = \"cach\"\n");
        let err = src.error(18..24, ErrorKind::UnknownAction { found: "cach".into() });
        assert_eq!(
            err.to_string(),
            "policy.toml:2:10: unknown action \"cach\": expected \"cache\", \"read-through\" or \"deny\""
        );
        assert_eq!(err.snippet(), "  |\n2 | action = \"cach\"\n  |          ^");
    }
}
