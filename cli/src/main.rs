//! `warmlake`: the one binary. Parses arguments, calls the daemon library, prints results.

mod daemon_cmd;
mod demo;
mod dev;
mod policy_cmd;
mod sql_cmd;

use clap::{Parser, Subcommand};

/// warmlake keeps a DuckLake lake warm on this machine: a local catalog mirror, cached Parquet
/// column chunks, a read-only folder and a local SQL socket.
#[derive(Parser)]
#[command(name = "warmlake", version, about)]
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warmlake: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
