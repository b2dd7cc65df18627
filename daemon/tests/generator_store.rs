//! The generator writes a lake's data files into an object store (a real S3-compatible server,
//! `s3s-fs` on 127.0.0.1): the same files under the same keys as a lake generated into a
//! folder, catalogs whose `data_path` is the store URL, and clear errors when the store is
//! unreachable or already holds objects.

mod cache_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;

use cache_support::{S3Server, runtime, sha256, upload};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::generate::{self, CatalogKind, DataStore, GenerateError, LakeSpec, Targets};
use warmlake_daemon::store::{Store, StoreConfig};

const URL: &str = "s3://lake/gen/";

/// Small, except for one uncompressed `web.events` file above the uploader's 8 MiB part size,
/// so the multipart path runs against the real server too.
fn spec() -> LakeSpec {
    LakeSpec { events_rows: 120_000, events_files: 2, row_group_rows: 20_000, order_batches: 2, plain: true }
}

fn reader(catalog: &Path) -> CatalogReader {
    CatalogReader::open(&CatalogLocation::parse(&catalog.to_string_lossy()), None).expect("open catalog")
}

/// Every data and delete file a catalog lists at any snapshot: key → size.
fn listed_files(reader: &CatalogReader) -> BTreeMap<String, i64> {
    let mut files = BTreeMap::new();
    for s in reader.snapshots().expect("snapshots") {
        for table in reader.read_snapshot(s.id).expect("read").tables {
            for f in table.files {
                files.insert(f.key.to_string(), f.size);
                for d in &f.deletes {
                    files.insert(d.key.to_string(), d.size);
                }
            }
        }
    }
    files
}

#[test]
fn lake_in_a_store_equals_the_same_lake_in_a_folder() {
    let Some(server) = S3Server::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let kinds = [CatalogKind::DuckDb, CatalogKind::Sqlite];
    let local = generate::generate(&tmp.path().join("local"), &spec(), &kinds).expect("local lake");
    let data = DataStore { url: URL.into(), config: server.store_config() };
    let targets = Targets { data: Some(data), ..Targets::default() };
    let remote_dir = tmp.path().join("remote");
    let remote = generate::generate_to(&remote_dir, &spec(), &kinds, &targets).expect("lake in the store");

    assert_eq!(remote.data_url.as_deref(), Some(URL));
    assert_eq!((remote.files, remote.bytes, remote.latest_snapshot), (local.files, local.bytes, local.latest_snapshot));
    assert!(!remote_dir.join("data").exists(), "no local data folder");
    assert!(!remote_dir.join(".warmlake-staging").exists(), "staging folder removed");

    // Each catalog describes the same lake as the local catalog of its kind (inlined values
    // read back as each database prints them), with the URL as its root.
    let want_files = listed_files(&reader(&local.catalogs[0]));
    for (local_catalog, catalog) in local.catalogs.iter().zip(&remote.catalogs) {
        let (want, got) = (reader(local_catalog), reader(catalog));
        assert_eq!(got.data_root(), URL, "{}", catalog.display());
        let (a, b) = (want.snapshots().expect("snapshots"), got.snapshots().expect("snapshots"));
        let ids = |v: &[warmlake_daemon::catalog::SnapshotInfo]| -> Vec<(i64, i64, Option<String>)> {
            v.iter().map(|s| (s.id, s.schema_version, s.changes.clone())).collect()
        };
        assert_eq!(ids(&a), ids(&b), "{}", catalog.display());
        for s in &a {
            let (sa, sb) = (want.read_snapshot(s.id).expect("local"), got.read_snapshot(s.id).expect("remote"));
            assert_eq!(sa.schemas, sb.schemas);
            assert_eq!(sa.tables.len(), sb.tables.len(), "snapshot {}", s.id);
            for (ta, tb) in sa.tables.iter().zip(&sb.tables) {
                assert_eq!(
                    (&ta.schema, &ta.name, &ta.dir, &ta.columns, &ta.tags, &ta.files, &ta.inlined, &ta.inlined_deletes),
                    (&tb.schema, &tb.name, &tb.dir, &tb.columns, &tb.tags, &tb.files, &tb.inlined, &tb.inlined_deletes),
                    "snapshot {} table {}",
                    s.id,
                    ta.name
                );
            }
        }
        assert_eq!(listed_files(&got), want_files);
    }

    // Every listed file is in the bucket with the catalog's size and the local file's bytes,
    // and the bucket holds nothing else.
    assert!(want_files.len() >= 8, "{want_files:?}");
    assert!(want_files.values().any(|&size| size > 8 << 20), "one file takes the multipart path: {want_files:?}");
    let rt = runtime();
    let store = Store::open(URL, &server.store_config()).expect("store");
    for (key, size) in &want_files {
        let path = store.path(key).expect("key");
        let bytes = rt.block_on(async { store.object_store().get(&path).await?.bytes().await }).expect(key);
        assert_eq!(bytes.len() as i64, *size, "{key}: size");
        let local_bytes = std::fs::read(local.data_dir.join(key)).expect("local file");
        assert_eq!(sha256(&bytes), sha256(&local_bytes), "{key}: bytes");
    }
    let prefix = store.path("").expect("prefix");
    let objects: Vec<_> = rt.block_on(store.object_store().list(Some(&prefix)).try_collect()).expect("list");
    assert_eq!(objects.len(), want_files.len(), "{objects:?}");
    assert_eq!(remote.files as usize, want_files.len());
}

#[test]
fn refuses_a_prefix_that_already_holds_objects() {
    let Some(server) = S3Server::start() else { return };
    let rt = runtime();
    let store = Store::open(URL, &server.store_config()).expect("store");
    upload(&rt, &store, "sales/orders/old.parquet", b"PAR1");
    let tmp = tempfile::tempdir().expect("tempdir");
    let targets =
        Targets { data: Some(DataStore { url: URL.into(), config: server.store_config() }), ..Targets::default() };
    let err = generate::generate_to(tmp.path(), &spec(), &[CatalogKind::Sqlite], &targets).expect_err("not empty");
    assert!(matches!(&err, GenerateError::StoreNotEmpty { url } if url == URL), "{err}");
    assert!(!tmp.path().join(CatalogKind::Sqlite.file_name()).exists(), "no catalog written");
}

#[test]
fn an_unreachable_store_is_an_error_before_anything_is_written() {
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = StoreConfig {
        options: vec![
            ("aws_endpoint".into(), format!("http://127.0.0.1:{port}")),
            ("aws_region".into(), "us-east-1".into()),
            ("aws_access_key_id".into(), "k".into()),
            ("aws_secret_access_key".into(), "s".into()),
        ],
        allow_http: true,
        max_retries: 0,
        ..StoreConfig::default()
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let targets = Targets { data: Some(DataStore { url: URL.into(), config }), ..Targets::default() };
    let err = generate::generate_to(tmp.path(), &spec(), &[CatalogKind::DuckDb], &targets).expect_err("unreachable");
    assert!(matches!(&err, GenerateError::StoreRequest { url, .. } if url == URL), "{err}");
    assert!(err.to_string().contains(URL), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0, "nothing written");
}

#[test]
fn an_invalid_store_url_is_a_config_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = DataStore { url: "ftp://host/lake/".into(), config: StoreConfig::default() };
    let targets = Targets { data: Some(data), ..Targets::default() };
    let err = generate::generate_to(tmp.path(), &spec(), &[CatalogKind::DuckDb], &targets).expect_err("bad url");
    assert!(matches!(err, GenerateError::Store(_)), "{err}");
}

#[test]
fn a_file_url_is_a_store_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}/bucket/lake/", tmp.path().display());
    let targets =
        Targets { data: Some(DataStore { url: url.clone(), config: StoreConfig::default() }), ..Targets::default() };
    let spec = LakeSpec { events_rows: 1_000, events_files: 2, row_group_rows: 500, order_batches: 2, plain: false };
    let lake = generate::generate_to(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite], &targets).expect("lake");
    assert_eq!(lake.data_url.as_deref(), Some(url.as_str()));
    let reader = reader(&lake.catalogs[0]);
    assert_eq!(reader.data_root(), url);
    let files = listed_files(&reader);
    assert_eq!(files.len() as u64, lake.files);
    for (key, size) in &files {
        let path = tmp.path().join("bucket/lake").join(key);
        assert_eq!(std::fs::metadata(&path).map(|m| m.len() as i64).ok(), Some(*size), "{key}");
    }
    // The same catalog read from the folder behind the URL answers with the generated rows.
    let folder = format!("{}/bucket/lake/", tmp.path().display());
    let location = CatalogLocation::parse(&lake.catalogs[0].to_string_lossy());
    let local = CatalogReader::open(&location, Some(&folder)).expect("open with the folder as data root");
    let snap = local.read_snapshot(lake.latest_snapshot).expect("read");
    let count = warmlake_daemon::local_query::query_text(&snap, "SELECT count(*) FROM sales.orders").expect("query");
    // 2 batches of 2,000 minus ids ending in 3, then 2,000 more after the schema change.
    assert_eq!(count.rows, vec![vec!["5600".to_string()]]);
}
