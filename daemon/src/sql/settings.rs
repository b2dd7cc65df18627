//! A session's settings. DuckDB's configuration is locked, so `SET` never reaches it: the
//! session remembers what clients set (drivers set `DateStyle`, `extra_float_digits`,
//! `application_name` ... on connect) and answers `SHOW` like PostgreSQL. Only
//! `statement_timeout` changes behaviour.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::QueryError;

/// The PostgreSQL version announced to clients (drivers pick their catalog queries by it).
pub const SERVER_VERSION: &str = "16.0";

/// What `SHOW` (and `current_setting()`) answers for settings nobody has set.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", "160000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("transaction_isolation", "serializable"),
    ("default_transaction_isolation", "serializable"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("search_path", "main"),
    ("application_name", ""),
    ("extra_float_digits", "1"),
    ("max_identifier_length", "63"),
    ("is_superuser", "off"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
];

#[derive(Debug)]
pub struct Settings {
    values: BTreeMap<String, String>,
    statement_timeout: Option<Duration>,
}

impl Settings {
    pub fn new(statement_timeout: Option<Duration>) -> Self {
        Self { values: BTreeMap::new(), statement_timeout }
    }

    /// The limit on one statement's run time, if any.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// `SET name = value`; `value` None is `RESET`/`DEFAULT`.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), QueryError> {
        match name {
            "statement_timeout" => {
                self.statement_timeout = match value {
                    None => None,
                    Some(v) => {
                        parse_duration(v).map_err(|message| QueryError::Setting { name: name.into(), message })?
                    }
                };
            }
            "warmlake.snapshot" => {
                // time travel is not served yet: refuse clearly rather than ignore
                if let Some(v) = value {
                    let id = v
                        .parse::<i64>()
                        .map_err(|e| QueryError::Setting { name: name.into(), message: e.to_string() })?;
                    return Err(QueryError::UnknownSnapshot(id));
                }
            }
            _ => {}
        }
        match value {
            Some(v) => self.values.insert(name.to_owned(), v.to_owned()),
            None => self.values.remove(name),
        };
        Ok(())
    }

    /// `SHOW name`; `snapshot` is the lake snapshot the session reads.
    pub fn show(&self, name: &str, snapshot: i64) -> Result<String, QueryError> {
        if name == "warmlake.snapshot" {
            return Ok(snapshot.to_string());
        }
        if name == "statement_timeout" {
            return Ok(self.statement_timeout.map_or("0".to_owned(), |d| format!("{}ms", d.as_millis())));
        }
        if let Some(v) = self.values.get(name) {
            return Ok(v.clone());
        }
        DEFAULTS
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .ok_or_else(|| QueryError::UnknownSetting(name.to_owned()))
    }
}

/// PostgreSQL's forms: a number of milliseconds, or a number with `ms`, `s`, `min`, `h`.
/// Zero means no limit.
fn parse_duration(v: &str) -> Result<Option<Duration>, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("\"{v}\" is not a duration"))?;
    let ms = match unit.trim() {
        "" | "ms" => number,
        "s" => number * 1e3,
        "min" => number * 60e3,
        "h" => number * 3600e3,
        other => return Err(format!("unknown unit \"{other}\" (use ms, s, min or h)")),
    };
    Ok((ms > 0.0).then(|| Duration::from_secs_f64(ms / 1e3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeout_forms() {
        assert_eq!(parse_duration("1500"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(parse_duration("2s"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(parse_duration("1min"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(parse_duration("0"), Ok(None));
        assert!(parse_duration("soon").is_err());
        let mut s = Settings::new(None);
        s.set("statement_timeout", Some("250ms")).expect("valid");
        assert_eq!(s.show("statement_timeout", 1).expect("known"), "250ms");
    }

    #[test]
    fn show_answers_like_postgres() {
        let mut s = Settings::new(None);
        assert_eq!(s.show("server_version", 7).expect("known"), SERVER_VERSION);
        assert_eq!(s.show("warmlake.snapshot", 7).expect("known"), "7");
        s.set("datestyle", Some("ISO, DMY")).expect("accepted");
        assert_eq!(s.show("datestyle", 7).expect("known"), "ISO, DMY");
        assert!(matches!(s.show("no_such_thing", 7), Err(QueryError::UnknownSetting(_))));
    }
}
