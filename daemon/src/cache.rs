//! The chunk cache: bytes of lake objects, fetched once from the store and served from local
//! disk afterwards, within a byte budget, safe against crashes.
//!
//! # On disk
//!
//! ```text
//! <dir>/                      0700
//!   index.sqlite              objects, pieces (range + CRC32C + access stats + table/column),
//!                             heat (decayed read score per table and column)
//!   objects/ab/<sha256(key)>-<id>.data   0600, sparse: bytes only where pieces are
//! ```
//!
//! A *piece* is a byte range of one object's data file, at most [`PIECE_SIZE`] long and never
//! crossing a multiple of it, with the CRC32C of its bytes. Pieces are the unit of checksum
//! and eviction: a read verifies every piece it copies out (a mismatch drops the piece and the
//! read refetches it), and eviction punches pieces out of the sparse file. See `cache/index.rs`
//! for the crash-safety rule (index after fsync; unindex before punch; unclaimed bytes punched
//! at start).
//!
//! # Reads
//!
//! [`Cache::read`] copies out the pieces it finds; for the gaps it plans fetches
//! (`cache/plan.rs`): a gap widens to the enclosing column chunk (or the footer) when the
//! file's [`Layout`] is known, to the whole object for encrypted Parquet, else to an aligned
//! block of [`CacheConfig::block_size`]; neighbours are coalesced. Each fetch is a *flight*: a
//! task on the runtime that GETs the range, checks size and ETag, stores the bytes (unless the
//! read is read-through) and then leaves the flight table. A read whose gap is covered by a
//! flight in the table joins it instead of fetching: concurrent misses of one range make one
//! request (single-flight). Fetched bytes are returned to readers whether or not they could be
//! stored, so a full cache degrades to read-through, never to an error. A reader that goes
//! through an object in order gets the next units fetched ahead of it (`cache/stream.rs`), and a
//! reader going down a column the column's next chunks (`cache/column_ahead.rs`); a gap that
//! only grazes a unit (the page at its edge) is fetched as it is.
//!
//! # Budget
//!
//! `max_cache` counts stored pieces plus bytes claimed by writes in progress; a write claims
//! its bytes first, evicting (least valuable first: see `state::choose_victims`) or storing
//! less when it cannot make room, and frees its victims' blocks before writing its own. So the
//! budget, and `min_free_disk`, hold at every moment, not just between operations. Pieces
//! being read, written or punched are never evicted.
//!
//! # Threads and locks
//!
//! The core is async ([`Cache::read`], [`Cache::prefetch`]) for the SQL layer on tokio; FUSE
//! worker threads use the `*_blocking` wrappers, which run the same futures on the cache's
//! runtime handle. File and SQLite work runs in `spawn_blocking`. Lock order: `flights` →
//! `core` (state + index) → `heat`; `layouts`, `streams`, `files`, `metrics` and `heat` are
//! leaves. No lock is held across an `.await` or across data file I/O.

mod column_ahead;
mod disk;
mod heat;
mod index;
mod metrics;
mod plan;
pub mod range_set;
mod state;
mod stream;
mod sys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::layout::{self, Layout};
use crate::store::{Priority, Store, StoreError};

pub use heat::{HALF_LIFE_SECS, HOT_THRESHOLD};
pub use index::FORMAT_VERSION;
pub use metrics::Counters;
pub use range_set::RangeSet;

use disk::{Disk, StoreRequest};
use heat::Heat;
use plan::{PlanLimits, Units};

/// Largest piece, and the grid pieces are cut on. 256 KiB bounds what a small read must
/// checksum (at most two pieces' worth beyond what it asked for), while keeping the index to
/// ~4,000 rows per GiB cached.
pub const PIECE_SIZE: u64 = 256 * 1024;

/// How the cache behaves. `Default` suits a laptop; each field says why.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The cache folder (`~/.cache/warmlake`), created 0700.
    pub dir: PathBuf,
    /// Most bytes of cached data (index excluded). 10 GiB: ~100 warm tables' hot columns.
    pub max_cache: u64,
    /// Bytes the cache leaves free on its filesystem; a write that would go below is skipped
    /// or evicts first. 2 GiB, so a full cache never fills the user's disk.
    pub min_free_disk: u64,
    /// Alignment and size of a fetch when the layout is unknown (non-Parquet files, bytes
    /// between column chunks). 2 MiB: below ~1 MiB a cloud GET is dominated by its 20–100 ms
    /// first-byte latency, so smaller blocks multiply round trips for sequential readers;
    /// above ~4 MiB a random 4 KiB read drags in bytes nobody asked for. To be confirmed by the
    /// `bench/` run.
    pub block_size: u64,
    /// Largest single fetch (and largest unit a miss widens to). Column chunks above it are
    /// fetched in aligned blocks. 32 MiB bounds the memory one read can pin.
    pub max_fetch: u64,
    /// Fetches closer than this are merged into one request: a round trip costs more than a
    /// few hundred KiB of transfer. 256 KiB.
    pub coalesce_gap: u64,
    /// How much recency one past hit is worth when choosing what to evict (up to 100 hits).
    /// 10 minutes: a piece read 6 times survives an hour longer than one read once.
    pub hit_weight: Duration,
}

impl CacheConfig {
    /// Defaults for a cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CacheConfig {
            dir: dir.into(),
            max_cache: 10 << 30,
            min_free_disk: 2 << 30,
            block_size: 2 << 20,
            max_fetch: 32 << 20,
            coalesce_gap: 256 << 10,
            hit_weight: Duration::from_secs(600),
        }
    }
}

/// What kind of object, which decides how misses widen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A Parquet file; `footer_size` is the catalog's metadata length, when recorded.
    Parquet { footer_size: Option<u64> },
    /// A Parquet file with an `encryption_key`: never parsed, cached whole.
    EncryptedParquet,
    /// Anything else: aligned blocks.
    Other,
}

/// An object to read: where it is, how big (from the catalog, so no HEAD is needed), what it
/// is, and which table its bytes count towards.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    pub store: Store,
    /// Key relative to the store's URL.
    pub key: String,
    pub size: u64,
    pub kind: ObjectKind,
    /// Qualified table name (`sales.orders`) for metrics and the index, when known.
    pub table: Option<String>,
}

impl ObjectRef {
    /// An object read in aligned blocks.
    pub fn new(store: Store, key: impl Into<String>, size: u64) -> Self {
        ObjectRef { store, key: key.into(), size, kind: ObjectKind::Other, table: None }
    }

    /// A DuckLake data or delete file, from the catalog's `file_size_bytes`, `footer_size`
    /// and whether `encryption_key` is set.
    pub fn parquet(store: Store, key: impl Into<String>, size: u64, footer_size: Option<u64>, encrypted: bool) -> Self {
        let kind = if encrypted { ObjectKind::EncryptedParquet } else { ObjectKind::Parquet { footer_size } };
        ObjectRef { store, key: key.into(), size, kind, table: None }
    }

    /// Attributes the object's bytes to a table.
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The object's identity in the cache: store id and key.
    pub fn cache_key(&self) -> String {
        format!("{}/{}", self.store.id(), self.key)
    }
}

/// Whether a read may leave its bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persist {
    /// Store fetched bytes (within the budget).
    #[default]
    Cache,
    /// Never store: the policy says these bytes may not rest on this machine. Cached bytes
    /// are not served either, since they should not exist.
    ReadThrough,
}

/// Per-read options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    pub priority: Priority,
    pub persist: Persist,
    /// Mark stored or hit pieces pinned (evicted last).
    pub pin: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { priority: Priority::Demand, persist: Persist::Cache, pin: false }
    }
}

impl ReadOptions {
    /// A read whose bytes must not be stored.
    pub fn read_through() -> Self {
        ReadOptions { persist: Persist::ReadThrough, ..ReadOptions::default() }
    }
}

/// A cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Fetching from the store failed (not found, denied, unreachable, changed).
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The cache folder could not be read or written.
    #[error("cache file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Another process (a second daemon) has the cache folder open.
    #[error("the cache {dir} is in use by another warmlake process")]
    Locked { dir: PathBuf },
    /// The cache index failed.
    #[error("cache index: {0}")]
    Index(#[from] rusqlite::Error),
    /// A bug or a misuse (e.g. a blocking call from inside the runtime).
    #[error("cache: {0}")]
    Internal(String),
}

impl CacheError {
    /// Whether the object is missing from the store (the mount answers `ENOENT`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CacheError::Store(e) if matches!(**e, StoreError::NotFound { .. }))
    }

    /// The errno for a filesystem read.
    pub fn errno(&self) -> i32 {
        match self {
            CacheError::Store(e) => e.errno(),
            CacheError::Io { .. } | CacheError::Locked { .. } | CacheError::Index(_) | CacheError::Internal(_) => {
                libc::EIO
            }
        }
    }
}

/// The cache's size and counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Bytes in stored pieces.
    pub bytes_stored: u64,
    /// Bytes claimed by writes in progress (counted against the budget).
    pub bytes_reserved: u64,
    pub max_cache: u64,
    pub objects: usize,
    pub pieces: usize,
    pub totals: Counters,
    pub per_table: BTreeMap<String, Counters>,
}

/// One cached piece, for status and prewarm reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPiece {
    pub range: Range<u64>,
    /// The table its bytes count towards.
    pub table: Option<String>,
    /// The Parquet field id of the column chunk it lies in, when the layout was known.
    pub column_id: Option<i32>,
    pub hits: u64,
    pub pinned: bool,
}

#[derive(Debug, Clone)]
enum FlightError {
    Store(Arc<StoreError>),
    Internal(String),
}

impl From<FlightError> for CacheError {
    fn from(e: FlightError) -> Self {
        match e {
            FlightError::Store(e) => CacheError::Store(e),
            FlightError::Internal(m) => CacheError::Internal(m),
        }
    }
}

type FlightFuture = Shared<BoxFuture<'static, Result<Bytes, FlightError>>>;

#[derive(Clone)]
struct Flight {
    id: u64,
    range: Range<u64>,
    /// Whether the flight stores what it fetches; a caching read joins only such flights.
    persists: bool,
    result: FlightFuture,
}

#[derive(Debug, Clone)]
enum LayoutSlot {
    Known(Arc<Layout>),
    /// Not parseable (corrupt, or not Parquet after all): fall back to blocks for good.
    Unusable,
}

/// The cache. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    disk: Disk,
    runtime: tokio::runtime::Handle,
    flights: Mutex<HashMap<String, Vec<Flight>>>,
    next_flight: AtomicU64,
    layouts: Mutex<HashMap<String, LayoutSlot>>,
    /// Sequential readers of each object, to fetch ahead of (`cache/stream.rs`). A leaf lock.
    streams: Mutex<stream::Streams>,
    /// Decayed demand-read scores per table and column (field id): what people read, for `hot`
    /// prewarming. Loaded at open, saved in batches by [`Cache::save_heat`]. A leaf lock.
    heat: Mutex<Heat>,
    /// Signalled each time an object was found changed in the store (another size or ETag) and
    /// dropped: whoever handed out its bytes before (the mount's page cache) must drop them too.
    changed: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("dir", &self.inner.disk.config.dir).finish_non_exhaustive()
    }
}

impl Cache {
    /// Opens (or creates) the cache in `config.dir`, recovering from any crash. Flights and
    /// blocking work run on `runtime`. Blocking: call from a plain thread or `spawn_blocking`.
    pub fn open(config: CacheConfig, runtime: tokio::runtime::Handle) -> Result<Cache, CacheError> {
        let disk = Disk::open(config)?;
        let heat = {
            let mut core = disk.core();
            let (keep, forget) = heat::split_forgotten(core.index.load_heat()?, disk::unix_now());
            if !forget.is_empty() {
                core.index.forget_heat(&forget)?;
            }
            Heat::from_rows(keep)
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                disk,
                runtime,
                flights: Mutex::new(HashMap::new()),
                next_flight: AtomicU64::new(1),
                layouts: Mutex::new(HashMap::new()),
                streams: Mutex::new(stream::Streams::default()),
                heat: Mutex::new(heat),
                changed: tokio::sync::watch::Sender::new(()),
            }),
        })
    }

    /// Wakes each time an object was found changed in the store and dropped (see
    /// `Inner::changed`; counted in `Counters::objects_changed`). Ends when the cache is dropped.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.inner.changed.subscribe()
    }

    /// The configuration the cache was opened with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.disk.config
    }

    /// Reads `len` bytes at `offset` of `object` (fewer at the end of the object, none past
    /// it), from the cache where present and verified, from the store otherwise.
    pub async fn read(
        &self,
        object: &ObjectRef,
        offset: u64,
        len: u64,
        opts: ReadOptions,
    ) -> Result<Bytes, CacheError> {
        let end = offset.saturating_add(len).min(object.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let units = self.units(object, opts).await?;
        if let (Priority::Demand, OwnedUnits::Layout(layout), Some(table)) = (opts.priority, &units, &object.table) {
            self.record_heat(table, layout, offset..end);
        }
        self.read_with(object, offset..end, opts, &units, true).await.map(|b| b.unwrap_or_default())
    }

    /// Fetches and stores `ranges` of `object` in the background priority (widened like any
    /// miss), without returning them. Returns bytes fetched from the store.
    pub async fn prefetch(&self, object: &ObjectRef, ranges: &[Range<u64>]) -> Result<u64, CacheError> {
        self.prefetch_pinned(object, ranges, false).await
    }

    /// [`Cache::prefetch`], marking the ranges pinned (fetched ones and those already cached)
    /// when `pin` is set.
    pub async fn prefetch_pinned(
        &self,
        object: &ObjectRef,
        ranges: &[Range<u64>],
        pin: bool,
    ) -> Result<u64, CacheError> {
        let opts = ReadOptions { priority: Priority::Prefetch, persist: Persist::Cache, pin };
        let units = self.units(object, opts).await?;
        let before = self.inner.disk.metrics.snapshot().0.bytes_fetched;
        // All ranges at once: their flights queue on the store's prefetch permits, so the
        // prefetch budget is used in full rather than one round trip at a time.
        let reads = ranges.iter().filter_map(|r| {
            let r = r.start.min(object.size)..r.end.min(object.size);
            (r.start < r.end).then(|| self.read_with(object, r, opts, &units, false))
        });
        futures::future::try_join_all(reads).await?;
        // Other flights may run concurrently; this is an upper bound, good enough for progress.
        Ok(self.inner.disk.metrics.snapshot().0.bytes_fetched.saturating_sub(before))
    }

    /// The object's Parquet layout (fetching and caching its footer on first use), or `None`
    /// for non-Parquet, encrypted or unparseable files.
    pub async fn layout(&self, object: &ObjectRef, opts: ReadOptions) -> Result<Option<Arc<Layout>>, CacheError> {
        let ObjectKind::Parquet { footer_size } = object.kind else { return Ok(None) };
        let key = object.cache_key();
        if let Some(slot) = self.layouts().get(&key).cloned() {
            return Ok(match slot {
                LayoutSlot::Known(l) => Some(l),
                LayoutSlot::Unusable => None,
            });
        }
        let unusable = |e: &dyn std::fmt::Display| -> Result<Option<Arc<Layout>>, CacheError> {
            tracing::warn!(key = %key, error = %e, "cannot read the Parquet layout: caching by blocks");
            self.layouts().insert(key.clone(), LayoutSlot::Unusable);
            Ok(None)
        };
        let meta_len = match footer_size {
            Some(n) => n,
            None => {
                if object.size < layout::FOOTER_TAIL_LEN {
                    return unusable(&"file too small");
                }
                let tail_range = object.size - layout::FOOTER_TAIL_LEN..object.size;
                let tail =
                    self.read_with(object, tail_range, opts, &OwnedUnits::Blocks, true).await?.unwrap_or_default();
                match layout::metadata_len_from_tail(&tail) {
                    Ok(n) => n,
                    Err(e) => return unusable(&e),
                }
            }
        };
        let footer = match layout::footer_range(object.size, meta_len) {
            Ok(r) => r,
            Err(e) => return unusable(&e),
        };
        let bytes =
            self.read_with(object, footer.clone(), opts, &OwnedUnits::Exact(footer), true).await?.unwrap_or_default();
        match layout::parse_footer(&bytes, object.size) {
            Ok(l) => {
                let l = Arc::new(l);
                self.layouts().insert(key.clone(), LayoutSlot::Known(l.clone()));
                Ok(Some(l))
            }
            Err(e) => unusable(&e),
        }
    }

    /// Blocking [`Cache::read`], for FUSE worker threads. Fails (rather than deadlocking)
    /// when called from inside a tokio runtime.
    pub fn read_blocking(
        &self,
        object: &ObjectRef,
        offset: u64,
        len: u64,
        opts: ReadOptions,
    ) -> Result<Bytes, CacheError> {
        let end = offset.saturating_add(len).min(object.size);
        if offset < end
            && let Some(bytes) = self.hit_here(object, offset..end, opts)?
        {
            return Ok(bytes);
        }
        self.block_on(self.read(object, offset, len, opts))?
    }

    /// Blocking [`Cache::layout`].
    pub fn layout_blocking(&self, object: &ObjectRef, opts: ReadOptions) -> Result<Option<Arc<Layout>>, CacheError> {
        self.block_on(self.layout(object, opts))?
    }

    /// Blocking [`Cache::prefetch`].
    pub fn prefetch_blocking(&self, object: &ObjectRef, ranges: &[Range<u64>]) -> Result<u64, CacheError> {
        self.block_on(self.prefetch(object, ranges))?
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output, CacheError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(CacheError::Internal("blocking cache call from inside the async runtime".into()));
        }
        Ok(self.inner.runtime.block_on(f))
    }

    /// Drops every cached byte of `object` (it left every kept snapshot, or policy changed).
    /// Returns bytes evicted. Blocking.
    pub fn evict_object(&self, object: &ObjectRef) -> Result<u64, CacheError> {
        let key = object.cache_key();
        self.layouts().remove(&key);
        self.inner.disk.evict_object(&key)
    }

    /// Drops every cached byte of `table` (`schema.table`), whatever object holds it: the
    /// policy no longer lets it be stored. Returns bytes evicted. Blocking.
    pub fn evict_table(&self, table: &str) -> Result<u64, CacheError> {
        let keys: Vec<String> = {
            let core = self.inner.disk.core();
            core.state
                .objects
                .iter()
                .filter(|(_, o)| o.pieces.values().any(|p| p.table_name.as_deref() == Some(table)))
                .map(|(k, _)| k.clone())
                .collect()
        };
        let mut total = 0;
        for k in keys {
            self.layouts().remove(&k);
            total += self.inner.disk.evict_object(&k)?;
        }
        Ok(total)
    }

    /// Unpins every cached byte of `table` (pinned bytes are evicted last): the budget may
    /// drop them like any other again. Returns the bytes unpinned. Blocking.
    pub fn unpin_table(&self, table: &str) -> u64 {
        self.inner.disk.set_pinned(table, false)
    }

    /// Drops every cached byte. Blocking.
    pub fn evict_all(&self) -> Result<u64, CacheError> {
        let keys: Vec<String> = self.inner.disk.core().state.objects.keys().cloned().collect();
        self.layouts().clear();
        let mut total = 0;
        for k in keys {
            total += self.inner.disk.evict_object(&k)?;
        }
        Ok(total)
    }

    /// Drops pieces stored more than `max_age` ago (the policy's limit on how old local
    /// copies may get). Pieces being read right now go at the next call. Blocking.
    pub fn evict_older_than(&self, max_age: Duration) -> Result<u64, CacheError> {
        let cutoff = disk::unix_now().saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        // `<= cutoff` in words: stored_at < cutoff + 1, so max_age zero drops everything.
        self.inner.disk.evict_where(u64::MAX, Some(cutoff.saturating_add(1)))
    }

    /// Evicts least valuable pieces until at most `target` bytes remain. Blocking.
    pub fn shrink_to(&self, target: u64) -> Result<u64, CacheError> {
        let stored = self.inner.disk.core().state.stored;
        if stored <= target {
            return Ok(0);
        }
        self.inner.disk.evict_where(stored - target, None)
    }

    /// Saves access statistics and column heat now (they are otherwise saved every few
    /// seconds). Blocking.
    pub fn flush(&self) {
        self.inner.disk.flush();
        if let Err(e) = self.save_heat() {
            tracing::warn!(error = %e, "cannot save column heat");
        }
    }

    /// Saves the heat scores that changed since the last save, in one transaction: the read
    /// path only updates memory, and the daemon calls this every few seconds and at shutdown.
    /// Nothing to save costs one lock. Blocking.
    pub fn save_heat(&self) -> Result<(), CacheError> {
        if !self.heat().has_changes() {
            return Ok(());
        }
        // Under `core`, so two saves cannot write their batches in the wrong order.
        let mut core = self.inner.disk.core();
        let batch = self.heat().take_dirty();
        if let Err(e) = core.index.save_heat(&batch) {
            // Not lost: marked again, for the next save.
            self.heat().restore_dirty(&batch);
            return Err(e.into());
        }
        Ok(())
    }

    /// Size and counters.
    pub fn stats(&self) -> CacheStats {
        let (totals, per_table) = self.inner.disk.metrics.snapshot();
        let core = self.inner.disk.core();
        CacheStats {
            bytes_stored: core.state.stored,
            bytes_reserved: core.state.reserved,
            max_cache: self.inner.disk.config.max_cache,
            objects: core.state.objects.len(),
            pieces: core.state.objects.values().map(|o| o.pieces.len()).sum(),
            totals,
            per_table,
        }
    }

    /// The byte ranges of `object` held in the cache.
    pub fn present(&self, object: &ObjectRef) -> RangeSet {
        let core = self.inner.disk.core();
        core.state.objects.get(&object.cache_key()).map(|o| o.present.clone()).unwrap_or_default()
    }

    /// The decayed read score of each column (field id) of `table` read on demand: one per
    /// read, halving every [`HALF_LIFE_SECS`], kept across restarts (`cache/heat.rs`). Reads
    /// are attributed to every column chunk they overlap, so a reader (or kernel readahead)
    /// that reads across chunks warms its neighbours too.
    pub fn column_heat(&self, table: &str) -> BTreeMap<i32, f64> {
        self.heat().scores(table, disk::unix_now())
    }

    /// The hot columns of `table`: those whose score is at least [`HOT_THRESHOLD`] (read
    /// within about the last half-life). What `hot` prewarming fetches.
    pub fn hot_columns(&self, table: &str) -> BTreeSet<i32> {
        self.heat().hot(table, disk::unix_now())
    }

    fn record_heat(&self, table: &str, layout: &Layout, range: Range<u64>) {
        let columns = layout.chunks_overlapping(range).filter_map(|c| c.field_id);
        self.heat().record(table, columns, disk::unix_now());
    }

    fn heat(&self) -> std::sync::MutexGuard<'_, Heat> {
        self.inner.heat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pieces of `object` held in the cache, with what they belong to.
    pub fn pieces(&self, object: &ObjectRef) -> Vec<CachedPiece> {
        let core = self.inner.disk.core();
        let Some(obj) = core.state.objects.get(&object.cache_key()) else { return Vec::new() };
        obj.pieces
            .iter()
            .map(|(start, p)| CachedPiece {
                range: *start..start + p.len,
                table: p.table_name.clone(),
                column_id: p.column_id,
                hits: p.hits,
                pinned: p.pinned,
            })
            .collect()
    }

    fn layouts(&self) -> std::sync::MutexGuard<'_, HashMap<String, LayoutSlot>> {
        self.inner.layouts.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn units(&self, object: &ObjectRef, opts: ReadOptions) -> Result<OwnedUnits, CacheError> {
        Ok(match object.kind {
            ObjectKind::EncryptedParquet => OwnedUnits::Whole,
            ObjectKind::Other => OwnedUnits::Blocks,
            ObjectKind::Parquet { .. } => match self.layout(object, opts).await? {
                Some(l) => OwnedUnits::Layout(l),
                None => OwnedUnits::Blocks,
            },
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Disk) -> Result<T, CacheError> + Send + 'static,
    ) -> Result<T, CacheError> {
        let inner = self.inner.clone();
        self.inner
            .runtime
            .spawn_blocking(move || f(&inner.disk))
            .await
            .map_err(|e| CacheError::Internal(format!("cache I/O task failed: {e}")))?
    }

    /// The read path: pieces from disk, gaps from flights (joined or started). Returns the
    /// bytes of `range` when `want` is set.
    async fn read_with(
        &self,
        object: &ObjectRef,
        range: Range<u64>,
        opts: ReadOptions,
        units: &OwnedUnits,
        want: bool,
    ) -> Result<Option<Bytes>, CacheError> {
        let key = object.cache_key();
        let table = object.table.clone();
        let read_through = opts.persist == Persist::ReadThrough;
        for attempt in 0..4 {
            // 1. What is cached (nothing counts for read-through: those bytes must not exist).
            let lookup = if read_through {
                disk::Lookup::missing(range.clone())
            } else {
                let (k, r, t, size) = (key.clone(), range.clone(), table.clone(), object.size);
                let found = self
                    .blocking(move |d| {
                        d.ensure_object(&k, size)?;
                        d.lookup(&k, r, opts.pin, t.as_deref())
                    })
                    .await;
                match found {
                    Ok(lookup) => lookup,
                    // The cache cannot be used (a full disk leaves SQLite no room for a new
                    // object's row; a data file cannot be read): serve the read from the
                    // store, as a full cache does. Its flights store what they can.
                    Err(e) => {
                        tracing::warn!(key, error = %e, "cache unusable for this read; reading from the store");
                        disk::Lookup::missing(range.clone())
                    }
                }
            };
            if lookup.gaps.is_empty() {
                return self.hit(object, &range, &lookup.pieces, want);
            }
            // 2. Join or start flights for the gaps.
            let flights = match self.flights_for(object, &key, &lookup, opts, units, attempt < 3) {
                Some(f) => f,
                None => continue, // bytes landed meanwhile: look again
            };
            let mut fetched = Vec::with_capacity(flights.len());
            for f in &flights {
                let bytes = f.result.clone().await.map_err(CacheError::from)?;
                fetched.push((f.range.clone(), bytes));
            }
            let from_cache: u64 =
                lookup.pieces.iter().map(|p| p.range.end.min(range.end) - p.range.start.max(range.start)).sum();
            self.inner.disk.metrics.record(
                table.as_deref(),
                Counters { misses: u64::from(want), bytes_served_from_cache: from_cache, ..Counters::default() },
            );
            return if want { assemble(&range, &lookup.pieces, &fetched).map(Some) } else { Ok(None) };
        }
        Err(CacheError::Internal(format!("read of {key} kept racing with stores")))
    }

    /// Counts a read served whole from the cache and, when `want` is set, assembles its bytes.
    fn hit(
        &self,
        object: &ObjectRef,
        range: &Range<u64>,
        pieces: &[disk::ReadPiece],
        want: bool,
    ) -> Result<Option<Bytes>, CacheError> {
        self.inner.disk.metrics.record(
            object.table.as_deref(),
            Counters { hits: u64::from(want), bytes_served_from_cache: range.end - range.start, ..Counters::default() },
        );
        if want { assemble(range, pieces, &[]).map(Some) } else { Ok(None) }
    }

    /// Answers a read on the calling thread when every byte of it is cached and the object's
    /// layout is already known, else `None` (the caller takes the async path). On the mount
    /// most reads are such hits (every page of a chunk after its first), and a trip through
    /// the runtime, two thread hand-offs, costs more than the copy itself.
    fn hit_here(&self, object: &ObjectRef, range: Range<u64>, opts: ReadOptions) -> Result<Option<Bytes>, CacheError> {
        if opts.persist == Persist::ReadThrough {
            return Ok(None);
        }
        let key = object.cache_key();
        if !self.inner.disk.covers(&key, object.size, &range) {
            return Ok(None);
        }
        let layout = match object.kind {
            ObjectKind::Parquet { .. } => match self.layouts().get(&key) {
                Some(LayoutSlot::Known(l)) => Some(l.clone()),
                Some(LayoutSlot::Unusable) => None,
                None => return Ok(None),
            },
            ObjectKind::EncryptedParquet | ObjectKind::Other => None,
        };
        let lookup = self.inner.disk.lookup(&key, range.clone(), opts.pin, object.table.as_deref())?;
        if !lookup.gaps.is_empty() {
            return Ok(None); // a piece failed its checksum and was dropped: refetch it
        }
        if let (Priority::Demand, Some(layout), Some(table)) = (opts.priority, &layout, &object.table) {
            self.record_heat(table, layout, range.clone());
        }
        self.hit(object, &range, &lookup.pieces, true)
    }

    /// The cached, verified bytes from `from` on, to the end of the column chunk (or footer)
    /// that the byte before `from` lies in, at most `limit` of them and stopping at the first
    /// byte not cached: what a reader that has just read up to `from` reads next. The mount
    /// pushes them into the kernel's page cache, so that reader's next pages cost no request.
    /// `None` when the layout is not known yet or nothing after `from` is cached. Blocking.
    pub fn cached_rest_of_unit(&self, object: &ObjectRef, from: u64, limit: u64) -> Option<Bytes> {
        let key = object.cache_key();
        let layout = match self.layouts().get(&key) {
            Some(LayoutSlot::Known(l)) => l.clone(),
            _ => return None,
        };
        let unit = layout.unit_at(from.checked_sub(1)?)?;
        let end = unit.end.min(from.saturating_add(limit));
        let run = self.inner.disk.present_run(&key, object.size, from..end)?;
        let lookup = self.inner.disk.lookup(&key, run.clone(), false, object.table.as_deref()).ok()?;
        if !lookup.gaps.is_empty() {
            return None;
        }
        assemble(&run, &lookup.pieces, &[]).ok()
    }

    /// Finds flights covering `lookup.gaps` and starts new ones for the rest. Returns `None`
    /// when some gap became present since the lookup (the caller looks again), which closes
    /// the window in which a flight finishes between our lookup and our check.
    fn flights_for(
        &self,
        object: &ObjectRef,
        key: &str,
        lookup: &disk::Lookup,
        opts: ReadOptions,
        units: &OwnedUnits,
        may_retry: bool,
    ) -> Option<Vec<Flight>> {
        let persist = opts.persist == Persist::Cache;
        let mut table = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        if persist && may_retry {
            // Lock order flights → core: a finished flight stores before leaving the table.
            for g in &lookup.gaps {
                if !self.inner.disk.present_in(key, g.clone()).is_empty() {
                    return None;
                }
            }
        }
        let existing = table.entry(key.to_string()).or_default();
        let mut chosen: Vec<Flight> = Vec::new();
        let mut uncovered = Vec::new();
        for g in &lookup.gaps {
            let mut rest: RangeSet = [g.clone()].into_iter().collect();
            for f in existing.iter().filter(|f| f.persists || !persist) {
                if !rest.intersection(f.range.clone()).is_empty() {
                    rest.remove(f.range.clone());
                    if !chosen.iter().any(|c| c.id == f.id) {
                        chosen.push(f.clone());
                    }
                }
            }
            uncovered.extend(rest.ranges().iter().cloned());
        }
        if !uncovered.is_empty() {
            let cfg = &self.inner.disk.config;
            let lim = PlanLimits {
                size: object.size,
                block: cfg.block_size,
                max_fetch: cfg.max_fetch,
                coalesce_gap: cfg.coalesce_gap,
                page: sys::page_size(),
            };
            let borrowed = units.as_units();
            let planned = plan::plan(&uncovered, &lookup.read, &lookup.present, &borrowed, &lim);
            let ahead = if opts.priority == Priority::Demand && persist {
                self.streams().on_miss(key, &planned, cfg.max_fetch)
            } else {
                0
            };
            let end = planned.last().map(|r| r.end);
            let down_columns = match units {
                // A sequential reader is fetched ahead as a whole (below), in larger requests.
                OwnedUnits::Layout(layout) if opts.priority == Priority::Demand && persist && ahead == 0 => {
                    let flying: Vec<Range<u64>> = existing.iter().map(|f| f.range.clone()).collect();
                    column_ahead::ahead(layout, &planned, &lookup.present, &flying, cfg.max_fetch, lim.page)
                }
                _ => Vec::new(),
            };
            for r in planned {
                let flight = self.start_flight(object, key, r, opts, units);
                existing.push(flight.clone());
                chosen.push(flight);
            }
            // A reader going down columns: their next chunks, in parallel, without making this
            // read wait for them. Later reads join these flights.
            for r in down_columns.into_iter().flat_map(|r| lookup.present.missing(r)) {
                existing.push(self.start_flight(object, key, r, opts, units));
            }
            // A sequential reader: fetch what it reads next, whole units, without making this
            // read wait for it. Later reads join these flights.
            if let Some(from) = end.filter(|_| ahead > 0) {
                let to = from.saturating_add(ahead).min(object.size);
                let busy = existing.iter().any(|f| f.range.start < to && from < f.range.end);
                if from < to && !busy {
                    let next = from..to;
                    let mut reached = from;
                    for r in plan::plan(std::slice::from_ref(&next), &next, &lookup.present, &borrowed, &lim) {
                        self.streams().ahead_to(key, reached, r.end);
                        reached = reached.max(r.end);
                        existing.push(self.start_flight(object, key, r, opts, units));
                    }
                }
            }
        }
        Some(chosen)
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, stream::Streams> {
        self.inner.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_flight(
        &self,
        object: &ObjectRef,
        key: &str,
        range: Range<u64>,
        opts: ReadOptions,
        units: &OwnedUnits,
    ) -> Flight {
        let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
        let persists = opts.persist == Persist::Cache;
        tracing::debug!(key, start = range.start, len = range.end - range.start, priority = ?opts.priority, persists, "fetch");
        let cache = self.clone();
        let object = object.clone();
        let key = key.to_string();
        let layout = match units {
            OwnedUnits::Layout(l) => Some(l.clone()),
            _ => None,
        };
        let r = range.clone();
        let task = self.inner.runtime.spawn(async move {
            let out = cache.fly(&object, &key, r, opts, layout).await;
            let mut table = cache.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = table.get_mut(&key) {
                list.retain(|f| f.id != id);
                if list.is_empty() {
                    table.remove(&key);
                }
            }
            out
        });
        let result =
            async move { task.await.unwrap_or_else(|e| Err(FlightError::Internal(format!("fetch task failed: {e}")))) }
                .boxed()
                .shared();
        Flight { id, range, persists, result }
    }

    /// One flight: GET, check, store.
    async fn fly(
        &self,
        object: &ObjectRef,
        key: &str,
        range: Range<u64>,
        opts: ReadOptions,
        layout: Option<Arc<Layout>>,
    ) -> Result<Bytes, FlightError> {
        let fetched = object
            .store
            .get_range(&object.key, range.clone(), opts.priority)
            .await
            .map_err(|e| FlightError::Store(Arc::new(e)))?;
        let n = fetched.bytes.len() as u64;
        self.inner
            .disk
            .metrics
            .record(object.table.as_deref(), Counters { requests: 1, bytes_fetched: n, ..Counters::default() });
        let changed = |detail: String| {
            self.inner
                .disk
                .metrics
                .record(object.table.as_deref(), Counters { objects_changed: 1, ..Counters::default() });
            self.inner.changed.send_replace(());
            FlightError::Store(Arc::new(StoreError::Changed {
                store: object.store.id().to_string(),
                key: object.key.clone(),
                detail,
            }))
        };
        if fetched.object_size != object.size {
            // The catalog's size is the truth for the lake; a different object is not ours.
            let k = key.to_string();
            let _ = self.blocking(move |d| d.evict_object(&k)).await;
            return Err(changed(format!("size {} where the catalog says {}", fetched.object_size, object.size)));
        }
        if opts.persist == Persist::ReadThrough {
            self.inner
                .disk
                .metrics
                .record(object.table.as_deref(), Counters { bytes_not_stored: n, ..Counters::default() });
            return Ok(fetched.bytes);
        }
        let (k, etag, bytes, table) =
            (key.to_string(), fetched.etag.clone(), fetched.bytes.clone(), object.table.clone());
        let size = object.size;
        let stored = self
            .blocking(move |d| {
                if !d.check_etag(&k, etag.as_deref())? {
                    return Ok(false);
                }
                let object_id = d.ensure_object(&k, size)?;
                let column_of = |offset: u64| layout.as_ref().and_then(|l| l.chunk_at(offset)).and_then(|c| c.field_id);
                let req = StoreRequest {
                    key: &k,
                    object_id,
                    range,
                    bytes,
                    pin: opts.pin,
                    table: table.as_deref(),
                    column_of: &column_of,
                };
                if let Err(e) = d.store(req) {
                    tracing::warn!(key = %k, error = %e, "cannot store fetched bytes; serving them anyway");
                }
                Ok(true)
            })
            .await;
        match stored {
            Ok(true) => Ok(fetched.bytes),
            Ok(false) => Err(changed("ETag differs from the cached copy's; cached bytes dropped".into())),
            Err(e) => {
                tracing::warn!(key, error = %e, "cache bookkeeping failed; serving fetched bytes anyway");
                Ok(fetched.bytes)
            }
        }
    }
}

/// `Units` that own their layout, so they can live across awaits.
#[derive(Debug, Clone)]
enum OwnedUnits {
    Layout(Arc<Layout>),
    Exact(Range<u64>),
    Whole,
    Blocks,
}

impl OwnedUnits {
    fn as_units(&self) -> Units<'_> {
        match self {
            OwnedUnits::Layout(l) => Units::Layout(l),
            OwnedUnits::Exact(r) => Units::Exact(r.clone()),
            OwnedUnits::Whole => Units::Whole,
            OwnedUnits::Blocks => Units::Blocks,
        }
    }
}

/// Copies `range` out of cached pieces and fetched ranges, which must together cover it
/// (anything else is a bug, reported rather than served as zeros).
fn assemble(
    range: &Range<u64>,
    pieces: &[disk::ReadPiece],
    fetched: &[(Range<u64>, Bytes)],
) -> Result<Bytes, CacheError> {
    let sources = pieces.iter().map(|p| (&p.range, &p.bytes)).chain(fetched.iter().map(|(r, b)| (r, b)));
    let mut covered = RangeSet::new();
    let mut out: Option<Vec<u8>> = None;
    for (r, b) in sources {
        if (b.len() as u64) != r.end - r.start {
            return Err(CacheError::Internal(format!("source for {r:?} holds {} bytes", b.len())));
        }
        // The common case: one source covers everything; slice without copying.
        if r.start <= range.start && range.end <= r.end && out.is_none() {
            return Ok(b.slice((range.start - r.start) as usize..(range.end - r.start) as usize));
        }
        let lo = r.start.max(range.start);
        let hi = r.end.min(range.end);
        if lo >= hi {
            continue;
        }
        let buf = out.get_or_insert_with(|| vec![0u8; (range.end - range.start) as usize]);
        buf[(lo - range.start) as usize..(hi - range.start) as usize]
            .copy_from_slice(&b[(lo - r.start) as usize..(hi - r.start) as usize]);
        covered.insert(lo..hi);
    }
    if !covered.contains(range) {
        return Err(CacheError::Internal(format!("read {range:?} not covered: {:?}", covered.missing(range.clone()))));
    }
    Ok(Bytes::from(out.unwrap_or_default()))
}
