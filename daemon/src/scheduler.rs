//! When background jobs run: the policy's `[[prewarm]]` jobs (on a cron schedule, before
//! calendar events, or both), and the `hot` job after a refresh. The decisions are pure
//! functions of a policy, the parsed calendars and a time, so they are tested with a fixed
//! clock; [`Planner`] adds the little state the daemon's loop needs (the planned firing, the
//! calendars read from disk) and the loop sleeps until the planned firing and starts the jobs
//! (never one twice at once).

mod calendar;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, TimeZone, Utc};
use warmlake_policy::{ColumnSelection, Policy, PrewarmJob, QualifiedGlob};

pub use calendar::{CalendarError, ParsedCalendar, next_calendar_firing, read_calendar};

use crate::prewarm::PrewarmRequest;

/// The job that fetches hot columns of new data files after each refresh.
pub const HOT_JOB: &str = "hot-columns";

/// How long the loop waits when no job is scheduled (it re-plans after a policy change
/// anyway, since the loop wakes for that).
const IDLE: Duration = Duration::from_secs(3600);

/// The longest the loop sleeps before planning again. Tokio's timers run on the monotonic
/// clock, which stands still while a laptop is suspended and knows nothing of wall-clock
/// changes, so a planned firing can pass unnoticed; re-reading the wall clock at least this
/// often bounds how late a missed firing is seen (and how late an edited `.ics` is read).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// How late a firing may start and still count as on time. The loop wakes a little after the
/// planned instant even when the machine stayed awake; beyond this, the machine slept through
/// the firing and the job's `catch_up` decides.
pub const LATE_AFTER: Duration = Duration::from_secs(60);

/// Hot columns of every table.
pub fn hot_everywhere() -> PrewarmRequest {
    let all = QualifiedGlob::new("*.*").map(|g| vec![g]).unwrap_or_default();
    PrewarmRequest { tables: all, columns: ColumnSelection::Hot, pin: false, snapshot: None }
}

/// The parsed calendar files of a policy's calendar jobs, keyed by the path as written in the
/// policy. A path missing here (unreadable, malformed) gives its jobs no calendar firing.
pub type Calendars = HashMap<String, ParsedCalendar>;

/// When `job` fires next, strictly after `now`: the earlier of its cron and calendar firings.
fn next_firing<Tz: TimeZone>(job: &PrewarmJob, calendars: &Calendars, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
    let cron = job.cron.as_ref().and_then(|c| c.schedule().after(now).next());
    let calendar = job.calendar.as_ref().and_then(|trigger| {
        let parsed = calendars.get(&trigger.path)?;
        next_calendar_firing(trigger, parsed, now.with_timezone(&Utc)).map(|t| t.with_timezone(&now.timezone()))
    });
    match (cron, calendar) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The jobs of `policy` that fire next after `now`, and when (several when they share the
/// time). `None` when no job has a firing ahead.
pub fn next_prewarm<Tz: TimeZone>(
    policy: &Policy,
    calendars: &Calendars,
    now: &DateTime<Tz>,
) -> Option<(DateTime<Tz>, Vec<PrewarmJob>)> {
    let mut next: Option<(DateTime<Tz>, Vec<PrewarmJob>)> = None;
    for job in policy.schedules().prewarm() {
        let Some(at) = next_firing(job, calendars, now) else { continue };
        match &mut next {
            Some((t, jobs)) if at == *t => jobs.push(job.clone()),
            Some((t, _)) if at > *t => {}
            _ => next = Some((at, vec![job.clone()])),
        }
    }
    next
}

/// What to do with a job whose firing was planned for `planned`, now that the loop sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// On time (within [`LATE_AFTER`]): run it.
    OnTime,
    /// Missed while the machine slept, and the job asks to catch up: run it once now.
    CatchUp,
    /// Missed while the machine slept: skip it. A prewarm hours late would fetch data for a
    /// meeting that is over, on whatever network the laptop woke up on.
    Skip,
}

/// Whether a firing planned for `planned` and seen at `now` runs.
pub fn on_wake<Tz: TimeZone>(planned: &DateTime<Tz>, now: &DateTime<Tz>, job: &PrewarmJob) -> Wake {
    let late = now.clone().signed_duration_since(planned.clone()).to_std().unwrap_or_default();
    if late <= LATE_AFTER {
        Wake::OnTime
    } else if job.catch_up {
        Wake::CatchUp
    } else {
        Wake::Skip
    }
}

/// The daemon loop's scheduler state: the firing it is sleeping towards and the calendars.
///
/// The plan is kept across loop iterations (the loop also wakes for refreshes, status and
/// policy changes) so that a firing the machine slept through is still seen as due at wake
/// instead of silently replaced by the next one.
#[derive(Default)]
pub struct Planner {
    planned: Option<(DateTime<chrono::Local>, Vec<PrewarmJob>)>,
    /// The calendars that parsed, by path as written in the policy.
    calendars: Calendars,
    /// Per calendar path, the modification stamp of the version last read (`None`: missing),
    /// so a file is re-read only when it changes and each failure is logged once.
    stamps: HashMap<String, Option<(SystemTime, u64)>>,
}

impl Planner {
    /// In local time (people write "8:45 on Mondays" in their own time zone): the jobs to start
    /// now, and how long to sleep before calling again.
    pub fn step(&mut self, policy: &Policy) -> (Vec<PrewarmJob>, Duration) {
        self.load_calendars(policy);
        self.step_at(policy, &chrono::Local::now())
    }

    /// [`Planner::step`] at `now`, with the calendars already loaded.
    fn step_at<Tz: TimeZone>(&mut self, policy: &Policy, now: &DateTime<Tz>) -> (Vec<PrewarmJob>, Duration) {
        let now_local = now.with_timezone(&chrono::Local);
        let mut start = Vec::new();
        if let Some((planned, jobs)) = self.planned.take_if(|(at, _)| *at <= now_local) {
            for job in jobs {
                // The current policy's version of the job: one removed since is not started.
                let Some(job) = policy.schedules().prewarm_job(&job.name) else { continue };
                match on_wake(&planned, &now_local, job) {
                    Wake::OnTime => start.push(job.clone()),
                    Wake::CatchUp => {
                        tracing::info!(job = %job.name, %planned, "running a prewarm job missed while asleep");
                        start.push(job.clone());
                    }
                    Wake::Skip => {
                        tracing::info!(job = %job.name, %planned, "skipping a prewarm job missed while asleep (no catch_up)");
                    }
                }
            }
        }
        self.planned = next_prewarm(policy, &self.calendars, &now_local);
        let wait = self.planned.as_ref().map_or(IDLE, |(at, _)| (*at - now_local).to_std().unwrap_or_default());
        (start, wait.min(MAX_WAIT))
    }

    /// The next planned firing (RFC 3339, local time) and the jobs it starts, for status.
    pub fn next(&self) -> Option<(String, Vec<String>)> {
        self.planned.as_ref().map(|(at, jobs)| (at.to_rfc3339(), jobs.iter().map(|j| j.name.clone()).collect()))
    }

    /// Reads the policy's calendar files that changed since the last call. A missing or
    /// malformed file is logged once (until it changes) and its jobs wait; the daemon goes on.
    fn load_calendars(&mut self, policy: &Policy) {
        let paths: Vec<&str> =
            policy.schedules().prewarm().iter().filter_map(|j| j.calendar.as_ref()).map(|c| c.path.as_str()).collect();
        self.stamps.retain(|p, _| paths.contains(&p.as_str()));
        self.calendars.retain(|p, _| paths.contains(&p.as_str()));
        for written in paths {
            let path = crate::config::expand(written);
            let stamp =
                std::fs::metadata(&path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            if self.stamps.get(written) == Some(&stamp) {
                continue;
            }
            self.stamps.insert(written.to_string(), stamp);
            match read_calendar(&path) {
                Ok(parsed) => {
                    for event in parsed.skipped() {
                        tracing::warn!(calendar = %path.display(), "skipping calendar event {event}");
                    }
                    self.calendars.insert(written.to_string(), parsed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, calendar = %path.display(), "calendar jobs wait for a readable calendar");
                    self.calendars.remove(written);
                }
            }
        }
    }
}

/// The request a policy job makes.
pub fn request(job: &PrewarmJob) -> PrewarmRequest {
    PrewarmRequest { tables: job.tables.clone(), columns: job.columns.clone(), pin: false, snapshot: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text, "policy.toml").expect("policy")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn names(jobs: &[PrewarmJob]) -> Vec<&str> {
        jobs.iter().map(|j| j.name.as_str()).collect()
    }

    /// `calendar::tests::WORK_ICS` under the path the policies below name.
    fn work_calendar() -> Calendars {
        let parsed = ParsedCalendar::parse(calendar::tests::WORK_ICS).expect("calendar");
        HashMap::from([("~/cal.ics".to_string(), parsed)])
    }

    #[test]
    fn monday_meeting_fires_at_its_time_and_not_before() {
        let p = policy(
            "[[prewarm]]\nname = \"monday-review\"\ncron = \"0 45 8 * * Mon\"\ntables = [\"sales.*\"]\ncolumns = \"all\"\n",
        );
        // Wednesday 2026-11-25 10:00: next is Monday 2026-11-30 08:45.
        let (when, jobs) = next_prewarm(&p, &Calendars::new(), &at("2026-11-25T10:00:00Z")).expect("a job");
        assert_eq!(when, at("2026-11-30T08:45:00Z"));
        assert_eq!(names(&jobs), ["monday-review"]);
        assert_eq!(request(&jobs[0]).columns, ColumnSelection::All);
        // At the firing instant itself, the next run is a week later (no double start).
        let (again, _) = next_prewarm(&p, &Calendars::new(), &when).expect("a job");
        assert_eq!(again, at("2026-12-07T08:45:00Z"));
    }

    #[test]
    fn jobs_sharing_a_time_fire_together_and_the_earliest_wins() {
        let p = policy(
            "[[prewarm]]\nname = \"a\"\ncron = \"0 0 * * * *\"\ntables = [\"x.*\"]\n\n\
             [[prewarm]]\nname = \"b\"\ncron = \"0 0 * * * *\"\ntables = [\"y.*\"]\n\n\
             [[prewarm]]\nname = \"c\"\ncron = \"0 30 * * * *\"\ntables = [\"z.*\"]\n",
        );
        let (when, jobs) = next_prewarm(&p, &Calendars::new(), &at("2026-11-25T10:10:00Z")).expect("jobs");
        assert_eq!(when, at("2026-11-25T10:30:00Z"));
        assert_eq!(jobs.len(), 1);
        let (when, jobs) = next_prewarm(&p, &Calendars::new(), &at("2026-11-25T10:40:00Z")).expect("jobs");
        assert_eq!(when, at("2026-11-25T11:00:00Z"));
        assert_eq!(names(&jobs), ["a", "b"]);
    }

    #[test]
    fn cron_and_calendar_jobs_fire_in_time_order() {
        // "review-prep" fires 15 minutes before each Monday review (09:00 Berlin, 08:00 UTC in
        // winter; 2026-11-30 excluded); "daily" at 07:00 UTC; "same" at the review's firing.
        let p = policy(
            "[[prewarm]]\nname = \"review-prep\"\ncalendar = \"~/cal.ics\"\nlead = \"15m\"\n\
             title = \"Monday*\"\ntables = [\"sales.*\"]\n\n\
             [[prewarm]]\nname = \"daily\"\ncron = \"0 0 7 * * *\"\ntables = [\"x.*\"]\n\n\
             [[prewarm]]\nname = \"same\"\ncron = \"0 45 7 7 Dec *\"\ntables = [\"y.*\"]\n",
        );
        let cals = work_calendar();
        let (when, jobs) = next_prewarm(&p, &cals, &at("2026-12-06T08:00:00Z")).expect("jobs");
        assert_eq!((when, names(&jobs)), (at("2026-12-07T07:00:00Z"), vec!["daily"]));
        let (when, jobs) = next_prewarm(&p, &cals, &when).expect("jobs");
        assert_eq!((when, names(&jobs)), (at("2026-12-07T07:45:00Z"), vec!["review-prep", "same"]));
        let (when, jobs) = next_prewarm(&p, &cals, &when).expect("jobs");
        assert_eq!((when, names(&jobs)), (at("2026-12-08T07:00:00Z"), vec!["daily"]));
        // Without its calendar (missing or malformed file) the calendar job just waits.
        let (when, jobs) = next_prewarm(&p, &Calendars::new(), &at("2026-12-07T07:30:00Z")).expect("jobs");
        assert_eq!((when, names(&jobs)), (at("2026-12-07T07:45:00Z"), vec!["same"]));
    }

    #[test]
    fn a_firing_missed_while_asleep_runs_only_with_catch_up() {
        let p = policy(
            "[[prewarm]]\nname = \"eager\"\ncron = \"0 45 8 * * *\"\ntables = [\"x.*\"]\ncatch_up = true\n\n\
             [[prewarm]]\nname = \"lazy\"\ncron = \"0 45 8 * * *\"\ntables = [\"y.*\"]\n",
        );
        let [eager, lazy] = p.schedules().prewarm() else { panic!("two jobs") };
        let planned = at("2026-11-25T08:45:00Z");
        assert_eq!(on_wake(&planned, &at("2026-11-25T08:45:00Z"), lazy), Wake::OnTime);
        assert_eq!(on_wake(&planned, &at("2026-11-25T08:45:59Z"), lazy), Wake::OnTime);
        assert_eq!(on_wake(&planned, &at("2026-11-25T12:00:00Z"), lazy), Wake::Skip);
        assert_eq!(on_wake(&planned, &at("2026-11-25T12:00:00Z"), eager), Wake::CatchUp);
    }

    #[test]
    fn the_planner_keeps_its_plan_across_wakes_and_never_fires_twice() {
        let p = policy(
            "[[prewarm]]\nname = \"eager\"\ncron = \"0 45 8 * * *\"\ntables = [\"x.*\"]\ncatch_up = true\n\n\
             [[prewarm]]\nname = \"lazy\"\ncron = \"0 45 8 * * *\"\ntables = [\"y.*\"]\n",
        );
        let mut planner = Planner::default();
        // Evening: nothing to start; the wait is capped so a suspend is noticed.
        let (start, wait) = planner.step_at(&p, &at("2026-11-24T20:00:00Z"));
        assert!(start.is_empty());
        assert_eq!(wait, MAX_WAIT);
        // Woken a second after the firing: both run, once.
        let (start, _) = planner.step_at(&p, &at("2026-11-25T08:45:01Z"));
        assert_eq!(names(&start), ["eager", "lazy"]);
        let (start, wait) = planner.step_at(&p, &at("2026-11-25T08:45:02Z"));
        assert!(start.is_empty());
        assert_eq!(wait, MAX_WAIT);
        // The machine slept through the next morning's firing: only the catch-up job runs.
        let (start, _) = planner.step_at(&p, &at("2026-11-26T11:00:00Z"));
        assert_eq!(names(&start), ["eager"]);
        // Just before the following firing, the wait ends at the firing.
        let (start, wait) = planner.step_at(&p, &at("2026-11-27T08:44:30Z"));
        assert!(start.is_empty());
        assert_eq!(wait, Duration::from_secs(30));
    }

    #[test]
    fn the_planner_reads_the_calendar_file_and_a_bad_one_makes_its_job_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cal.ics");
        let p = policy(&format!(
            "[[prewarm]]\nname = \"review-prep\"\ncalendar = \"{}\"\ntitle = \"monday*\"\ntables = [\"sales.*\"]\n",
            path.display()
        ));
        let now = at("2026-12-06T00:00:00Z");
        // Missing: the job waits, the daemon goes on.
        let mut planner = Planner::default();
        planner.load_calendars(&p);
        assert!(planner.calendars.is_empty());
        // Written: the next review (2026-12-07 08:00 UTC) fires 15 minutes before.
        std::fs::write(&path, calendar::tests::WORK_ICS).expect("write");
        planner.load_calendars(&p);
        planner.step_at(&p, &now);
        let planned = planner.planned.as_ref().map(|(at, jobs)| (at.with_timezone(&Utc), names(jobs).len()));
        assert_eq!(planned, Some((at("2026-12-07T07:45:00Z"), 1)));
        // Overwritten with garbage (another size, so seen as changed): the job waits again.
        std::fs::write(&path, "garbage").expect("write");
        planner.load_calendars(&p);
        planner.step_at(&p, &now);
        assert!(planner.calendars.is_empty() && planner.planned.is_none());
    }

    #[test]
    fn no_job_means_nothing_scheduled() {
        assert!(next_prewarm(&policy(""), &Calendars::new(), &at("2026-11-25T10:00:00Z")).is_none());
        let (jobs, wait) = Planner::default().step(&policy(""));
        assert!(jobs.is_empty() && wait == MAX_WAIT.min(IDLE));
    }
}
