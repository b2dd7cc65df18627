//! A real SQL socket over a generated lake, and the real clients that talk to it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::sql::{SqlConfig, SqlLake, SqlServer};
use warmlake_daemon::view_sql::lake_views;

/// A server on a temporary socket folder, stopped when dropped.
pub struct TestServer {
    pub tmp: tempfile::TempDir,
    pub config: SqlConfig,
    pub snapshots: Vec<LakeSnapshot>,
    pub lake: watch::Sender<Arc<SqlLake>>,
    /// The TCP listener's address, when the configuration enables TCP.
    pub tcp_addr: Option<std::net::SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

pub fn sql_lake(snap: &LakeSnapshot) -> SqlLake {
    let root = snap.data_root.clone();
    SqlLake { snapshot: snap.snapshot.id, script: lake_views(snap, &|k| format!("{root}{k}")) }
}

impl TestServer {
    /// Generates a small lake and serves its latest snapshot.
    pub async fn start(configure: impl FnOnce(&mut SqlConfig)) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spec = LakeSpec { events_rows: 20_000, events_files: 2, row_group_rows: 10_000, ..LakeSpec::default() };
        let lake_dir = tmp.path().join("lake");
        let generated = generate::generate(&lake_dir, &spec, &[CatalogKind::DuckDb]).expect("generate");
        let reader = CatalogReader::open(&CatalogLocation::parse(&generated.catalogs[0].to_string_lossy()), None)
            .expect("open catalog");
        let snapshots: Vec<LakeSnapshot> = reader
            .snapshots()
            .expect("snapshots")
            .iter()
            .map(|s| reader.read_snapshot(s.id).expect("snapshot"))
            .collect();
        let readable = vec![PathBuf::from(&snapshots.last().expect("a snapshot").data_root)];
        Self::serve(tmp, snapshots, readable, configure).await
    }

    /// Serves the last of `snapshots` (the others can be published through `lake`); sessions may
    /// read `readable_dirs`. The socket is made in `tmp`, which the server keeps.
    pub async fn serve(
        tmp: tempfile::TempDir,
        snapshots: Vec<LakeSnapshot>,
        readable_dirs: Vec<PathBuf>,
        configure: impl FnOnce(&mut SqlConfig),
    ) -> TestServer {
        let latest = snapshots.last().expect("a snapshot");
        let (lake, rx) = watch::channel(Arc::new(sql_lake(latest)));
        let mut config = SqlConfig::new(tmp.path().join("sock"), readable_dirs);
        config.port = 5433;
        configure(&mut config);
        let server = SqlServer::bind(config.clone(), rx).await.expect("bind");
        let tcp_addr = server.tcp_addr();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("run");
        });
        TestServer { tmp, config, snapshots, lake, tcp_addr, stop: Some(stop), task: Some(task) }
    }

    pub fn latest(&self) -> &LakeSnapshot {
        self.snapshots.last().expect("a snapshot")
    }

    pub fn socket_dir(&self) -> &Path {
        &self.config.socket_dir
    }

    /// A tokio-postgres client (the Rust driver; extended protocol, binary parameters).
    pub async fn client(&self) -> tokio_postgres::Client {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(self.socket_dir()).port(self.config.port).user("tester").dbname("lake");
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.expect("connect over the socket");
        tokio::spawn(conn);
        client
    }

    /// A tokio-postgres client over TCP with `password` (SCRAM-SHA-256), or why it was refused.
    pub async fn tcp_client(&self, password: Option<&str>) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let addr = self.tcp_addr.expect("TCP enabled");
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1").port(addr.port()).user("tester").dbname("lake");
        if let Some(p) = password {
            cfg.password(p);
        }
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Publishes `snap` and waits until `client`'s next statement sees it.
    pub async fn publish(&self, client: &tokio_postgres::Client, snap: &LakeSnapshot) {
        self.publish_lake(client, sql_lake(snap)).await;
    }

    /// Publishes `lake` (whose snapshot id must be new) and waits until `client`'s next
    /// statement sees it.
    pub async fn publish_lake(&self, client: &tokio_postgres::Client, lake: SqlLake) {
        let id = lake.snapshot.to_string();
        self.lake.send(Arc::new(lake)).expect("publish");
        loop {
            let shown = client.simple_query("SHOW warmlake.snapshot").await.expect("SHOW warmlake.snapshot");
            let current = shown.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            if current.as_deref() == Some(id.as_str()) {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Whether `program` can run; on CI a missing client is a failure, never a skip.
pub fn client_available(program: &str, test: &str) -> bool {
    let ok = Command::new(program).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {program} is required on CI (Debian postgresql-client)"
        );
        eprintln!("{test}: skipped, {program} is not installed");
    }
    ok
}

/// Runs psql against the server with `args`, unaligned and tuples-only; (stdout, stderr, ok).
pub fn psql(server: &TestServer, args: &[&str]) -> (String, String, bool) {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(server.socket_dir())
        .args(["-p", &server.config.port.to_string(), "-d", "lake"])
        .args(args)
        .output()
        .expect("run psql");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}
