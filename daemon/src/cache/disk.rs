//! The blocking half of the cache: everything that touches the data files or the index.
//! Called from `spawn_blocking` (or at open); never from an async worker directly.
//!
//! Lock order (see also `cache.rs`): `flights` → `core`; `files`, `layouts` and `metrics` are
//! leaves, taken alone or last, never while waiting for another lock. `core` is never held
//! across file I/O: pieces are claimed (marked busy) under the lock, written or punched with
//! the lock released, then committed under the lock again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{DirBuilder, File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::index::{Index, Opened, PieceRow};
use super::metrics::{Counters, Metrics};
use super::range_set::RangeSet;
use super::state::{Object, State, Victim};
use super::{CacheConfig, CacheError, PIECE_SIZE, sys};

/// Bytes the cache's own data never takes, whatever `min_free_disk` says: SQLite needs room
/// to grow its WAL (up to ~4 MiB between checkpoints) and its file to record any change,
/// evictions included. Without it, a cache that filled its disk could not even be emptied
/// (`SQLITE_FULL` on every eviction).
const INDEX_ROOM: u64 = 8 << 20;

/// State and index, behind one mutex so that they never disagree.
#[derive(Debug)]
pub struct Core {
    pub state: State,
    pub index: Index,
    pub last_flush: Instant,
}

/// The on-disk side of the cache.
#[derive(Debug)]
pub struct Disk {
    pub config: CacheConfig,
    pub objects_dir: PathBuf,
    pub core: Mutex<Core>,
    files: Mutex<HashMap<String, Arc<File>>>,
    pub metrics: Metrics,
    /// `<dir>/lock`, held (flock) for the cache's life: a second process on the same folder
    /// would punch out pieces the first has indexed.
    _lock: File,
}

/// A piece copied out of a data file and verified.
#[derive(Debug)]
pub struct ReadPiece {
    pub range: Range<u64>,
    pub bytes: Bytes,
}

/// What a read found in the cache.
#[derive(Debug, Default)]
pub struct Lookup {
    /// The range read.
    pub read: Range<u64>,
    /// Verified pieces overlapping the read.
    pub pieces: Vec<ReadPiece>,
    /// Parts of the read not covered by verified pieces.
    pub gaps: Vec<Range<u64>>,
    /// The object's present ranges after dropping any corrupt piece (for planning).
    pub present: RangeSet,
}

impl Lookup {
    /// Nothing of `range` found.
    pub fn missing(range: Range<u64>) -> Lookup {
        Lookup { gaps: vec![range.clone()], read: range, pieces: Vec::new(), present: RangeSet::new() }
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_path_buf(), source }
}

fn mkdir_private(path: &Path) -> Result<(), CacheError> {
    DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io_err(path))
}

/// How long opening a cache waits for its lock: a daemon that was just stopped lets go of it
/// when its last background fetch ends (in the same process: tests, benchmarks, a restart), or
/// when its process has exited.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Takes the cache folder's lock, waiting up to [`LOCK_WAIT`] for a previous holder, or says
/// which folder is in use. The lock is released by the kernel when the process dies, so a
/// crashed daemon never leaves the cache locked.
fn lock_dir(dir: &Path) -> Result<File, CacheError> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(CacheError::Locked { dir: dir.to_path_buf() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
    }
}

/// `ab/<sha256 of key>-<object id>.data`: the hash spreads files over 256 folders and keeps
/// names free of the key's characters; the id makes a re-created object a new file, so a
/// write still in flight for the old one can never land in the new one.
pub fn file_name_for(cache_key: &str, id: i64) -> String {
    let hash = hex::encode(Sha256::digest(cache_key.as_bytes()));
    format!("{}/{}-{}.data", &hash[..2], hash, id)
}

impl Disk {
    /// Opens the cache folder: creates it (0700), opens the index, and recovers from any
    /// crash: punches bytes no piece claims, drops pieces whose file vanished, and deletes data
    /// files no object claims.
    pub fn open(config: CacheConfig) -> Result<Disk, CacheError> {
        mkdir_private(&config.dir)?;
        let lock = lock_dir(&config.dir)?;
        let objects_dir = config.dir.join("objects");
        mkdir_private(&objects_dir)?;
        let index_path = config.dir.join("index.sqlite");
        let (index, opened) = Index::open(&index_path)?;
        if let Opened::Reset { found } = opened {
            tracing::warn!(found, "cache index of another format version: starting empty");
        }
        std::fs::set_permissions(&index_path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(&index_path))?;
        let mut state = State::default();
        let objects = index.objects()?;
        for row in &objects {
            state.keys.insert(row.id, row.cache_key.clone());
            state.objects.insert(
                row.cache_key.clone(),
                Object {
                    id: row.id,
                    size: row.size,
                    etag: row.etag.clone(),
                    file_name: row.file_name.clone(),
                    pieces: BTreeMap::new(),
                    present: RangeSet::new(),
                    busy: RangeSet::new(),
                },
            );
        }
        for p in index.pieces()? {
            if let Some(key) = state.keys.get(&p.object_id).cloned() {
                state.add_piece(&key, &p);
            }
        }
        // Reconcile data files with the index.
        let mut referenced = HashSet::new();
        let mut lost = Vec::new();
        for obj in state.objects.values() {
            let path = objects_dir.join(&obj.file_name);
            referenced.insert(path.clone());
            match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => {
                    let len = f.metadata().map_err(io_err(&path))?.len();
                    if len > obj.size {
                        f.set_len(obj.size).map_err(io_err(&path))?;
                    }
                    for gap in obj.present.missing(0..len.min(obj.size)) {
                        sys::punch_hole(&f, gap.start, gap.end - gap.start).map_err(io_err(&path))?;
                    }
                }
                Err(e) => {
                    if !obj.pieces.is_empty() {
                        tracing::warn!(file = %path.display(), error = %e, "cache data file unusable: dropping its pieces");
                    }
                    lost.push(obj.id);
                }
            }
        }
        for id in lost {
            index.delete_object(id)?;
            if let Some(key) = state.keys.remove(&id)
                && let Some(obj) = state.objects.remove(&key)
            {
                state.stored -= obj.present.len_bytes();
            }
        }
        remove_unreferenced(&objects_dir, &referenced)?;
        Ok(Disk {
            config,
            objects_dir,
            core: Mutex::new(Core { state, index, last_flush: Instant::now() }),
            files: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            _lock: lock,
        })
    }

    pub fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves state and index consistent at every await-free
        // step we take, so keep going rather than poisoning the whole cache.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&self, file_name: &str, create: bool) -> Result<Arc<File>, CacheError> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.get(file_name) {
            return Ok(f.clone());
        }
        let path = self.objects_dir.join(file_name);
        let f = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                if let Some(parent) = path.parent() {
                    mkdir_private(parent)?;
                }
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io_err(&path))?;
                // Make the new directory entry durable before any piece in it is indexed.
                if let Some(parent) = path.parent() {
                    File::open(parent).and_then(|d| d.sync_all()).map_err(io_err(parent))?;
                }
                f
            }
            Err(e) => return Err(CacheError::Io { path, source: e }),
        };
        // Bound open descriptors; handles in use stay alive through their Arc.
        if files.len() >= 256 {
            files.clear();
        }
        let f = Arc::new(f);
        files.insert(file_name.to_string(), f.clone());
        Ok(f)
    }

    fn forget_file(&self, file_name: &str) {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).remove(file_name);
    }

    /// Ensures an object entry (and index row) exists for `key` with this size, and returns
    /// its id. A recorded object of another size is a different object: dropped first.
    pub fn ensure_object(&self, key: &str, size: u64) -> Result<i64, CacheError> {
        let mut core = self.core();
        if let Some(obj) = core.state.objects.get(key) {
            if obj.size == size {
                return Ok(obj.id);
            }
            tracing::info!(key, old = obj.size, new = size, "cached object changed size: dropping it");
            let file = drop_object_locked(&mut core, key)?;
            drop(core);
            if let Some(file) = file {
                self.remove_file(&file);
            }
            core = self.core();
        }
        let now = unix_now();
        let (id, file_name) = core.index.insert_object(key, size, None, now, |id| file_name_for(key, id))?;
        core.state.keys.insert(id, key.to_string());
        core.state.objects.insert(
            key.to_string(),
            Object {
                id,
                size,
                etag: None,
                file_name,
                pieces: BTreeMap::new(),
                present: RangeSet::new(),
                busy: RangeSet::new(),
            },
        );
        Ok(id)
    }

    fn remove_file(&self, file_name: &str) {
        self.forget_file(file_name);
        let path = self.objects_dir.join(file_name);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove cache file");
        }
    }

    /// Copies out the verified pieces overlapping `range`; corrupt pieces are dropped (and
    /// counted) and reported as gaps. Access statistics are updated for pieces served.
    pub fn lookup(&self, key: &str, range: Range<u64>, pin: bool, table: Option<&str>) -> Result<Lookup, CacheError> {
        let (file_name, wanted) = {
            let mut core = self.core();
            let Some(obj) = core.state.objects.get_mut(key) else {
                return Ok(Lookup::missing(range));
            };
            let mut wanted = Vec::new();
            // Pieces are disjoint, so the ones overlapping `range` start before its end and end
            // after its start.
            for (start, p) in obj.pieces.range_mut(..range.end).rev() {
                if start + p.len <= range.start {
                    break;
                }
                p.readers += 1;
                wanted.push((*start, p.len, p.crc32c));
            }
            wanted.reverse();
            (obj.file_name.clone(), wanted)
        };
        let mut pieces = Vec::new();
        let mut corrupt = Vec::new();
        let mut io_error = None;
        if !wanted.is_empty() {
            match self.file(&file_name, false) {
                Ok(f) => {
                    for &(start, len, crc) in &wanted {
                        let mut buf = vec![0u8; len as usize];
                        match f.read_exact_at(&mut buf, start) {
                            Ok(()) if crc32c::crc32c(&buf) == crc => {
                                pieces.push(ReadPiece { range: start..start + len, bytes: Bytes::from(buf) })
                            }
                            Ok(()) => corrupt.push(start),
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => corrupt.push(start),
                            Err(e) => {
                                io_error = Some(e);
                                break;
                            }
                        }
                    }
                }
                Err(CacheError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    corrupt.extend(wanted.iter().map(|w| w.0));
                }
                Err(e) => return Err(self.release_readers(key, &wanted, e)),
            }
        }
        let now = unix_now();
        let mut victims = Vec::new();
        let present = {
            let mut core = self.core();
            if let Some(obj) = core.state.objects.get_mut(key) {
                for &(start, _, _) in &wanted {
                    if let Some(p) = obj.pieces.get_mut(&start) {
                        p.readers = p.readers.saturating_sub(1);
                    }
                }
                for rp in &pieces {
                    if let Some(p) = obj.pieces.get_mut(&rp.range.start) {
                        p.last_access = now;
                        p.hits += 1;
                        p.pinned |= pin;
                        p.dirty = true;
                    }
                }
            }
            if !corrupt.is_empty() {
                tracing::warn!(key, pieces = corrupt.len(), "cached bytes failed their checksum: refetching");
                let chosen: Vec<(String, u64)> = corrupt.iter().map(|s| (key.to_string(), *s)).collect();
                victims = unindex_victims(&mut core, &chosen)?;
            }
            core.state.objects.get(key).map(|o| o.present.clone()).unwrap_or_default()
        };
        if !corrupt.is_empty() {
            self.metrics.record(table, Counters { corrupt_pieces: corrupt.len() as u64, ..Counters::default() });
            self.punch(victims, false);
        }
        if let Some(e) = io_error {
            return Err(CacheError::Io { path: self.objects_dir.join(&file_name), source: e });
        }
        self.maybe_flush();
        let mut covered = RangeSet::new();
        for p in &pieces {
            covered.insert(p.range.clone());
        }
        Ok(Lookup { gaps: covered.missing(range.clone()), read: range, pieces, present })
    }

    fn release_readers(&self, key: &str, wanted: &[(u64, u64, u32)], e: CacheError) -> CacheError {
        let mut core = self.core();
        if let Some(obj) = core.state.objects.get_mut(key) {
            for (start, _, _) in wanted {
                if let Some(p) = obj.pieces.get_mut(start) {
                    p.readers = p.readers.saturating_sub(1);
                }
            }
        }
        e
    }

    /// The parts of `range` of `key` that are present now.
    pub fn present_in(&self, key: &str, range: Range<u64>) -> Vec<Range<u64>> {
        let core = self.core();
        core.state.objects.get(key).map(|o| o.present.intersection(range)).unwrap_or_default()
    }

    /// Whether every byte of `range` of `key` (an object of `size` bytes) is present now.
    pub fn covers(&self, key: &str, size: u64, range: &Range<u64>) -> bool {
        let core = self.core();
        core.state.objects.get(key).is_some_and(|o| o.size == size && o.present.contains(range))
    }

    /// The present bytes of `key` (an object of `size` bytes) from `range.start` on, up to the
    /// first missing byte or `range.end`; `None` when `range.start` itself is missing.
    pub fn present_run(&self, key: &str, size: u64, range: Range<u64>) -> Option<Range<u64>> {
        let core = self.core();
        let obj = core.state.objects.get(key).filter(|o| o.size == size)?;
        obj.present.intersection(range.clone()).into_iter().next().filter(|r| r.start == range.start)
    }

    /// Checks the store's answer against what is cached: a different ETag means the object was
    /// replaced, so its cached bytes are dropped. Records the ETag the first time.
    pub fn check_etag(&self, key: &str, etag: Option<&str>) -> Result<bool, CacheError> {
        let Some(etag) = etag else { return Ok(true) };
        let mut core = self.core();
        let Some(obj) = core.state.objects.get_mut(key) else { return Ok(true) };
        match obj.etag.as_deref() {
            Some(known) if known == etag => Ok(true),
            Some(_) => {
                let file = drop_object_locked(&mut core, key)?;
                drop(core);
                if let Some(file) = file {
                    self.remove_file(&file);
                }
                Ok(false)
            }
            None => {
                obj.etag = Some(etag.to_string());
                let id = obj.id;
                core.index.set_etag(id, Some(etag))?;
                Ok(true)
            }
        }
    }

    /// Stores fetched bytes of `range` within the budget: claims the missing parts, evicts to
    /// make room (or stores less), writes and fsyncs, then indexes. Returns bytes stored.
    pub fn store(&self, req: StoreRequest<'_>) -> Result<u64, CacheError> {
        let StoreRequest { key, object_id, range, bytes, pin, table, column_of } = req;
        // 1. Claim, under the lock.
        let (claims, victims, file_name) = {
            let mut core = self.core();
            let state = &mut core.state;
            let Some(obj) = state.objects.get(key).filter(|o| o.id == object_id) else { return Ok(0) };
            let file_name = obj.file_name.clone();
            let mut free: RangeSet = [range.clone()].into_iter().collect();
            for r in obj.present.intersection(range.clone()).into_iter().chain(obj.busy.intersection(range.clone())) {
                free.remove(r);
            }
            let mut claims: Vec<Range<u64>> = Vec::new();
            for r in free.ranges() {
                let mut at = r.start;
                while at < r.end {
                    let end = ((at / PIECE_SIZE + 1) * PIECE_SIZE).min(r.end);
                    claims.push(at..end);
                    at = end;
                }
            }
            let want: u64 = claims.iter().map(|c| c.end - c.start).sum();
            if want == 0 {
                return Ok(0);
            }
            let budget_room = self.config.max_cache.saturating_sub(state.used());
            let disk_room = match sys::free_bytes(&self.config.dir) {
                Ok(free) => {
                    free.saturating_sub(state.reserved).saturating_sub(self.config.min_free_disk.max(INDEX_ROOM))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read free disk space: not storing");
                    0
                }
            };
            let room = budget_room.min(disk_room);
            let mut victims = Vec::new();
            let mut allowed = room;
            if want > room {
                let (chosen, freed) = core.state.choose_victims(want - room, self.hit_weight_secs(), None);
                match unindex_victims(&mut core, &chosen) {
                    Ok(taken) => {
                        victims = taken;
                        allowed = room + freed;
                    }
                    // Nothing was evicted, so store only what fits without it.
                    Err(e) => tracing::warn!(key, error = %e, "cannot evict to make room: storing less"),
                }
            }
            let state = &mut core.state;
            // Keep the leading claims that fit.
            let mut total = 0;
            claims.retain(|c| {
                let fits = total + (c.end - c.start) <= allowed;
                if fits {
                    total += c.end - c.start;
                }
                fits
            });
            if let Some(obj) = state.objects.get_mut(key) {
                for c in &claims {
                    obj.busy.insert(c.clone());
                }
            }
            state.reserved += total;
            let skipped = want - total;
            if skipped > 0 {
                self.metrics.record(table, Counters { bytes_not_stored: skipped, ..Counters::default() });
            }
            (claims, victims, file_name)
        };
        // 2. Free the victims' blocks before writing ours, so disk use stays within budget.
        self.punch(victims, true);
        if claims.is_empty() {
            return Ok(0);
        }
        // 3. Write and fsync, lock released.
        let total: u64 = claims.iter().map(|c| c.end - c.start).sum();
        let now = unix_now();
        let mut outcome = self.write_claims(&file_name, &range, &bytes, &claims).map(|crcs| {
            claims
                .iter()
                .zip(crcs)
                .map(|(c, crc)| PieceRow {
                    object_id,
                    start: c.start,
                    len: c.end - c.start,
                    crc32c: crc,
                    stored_at: now,
                    last_access: now,
                    hits: 0,
                    pinned: pin,
                    table_name: table.map(str::to_string),
                    column_id: column_of(c.start),
                })
                .collect::<Vec<PieceRow>>()
        });
        // 4. Index what landed and release the claims, under the lock.
        if let Ok(rows) = &outcome {
            let mut core = self.core();
            let Core { state, index, .. } = &mut *core;
            let Some(obj) = state.objects.get_mut(key).filter(|o| o.id == object_id) else {
                // The object was dropped meanwhile (changed or evicted whole): nothing to index.
                state.reserved -= total;
                return Ok(0);
            };
            match index.insert_pieces(rows) {
                Ok(()) => {
                    for c in &claims {
                        obj.busy.remove(c.clone());
                    }
                    state.reserved -= total;
                    for r in rows {
                        state.add_piece(key, r);
                    }
                    return Ok(total);
                }
                Err(e) => outcome = Err(e.into()),
            }
        }
        // 5. Not stored (the write or the index failed, e.g. a full disk): the bytes may be
        // on disk, half or whole, with no row vouching for them. The next start would punch
        // them; punch now, so they hold no disk meanwhile, while the claims still keep
        // everyone else out of these ranges.
        if let Ok(f) = self.file(&file_name, false) {
            for c in &claims {
                let _ = sys::punch_hole(&f, c.start, c.end - c.start);
            }
        }
        let mut core = self.core();
        core.state.reserved -= total;
        if let Some(obj) = core.state.objects.get_mut(key).filter(|o| o.id == object_id) {
            for c in &claims {
                obj.busy.remove(c.clone());
            }
        }
        outcome.map(|_| 0)
    }

    fn write_claims(
        &self,
        file_name: &str,
        range: &Range<u64>,
        bytes: &Bytes,
        claims: &[Range<u64>],
    ) -> Result<Vec<u32>, CacheError> {
        let f = self.file(file_name, true)?;
        let path = self.objects_dir.join(file_name);
        let mut crcs = Vec::with_capacity(claims.len());
        for c in claims {
            let slice = &bytes[(c.start - range.start) as usize..(c.end - range.start) as usize];
            f.write_all_at(slice, c.start).map_err(io_err(&path))?;
            crcs.push(crc32c::crc32c(slice));
        }
        f.sync_data().map_err(io_err(&path))?;
        Ok(crcs)
    }

    /// Punches evicted pieces' bytes (their index rows are already gone), then releases their
    /// busy marks. Counts them as evicted when `count` is set.
    pub fn punch(&self, victims: Vec<Victim>, count: bool) {
        for v in &victims {
            match self.file(&v.file_name, false) {
                Ok(f) => {
                    if let Err(e) = sys::punch_hole(&f, v.range.start, v.range.end - v.range.start) {
                        tracing::warn!(file = %v.file_name, error = %e, "cannot punch evicted bytes");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "evicted piece's file is gone"),
            }
            if count {
                self.metrics.record(
                    v.table_name.as_deref(),
                    Counters { bytes_evicted: v.range.end - v.range.start, ..Counters::default() },
                );
            }
        }
        let mut core = self.core();
        for v in &victims {
            if let Some(obj) = core.state.objects.get_mut(&v.cache_key).filter(|o| o.id == v.object_id) {
                obj.busy.remove(v.range.clone());
            }
        }
    }

    /// Evicts pieces chosen by `pick` from the candidates `choose_victims` allows (not being
    /// read or written). Returns bytes evicted.
    pub fn evict_where(&self, need: u64, older_than: Option<i64>) -> Result<u64, CacheError> {
        let victims = {
            let mut core = self.core();
            let (chosen, _) = core.state.choose_victims(need, self.hit_weight_secs(), older_than);
            unindex_victims(&mut core, &chosen)?
        };
        let bytes = victims.iter().map(|v| v.range.end - v.range.start).sum();
        self.punch(victims, true);
        Ok(bytes)
    }

    /// Drops an object: its pieces, index row and data file. Returns bytes evicted.
    pub fn evict_object(&self, key: &str) -> Result<u64, CacheError> {
        let (bytes, table_bytes, file) = {
            let mut core = self.core();
            let Some(obj) = core.state.objects.get(key) else { return Ok(0) };
            let bytes = obj.present.len_bytes();
            let mut table_bytes: BTreeMap<Option<String>, u64> = BTreeMap::new();
            for p in obj.pieces.values() {
                *table_bytes.entry(p.table_name.clone()).or_default() += p.len;
            }
            (bytes, table_bytes, drop_object_locked(&mut core, key)?)
        };
        if let Some(file) = file {
            self.remove_file(&file);
        }
        for (table, b) in table_bytes {
            self.metrics.record(table.as_deref(), Counters { bytes_evicted: b, ..Counters::default() });
        }
        Ok(bytes)
    }

    /// Writes changed access statistics to the index at most every few seconds: they only
    /// steer eviction, so losing the last seconds in a crash costs nothing that matters.
    pub fn maybe_flush(&self) {
        let mut core = self.core();
        if core.last_flush.elapsed() < std::time::Duration::from_secs(5) {
            return;
        }
        flush_locked(&mut core);
    }

    /// Writes every changed access statistic now.
    pub fn flush(&self) {
        flush_locked(&mut self.core());
    }

    /// Sets the pinned flag of every piece of `table` and saves it at once. Returns the bytes
    /// of those pieces.
    pub fn set_pinned(&self, table: &str, pinned: bool) -> u64 {
        let mut core = self.core();
        let mut bytes = 0;
        for obj in core.state.objects.values_mut() {
            for p in obj.pieces.values_mut().filter(|p| p.table_name.as_deref() == Some(table)) {
                p.pinned = pinned;
                p.dirty = true;
                bytes += p.len;
            }
        }
        flush_locked(&mut core);
        bytes
    }

    fn hit_weight_secs(&self) -> i64 {
        i64::try_from(self.config.hit_weight.as_secs()).unwrap_or(i64::MAX)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Unindexes the `chosen` pieces, then takes them out of the state as victims (busy until
/// punched). The index goes first: when it cannot be written (a full disk: SQLite needs room
/// for its journal), nothing changes and state and index still agree, rather than the state
/// forgetting pieces whose rows and bytes stay.
fn unindex_victims(core: &mut Core, chosen: &[(String, u64)]) -> Result<Vec<Victim>, CacheError> {
    let Core { state, index, .. } = core;
    let keys: Vec<(i64, u64)> =
        chosen.iter().filter_map(|(key, start)| state.objects.get(key).map(|o| (o.id, *start))).collect();
    index.delete_pieces(&keys)?;
    Ok(state.take_victims(chosen))
}

fn flush_locked(core: &mut Core) {
    let rows = core.state.take_dirty_access();
    if let Err(e) = core.index.update_access(&rows) {
        tracing::warn!(error = %e, "cannot save cache access statistics");
    }
    core.last_flush = Instant::now();
}

/// Removes an object from state and index (call with the core lock held); returns its data
/// file name for the caller to delete after releasing the lock.
fn drop_object_locked(core: &mut Core, key: &str) -> Result<Option<String>, CacheError> {
    let Some(obj) = core.state.objects.remove(key) else { return Ok(None) };
    core.index.delete_object(obj.id)?;
    core.state.keys.remove(&obj.id);
    core.state.stored -= obj.present.len_bytes();
    Ok(Some(obj.file_name))
}

fn remove_unreferenced(objects_dir: &Path, referenced: &HashSet<PathBuf>) -> Result<(), CacheError> {
    let entries = std::fs::read_dir(objects_dir).map_err(io_err(objects_dir))?;
    for sub in entries.flatten() {
        let sub_path = sub.path();
        if !sub_path.is_dir() {
            continue;
        }
        let files = std::fs::read_dir(&sub_path).map_err(io_err(&sub_path))?;
        for f in files.flatten() {
            let p = f.path();
            if !referenced.contains(&p) {
                tracing::info!(file = %p.display(), "removing cache file no index entry claims");
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}

/// What to store: `bytes` are exactly `range` of object `key` (index id `object_id`).
pub struct StoreRequest<'a> {
    pub key: &'a str,
    pub object_id: i64,
    pub range: Range<u64>,
    pub bytes: Bytes,
    pub pin: bool,
    pub table: Option<&'a str>,
    /// The column (field id) a byte offset belongs to, from the layout.
    pub column_of: &'a dyn Fn(u64) -> Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_let_go_of_while_waiting_is_taken() {
        let dir = tempfile::tempdir().expect("dir");
        let held = lock_dir(dir.path()).expect("first holder");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        lock_dir(dir.path()).expect("taken once the first holder lets go");
        release.join().expect("thread");
    }
}
