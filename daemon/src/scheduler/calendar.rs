//! Calendar triggers: a prewarm job fires `lead` before each event of a local `.ics` file whose
//! title matches. The file is user input (exported by a calendar app, possibly half-written
//! while it syncs), so parsing never panics: a file that is not iCalendar is an error the
//! daemon logs, and an event whose times cannot be read is skipped and named, not fatal for
//! the rest of the file.
//!
//! Times: `DTSTART` in UTC, with a `TZID` (IANA names, resolved by chrono-tz) or floating
//! (the machine's local time, which is what a floating time means in RFC 5545). Recurrences
//! (`RRULE`, `RDATE`, `EXDATE`) are expanded by the `rrule` crate through `icalendar`; an
//! instance moved or cancelled by a `RECURRENCE-ID` event replaces the series' occurrence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use icalendar::{Calendar, CalendarDateTime, Component, DatePerhapsTime, EventStatus, RRuleSet, Tz};
use warmlake_policy::CalendarTrigger;

/// Why a calendar file gave no events.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read calendar {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not an iCalendar file.
    #[error("not an iCalendar file: {0}")]
    Malformed(String),
}

/// One event: its title and every time it starts.
#[derive(Debug)]
struct Event {
    title: String,
    starts: RRuleSet,
}

/// A parsed calendar, with each event's recurrence set built once (the daemon asks for the
/// next firing every few seconds; the file changes rarely).
#[derive(Debug)]
pub struct ParsedCalendar {
    events: Vec<Event>,
    skipped: Vec<String>,
}

impl ParsedCalendar {
    /// Parses `text`. Cancelled events are left out; events whose start or recurrence cannot
    /// be read are left out and listed in [`ParsedCalendar::skipped`].
    pub fn parse(text: &str) -> Result<ParsedCalendar, CalendarError> {
        // The parser accepts text without any component; a file that is not a calendar at all
        // must be reported, not read as an empty calendar.
        // Some exporters write a byte-order mark.
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if !text.starts_with("BEGIN:VCALENDAR") {
            return Err(CalendarError::Malformed("does not start with BEGIN:VCALENDAR".into()));
        }
        let calendar: Calendar = text.parse().map_err(CalendarError::Malformed)?;
        // An instance of a series that was moved, retitled or cancelled is a separate event
        // with the series' UID and the original start as RECURRENCE-ID; that original start
        // no longer counts (calendar apps do not add an EXDATE for it).
        let mut replaced: HashMap<&str, Vec<DateTime<Tz>>> = HashMap::new();
        for event in calendar.events() {
            if let (Some(uid), Some(original)) = (event.get_uid(), event.get_recurrence_id().and_then(instant)) {
                replaced.entry(uid).or_default().push(original);
            }
        }
        let mut events = Vec::new();
        let mut skipped = Vec::new();
        for event in calendar.calendar_events() {
            if event.get_status() == Some(EventStatus::Cancelled) {
                continue;
            }
            let title = event.get_summary().unwrap_or_default().to_string();
            match event.get_recurrence() {
                Ok(mut starts) => {
                    let is_series = event.get_recurrence_id().is_none();
                    let moved = event.get_uid().and_then(|uid| replaced.get(uid)).filter(|_| is_series);
                    for original in moved.into_iter().flatten() {
                        starts = starts.exdate(*original);
                    }
                    events.push(Event { title, starts });
                }
                Err(e) => skipped.push(format!("{title:?}: {e}")),
            }
        }
        Ok(ParsedCalendar { events, skipped })
    }

    /// Events left out because their times could not be read, as `"title": reason`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

/// The instant of a RECURRENCE-ID, read as the `rrule` crate reads a DTSTART (floating times
/// and dates in this machine's time zone), so that it equals the occurrence it replaces.
fn instant(at: DatePerhapsTime) -> Option<DateTime<Tz>> {
    match at {
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(naive)) => Tz::LOCAL.from_local_datetime(&naive).single(),
        DatePerhapsTime::DateTime(other) => other.try_into_utc().map(|utc| utc.with_timezone(&Tz::UTC)),
        DatePerhapsTime::Date(date) => Tz::LOCAL.from_local_datetime(&date.and_time(NaiveTime::MIN)).single(),
    }
}

/// Reads and parses the calendar at `path`.
pub fn read_calendar(path: &Path) -> Result<ParsedCalendar, CalendarError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| CalendarError::Read { path: path.to_path_buf(), source })?;
    ParsedCalendar::parse(&text)
}

/// When `trigger` next fires strictly after `now`: `lead` before the earliest start of a
/// matching event that is more than `lead` away. Strictly after, so that asking again at a
/// firing instant gives the next occurrence instead of the same one (no double start).
/// `None` when no matching event lies ahead.
pub fn next_calendar_firing(
    trigger: &CalendarTrigger,
    calendar: &ParsedCalendar,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let lead = chrono::Duration::from_std(trigger.lead).ok()?;
    // The event must start after this instant for its firing to be after `now`.
    let threshold = now.checked_add_signed(lead)?.with_timezone(&Tz::UTC);
    calendar
        .events
        .iter()
        .filter(|e| trigger.title.matches(&e.title))
        .filter_map(|e| {
            // `after` is inclusive and `all` stops at the limit: the first two starts from the
            // threshold on hold the first one strictly after it. The limit also bounds the
            // work an endless rule can cause.
            e.starts.clone().after(threshold).all(2).dates.into_iter().find(|start| *start > threshold)
        })
        .min()
        .map(|start| start.with_timezone(&Utc) - lead)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::time::Duration;
    use warmlake_policy::Glob;

    /// A weekly Monday review at 09:00 in Berlin from 2026-11-02, with 2026-11-30 cancelled
    /// through EXDATE, and a one-off Tuesday lunch in UTC.
    pub const WORK_ICS: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//warmlake//test//EN\r\n\
BEGIN:VEVENT\r\n\
UID:review@example.com\r\n\
SUMMARY:Monday review\r\n\
DTSTART;TZID=Europe/Berlin:20261102T090000\r\n\
DTEND;TZID=Europe/Berlin:20261102T100000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO\r\n\
EXDATE;TZID=Europe/Berlin:20261130T090000\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:lunch@example.com\r\n\
SUMMARY:Team lunch\r\n\
DTSTART:20261201T120000Z\r\n\
DTEND:20261201T130000Z\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:gone@example.com\r\n\
SUMMARY:Monday planning\r\n\
STATUS:CANCELLED\r\n\
DTSTART:20261123T070000Z\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    fn trigger(title: &str, lead_minutes: u64) -> CalendarTrigger {
        CalendarTrigger {
            path: "~/cal.ics".into(),
            lead: Duration::from_secs(lead_minutes * 60),
            title: Glob::new(title).expect("glob"),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn weekly_event_fires_lead_before_each_start_skipping_the_exdate() {
        let cal = ParsedCalendar::parse(WORK_ICS).expect("calendar");
        let t = trigger("monday*", 15);
        // Wednesday 2026-11-25: next Monday 2026-11-30 is excluded, so 2026-12-07 09:00 Berlin
        // (08:00 UTC, winter time), minus 15 minutes.
        let first = next_calendar_firing(&t, &cal, at("2026-11-25T10:00:00Z")).expect("a firing");
        assert_eq!(first, at("2026-12-07T07:45:00Z"));
        // Asked again at the firing instant: the next week, not the same event.
        assert_eq!(next_calendar_firing(&t, &cal, first), Some(at("2026-12-14T07:45:00Z")));
        // Inside the lead window of an event (09:00 start, now 07:50 UTC), that event's firing
        // has passed: the next one is a week later.
        assert_eq!(next_calendar_firing(&t, &cal, at("2026-12-07T07:50:00Z")), Some(at("2026-12-14T07:45:00Z")));
    }

    #[test]
    fn the_event_time_zone_and_its_summer_time_set_the_instant() {
        let cal = ParsedCalendar::parse(WORK_ICS).expect("calendar");
        let t = trigger("Monday review", 0);
        // Before the series starts: the first occurrence, 2026-11-02 09:00 Berlin (CET) = 08:00 UTC.
        assert_eq!(next_calendar_firing(&t, &cal, at("2026-10-20T00:00:00Z")), Some(at("2026-11-02T08:00:00Z")));
        // After Berlin moves to summer time (2027-03-28), 09:00 there is 07:00 UTC.
        assert_eq!(next_calendar_firing(&t, &cal, at("2027-03-30T00:00:00Z")), Some(at("2027-04-05T07:00:00Z")));
    }

    #[test]
    fn the_title_glob_ignores_case_and_picks_events() {
        let cal = ParsedCalendar::parse(WORK_ICS).expect("calendar");
        let now = at("2026-11-25T10:00:00Z");
        // Every event: the lunch on Tuesday 2026-12-01 comes before the next review.
        assert_eq!(next_calendar_firing(&trigger("*", 30), &cal, now), Some(at("2026-12-01T11:30:00Z")));
        assert_eq!(next_calendar_firing(&trigger("*LUNCH", 30), &cal, now), Some(at("2026-12-01T11:30:00Z")));
        // The cancelled "Monday planning" never counts; no event is called "standup".
        assert_eq!(next_calendar_firing(&trigger("monday planning", 0), &cal, at("2026-11-01T00:00:00Z")), None);
        assert_eq!(next_calendar_firing(&trigger("standup", 0), &cal, now), None);
        // A one-off event in the past fires no more.
        assert_eq!(next_calendar_firing(&trigger("team lunch", 0), &cal, at("2026-12-02T00:00:00Z")), None);
    }

    #[test]
    fn a_moved_or_cancelled_instance_replaces_its_occurrence() {
        // The review of 2026-12-07 moves to 14:00 Berlin, the one of 2026-12-14 is cancelled.
        let overrides = "BEGIN:VEVENT\r\nUID:review@example.com\r\nSUMMARY:Monday review (moved)\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20261207T090000\r\nDTSTART;TZID=Europe/Berlin:20261207T140000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:review@example.com\r\nSUMMARY:Monday review\r\nSTATUS:CANCELLED\r\n\
RECURRENCE-ID:20261214T080000Z\r\nDTSTART:20261214T080000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let text = WORK_ICS.replace("END:VCALENDAR\r\n", overrides);
        let cal = ParsedCalendar::parse(&text).expect("calendar");
        let t = trigger("monday review*", 0);
        let moved = next_calendar_firing(&t, &cal, at("2026-12-01T00:00:00Z"));
        assert_eq!(moved, Some(at("2026-12-07T13:00:00Z")));
        assert_eq!(next_calendar_firing(&t, &cal, at("2026-12-07T13:00:00Z")), Some(at("2026-12-21T08:00:00Z")));
    }

    #[test]
    fn malformed_calendars_are_errors_and_bad_events_are_skipped() {
        assert!(matches!(ParsedCalendar::parse("this is not a calendar"), Err(CalendarError::Malformed(_))));
        assert!(matches!(ParsedCalendar::parse(""), Err(CalendarError::Malformed(_))));
        // Cut off mid-write, as while a sync rewrites the file.
        let truncated = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Monday review\r\nDTSTART:2026";
        assert!(matches!(ParsedCalendar::parse(truncated), Err(CalendarError::Malformed(_))));
        // A byte-order mark before the calendar is fine.
        assert!(ParsedCalendar::parse(&format!("\u{feff}{WORK_ICS}")).is_ok());
        let bad_event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n\
BEGIN:VEVENT\r\nUID:a\r\nSUMMARY:No start\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nSUMMARY:Bad zone\r\nDTSTART;TZID=Mars/Olympus:20261201T090000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:c\r\nSUMMARY:Fine\r\nDTSTART:20261201T090000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
        let cal = ParsedCalendar::parse(bad_event).expect("the file itself is a calendar");
        assert_eq!(cal.skipped().len(), 2, "{:?}", cal.skipped());
        assert_eq!(
            next_calendar_firing(&trigger("*", 0), &cal, at("2026-11-25T00:00:00Z")),
            Some(at("2026-12-01T09:00:00Z"))
        );
        let missing = read_calendar(Path::new("/nonexistent/warmlake/cal.ics"));
        assert!(matches!(missing, Err(CalendarError::Read { .. })));
    }
}
