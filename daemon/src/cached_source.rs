//! The tree's [`ObjectSource`] for a lake whose data lives in an object store: every read goes
//! through the chunk cache, which serves verified local bytes and fetches the rest.
//!
//! The tree knows objects by their lake key and catalog facts (size, footer size, encryption);
//! this adapter turns them into cache objects of the data store, and cache failures into the
//! few outcomes the mount distinguishes: gone from the store (`ENOENT`), unreachable (`EIO`
//! after the store's retries), or a local failure.

use std::sync::Arc;

use futures::StreamExt as _;

use crate::cache::{self, Cache, CacheError, ReadOptions};
use crate::store::{Priority, Store, StoreError};
use crate::tree::{ObjectRef, ObjectSource, SourceError};

/// Footers fetched at once by [`ObjectSource::prefetch_footers`]: they queue on the store's
/// prefetch permits anyway; this bounds the tasks waiting for them.
const FOOTERS_AT_ONCE: usize = 16;

/// Reads lake objects of one data store through the cache.
pub struct CachedSource {
    cache: Cache,
    store: Store,
    /// Runs footer prefetches.
    runtime: tokio::runtime::Handle,
}

impl CachedSource {
    /// `store` is opened at the lake's data root, so lake keys are store keys.
    pub fn new(cache: Cache, store: Store, runtime: tokio::runtime::Handle) -> Self {
        CachedSource { cache, store, runtime }
    }

    /// The cache this source reads through (for status, prewarm and eviction).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The cache's view of a lake object.
    pub fn cache_object(&self, object: &ObjectRef) -> cache::ObjectRef {
        cache::ObjectRef::parquet(
            self.store.clone(),
            object.key.as_str(),
            object.size,
            object.footer_size,
            object.encrypted,
        )
        .with_table(&*object.table)
    }
}

/// A read of `object` stores its bytes only when the policy lets them rest on this machine.
fn options(object: &ObjectRef) -> ReadOptions {
    if object.store { ReadOptions::default() } else { ReadOptions::read_through() }
}

impl ObjectSource for CachedSource {
    fn read(&self, object: &ObjectRef, offset: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        let target = self.cache_object(object);
        match self.cache.read_blocking(&target, offset, len, options(object)) {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(e) => Err(source_error(object, e)),
        }
    }

    /// Fetches (and parses) the footers not yet known, at background priority; a reader that
    /// reaches a file first joins its footer's fetch.
    fn prefetch_footers(&self, objects: Vec<Arc<ObjectRef>>) {
        let targets: Vec<cache::ObjectRef> = objects.iter().map(|o| self.cache_object(o)).collect();
        let cache = self.cache.clone();
        self.runtime.spawn(async move {
            let opts = ReadOptions { priority: Priority::Prefetch, ..ReadOptions::default() };
            futures::stream::iter(targets)
                .for_each_concurrent(FOOTERS_AT_ONCE, |target| {
                    let cache = cache.clone();
                    async move {
                        if let Err(e) = cache.layout(&target, opts).await {
                            tracing::debug!(key = %target.key, error = %e, "footer prefetch failed");
                        }
                    }
                })
                .await;
        });
    }

    /// The cached rest of the column chunk (or footer) the read ended in.
    fn read_ahead(&self, object: &ObjectRef, from: u64) -> Option<Vec<u8>> {
        let target = self.cache_object(object);
        self.cache.cached_rest_of_unit(&target, from, READ_AHEAD_LIMIT).map(|b| b.to_vec())
    }
}

/// Most bytes offered for the page cache after one read: a column chunk is usually smaller
/// (DuckDB writes row groups of ~122,880 rows), and this bounds the copy one read triggers.
const READ_AHEAD_LIMIT: u64 = 8 << 20;

fn source_error(object: &ObjectRef, e: CacheError) -> SourceError {
    let key = object.key.clone();
    match e {
        CacheError::Store(store) => match &*store {
            StoreError::NotFound { .. } => SourceError::NotFound { key },
            StoreError::Changed { .. } => SourceError::Changed { key, reason: store.to_string() },
            _ => SourceError::Unavailable { key, reason: store.to_string() },
        },
        CacheError::Io { source, path } => {
            SourceError::Io { key, source: std::io::Error::new(source.kind(), format!("{}: {source}", path.display())) }
        }
        other => SourceError::Unavailable { key, reason: other.to_string() },
    }
}
