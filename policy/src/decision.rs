//! Decisions: what the daemon may do with a table, a column, or bytes that mix columns.
//!
//! # Precedence
//!
//! Within one policy file, **the strictest matching rule wins**, whatever the order of the
//! rules; the file's `default_action` applies only to tables no rule selects. A column's
//! action is the stricter of its table's action and of every rule that selects the column.
//! Across files (central, then local) the strictest file wins, and `mode = "deny"` in any
//! file denies everything.
//!
//! Why not "first match wins", as firewalls do: with first-match, a broad rule placed early
//! (`match = "crm.*", action = "cache"`) silently shadows a later `tag = { pii = "true" },
//! action = "deny"`, and PII lands on laptops. With strictest-wins, adding a rule can only
//! tighten (the property the central/local merge rests on, and one an auditor can check by
//! reading deny rules alone), and a rule's position carries no meaning to get wrong. It is
//! also how IAM treats an explicit deny. Exceptions are written as selectors instead of
//! order: `except = ["finance.rates"]` on the deny rule, or an allow-list with
//! `default_action = "deny"` and `cache` rules for what may come.

use serde::Serialize;

use crate::action::{Action, Mode};
use crate::policy::{Layer, Policy};

/// A table as the daemon sees it in the catalog: its schema and name, and its DuckLake tags
/// (`ducklake_tag`, key/value) at the snapshot being served.
#[derive(Clone, Copy, Debug)]
pub struct TableRef<'a> {
    /// Schema name.
    pub schema: &'a str,
    /// Table name.
    pub table: &'a str,
    /// Table tags as (key, value). DuckLake can also tag a schema; to make a schema tag cover
    /// its tables, include it here (a table tag wins nothing over it: all tags are searched).
    pub tags: &'a [(String, String)],
}

impl<'a> TableRef<'a> {
    /// A table without tags.
    pub fn new(schema: &'a str, table: &'a str) -> TableRef<'a> {
        TableRef { schema, table, tags: &[] }
    }

    /// The same table with `tags`.
    pub fn with_tags(self, tags: &'a [(String, String)]) -> TableRef<'a> {
        TableRef { tags, ..self }
    }
}

/// A column of a table: its name and its DuckLake column tags (`ducklake_column_tag`).
#[derive(Clone, Copy, Debug)]
pub struct ColumnRef<'a> {
    /// Column name.
    pub name: &'a str,
    /// Column tags as (key, value).
    pub tags: &'a [(String, String)],
}

impl<'a> ColumnRef<'a> {
    /// A column without tags.
    pub fn new(name: &'a str) -> ColumnRef<'a> {
        ColumnRef { name, tags: &[] }
    }

    /// The same column with `tags`.
    pub fn with_tags(self, tags: &'a [(String, String)]) -> ColumnRef<'a> {
        ColumnRef { tags, ..self }
    }
}

/// Identifies a rule in a (possibly merged) policy: layer 0 is the central file when there is
/// one, `index` counts from 0 in file order. [`Policy::rule`] looks it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RuleId {
    /// Which policy file (index into [`Policy::layers`]).
    pub layer: usize,
    /// Which rule of that file, from 0.
    pub index: usize,
}

/// What the daemon may do with an object, which rule decided, and a sentence saying why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The outcome.
    pub action: Action,
    /// The deciding rule; `None` when the mode or a default action decided.
    pub rule: Option<RuleId>,
    /// Why, in one line: names the file, line and rule, or the mode, or the default.
    pub reason: String,
}

/// What decided, before it is worded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Basis {
    /// `mode = "deny"`.
    Mode,
    /// A rule; `whole_table` when it selects the whole table (for a column decision).
    Rule { id: RuleId, whole_table: bool },
    /// The default action of a layer (`None`: there are no layers at all).
    Default { layer: Option<usize> },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Pick {
    pub(crate) action: Action,
    pub(crate) basis: Basis,
}

impl Pick {
    /// Keeps the stricter of two picks; on a tie, the one a rule made (a default on a tie
    /// would make the reason say "no rule selects" when one does), else the earlier one.
    fn stricter(self, other: Pick) -> Pick {
        let by_rule = |p: &Pick| matches!(p.basis, Basis::Rule { .. });
        if other.action > self.action || (other.action == self.action && !by_rule(&self) && by_rule(&other)) {
            other
        } else {
            self
        }
    }
}

impl Layer {
    fn table_pick(&self, li: usize, t: &TableRef<'_>) -> Pick {
        let mut best: Option<Pick> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.applies_to_table(t) {
                let pick = Pick {
                    action: rule.action,
                    basis: Basis::Rule { id: RuleId { layer: li, index }, whole_table: true },
                };
                best = Some(best.map_or(pick, |b| b.stricter(pick)));
            }
        }
        best.unwrap_or(Pick { action: self.default_action(), basis: Basis::Default { layer: Some(li) } })
    }

    fn column_pick(&self, li: usize, t: &TableRef<'_>, c: &ColumnRef<'_>) -> Pick {
        let mut best = self.table_pick(li, t);
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.applies_to_column(t, c) {
                best = best.stricter(Pick {
                    action: rule.action,
                    basis: Basis::Rule { id: RuleId { layer: li, index }, whole_table: rule.applies_to_table(t) },
                });
            }
        }
        best
    }
}

impl Policy {
    fn combine(&self, per_layer: impl Iterator<Item = Pick>) -> Pick {
        if self.mode() == Mode::Deny {
            return Pick { action: Action::Deny, basis: Basis::Mode };
        }
        per_layer
            .reduce(Pick::stricter)
            .unwrap_or(Pick { action: Action::Cache, basis: Basis::Default { layer: None } })
    }

    pub(crate) fn table_pick(&self, t: &TableRef<'_>) -> Pick {
        self.combine(self.layers.iter().enumerate().map(|(li, l)| l.table_pick(li, t)))
    }

    pub(crate) fn column_pick(&self, t: &TableRef<'_>, c: &ColumnRef<'_>) -> Pick {
        self.combine(self.layers.iter().enumerate().map(|(li, l)| l.column_pick(li, t, c)))
    }

    /// The action for table `t` in one layer only (for `explain`).
    pub(crate) fn layer_action(&self, li: usize, t: &TableRef<'_>, c: Option<&ColumnRef<'_>>) -> Action {
        match (self.layers.get(li), c) {
            (Some(l), Some(c)) => l.column_pick(li, t, c).action,
            (Some(l), None) => l.table_pick(li, t).action,
            (None, _) => Action::Cache,
        }
    }

    /// Words a pick as a [`Decision`].
    pub(crate) fn decision(&self, pick: Pick, t: &TableRef<'_>) -> Decision {
        let table = format!("{}.{}", t.schema, t.table);
        let (rule, reason) = match pick.basis {
            Basis::Mode => {
                let at = self.mode.as_ref().map_or_else(String::new, |s| format!(" at {}", s.origin));
                (None, format!("mode = \"deny\"{at}: nothing of the lake is stored or shown on this machine"))
            }
            Basis::Rule { id, whole_table } => {
                let text = match self.rule(id) {
                    Some(r) => {
                        let mut text =
                            format!("rule {} of {} (line {}: {r})", id.index + 1, r.origin.file, r.origin.line);
                        if whole_table {
                            text.push_str(&format!(" selects {table}"));
                        }
                        if let Some(note) = &r.reason {
                            text.push_str(&format!(": {note}"));
                        }
                        text
                    }
                    None => format!("rule {id:?}"),
                };
                (Some(id), text)
            }
            Basis::Default { layer } => {
                let text = match layer.and_then(|li| self.layers.get(li)) {
                    Some(l) => match &l.default_action {
                        Some(s) => format!(
                            "no rule of {} selects {table}; default_action = \"{}\" at {}",
                            l.file, s.value, s.origin
                        ),
                        None => format!("no rule of {} selects {table}; the default action is cache", l.file),
                    },
                    None => "no policy rules; the default action is cache".to_string(),
                };
                (None, text)
            }
        };
        Decision { action: pick.action, rule, reason }
    }

    /// What may happen to table `t`: `Deny` hides it (and all its columns), `ReadThrough`
    /// serves it without storing, `Cache` allows storing. A visible table may still have
    /// denied or read-through columns: ask [`Policy::column_decision`] per column.
    pub fn table_decision(&self, t: &TableRef<'_>) -> Decision {
        self.decision(self.table_pick(t), t)
    }

    /// What may happen to column `c` of table `t`: never less strict than the table.
    pub fn column_decision(&self, t: &TableRef<'_>, c: &ColumnRef<'_>) -> Decision {
        self.decision(self.column_pick(t, c), t)
    }

    /// The action for bytes that carry data of several columns of `t`: Parquet footers
    /// (their statistics hold min/max values of every column), page indexes, and files cached
    /// whole (encrypted ones). It is the strictest of the table's and all `columns`' actions,
    /// because storing such bytes stores a little of every column.
    pub fn file_decision(&self, t: &TableRef<'_>, columns: &[ColumnRef<'_>]) -> Decision {
        let mut best = self.table_pick(t);
        let mut from_column: Option<&str> = None;
        for c in columns {
            let pick = self.column_pick(t, c);
            if pick.action > best.action {
                best = pick;
                from_column = Some(c.name);
            }
        }
        let mut decision = self.decision(best, t);
        if let Some(name) = from_column {
            decision.reason =
                format!("column {name} is the strictest of {}.{}: {}", t.schema, t.table, decision.reason);
        }
        decision
    }

    /// The action for table `t`, without wording a reason (for hot paths).
    pub fn table_action(&self, t: &TableRef<'_>) -> Action {
        self.table_pick(t).action
    }

    /// The action for column `c` of `t`, without wording a reason (for hot paths).
    pub fn column_action(&self, t: &TableRef<'_>, c: &ColumnRef<'_>) -> Action {
        self.column_pick(t, c).action
    }

    /// Whether table `t` may be listed, opened and queried.
    pub fn may_show_table(&self, t: &TableRef<'_>) -> bool {
        self.table_action(t).is_visible()
    }

    /// Whether column `c` of `t` may be shown and read.
    pub fn may_show_column(&self, t: &TableRef<'_>, c: &ColumnRef<'_>) -> bool {
        self.column_action(t, c).is_visible()
    }

    /// Whether bytes of column `c` of `t` may be written to disk.
    pub fn may_store_column(&self, t: &TableRef<'_>, c: &ColumnRef<'_>) -> bool {
        self.column_action(t, c).may_store()
    }
}
