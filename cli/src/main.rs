//! `warmlake`: the one binary. Parses arguments, calls the daemon library, prints results.

mod ctl;
mod daemon_cmd;
mod demo;
mod dev;
mod doctor;
mod policy_cmd;
mod service;
mod sql_client;
mod sql_cmd;

use clap::{Parser, Subcommand};

/// warmlake keeps a DuckLake lake warm on this machine: a local catalog mirror, cached Parquet
/// column chunks, a read-only folder and a local SQL socket.
#[derive(Parser)]
#[command(name = "warmlake", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WARMLAKE_BUILD"), ")"), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground: mirror the catalog, mount the lake, refresh.
    Daemon(daemon_cmd::DaemonArgs),
    /// Generate a small lake, read it the way the daemon does, and query it.
    Demo(demo::DemoArgs),
    /// Developer tools: make lakes, inspect catalogs, run SQL over a lake.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Check a governance policy, or explain what it decides for a table or column.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Serve a local lake on the SQL socket only (psql -h DIR -p PORT -d lake).
    ServeSql(sql_cmd::ServeSqlArgs),
    /// What the running daemon serves: snapshot, refresh, cache, policy, mount, SQL socket.
    Status(ctl::StatusArgs),
    /// Make the running daemon read the catalog now.
    Refresh(ctl::RefreshArgs),
    /// Drop tables (or everything) from the running daemon's cache.
    Evict(ctl::EvictArgs),
    /// Fetch tables (some or all of their columns) into the running daemon's cache now.
    Prewarm(ctl::PrewarmArgs),
    /// Let the cache's budget evict tables that `prewarm --pin` pinned.
    Unpin(ctl::UnpinArgs),
    /// The running daemon's counters in the Prometheus text format.
    Metrics(ctl::MetricsArgs),
    /// Run SQL through the running daemon's SQL socket.
    Query(ctl::QueryArgs),
    /// List the lake as the running daemon serves it (the mount's folders and files, with sizes).
    Ls(ctl::LsArgs),
    /// Check what the daemon needs (FUSE, private folders, catalog, store, disk) and say how to fix it.
    Doctor(doctor::DoctorArgs),
    /// Run the daemon as a background service (systemd user unit, launchd agent).
    #[command(subcommand)]
    Service(service::ServiceCommand),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon(args) => daemon_cmd::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Dev(cmd) => dev::run(cmd),
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::ServeSql(args) => sql_cmd::run(args),
        Command::Status(args) => ctl::status(args),
        Command::Refresh(args) => ctl::refresh(args),
        Command::Evict(args) => ctl::evict(args),
        Command::Prewarm(args) => ctl::prewarm(args),
        Command::Unpin(args) => ctl::unpin(args),
        Command::Metrics(args) => ctl::metrics(args),
        Command::Query(args) => ctl::query(args),
        Command::Ls(args) => ctl::ls(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Service(cmd) => service::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warmlake: {e:#}");
            std::process::ExitCode::from(ctl::exit_code(&e))
        }
    }
}
