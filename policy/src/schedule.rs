//! Jobs that keep the right data warm: `[refresh]`, `[[prewarm]]` and `[evict]`.
//!
//! This crate only parses and validates them (a bad cron expression is a parse error with a
//! position); the daemon's scheduler runs them, reads `.ics` calendars and watches files.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::duration::format_duration;
use crate::glob::{Glob, QualifiedGlob};
use crate::setting::{Origin, Setting, serialize_secs};

/// A validated cron expression, with the parsed [`cron::Schedule`].
///
/// Accepted forms, evaluated by the daemon in the machine's local time zone:
/// - 5 fields, as in crontab: `min hour day-of-month month day-of-week` (`"45 8 * * Mon"`);
///   the seconds field `0` is prepended for the `cron` crate.
/// - 6 or 7 fields, as the `cron` crate reads them: `sec min hour dom month dow [year]`
///   (`"0 45 8 * * Mon"`).
/// - `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
///
/// Days of the week must be written as names (`Mon`, `Mon-Fri`, `Sat,Sun`), never numbers:
/// crontab counts Sunday as 0 while the `cron` crate counts it as 1, so `1` would mean Monday
/// to the admin and Sunday to the daemon. Refusing the number is safer than guessing.
#[derive(Clone, Debug)]
pub struct Cron {
    source: String,
    schedule: cron::Schedule,
}

impl Cron {
    /// Parses and validates `expr`; the error says what is wrong.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let trimmed = expr.trim();
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let normalised = if trimmed.starts_with('@') {
            trimmed.to_string()
        } else {
            let day_of_week = match fields.len() {
                5 => fields[4],
                6 | 7 => fields[5],
                n => {
                    return Err(format!(
                        "{n} fields; expected 5 (min hour day month weekday), 6 (seconds first) or 7 (year last)"
                    ));
                }
            };
            check_day_of_week(day_of_week)?;
            if fields.len() == 5 { format!("0 {}", fields.join(" ")) } else { fields.join(" ") }
        };
        let schedule = cron::Schedule::from_str(&normalised).map_err(|e| {
            let message = e.to_string();
            if message.is_empty() { "not a valid cron expression".to_string() } else { message }
        })?;
        Ok(Cron { source: expr.to_string(), schedule })
    }

    /// The expression as written in the policy.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed schedule: `schedule().upcoming(chrono::Local)` or `after(&t)` gives fire
    /// times.
    pub fn schedule(&self) -> &cron::Schedule {
        &self.schedule
    }
}

fn check_day_of_week(field: &str) -> Result<(), String> {
    for item in field.split(',') {
        // A step (`*/2`) is a count, not a day; only the days themselves must be names.
        let days = item.split('/').next().unwrap_or_default();
        if days.chars().any(|c| c.is_ascii_digit()) {
            return Err(format!(
                "day of week `{field}` uses numbers; write names such as Mon, Mon-Fri or Sat,Sun \
                 (crontab counts Sunday as 0, the cron crate as 1)"
            ));
        }
    }
    Ok(())
}

impl PartialEq for Cron {
    fn eq(&self, other: &Cron) -> bool {
        self.source == other.source
    }
}

impl Eq for Cron {}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Cron {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// Which columns a prewarm job fetches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnSelection {
    /// The columns the heat statistics call hot (the default).
    Hot,
    /// Every column the policy lets this machine cache.
    All,
    /// Columns whose names match one of these globs.
    Listed(Vec<Glob>),
}

impl ColumnSelection {
    /// Whether a listed selection names `column` (always false for `Hot` and `All`, which the
    /// daemon resolves itself).
    pub fn lists(&self, column: &str) -> bool {
        match self {
            ColumnSelection::Listed(globs) => globs.iter().any(|g| g.matches(column)),
            ColumnSelection::Hot | ColumnSelection::All => false,
        }
    }
}

/// Which snapshot a prewarm job fetches. Only `latest` exists today; the enum leaves room for
/// a pinned snapshot id without changing the file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotSelection {
    /// The newest snapshot at the time the job runs.
    #[default]
    Latest,
}

/// Fire a prewarm job `lead` before each event of a local iCalendar file whose title matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CalendarTrigger {
    /// Path of the `.ics` file as written (the daemon expands `~` and reads it).
    pub path: String,
    /// How long before each event the job fires (`lead`, default 15 minutes).
    #[serde(serialize_with = "serialize_secs", rename = "lead_secs")]
    pub lead: Duration,
    /// Event titles that count (`title`, default `*`: every event), matched ignoring case.
    pub title: Glob,
}

/// The lead time of a calendar trigger when the policy gives none: long enough to fetch a
/// few gigabytes on an ordinary connection before the meeting starts.
pub const DEFAULT_LEAD: Duration = Duration::from_secs(15 * 60);

/// A named `[[prewarm]]` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrewarmJob {
    /// Unique name, used by `warmlake status` and the CLI.
    pub name: String,
    /// When to run, if on a clock.
    pub cron: Option<Cron>,
    /// When to run, if before calendar events.
    pub calendar: Option<CalendarTrigger>,
    /// Tables to prewarm, as `schema.table` globs.
    pub tables: Vec<QualifiedGlob>,
    /// Columns to prewarm.
    pub columns: ColumnSelection,
    /// Snapshot to prewarm.
    pub snapshot: SnapshotSelection,
    /// Whether a run missed while the machine slept runs once at wake (default false).
    pub catch_up: bool,
    /// Where the job is defined.
    pub origin: Origin,
}

impl PrewarmJob {
    /// Whether the job covers table `schema.table`. The policy still decides whether its bytes
    /// may be cached: a job never widens what rules allow.
    pub fn selects_table(&self, schema: &str, table: &str) -> bool {
        self.tables.iter().any(|g| g.matches(schema, table))
    }
}

impl fmt::Display for PrewarmJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tables: Vec<&str> = self.tables.iter().map(QualifiedGlob::as_str).collect();
        write!(f, "{:?}: tables {tables:?}", self.name)?;
        match &self.columns {
            ColumnSelection::Hot => write!(f, ", hot columns")?,
            ColumnSelection::All => write!(f, ", all columns")?,
            ColumnSelection::Listed(globs) => {
                let names: Vec<&str> = globs.iter().map(Glob::as_str).collect();
                write!(f, ", columns {names:?}")?;
            }
        }
        if let Some(cron) = &self.cron {
            write!(f, ", cron {:?}", cron.source())?;
        }
        if let Some(cal) = &self.calendar {
            write!(f, ", {} before events titled {:?} in {}", format_duration(cal.lead), cal.title.as_str(), cal.path)?;
        }
        if self.catch_up {
            write!(f, ", catch up")?;
        }
        write!(f, " ({})", self.origin)
    }
}

/// All jobs of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Schedules {
    pub(crate) refresh: Option<Setting<Cron>>,
    pub(crate) evict: Option<Setting<Cron>>,
    pub(crate) prewarm: Vec<PrewarmJob>,
}

impl Schedules {
    /// Refresh schedule when the policy has no `[refresh]`: every 5 minutes, frequent enough
    /// that a laptop sees new data within a coffee break, rare enough to cost nothing.
    pub const DEFAULT_REFRESH: &'static str = "0 */5 * * * *";
    /// Evict schedule when the policy has no `[evict]`: hourly, at minute 0; `max_age` is
    /// measured in hours or days, so an hour of lateness is within its precision.
    pub const DEFAULT_EVICT: &'static str = "0 0 * * * *";

    /// When to poll the catalog for a new snapshot (the `[refresh]` cron, or the default).
    pub fn refresh(&self) -> Cron {
        self.refresh.as_ref().map_or_else(|| default_cron(Self::DEFAULT_REFRESH), |s| s.value.clone())
    }

    /// When to apply the budget and `max_age` (the `[evict]` cron, or the default).
    pub fn evict(&self) -> Cron {
        self.evict.as_ref().map_or_else(|| default_cron(Self::DEFAULT_EVICT), |s| s.value.clone())
    }

    /// `[refresh]` as written, if it was.
    pub fn refresh_setting(&self) -> Option<&Setting<Cron>> {
        self.refresh.as_ref()
    }

    /// `[evict]` as written, if it was.
    pub fn evict_setting(&self) -> Option<&Setting<Cron>> {
        self.evict.as_ref()
    }

    /// The `[[prewarm]]` jobs, in file order (central ones first after a merge).
    pub fn prewarm(&self) -> &[PrewarmJob] {
        &self.prewarm
    }

    /// The prewarm job called `name`.
    pub fn prewarm_job(&self, name: &str) -> Option<&PrewarmJob> {
        self.prewarm.iter().find(|j| j.name == name)
    }
}

fn default_cron(expr: &str) -> Cron {
    // The defaults are constants covered by `defaults_parse`; a failure here is a bug in this
    // file, not in anyone's policy.
    Cron::parse(expr).expect("default cron expressions are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Utc, Weekday};

    fn next_after(cron: &Cron, y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
        let start = Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("valid date");
        cron.schedule().after(&start).next().expect("a next fire time")
    }

    #[test]
    fn defaults_parse() {
        let s = Schedules::default();
        assert_eq!(s.refresh().source(), Schedules::DEFAULT_REFRESH);
        assert_eq!(s.evict().source(), Schedules::DEFAULT_EVICT);
    }

    #[test]
    fn five_field_crontab_form() {
        // 2026-11-04 is a Wednesday: the next Monday 08:45 is 2026-11-09.
        let cron = Cron::parse("45 8 * * Mon").expect("valid");
        let next = next_after(&cron, 2026, 11, 4);
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!((next.day(), next.hour(), next.minute(), next.second()), (9, 8, 45, 0));
        assert_eq!(cron.source(), "45 8 * * Mon");
    }

    #[test]
    fn six_and_seven_field_forms() {
        let six = Cron::parse("0 45 8 * * Mon").expect("valid");
        let five = Cron::parse("45 8 * * Mon").expect("valid");
        assert_eq!(next_after(&six, 2026, 11, 4), next_after(&five, 2026, 11, 4));
        let seven = Cron::parse("0 0 12 1 Jan * 2030").expect("valid");
        assert_eq!(next_after(&seven, 2026, 11, 4).year(), 2030);
        let every5 = Cron::parse("0 */5 * * * *").expect("valid");
        assert_eq!(next_after(&every5, 2026, 11, 4).minute(), 5);
        let weekdays = Cron::parse("0 9 * * Mon-Fri").expect("valid");
        assert_eq!(next_after(&weekdays, 2026, 11, 7).weekday(), Weekday::Mon);
        assert!(Cron::parse("@daily").is_ok());
        assert!(Cron::parse("0 0 * * */2").is_ok(), "a step is not a day");
    }

    #[test]
    fn bad_crons() {
        for (expr, needle) in [
            ("", "0 fields"),
            ("* * * *", "4 fields"),
            ("0 0 0 * * * * *", "8 fields"),
            ("45 8 * * 1", "uses numbers"),
            ("0 45 8 * * 1-5", "uses numbers"),
            ("0 45 8 * * Mon,3", "uses numbers"),
            ("61 8 * * Mon", ""),
            ("0 45 8 * * Mno", ""),
            ("@sometimes", ""),
        ] {
            let err = Cron::parse(expr).expect_err(expr);
            assert!(!err.is_empty() && err.contains(needle), "{expr:?}: {err}");
        }
    }

    #[test]
    fn column_selection() {
        let listed =
            ColumnSelection::Listed(vec![Glob::new("amount").expect("valid"), Glob::new("region*").expect("valid")]);
        assert!(listed.lists("AMOUNT"));
        assert!(listed.lists("region_code"));
        assert!(!listed.lists("email"));
        assert!(!ColumnSelection::All.lists("amount"));
    }
}
