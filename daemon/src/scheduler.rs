//! When background jobs run: the policy's cron `[[prewarm]]` jobs, and the `hot` job after a
//! refresh. Pure functions of a policy and a time, so they are tested with a fixed clock; the
//! daemon's loop sleeps until the next firing and starts the jobs (never one twice at once).

use std::time::Duration;

use chrono::{DateTime, TimeZone};
use warmlake_policy::{ColumnSelection, Policy, PrewarmJob, QualifiedGlob};

use crate::prewarm::PrewarmRequest;

/// The job that fetches hot columns of new data files after each refresh.
pub const HOT_JOB: &str = "hot-columns";

/// How long the loop waits when no job has a cron schedule (it re-checks after a policy change
/// anyway, since the loop wakes for that).
const IDLE: Duration = Duration::from_secs(3600);

/// Hot columns of every table.
pub fn hot_everywhere() -> PrewarmRequest {
    let all = QualifiedGlob::new("*.*").map(|g| vec![g]).unwrap_or_default();
    PrewarmRequest { tables: all, columns: ColumnSelection::Hot }
}

/// The cron jobs of `policy` that fire next after `now`, and when (several when they share
/// the time). `None` when no job has a cron schedule.
pub fn next_prewarm<Tz: TimeZone>(policy: &Policy, now: &DateTime<Tz>) -> Option<(DateTime<Tz>, Vec<PrewarmJob>)> {
    let mut next: Option<(DateTime<Tz>, Vec<PrewarmJob>)> = None;
    for job in policy.schedules().prewarm() {
        let Some(at) = job.cron.as_ref().and_then(|c| c.schedule().after(now).next()) else { continue };
        match &mut next {
            Some((t, jobs)) if at == *t => jobs.push(job.clone()),
            Some((t, _)) if at > *t => {}
            _ => next = Some((at, vec![job.clone()])),
        }
    }
    next
}

/// [`next_prewarm`] in local time (people write "8:45 on Mondays" in their own time zone), as
/// the jobs to start and how long to sleep first.
pub fn next_prewarm_from_now(policy: &Policy) -> (Option<Vec<PrewarmJob>>, Duration) {
    let now = chrono::Local::now();
    match next_prewarm(policy, &now) {
        Some((at, jobs)) => (Some(jobs), (at - now).to_std().unwrap_or_default()),
        None => (None, IDLE),
    }
}

/// The request a policy job makes.
pub fn request(job: &PrewarmJob) -> PrewarmRequest {
    PrewarmRequest { tables: job.tables.clone(), columns: job.columns.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn policy(text: &str) -> Policy {
        Policy::parse(text, "policy.toml").expect("policy")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn monday_meeting_fires_at_its_time_and_not_before() {
        let p = policy(
            "[[prewarm]]\nname = \"monday-review\"\ncron = \"0 45 8 * * Mon\"\ntables = [\"sales.*\"]\ncolumns = \"all\"\n",
        );
        // Wednesday 2026-11-25 10:00: next is Monday 2026-11-30 08:45.
        let (when, jobs) = next_prewarm(&p, &at("2026-11-25T10:00:00Z")).expect("a job");
        assert_eq!(when, at("2026-11-30T08:45:00Z"));
        assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["monday-review"]);
        assert_eq!(request(&jobs[0]).columns, ColumnSelection::All);
        // At the firing instant itself, the next run is a week later (no double start).
        let (again, _) = next_prewarm(&p, &when).expect("a job");
        assert_eq!(again, at("2026-12-07T08:45:00Z"));
    }

    #[test]
    fn jobs_sharing_a_time_fire_together_and_the_earliest_wins() {
        let p = policy(
            "[[prewarm]]\nname = \"a\"\ncron = \"0 0 * * * *\"\ntables = [\"x.*\"]\n\n\
             [[prewarm]]\nname = \"b\"\ncron = \"0 0 * * * *\"\ntables = [\"y.*\"]\n\n\
             [[prewarm]]\nname = \"c\"\ncron = \"0 30 * * * *\"\ntables = [\"z.*\"]\n",
        );
        let (when, jobs) = next_prewarm(&p, &at("2026-11-25T10:10:00Z")).expect("jobs");
        assert_eq!(when, at("2026-11-25T10:30:00Z"));
        assert_eq!(jobs.len(), 1);
        let (when, jobs) = next_prewarm(&p, &at("2026-11-25T10:40:00Z")).expect("jobs");
        assert_eq!(when, at("2026-11-25T11:00:00Z"));
        assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn no_cron_job_means_nothing_scheduled() {
        assert!(next_prewarm(&policy(""), &at("2026-11-25T10:00:00Z")).is_none());
        let (jobs, wait) = next_prewarm_from_now(&policy(""));
        assert!(jobs.is_none() && wait == IDLE);
    }
}
