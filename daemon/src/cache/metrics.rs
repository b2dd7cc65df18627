//! Cache counters, overall and per table. Updated once per read, flight or eviction, under
//! their own small mutex (never held together with another cache lock).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters for one table (or for everything).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Reads served entirely from the cache.
    pub hits: u64,
    /// Reads that needed at least one fetch (their own or one they joined).
    pub misses: u64,
    /// Bytes returned to readers from cached pieces.
    pub bytes_served_from_cache: u64,
    /// Bytes received from the store.
    pub bytes_fetched: u64,
    /// GET requests made.
    pub requests: u64,
    /// Bytes evicted (budget, `max_age`, explicit eviction).
    pub bytes_evicted: u64,
    /// Fetched bytes not stored: read-through reads, or no room within the budget.
    pub bytes_not_stored: u64,
    /// Pieces whose checksum failed on read (dropped and refetched).
    pub corrupt_pieces: u64,
    /// Times an object was found changed in the store (another size or ETag than the cached
    /// bytes' or the catalog's): what was cached of it was dropped and the read failed.
    pub objects_changed: u64,
}

impl Counters {
    fn add(&mut self, d: &Counters) {
        self.hits += d.hits;
        self.misses += d.misses;
        self.bytes_served_from_cache += d.bytes_served_from_cache;
        self.bytes_fetched += d.bytes_fetched;
        self.requests += d.requests;
        self.bytes_evicted += d.bytes_evicted;
        self.bytes_not_stored += d.bytes_not_stored;
        self.corrupt_pieces += d.corrupt_pieces;
        self.objects_changed += d.objects_changed;
    }
}

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<MetricsInner>,
}

#[derive(Debug, Default)]
struct MetricsInner {
    total: Counters,
    per_table: BTreeMap<String, Counters>,
}

impl Metrics {
    /// Adds `delta` to the totals and to `table`'s counters when known.
    pub fn record(&self, table: Option<&str>, delta: Counters) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.total.add(&delta);
        if let Some(t) = table {
            m.per_table.entry(t.to_string()).or_default().add(&delta);
        }
    }

    /// A copy of the totals and the per-table counters.
    pub fn snapshot(&self) -> (Counters, BTreeMap<String, Counters>) {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (m.total.clone(), m.per_table.clone())
    }
}
