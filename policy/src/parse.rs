//! From TOML text to a validated [`Policy`].
//!
//! serde reads the file into `Raw*` structs (`deny_unknown_fields`, so a typo is an error,
//! not a silently ignored setting). Every value this module validates is a
//! [`toml::Spanned`], so a bad size, glob or cron expression is reported at the exact line
//! and column of the value, like a syntax error is.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Range;

use serde::Deserialize;
use toml::{Spanned, Value};

use crate::action::{Action, Mode};
use crate::duration::parse_duration;
use crate::error::{ErrorKind, PolicyError, Source};
use crate::glob::{Glob, QualifiedGlob};
use crate::policy::{Layer, Policy};
use crate::rule::{Rule, TagCondition};
use crate::schedule::{CalendarTrigger, ColumnSelection, Cron, DEFAULT_LEAD, PrewarmJob, Schedules, SnapshotSelection};
use crate::setting::{Origin, Setting};
use crate::size::{parse_percent, parse_size};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    local: Option<RawLocal>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    refresh: Option<RawCronTable>,
    #[serde(default)]
    prewarm: Vec<Spanned<RawPrewarm>>,
    evict: Option<RawCronTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    mode: Option<Spanned<String>>,
    default_action: Option<Spanned<String>>,
    max_cache: Option<Spanned<Value>>,
    min_free_disk: Option<Spanned<Value>>,
    max_age: Option<Spanned<Value>>,
    keep_snapshots: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    table: Option<Spanned<String>>,
    except: Option<Vec<Spanned<String>>>,
    columns: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(alias = "tags")]
    tag: Option<Spanned<BTreeMap<String, Spanned<Value>>>>,
    action: Option<Spanned<String>>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCronTable {
    cron: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrewarm {
    name: Spanned<String>,
    cron: Option<Spanned<String>>,
    tables: Spanned<Vec<Spanned<String>>>,
    columns: Option<Spanned<RawColumns>>,
    snapshot: Option<Spanned<String>>,
    catch_up: Option<bool>,
    calendar: Option<Spanned<String>>,
    lead: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
}

/// `columns` of a prewarm job: `"hot"`, `"all"` or a list of globs. Deserialised by hand so
/// that each list item keeps its own span.
enum RawColumns {
    Keyword(String),
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawColumns {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawColumns;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"hot\", \"all\" or a list of column names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawColumns, E> {
                Ok(RawColumns::Keyword(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawColumns, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(RawColumns::List(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A TOML value's type, for messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

struct Parser<'a> {
    src: Source<'a>,
}

impl<'a> Parser<'a> {
    fn err(&self, span: Range<usize>, kind: ErrorKind) -> PolicyError {
        self.src.error(span, kind)
    }

    fn origin(&self, span: &Range<usize>) -> Origin {
        Origin { file: self.src.file().to_string(), line: self.src.line(span.start) }
    }

    fn setting<T>(&self, value: T, span: &Range<usize>) -> Setting<T> {
        Setting { value, origin: self.origin(span) }
    }

    fn action(&self, raw: &Spanned<String>) -> Result<Action, PolicyError> {
        Action::parse(raw.get_ref())
            .ok_or_else(|| self.err(raw.span(), ErrorKind::UnknownAction { found: raw.get_ref().clone() }))
    }

    fn glob(&self, field: &'static str, raw: &Spanned<String>) -> Result<Glob, PolicyError> {
        Glob::new(raw.get_ref()).map_err(|reason| {
            self.err(raw.span(), ErrorKind::BadGlob { field, pattern: raw.get_ref().clone(), reason })
        })
    }

    fn qualified_glob(&self, field: &'static str, raw: &Spanned<String>) -> Result<QualifiedGlob, PolicyError> {
        QualifiedGlob::new(raw.get_ref()).map_err(|reason| {
            self.err(raw.span(), ErrorKind::BadGlob { field, pattern: raw.get_ref().clone(), reason })
        })
    }

    fn cron(&self, raw: &Spanned<String>) -> Result<Cron, PolicyError> {
        Cron::parse(raw.get_ref())
            .map_err(|reason| self.err(raw.span(), ErrorKind::BadCron { expr: raw.get_ref().clone(), reason }))
    }

    fn duration(&self, field: &'static str, raw: &Spanned<String>) -> Result<std::time::Duration, PolicyError> {
        parse_duration(raw.get_ref()).map_err(|reason| {
            self.err(raw.span(), ErrorKind::BadDuration { field, value: raw.get_ref().clone(), reason })
        })
    }

    fn size_error(&self, field: &'static str, raw: &Spanned<Value>, reason: String) -> PolicyError {
        let value = match raw.get_ref() {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.err(raw.span(), ErrorKind::BadSize { field, value, reason })
    }

    /// A size: a string with a unit, or an integer number of bytes.
    fn size(&self, field: &'static str, raw: &Spanned<Value>) -> Result<u64, PolicyError> {
        let result = match raw.get_ref() {
            Value::String(s) => parse_size(s),
            Value::Integer(n) => u64::try_from(*n).map_err(|_| "a size cannot be negative".to_string()),
            other => Err(format!("expected a size such as \"50GiB\" or a number of bytes, found {}", type_name(other))),
        };
        result.map_err(|reason| self.size_error(field, raw, reason))
    }

    fn local(&self, raw: RawLocal, policy: &mut Policy, layer: &mut Layer) -> Result<(), PolicyError> {
        if let Some(mode) = &raw.mode {
            let value = Mode::parse(mode.get_ref())
                .ok_or_else(|| self.err(mode.span(), ErrorKind::UnknownMode { found: mode.get_ref().clone() }))?;
            policy.mode = Some(self.setting(value, &mode.span()));
        }
        if let Some(raw) = &raw.default_action {
            layer.default_action = Some(self.setting(self.action(raw)?, &raw.span()));
        }
        let limits = &mut policy.limits;
        if let Some(raw) = &raw.max_cache {
            limits.max_cache = Some(self.setting(self.size("max_cache", raw)?, &raw.span()));
        }
        if let Some(raw) = &raw.min_free_disk {
            match raw.get_ref() {
                Value::String(s) if s.trim_end().ends_with('%') => {
                    let bp = parse_percent(s).map_err(|reason| self.size_error("min_free_disk", raw, reason))?;
                    limits.min_free_basis_points = Some(self.setting(bp, &raw.span()));
                }
                _ => {
                    let bytes = self.size("min_free_disk", raw)?;
                    limits.min_free_bytes = Some(self.setting(bytes, &raw.span()));
                }
            }
        }
        if let Some(raw) = &raw.max_age {
            let text = match raw.get_ref() {
                Value::String(s) => s.clone(),
                other => {
                    let reason = match other {
                        Value::Integer(n) => format!("write a unit, such as \"{n}d\" or \"{n}h\""),
                        other => format!("expected a duration such as \"7d\", found {}", type_name(other)),
                    };
                    return Err(self.err(
                        raw.span(),
                        ErrorKind::BadDuration { field: "max_age", value: other.to_string(), reason },
                    ));
                }
            };
            let value = self.duration("max_age", &Spanned::new(raw.span(), text))?;
            limits.max_age = Some(self.setting(value, &raw.span()));
        }
        if let Some(raw) = &raw.keep_snapshots {
            let value = match raw.get_ref() {
                Value::Integer(n) if *n >= 1 => u32::try_from(*n).ok(),
                _ => None,
            }
            .ok_or_else(|| {
                self.err(
                    raw.span(),
                    ErrorKind::BadValue {
                        field: "keep_snapshots",
                        reason: format!(
                            "expected a whole number of snapshots, at least 1 (the current one), found {}",
                            raw.get_ref()
                        ),
                    },
                )
            })?;
            limits.keep_snapshots = Some(self.setting(value, &raw.span()));
        }
        Ok(())
    }

    fn tag_value(&self, raw: &Spanned<Value>) -> Result<Glob, PolicyError> {
        let text = match raw.get_ref() {
            Value::String(s) => s.clone(),
            // DuckLake stores tag values as strings; `pii = true` means the string "true".
            Value::Boolean(b) => b.to_string(),
            Value::Integer(n) => n.to_string(),
            other => {
                return Err(self.err(
                    raw.span(),
                    ErrorKind::BadValue {
                        field: "tag",
                        reason: format!(
                            "a tag value is a string (a glob), a boolean or an integer, not {}",
                            type_name(other)
                        ),
                    },
                ));
            }
        };
        self.glob("tag", &Spanned::new(raw.span(), text))
    }

    fn rule(&self, raw: Spanned<RawRule>) -> Result<Rule, PolicyError> {
        let origin = self.origin(&raw.span());
        let header = raw.span();
        let raw = raw.into_inner();
        if raw.table.is_none() && raw.columns.is_none() && raw.tag.is_none() {
            return Err(self.err(header, ErrorKind::RuleWithoutSelector));
        }
        let table = raw.table.as_ref().map(|g| self.qualified_glob("match", g)).transpose()?;
        let except =
            raw.except.iter().flatten().map(|g| self.qualified_glob("except", g)).collect::<Result<Vec<_>, _>>()?;
        let columns = match &raw.columns {
            None => None,
            Some(list) if list.get_ref().is_empty() => {
                return Err(self.err(
                    list.span(),
                    ErrorKind::BadValue {
                        field: "columns",
                        reason: "an empty list selects no column; remove `columns` to select the whole table".into(),
                    },
                ));
            }
            Some(list) => Some(list.get_ref().iter().map(|g| self.glob("columns", g)).collect::<Result<Vec<_>, _>>()?),
        };
        let mut tags = Vec::new();
        if let Some(map) = &raw.tag {
            if map.get_ref().is_empty() {
                return Err(self.err(
                    map.span(),
                    ErrorKind::BadValue {
                        field: "tag",
                        reason: "an empty tag table would match everything; name at least one tag".into(),
                    },
                ));
            }
            for (key, value) in map.get_ref() {
                if key.is_empty() {
                    return Err(
                        self.err(value.span(), ErrorKind::BadValue { field: "tag", reason: "empty tag key".into() })
                    );
                }
                tags.push(TagCondition { key: key.clone(), value: self.tag_value(value)? });
            }
        }
        let action = raw.action.as_ref().map(|a| self.action(a)).transpose()?.unwrap_or_default();
        Ok(Rule { table, except, columns, tags, action, reason: raw.reason, origin })
    }

    fn prewarm(&self, raw: Spanned<RawPrewarm>) -> Result<PrewarmJob, PolicyError> {
        let header = raw.span();
        let origin = self.origin(&header);
        let raw = raw.into_inner();
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(
                raw.name.span(),
                ErrorKind::BadValue { field: "name", reason: "a prewarm job needs a non-empty name".into() },
            ));
        }
        let cron = raw.cron.as_ref().map(|c| self.cron(c)).transpose()?;
        if raw.tables.get_ref().is_empty() {
            return Err(self.err(
                raw.tables.span(),
                ErrorKind::BadValue { field: "tables", reason: "name at least one `schema.table` glob".into() },
            ));
        }
        let tables =
            raw.tables.get_ref().iter().map(|g| self.qualified_glob("tables", g)).collect::<Result<Vec<_>, _>>()?;
        let columns = match &raw.columns {
            None => ColumnSelection::Hot,
            Some(c) => self.column_selection(c)?,
        };
        let snapshot = match &raw.snapshot {
            None => SnapshotSelection::Latest,
            Some(s) if s.get_ref() == "latest" => SnapshotSelection::Latest,
            Some(s) => {
                return Err(self.err(
                    s.span(),
                    ErrorKind::BadValue {
                        field: "snapshot",
                        reason: format!("{:?}: only \"latest\" is supported", s.get_ref()),
                    },
                ));
            }
        };
        let calendar = match &raw.calendar {
            None => {
                for (field, value) in [("lead", &raw.lead), ("title", &raw.title)] {
                    if let Some(value) = value {
                        return Err(self.err(
                            value.span(),
                            ErrorKind::BadValue {
                                field,
                                reason: "only meaningful with `calendar = \"path.ics\"`".into(),
                            },
                        ));
                    }
                }
                None
            }
            Some(path) => {
                if path.get_ref().trim().is_empty() {
                    return Err(
                        self.err(path.span(), ErrorKind::BadValue { field: "calendar", reason: "empty path".into() })
                    );
                }
                let lead = match &raw.lead {
                    Some(lead) => self.duration("lead", lead)?,
                    None => DEFAULT_LEAD,
                };
                let title = match &raw.title {
                    Some(title) => self.glob("title", title)?,
                    // A constant pattern: parsing it cannot fail.
                    None => Glob::new("*").expect("`*` is a valid glob"),
                };
                Some(CalendarTrigger { path: path.get_ref().clone(), lead, title })
            }
        };
        if cron.is_none() && calendar.is_none() {
            return Err(self.err(
                header,
                ErrorKind::BadValue {
                    field: "prewarm",
                    reason: format!("job {name:?} never runs: give `cron`, `calendar`, or both"),
                },
            ));
        }
        Ok(PrewarmJob {
            name,
            cron,
            calendar,
            tables,
            columns,
            snapshot,
            catch_up: raw.catch_up.unwrap_or(false),
            origin,
        })
    }

    fn column_selection(&self, raw: &Spanned<RawColumns>) -> Result<ColumnSelection, PolicyError> {
        match raw.get_ref() {
            RawColumns::Keyword(s) if s == "hot" => Ok(ColumnSelection::Hot),
            RawColumns::Keyword(s) if s == "all" => Ok(ColumnSelection::All),
            RawColumns::Keyword(s) => Err(self.err(
                raw.span(),
                ErrorKind::BadValue {
                    field: "columns",
                    reason: format!("{s:?}: expected \"hot\", \"all\" or a list of column names"),
                },
            )),
            RawColumns::List(items) if items.is_empty() => Err(self.err(
                raw.span(),
                ErrorKind::BadValue { field: "columns", reason: "an empty list prewarms nothing".into() },
            )),
            RawColumns::List(items) => Ok(ColumnSelection::Listed(
                items.iter().map(|g| self.glob("columns", g)).collect::<Result<Vec<_>, _>>()?,
            )),
        }
    }
}

impl Policy {
    /// Parses and validates a policy. `file` is only used in error messages and to record
    /// where each rule and setting came from; nothing is read from disk.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let parser = Parser { src: Source::new(file, text) };
        let raw: RawPolicy = toml::from_str(text)
            .map_err(|e| parser.err(e.span().unwrap_or(0..0), ErrorKind::Toml(e.message().trim_end().to_string())))?;
        let mut policy = Policy::default();
        let mut layer =
            Layer { file: file.to_string(), default_action: None, rules: Vec::with_capacity(raw.rule.len()) };
        if let Some(local) = raw.local {
            parser.local(local, &mut policy, &mut layer)?;
        }
        for rule in raw.rule {
            layer.rules.push(parser.rule(rule)?);
        }
        policy.layers.push(layer);
        let mut schedules = Schedules::default();
        if let Some(refresh) = &raw.refresh {
            schedules.refresh = Some(parser.setting(parser.cron(&refresh.cron)?, &refresh.cron.span()));
        }
        if let Some(evict) = &raw.evict {
            schedules.evict = Some(parser.setting(parser.cron(&evict.cron)?, &evict.cron.span()));
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for raw_job in raw.prewarm {
            let name_span = raw_job.get_ref().name.span();
            let job = parser.prewarm(raw_job)?;
            match names.entry(job.name.clone()) {
                Entry::Occupied(first) => {
                    return Err(parser
                        .err(name_span, ErrorKind::DuplicatePrewarmName { name: job.name, first_line: *first.get() }));
                }
                Entry::Vacant(slot) => {
                    slot.insert(parser.src.line(name_span.start));
                }
            }
            schedules.prewarm.push(job);
        }
        policy.schedules = schedules;
        Ok(policy)
    }
}
