//! `[[rule]]`: which objects a rule selects, and what it does to them.
//!
//! A rule has up to four selectors, all of which must hold (AND):
//!
//! - `match = "schema.table"` glob (absent: every table);
//! - `except = ["schema.table", ...]` globs of tables the rule does not apply to;
//! - `columns = ["glob", ...]`: the rule applies to matching columns only, never to the table
//!   as a whole (absent: the rule applies to the whole table, hence to all its columns);
//! - `tag = { key = "value glob", ... }`: DuckLake tags (`ducklake_tag`,
//!   `ducklake_column_tag`); each pair must be found on the table or on the column. Keys
//!   compare ignoring case; values are globs (`"*"`: the tag is present with any value);
//!   `true` and numbers are compared as the strings DuckLake stores (`"true"`, `"3"`).
//!   `tags` is accepted as another spelling of `tag`.
//!
//! A rule selects a **table** when `match`/`except` and its tags (on the table's own tags)
//! hold and it has no `columns`. It selects a **column** when `match`/`except` hold, the
//! column's name matches `columns` (if given) and each tag pair is found on the column or its
//! table. A table-tagged rule therefore covers every column of the table, and a
//! column-tagged rule only that column.

use std::fmt;

use serde::Serialize;

use crate::action::Action;
use crate::decision::{ColumnRef, TableRef};
use crate::glob::{Glob, QualifiedGlob, eq_ignore_case};
use crate::setting::Origin;

/// One `key = "value glob"` pair of a rule's `tag`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagCondition {
    /// The tag key, compared ignoring case.
    pub key: String,
    /// The tag value pattern.
    pub value: Glob,
}

impl TagCondition {
    fn found_in(&self, tags: &[(String, String)]) -> bool {
        tags.iter().any(|(k, v)| eq_ignore_case(k, &self.key) && self.value.matches(v))
    }
}

/// A validated `[[rule]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    #[serde(rename = "match")]
    pub(crate) table: Option<QualifiedGlob>,
    pub(crate) except: Vec<QualifiedGlob>,
    pub(crate) columns: Option<Vec<Glob>>,
    #[serde(rename = "tag")]
    pub(crate) tags: Vec<TagCondition>,
    pub(crate) action: Action,
    pub(crate) reason: Option<String>,
    pub(crate) origin: Origin,
}

/// Whether a rule applies to a whole table or to one column only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The rule selects the table, and with it every column.
    Table,
    /// The rule selects this column only.
    Column,
}

impl Rule {
    /// `match`, if given.
    pub fn table_glob(&self) -> Option<&QualifiedGlob> {
        self.table.as_ref()
    }

    /// `except`.
    pub fn except(&self) -> &[QualifiedGlob] {
        &self.except
    }

    /// `columns`, if given.
    pub fn columns(&self) -> Option<&[Glob]> {
        self.columns.as_deref()
    }

    /// `tag`.
    pub fn tags(&self) -> &[TagCondition] {
        &self.tags
    }

    /// `action` (default `cache`).
    pub fn action(&self) -> Action {
        self.action
    }

    /// `reason`: the admin's note, shown by `explain`.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Where the rule is written (the line of its `[[rule]]` header).
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    fn selects_table_name(&self, t: &TableRef<'_>) -> bool {
        self.table.as_ref().is_none_or(|g| g.matches(t.schema, t.table))
            && !self.except.iter().any(|g| g.matches(t.schema, t.table))
    }

    /// Whether the rule applies to table `t` as a whole.
    pub fn applies_to_table(&self, t: &TableRef<'_>) -> bool {
        self.columns.is_none() && self.selects_table_name(t) && self.tags.iter().all(|c| c.found_in(t.tags))
    }

    /// Whether the rule applies to column `c` of table `t` (directly, or because it applies
    /// to the whole table).
    pub fn applies_to_column(&self, t: &TableRef<'_>, c: &ColumnRef<'_>) -> bool {
        self.selects_table_name(t)
            && self.columns.as_ref().is_none_or(|globs| globs.iter().any(|g| g.matches(c.name)))
            && self.tags.iter().all(|cond| cond.found_in(c.tags) || cond.found_in(t.tags))
    }

    /// Whether and how the rule applies, with one note per selector saying why; for
    /// `explain`, off the hot path.
    pub(crate) fn check(&self, t: &TableRef<'_>, c: Option<&ColumnRef<'_>>) -> RuleCheck {
        let mut notes = Vec::new();
        let name = format!("{}.{}", t.schema, t.table);
        if let Some(g) = &self.table {
            if g.matches(t.schema, t.table) {
                notes.push(format!("match {:?} selects {name}", g.as_str()));
            } else {
                notes.push(format!("match {:?} does not select {name}", g.as_str()));
            }
        }
        for g in self.except.iter().filter(|g| g.matches(t.schema, t.table)) {
            notes.push(format!("except {:?} excludes {name}", g.as_str()));
        }
        if let Some(globs) = &self.columns {
            let list = glob_list(globs);
            match c {
                Some(c) if globs.iter().any(|g| g.matches(c.name)) => {
                    notes.push(format!("columns {list} include {}", c.name));
                }
                Some(c) => notes.push(format!("columns {list} do not include {}", c.name)),
                None => notes.push(format!("applies to columns {list} only, not to the table as a whole")),
            }
        }
        for cond in &self.tags {
            let pair = format!("tag {}={:?}", cond.key, cond.value.as_str());
            if cond.found_in(t.tags) {
                notes.push(format!("{pair} found on the table"));
            } else if let Some(c) = c.filter(|c| cond.found_in(c.tags)) {
                notes.push(format!("{pair} found on column {}", c.name));
            } else {
                notes.push(format!("{pair} not found"));
            }
        }
        let applies = if self.applies_to_table(t) {
            Some(Scope::Table)
        } else if c.is_some_and(|c| self.applies_to_column(t, c)) {
            Some(Scope::Column)
        } else {
            None
        };
        RuleCheck { applies, notes }
    }
}

/// The outcome of [`Rule::check`].
pub(crate) struct RuleCheck {
    pub(crate) applies: Option<Scope>,
    pub(crate) notes: Vec<String>,
}

fn glob_list<'a, T: fmt::Display + 'a>(items: impl IntoIterator<Item = &'a T>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|g| format!("{:?}", g.to_string())).collect();
    format!("[{}]", quoted.join(", "))
}

/// The selectors as they would be written in the file, then the action:
/// `match = "crm.customers", columns = ["email"] -> deny`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(g) = &self.table {
            parts.push(format!("match = {:?}", g.as_str()));
        }
        if !self.except.is_empty() {
            parts.push(format!("except = {}", glob_list(&self.except)));
        }
        if let Some(globs) = &self.columns {
            parts.push(format!("columns = {}", glob_list(globs)));
        }
        if !self.tags.is_empty() {
            let pairs: Vec<String> = self.tags.iter().map(|c| format!("{} = {:?}", c.key, c.value.as_str())).collect();
            parts.push(format!("tag = {{ {} }}", pairs.join(", ")));
        }
        write!(f, "{} -> {}", parts.join(", "), self.action)
    }
}
