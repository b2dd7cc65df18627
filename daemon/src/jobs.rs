//! The prewarm jobs a daemon runs: at most one per name at a time, their progress for status,
//! and a journal on disk of the jobs started and not finished, so that a job interrupted by a
//! crash, a `kill -9` or a shutdown runs again when the daemon next starts. A job is
//! idempotent (cached ranges are not fetched again), so running it again *is* resuming it.
//!
//! The journal is `<state>/prewarm-jobs.json`, written whole to a temporary file, synced and
//! renamed over the old one, so it is either the old list or the new one. A job the user
//! cancelled, or one that finished (done or failed), leaves it; one cancelled by the daemon's
//! shutdown stays.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use warmlake_policy::QualifiedGlob;

use crate::prewarm::{PrewarmProgress, PrewarmRequest};

const JOURNAL: &str = "prewarm-jobs.json";

/// A job as the journal keeps it: a prewarm request in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    name: String,
    tables: Vec<String>,
    /// `"all"`, `"hot"`, or column-name globs.
    columns: crate::control::PrewarmColumns,
    pin: bool,
    #[serde(default)]
    snapshot: Option<i64>,
}

impl Entry {
    fn new(name: &str, request: &PrewarmRequest) -> Entry {
        Entry {
            name: name.to_string(),
            tables: request.tables.iter().map(|t| t.as_str().to_string()).collect(),
            columns: (&request.columns).into(),
            pin: request.pin,
            snapshot: request.snapshot,
        }
    }

    fn request(&self) -> Result<PrewarmRequest, String> {
        let tables = self.tables.iter().map(|t| QualifiedGlob::new(t)).collect::<Result<Vec<_>, _>>()?;
        Ok(PrewarmRequest { tables, columns: self.columns.selection()?, pin: self.pin, snapshot: self.snapshot })
    }
}

/// A job running now, for status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningJob {
    pub name: String,
    /// When it started (seconds since the Unix epoch).
    pub started_unix: u64,
    /// Whether it is the rerun of a job an earlier daemon did not finish.
    pub resumed: bool,
    pub progress: PrewarmProgress,
}

/// A job could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A job of this name is running; it is not started twice.
    #[error("the prewarm job {0:?} is already running")]
    AlreadyRunning(String),
}

struct State {
    running: BTreeMap<String, RunningJob>,
    /// What the journal holds: the running jobs, and interrupted ones not yet rerun.
    journal: Vec<Entry>,
}

/// The daemon's prewarm jobs. Cheap to share (`Arc`).
pub struct Jobs {
    path: PathBuf,
    state: Mutex<State>,
}

impl Jobs {
    /// Opens the journal in `state_dir`. Jobs it lists were interrupted; a journal that cannot
    /// be read is logged and treated as empty (the jobs it listed are lost, nothing else).
    pub fn open(state_dir: &Path) -> Jobs {
        let path = state_dir.join(JOURNAL);
        let journal = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "unreadable prewarm journal; interrupted jobs are not resumed");
                Vec::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the prewarm journal");
                Vec::new()
            }
        };
        Jobs { path, state: Mutex::new(State { running: BTreeMap::new(), journal }) }
    }

    /// The jobs an earlier daemon started and did not finish, to run again. A journal entry
    /// that no longer parses (edited by hand) is dropped with a warning.
    pub fn interrupted(&self) -> Vec<(String, PrewarmRequest)> {
        let state = self.lock();
        state
            .journal
            .iter()
            .filter(|e| !state.running.contains_key(&e.name))
            .filter_map(|e| match e.request() {
                Ok(r) => Some((e.name.clone(), r)),
                Err(why) => {
                    tracing::warn!(job = e.name, error = why, "interrupted prewarm job cannot be resumed");
                    None
                }
            })
            .collect()
    }

    /// Starts `name`: records it as running and in the journal. Refused while a job of that
    /// name runs.
    pub fn begin(self: &Arc<Self>, name: &str, request: &PrewarmRequest) -> Result<JobHandle, JobError> {
        let mut state = self.lock();
        if state.running.contains_key(name) {
            return Err(JobError::AlreadyRunning(name.to_string()));
        }
        let entry = Entry::new(name, request);
        let resumed = state.journal.contains(&entry);
        state.journal.retain(|e| e.name != name);
        state.journal.push(entry);
        state.running.insert(
            name.to_string(),
            RunningJob {
                name: name.to_string(),
                started_unix: crate::daemon::unix_now(),
                resumed,
                progress: PrewarmProgress::default(),
            },
        );
        self.save(&state);
        Ok(JobHandle { jobs: Arc::clone(self), name: name.to_string(), ended: false })
    }

    /// The jobs running now.
    pub fn running(&self) -> Vec<RunningJob> {
        self.lock().running.values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the journal (under the state lock, so saves are in order). A failure is logged:
    /// the job still runs, it just would not be resumed after a crash.
    fn save(&self, state: &State) {
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt as _;
            let tmp = self.path.with_extension("json.tmp");
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&state.journal).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot write the prewarm journal");
        }
    }
}

/// A running job. Ending it takes it off the list; dropping it without [`JobHandle::end`]
/// (a panic) ends it as interrupted.
pub struct JobHandle {
    jobs: Arc<Jobs>,
    name: String,
    ended: bool,
}

impl JobHandle {
    /// Records the job's progress, for status.
    pub fn progress(&self, progress: &PrewarmProgress) {
        if let Some(job) = self.jobs.lock().running.get_mut(&self.name) {
            job.progress = progress.clone();
        }
    }

    /// The job ended. `finished`: it ran to its end (done, failed, or cancelled by the user),
    /// so it leaves the journal; otherwise (the daemon is shutting down) it stays there, to run
    /// again at the next start.
    pub fn end(mut self, finished: bool) {
        self.finish(finished);
    }

    fn finish(&mut self, finished: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut state = self.jobs.lock();
        state.running.remove(&self.name);
        if finished {
            state.journal.retain(|e| e.name != self.name);
            self.jobs.save(&state);
        }
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use warmlake_policy::{ColumnSelection, Glob};

    fn request(tables: &[&str], columns: ColumnSelection) -> PrewarmRequest {
        let tables = tables.iter().map(|t| QualifiedGlob::new(t).unwrap()).collect();
        PrewarmRequest { tables, columns, pin: true, snapshot: Some(7) }
    }

    #[test]
    fn an_unfinished_job_is_resumed_by_the_next_daemon_and_a_finished_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let listed = ColumnSelection::Listed(vec![Glob::new("amount").unwrap(), Glob::new("ts*").unwrap()]);
        {
            let jobs = Arc::new(Jobs::open(dir.path()));
            let a = jobs.begin("monday", &request(&["sales.*"], listed.clone())).unwrap();
            let b = jobs.begin("hot", &request(&["*.*"], ColumnSelection::Hot)).unwrap();
            assert!(matches!(
                jobs.begin("monday", &request(&["x.y"], ColumnSelection::All)),
                Err(JobError::AlreadyRunning(_))
            ));
            a.progress(&PrewarmProgress { files_done: 3, files_total: 9, ..PrewarmProgress::default() });
            let running = jobs.running();
            assert_eq!(running.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["hot", "monday"]);
            assert_eq!(running[1].progress.files_done, 3);
            assert!(!running[1].resumed);
            b.end(true);
            a.end(false); // the daemon shuts down mid-job
            assert!(jobs.running().is_empty());
        }
        let jobs = Arc::new(Jobs::open(dir.path()));
        let again = jobs.interrupted();
        assert_eq!(again.len(), 1, "only the unfinished job: {again:?}");
        assert_eq!(again[0].0, "monday");
        assert_eq!(again[0].1.tables, request(&["sales.*"], listed.clone()).tables);
        assert_eq!(again[0].1.columns, listed);
        assert!(again[0].1.pin);
        assert_eq!(again[0].1.snapshot, Some(7));
        let rerun = jobs.begin("monday", &again[0].1).unwrap();
        assert!(jobs.running()[0].resumed);
        rerun.end(true);
        assert!(Jobs::open(dir.path()).interrupted().is_empty());
    }

    #[test]
    fn a_job_dropped_without_ending_stays_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Arc::new(Jobs::open(dir.path()));
        drop(jobs.begin("j", &request(&["a.b"], ColumnSelection::All)).unwrap());
        assert_eq!(Jobs::open(dir.path()).interrupted().len(), 1);
    }

    #[test]
    fn a_corrupt_journal_resumes_nothing_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL), b"{not json").unwrap();
        let jobs = Arc::new(Jobs::open(dir.path()));
        assert!(jobs.interrupted().is_empty());
        jobs.begin("j", &request(&["a.b"], ColumnSelection::All)).unwrap().end(false);
        assert_eq!(Jobs::open(dir.path()).interrupted().len(), 1);
    }
}
