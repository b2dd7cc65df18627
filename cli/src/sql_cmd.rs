//! `warmlake dev serve-sql`: the SQL socket over a local lake, without the rest of the daemon
//! (for trying clients and for the Python tests).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::sql::{SqlConfig, SqlLake, TcpConfig, serve};
use warmlake_daemon::view_sql::lake_views;

#[derive(Args)]
pub struct ServeSqlArgs {
    /// The lake's catalog (DuckDB file, SQLite file, sqlite:PATH or postgres:CONN).
    catalog: String,
    /// Folder for the socket: `psql -h DIR -p PORT -d lake`.
    #[arg(long)]
    socket_dir: PathBuf,
    #[arg(long, default_value_t = 5433)]
    port: u16,
    /// Serve this snapshot instead of the latest.
    #[arg(long)]
    snapshot: Option<i64>,
    /// Also listen on 127.0.0.1:PORT over TCP (for JDBC), with a password (SCRAM-SHA-256).
    #[arg(long, requires = "password")]
    tcp_port: Option<u16>,
    /// The TCP clients' password.
    #[arg(long, env = "WARMLAKE_SQL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

pub fn run(args: ServeSqlArgs) -> anyhow::Result<()> {
    let reader = CatalogReader::open(&CatalogLocation::parse(&args.catalog), None).context("opening the catalog")?;
    let id = match args.snapshot {
        Some(id) => id,
        None => reader.latest_snapshot().context("reading the latest snapshot")?.id,
    };
    let snap = reader.read_snapshot(id).context("reading the snapshot")?;
    anyhow::ensure!(!snap.data_root.contains("://"), "the lake's data is not local: {}", snap.data_root);
    let root = snap.data_root.clone();
    let lake = SqlLake { snapshot: id, script: lake_views(&snap, &|k| format!("{root}{k}")) };
    let mut config = SqlConfig::new(args.socket_dir, vec![PathBuf::from(&root)]);
    config.port = args.port;
    config.tcp = args.tcp_port.zip(args.password).map(|(port, password)| TcpConfig { port, password });
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(lake));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        eprintln!("serving snapshot {id} on {}", config.socket_path().display());
        serve(config, rx, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(())
}
