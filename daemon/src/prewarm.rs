//! Prewarming: fetching chosen tables and columns into the cache before anyone reads them.
//!
//! A job names tables (`schema.table` globs) and columns (`all`, `hot`, or name globs). It is
//! planned against the snapshot the daemon serves, as the policy lets this machine see it:
//! tables whose bytes may not be stored are skipped (a job never widens what rules allow), and
//! denied columns are never fetched. Each data file's footer is fetched first (it gives the
//! column chunk ranges), then the chosen columns' chunks are fetched at background priority
//! (demand reads keep their own request slots), `FILES_AT_ONCE` files at a time. Ranges
//! already cached are not fetched again, so a job is idempotent and an interrupted one simply
//! runs again (the daemon reruns the jobs it did not finish when it next starts: `jobs.rs`).
//! Delete files are small and always needed: they are fetched whole.
//!
//! `hot` columns are the columns people read lately: every demand read through the cache (the
//! mount, and the SQL socket, which reads through the mount) scores the columns it touches,
//! scores decay with a half-life of a week, and a column is hot while its score is at least
//! [`cache::HOT_THRESHOLD`] (see `cache/heat.rs`). Heat outlives a restart. After each refresh
//! that brings a new snapshot the daemon runs a `hot` job over every table, which fetches only
//! what the new data files add.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use warmlake_policy::{ColumnSelection, QualifiedGlob};

use crate::cache::{self, Cache, CacheError, ReadOptions};
use crate::catalog::{LakeSnapshot, TableDef};
use crate::governance::Governed;
use crate::store::{Priority, Store};

/// Files whose chunks are fetched concurrently. Each file's chunks are requested together and
/// queue on the store's prefetch permits, so a few files in flight keep every slot busy while
/// bounding the memory of fetched-but-not-yet-stored bytes.
const FILES_AT_ONCE: usize = 4;

/// What to prewarm.
#[derive(Debug, Clone)]
pub struct PrewarmRequest {
    /// Tables, as `schema.table` globs.
    pub tables: Vec<QualifiedGlob>,
    /// Columns of those tables.
    pub columns: ColumnSelection,
    /// Pin what is fetched (and what was cached already): the budget evicts it last.
    pub pin: bool,
    /// The snapshot whose files to fetch: one the daemon keeps (`[refresh] keep_snapshots`);
    /// the one it serves when None.
    pub snapshot: Option<i64>,
}

/// How far a job has got, reported after each file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrewarmProgress {
    pub files_done: u64,
    pub files_total: u64,
    /// Bytes of the chosen column chunks (and delete files) in the files done so far.
    pub bytes_done: u64,
    /// Bytes of the chosen column chunks of all files, known once every footer is read.
    pub bytes_total: u64,
    /// Bytes actually fetched from the store (the rest were cached already).
    pub bytes_fetched: u64,
    pub elapsed_ms: u64,
}

/// What a job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrewarmReport {
    pub progress: PrewarmProgress,
    /// Tables selected.
    pub tables: Vec<String>,
    /// Tables selected but skipped, with why (the policy does not let them be stored).
    pub skipped: Vec<(String, String)>,
    /// Whether the job was cancelled before it finished.
    pub cancelled: bool,
}

/// A prewarm could not run.
#[derive(Debug, thiserror::Error)]
pub enum PrewarmError {
    /// The lake's data is on this machine: there is no cache to fill.
    #[error("the lake's data is on local disk ({0}): there is nothing to prewarm")]
    LocalLake(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A job of the same name is running.
    #[error(transparent)]
    Busy(#[from] crate::jobs::JobError),
    /// The snapshot asked for is not one the daemon keeps.
    #[error(
        "snapshot {id} is not kept by the daemon (kept: {kept:?}); keep more with [refresh] keep_snapshots in \
         the config (a policy's keep_snapshots can only lower it)"
    )]
    SnapshotNotKept { id: i64, kept: Vec<i64> },
}

/// One file to prewarm: the object and which field ids of it (None: the whole object).
struct FilePlan {
    object: cache::ObjectRef,
    fields: Option<BTreeSet<i32>>,
}

/// The field ids of `table` that `columns` selects (denied columns are not in a governed
/// snapshot's tables, so they cannot be selected).
fn selected_fields(cache: &Cache, table: &TableDef, qualified: &str, columns: &ColumnSelection) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    match columns {
        ColumnSelection::All => table.columns.iter().for_each(|c| out.extend(c.field_ids())),
        ColumnSelection::Listed(_) => {
            table.columns.iter().filter(|c| columns.lists(&c.name)).for_each(|c| out.extend(c.field_ids()))
        }
        ColumnSelection::Hot => {
            let hot = cache.hot_columns(qualified);
            let mut visible = BTreeSet::new();
            table.columns.iter().for_each(|c| visible.extend(c.field_ids()));
            out.extend(hot.intersection(&visible));
        }
    }
    out
}

/// Plans `request` over `governed` (the snapshot asked for, under the policy in force).
fn plan(
    cache: &Cache,
    store: &Store,
    governed: &Governed,
    request: &PrewarmRequest,
    report: &mut PrewarmReport,
) -> Vec<FilePlan> {
    let lake: &LakeSnapshot = &governed.snapshot;
    let mut files = Vec::new();
    for t in &lake.tables {
        if !request.tables.iter().any(|g| g.matches(&t.schema, &t.name)) {
            continue;
        }
        let qualified = format!("{}.{}", t.schema, t.name);
        match governed.access.rules_for(&qualified) {
            Some(rules) if rules.store => {}
            _ => {
                report.skipped.push((qualified, "the policy does not let its bytes be stored here".into()));
                continue;
            }
        }
        let fields = selected_fields(cache, t, &qualified, &request.columns);
        report.tables.push(qualified.clone());
        if fields.is_empty() {
            continue;
        }
        for f in &t.files {
            let object = cache::ObjectRef::parquet(
                store.clone(),
                f.key.as_str(),
                u64::try_from(f.size).unwrap_or(0),
                f.footer_size.and_then(|s| u64::try_from(s).ok()),
                f.encryption_key.is_some(),
            )
            .with_table(qualified.clone());
            let whole = f.encryption_key.is_some();
            files.push(FilePlan { object, fields: (!whole).then(|| fields.clone()) });
            for d in &f.deletes {
                let object = cache::ObjectRef::parquet(
                    store.clone(),
                    d.key.as_str(),
                    u64::try_from(d.size).unwrap_or(0),
                    d.footer_size.and_then(|s| u64::try_from(s).ok()),
                    d.encryption_key.is_some(),
                )
                .with_table(qualified.clone());
                files.push(FilePlan { object, fields: None });
            }
        }
    }
    files
}

/// The byte ranges of `file` to fetch: its chosen column chunks (after reading its footer),
/// or the whole object.
async fn ranges(cache: &Cache, file: &FilePlan) -> Result<Vec<Range<u64>>, CacheError> {
    let whole = std::iter::once(0..file.object.size).collect();
    let Some(fields) = &file.fields else { return Ok(whole) };
    let opts = ReadOptions { priority: Priority::Prefetch, ..ReadOptions::default() };
    let Some(layout) = cache.layout(&file.object, opts).await? else { return Ok(whole) };
    // The footer too: every reader needs it, and a pinning job must mark it as well.
    Ok(layout
        .chunks
        .iter()
        .filter(|c| c.field_id.is_some_and(|id| fields.contains(&id)))
        .map(|c| c.range.clone())
        .chain(std::iter::once(layout.footer.clone()))
        .collect())
}

/// Runs `request` against `governed`, reading through `cache` from `store`. `progress` is
/// called after each file; `cancel` stops the job between files.
pub async fn prewarm(
    cache: &Cache,
    store: &Store,
    governed: &Governed,
    request: &PrewarmRequest,
    progress: &(dyn Fn(&PrewarmProgress) + Sync),
    cancel: &CancellationToken,
) -> Result<PrewarmReport, PrewarmError> {
    let started = Instant::now();
    let mut report = PrewarmReport::default();
    let pin = request.pin;
    let files = plan(cache, store, governed, request, &mut report);
    let total = files.len() as u64;
    let files_done = AtomicU64::new(0);
    let bytes_done = AtomicU64::new(0);
    // Fetched bytes are the cache's counter over the job: per-file deltas would count other
    // files' concurrent fetches twice. (A user's reads during the job count too.)
    let fetched_before = cache.stats().totals.bytes_fetched;
    let bytes_fetched = || cache.stats().totals.bytes_fetched.saturating_sub(fetched_before);
    let bytes_total = AtomicU64::new(0);
    // Footers first: they give the total (for an honest ETA) and are what every reader needs.
    let mut planned: Vec<(FilePlan, Vec<Range<u64>>)> = Vec::with_capacity(files.len());
    let mut footers = futures::stream::iter(files.into_iter().map(|f| async move {
        let r = ranges(cache, &f).await;
        (f, r)
    }))
    .buffer_unordered(FILES_AT_ONCE);
    while let Some((file, r)) = footers.next().await {
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        let r = r?;
        bytes_total.fetch_add(r.iter().map(|x| x.end - x.start).sum(), Ordering::Relaxed);
        planned.push((file, r));
    }
    drop(footers);
    let snapshot = |done: &AtomicU64| PrewarmProgress {
        files_done: done.load(Ordering::Relaxed),
        files_total: total,
        bytes_done: bytes_done.load(Ordering::Relaxed),
        bytes_total: bytes_total.load(Ordering::Relaxed),
        bytes_fetched: bytes_fetched(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if !report.cancelled {
        let mut fetches = futures::stream::iter(planned.into_iter().map(|(file, r)| {
            let cancel = cancel.clone();
            async move {
                if cancel.is_cancelled() {
                    return Ok(None);
                }
                cache.prefetch_pinned(&file.object, &r, pin).await?;
                Ok::<_, CacheError>(Some(r.iter().map(|x| x.end - x.start).sum::<u64>()))
            }
        }))
        .buffer_unordered(FILES_AT_ONCE);
        while let Some(result) = fetches.next().await {
            match result? {
                Some(bytes) => {
                    bytes_done.fetch_add(bytes, Ordering::Relaxed);
                    files_done.fetch_add(1, Ordering::Relaxed);
                    progress(&snapshot(&files_done));
                }
                None => report.cancelled = true,
            }
        }
    }
    report.progress = snapshot(&files_done);
    Ok(report)
}

/// The expected duration left, from progress so far (None until something was fetched).
pub fn eta(p: &PrewarmProgress) -> Option<Duration> {
    if p.bytes_done == 0 || p.bytes_total <= p.bytes_done {
        return None;
    }
    let rate = p.bytes_done as f64 / (p.elapsed_ms.max(1) as f64 / 1000.0);
    Some(Duration::from_secs_f64((p.bytes_total - p.bytes_done) as f64 / rate))
}

/// A request for the whole of every table `tables` names (`all` columns).
pub fn all_columns(tables: &[&str]) -> Result<PrewarmRequest, String> {
    let tables = tables.iter().map(|t| QualifiedGlob::new(t)).collect::<Result<Vec<_>, _>>()?;
    Ok(PrewarmRequest { tables, columns: ColumnSelection::All, pin: false, snapshot: None })
}
