//! `warmlake policy explain schema.table[.column]`: which rules were considered, which
//! applied, and what decided — as text for people and as a serialisable value for `--json`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::action::{Action, Mode};
use crate::decision::{ColumnRef, Decision, RuleId, TableRef};
use crate::policy::Policy;
use crate::rule::Scope;
use crate::setting::Origin;

/// `schema.table` or `schema.table.column`, as typed on the command line. A part containing
/// a dot is written in double quotes, as in SQL: `"my.schema".orders`; `""` inside quotes is
/// a literal quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectName {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Column name, if one was given.
    pub column: Option<String>,
}

impl FromStr for ObjectName {
    type Err = String;

    fn from_str(text: &str) -> Result<ObjectName, String> {
        let mut parts = vec![String::new()];
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            let part = parts.last_mut().ok_or("empty name")?;
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    part.push('"');
                }
                '"' => quoted = !quoted,
                '.' if !quoted => parts.push(String::new()),
                c => part.push(c),
            }
        }
        if quoted {
            return Err(format!("unclosed quote in {text:?}"));
        }
        if parts.iter().any(String::is_empty) {
            return Err(format!("empty name part in {text:?}"));
        }
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(schema), Some(table), column, None) => Ok(ObjectName { schema, table, column }),
            _ => Err(format!(
                "{text:?}: expected schema.table or schema.table.column (quote a name holding a dot: \"a.b\".t)"
            )),
        }
    }
}

/// How one rule fared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleTrace {
    /// The rule.
    pub id: RuleId,
    /// Its line in its file.
    pub line: usize,
    /// The rule as written: `match = "finance.*" -> deny`.
    pub rule: String,
    /// Its action.
    pub action: Action,
    /// Whether it applies, to the whole table or to the column only.
    pub applies: Option<Scope>,
    /// One note per selector: what matched and what did not.
    pub notes: Vec<String>,
    /// The admin's `reason`, if any.
    pub reason: Option<String>,
    /// Whether this rule made the final decision.
    pub decisive: bool,
}

/// How one policy file decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerTrace {
    /// The file.
    pub file: String,
    /// Its default action.
    pub default_action: Action,
    /// Every rule of the file, in order.
    pub rules: Vec<RuleTrace>,
    /// This file's decision on its own.
    pub action: Action,
}

/// The answer to `warmlake policy explain`. `Display` gives the text; serialise for `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `schema.table` or `schema.table.column`.
    pub object: String,
    /// `schema.table`.
    pub table_name: String,
    /// The table's tags as given.
    pub table_tags: BTreeMap<String, String>,
    /// The column's tags as given, when a column is explained.
    pub column_tags: Option<BTreeMap<String, String>>,
    /// The effective mode.
    pub mode: Mode,
    /// Where the mode was set.
    pub mode_origin: Option<Origin>,
    /// Each policy file's reasoning, central first.
    pub layers: Vec<LayerTrace>,
    /// The table's decision.
    pub table: Decision,
    /// The column's decision, when a column is explained.
    pub column: Option<Decision>,
}

impl Explanation {
    /// The decision for the object asked about: the column's if one was given, else the
    /// table's.
    pub fn outcome(&self) -> &Decision {
        self.column.as_ref().unwrap_or(&self.table)
    }
}

fn tag_map(tags: &[(String, String)]) -> BTreeMap<String, String> {
    tags.iter().cloned().collect()
}

impl Policy {
    /// Explains the decision on table `t`, or on its column `c`.
    pub fn explain(&self, t: &TableRef<'_>, c: Option<&ColumnRef<'_>>) -> Explanation {
        let table = self.table_decision(t);
        let column = c.map(|c| self.column_decision(t, c));
        let decisive = column.as_ref().unwrap_or(&table).rule;
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(li, layer)| LayerTrace {
                file: layer.file.clone(),
                default_action: layer.default_action(),
                rules: layer
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| {
                        let id = RuleId { layer: li, index };
                        let check = rule.check(t, c);
                        RuleTrace {
                            id,
                            line: rule.origin.line,
                            rule: rule.to_string(),
                            action: rule.action,
                            applies: check.applies,
                            notes: check.notes,
                            reason: rule.reason.clone(),
                            decisive: decisive == Some(id),
                        }
                    })
                    .collect(),
                action: self.layer_action(li, t, c),
            })
            .collect();
        let table_name = format!("{}.{}", t.schema, t.table);
        let mut object = table_name.clone();
        if let Some(c) = c {
            object.push('.');
            object.push_str(c.name);
        }
        Explanation {
            object,
            table_name,
            table_tags: tag_map(t.tags),
            column_tags: c.map(|c| tag_map(c.tags)),
            mode: self.mode(),
            mode_origin: self.mode.as_ref().map(|s| s.origin.clone()),
            layers,
            table,
            column,
        }
    }
}

fn show_tags(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".to_string();
    }
    let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    pairs.join(", ")
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.object, self.outcome().action)?;
        write!(f, "  table tags: {}", show_tags(&self.table_tags))?;
        if let Some(tags) = &self.column_tags {
            write!(f, "; column tags: {}", show_tags(tags))?;
        }
        writeln!(f)?;
        match &self.mode_origin {
            Some(origin) => writeln!(f, "  mode: {} ({origin})", self.mode)?,
            None => writeln!(f, "  mode: {} (default)", self.mode)?,
        }
        if self.layers.is_empty() {
            writeln!(f, "  no policy rules")?;
        }
        for layer in &self.layers {
            writeln!(f, "  {} (default action {}):", layer.file, layer.default_action)?;
            if layer.rules.is_empty() {
                writeln!(f, "    no rules")?;
            }
            for r in &layer.rules {
                let mark = if r.decisive { "  <- decides" } else { "" };
                writeln!(f, "    rule {}, line {}: {}{mark}", r.id.index + 1, r.line, r.rule)?;
                let verdict = match r.applies {
                    Some(Scope::Table) => "applies to the table",
                    Some(Scope::Column) => "applies to the column",
                    None => "does not apply",
                };
                writeln!(f, "      {verdict}: {}", r.notes.join("; "))?;
            }
            writeln!(f, "    => {}", layer.action)?;
        }
        write!(f, "  table {}: {} ({})", self.table_name, self.table.action, self.table.reason)?;
        if let Some(column) = &self.column {
            write!(f, "\n  column {}: {} ({})", self.object, column.action, column.reason)?;
        }
        Ok(())
    }
}
