//! Test support: a generated lake whose data files live in a real S3-compatible server
//! (`s3s-fs` on 127.0.0.1, from `cache_support`), and a daemon config that reads it through the
//! cache with the lake mounted.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crate::cache_support::{self, S3Server, runtime, upload};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::config::Config;
use warmlake_daemon::generate::{self, CatalogKind, GeneratedLake, LakeSpec};
use warmlake_daemon::store::Store;

/// A lake in `s3://lake/data/` with its catalog (SQLite) and daemon folders in a temp dir.
pub struct RemoteLake {
    pub server: Option<S3Server>,
    pub rt: tokio::runtime::Runtime,
    pub tmp: tempfile::TempDir,
    pub lake: GeneratedLake,
    pub store: Store,
}

impl RemoteLake {
    /// For a test that mounts the lake: `None` (the test is skipped; on CI it fails instead)
    /// when FUSE or `s3s-fs` is missing. FUSE is checked first, before anything is generated.
    pub fn mounted(test: &str, spec: &LakeSpec) -> Option<RemoteLake> {
        if !crate::fixtures::fuse_available(test) {
            return None;
        }
        RemoteLake::new(spec)
    }

    /// Generates and uploads the lake; `None` when `s3s-fs` is missing outside CI.
    pub fn new(spec: &LakeSpec) -> Option<RemoteLake> {
        let server = S3Server::start()?;
        let rt = runtime();
        let tmp = tempfile::tempdir().expect("tempdir");
        let lake = generate::generate(&tmp.path().join("lake"), spec, &[CatalogKind::Sqlite]).expect("generate");
        let store =
            Store::open(&format!("s3://{}/data", cache_support::BUCKET), &server.store_config()).expect("store");
        let mut files = Vec::new();
        relative_files(&lake.data_dir, &lake.data_dir, &mut files);
        for f in &files {
            upload(&rt, &store, &f.to_string_lossy(), &std::fs::read(lake.data_dir.join(f)).expect("read"));
        }
        std::fs::create_dir(tmp.path().join("mnt")).expect("mountpoint");
        Some(RemoteLake { server: Some(server), rt, tmp, lake, store })
    }

    pub fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }

    /// The lake's newest snapshot, read from its catalog.
    pub fn snapshot(&self) -> LakeSnapshot {
        let location = CatalogLocation::parse(&format!("sqlite:{}", self.lake.catalogs[0].display()));
        CatalogReader::open(&location, None).and_then(|r| r.read_snapshot(self.lake.latest_snapshot)).expect("snapshot")
    }

    /// The daemon's config: cache, mount, SQL socket, store options; few retries so a stopped
    /// store fails fast.
    pub fn config(&self) -> Config {
        self.config_with("")
    }

    /// [`RemoteLake::config`] with more TOML appended (e.g. a `[policy]` section).
    pub fn config_with(&self, extra: &str) -> Config {
        let dir = self.tmp.path();
        let endpoint = self.server.as_ref().map(S3Server::endpoint).unwrap_or_default();
        let text = format!(
            "[lake]\nname = \"remote\"\ncatalog = \"sqlite:{catalog}\"\ndata = \"s3://{bucket}/data/\"\n\
             [state]\ndir = \"{state}\"\n[cache]\ndir = \"{cache}\"\nmax_cache = \"1GiB\"\nmin_free_disk = \"0B\"\n\
             [mount]\npath = \"{mnt}\"\n\
             [store]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\naccess_key_id = \"{key}\"\n\
             secret_access_key = \"{secret}\"\nvirtual_hosted_style_request = false\nallow_http = true\n\
             max_retries = 1\nretry_timeout = \"3s\"\nconnect_timeout = \"2s\"\n{extra}",
            catalog = self.lake.catalogs[0].display(),
            bucket = cache_support::BUCKET,
            state = dir.join("state").display(),
            cache = dir.join("cache").display(),
            mnt = self.mnt().display(),
            key = cache_support::ACCESS_KEY,
            secret = cache_support::SECRET_KEY,
        );
        Config::parse(&text, &dir.join("config.toml")).expect("config")
    }

    /// Stops the store (the daemon then has only its cache).
    pub fn stop_store(&mut self) {
        self.server = None;
    }
}

/// Every file under `at`, relative to `dir`.
pub fn relative_files(dir: &Path, at: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(at).expect("ls") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            relative_files(dir, &p, out);
        } else {
            out.push(p.strip_prefix(dir).expect("under").to_path_buf());
        }
    }
}

/// One value (first column of the first row) through the daemon's SQL socket, as text, or the
/// server's error message.
pub fn sql_value(rt: &tokio::runtime::Runtime, config: &Config, sql: &str) -> Result<Option<String>, String> {
    let settings = config.sql.as_ref().expect("sql settings");
    rt.block_on(async {
        let mut pg = tokio_postgres::Config::new();
        pg.host_path(&settings.socket_dir).port(settings.port).dbname("lake").user("test");
        let (client, conn) = pg.connect(tokio_postgres::NoTls).await.expect("connect to the SQL socket");
        let driver = tokio::spawn(conn);
        let result = client.simple_query(sql).await;
        drop(client);
        let _ = driver.await;
        match result {
            Ok(messages) => Ok(messages
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                    _ => None,
                })
                .flatten()),
            Err(e) => Err(e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())),
        }
    })
}
