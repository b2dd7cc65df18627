//! Sending a generated lake's Parquet files to an object store.
//!
//! DuckDB writes the files into a local staging folder (it has no writer for object stores
//! here); each is then uploaded under its key, the same path relative to the data folder the
//! catalog records. Large files go up in parts read from disk as they are sent, so memory stays
//! bounded whatever the lake's size: at most [`FILES_IN_FLIGHT`] files at once, each holding at
//! most [`PARTS_IN_FLIGHT`] + 1 parts of [`PART_SIZE`].
//!
//! The generator is synchronous and may be called from inside a tokio runtime (where
//! `block_on` panics), so store work runs on a thread of its own with a runtime of its own; the
//! store is opened there too, because its HTTP connections belong to the runtime that made them.

use std::future::Future;
use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::{DataStore, GenerateError};
use crate::store::Store;

/// Size of one part of a multipart upload, and the largest file sent in one PUT. S3 wants
/// parts of at least 5 MiB; 8 MiB is what its own tools default to.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one file being sent at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Files being sent at once: enough to hide per-request latency on small files.
const FILES_IN_FLIGHT: usize = 4;
/// Bytes read from the staged file per read call.
const READ_SIZE: usize = 1024 * 1024;

/// Fails unless the store is reachable and holds nothing under the data URL. Run before any
/// file is generated, so a wrong endpoint or credentials fail in a second rather than after
/// minutes of writing Parquet, and so an existing lake is never overwritten.
pub(super) fn ensure_empty(data: &DataStore) -> Result<(), GenerateError> {
    on_own_runtime(data, |store| async move {
        let prefix = store.path("")?;
        match store.object_store().list(Some(&prefix)).next().await {
            None => Ok(()),
            Some(Ok(_)) => Err(GenerateError::StoreNotEmpty { url: data.url.clone() }),
            Some(Err(source)) => Err(GenerateError::StoreRequest { doing: "list", url: data.url.clone(), source }),
        }
    })
}

/// Uploads `staging/<key>` as `<key>` for every key.
pub(super) fn upload_all(data: &DataStore, staging: &Path, keys: &[String]) -> Result<(), GenerateError> {
    on_own_runtime(data, |store| async move {
        futures::stream::iter(keys)
            .map(|key| {
                let (store, file) = (&store, staging.join(key));
                async move { upload_file(store, key, &file, PART_SIZE).await }
            })
            .buffer_unordered(FILES_IN_FLIGHT)
            .try_collect::<()>()
            .await
    })
}

/// Runs `work` with the store `data` names, on a new thread with a new current-thread runtime
/// (see the module comment for why), and waits for it.
fn on_own_runtime<'a, F>(data: &'a DataStore, work: impl FnOnce(Store) -> F + Send + 'a) -> Result<(), GenerateError>
where
    F: Future<Output = Result<(), GenerateError>>,
{
    std::thread::scope(|s| {
        let thread = s.spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(GenerateError::Runtime)?;
            let store = Store::open(&data.url, &data.config)?;
            runtime.block_on(work(store))
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Uploads one file: in one PUT when it is at most `part_size` bytes, else in parts of
/// `part_size` (a multipart upload, aborted if anything fails, so no half object appears).
async fn upload_file(store: &Store, key: &str, file: &Path, part_size: usize) -> Result<(), GenerateError> {
    let io = |source| GenerateError::Io { path: file.to_path_buf(), source };
    let url = format!("{}/{key}", store.id());
    let request = |source| GenerateError::StoreRequest { doing: "upload", url: url.clone(), source };
    let path = store.path(key)?;
    let mut reader = tokio::fs::File::open(file).await.map_err(io)?;
    let len = reader.metadata().await.map_err(io)?.len();
    if len <= part_size as u64 {
        let mut bytes = Vec::with_capacity(len as usize);
        reader.read_to_end(&mut bytes).await.map_err(io)?;
        store.object_store().put(&path, bytes.into()).await.map_err(request)?;
        return Ok(());
    }
    let upload = store.object_store().put_multipart(&path).await.map_err(request)?;
    let mut parts = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut buf = vec![0u8; READ_SIZE.min(part_size)];
    let sent: Result<(), GenerateError> = async {
        loop {
            parts.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(request)?;
            let n = reader.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Ok(());
            }
            parts.write(&buf[..n]);
        }
    }
    .await;
    match sent {
        Ok(()) => parts.finish().await.map(drop).map_err(request),
        Err(e) => {
            // Best effort: the upload already failed, and a store that cannot take the abort
            // expires the parts by its own lifecycle rules.
            let _ = parts.abort().await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::path::Path as StorePath;

    use super::*;
    use crate::store::StoreConfig;

    /// Files above the part size go up in parts and arrive whole; smaller ones in one PUT.
    #[test]
    fn uploads_small_files_whole_and_large_ones_in_parts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("big"), &big).expect("write");
        std::fs::write(dir.join("small"), b"PAR1 tiny").expect("write");
        let mem = Arc::new(InMemory::new());
        let store = Store::from_object_store("mem://", mem.clone(), StorePath::from("lake"), &StoreConfig::default());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            upload_file(&store, "t/big.parquet", &dir.join("big"), 1024).await.expect("big");
            upload_file(&store, "t/small.parquet", &dir.join("small"), 1024).await.expect("small");
            let got = mem.get(&StorePath::from("lake/t/big.parquet")).await.expect("get").bytes().await.expect("bytes");
            assert_eq!(&got[..], &big[..]);
            let got = mem.get(&StorePath::from("lake/t/small.parquet")).await.expect("get").bytes().await.expect("b");
            assert_eq!(&got[..], b"PAR1 tiny");
            let missing = upload_file(&store, "t/none.parquet", &dir.join("none"), 1024).await;
            assert!(matches!(missing, Err(GenerateError::Io { .. })), "{missing:?}");
        });
    }
}
