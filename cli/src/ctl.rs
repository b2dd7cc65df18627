//! The commands that ask the running daemon over its control socket: `status`, `refresh`,
//! `evict`, `metrics`, `ls` (and `query`, which asks it where the SQL socket is).
//!
//! Exit codes, shared by every command: 0 done, 1 failed, 2 bad arguments (clap),
//! [`EXIT_NOT_RUNNING`] no daemon runs for this config, [`EXIT_VERSION`] the daemon is another
//! warmlake version.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use warmlake_daemon::config::{self, Config};
use warmlake_daemon::control::{Client, ControlError, PrewarmColumns, Request};

/// No daemon answers on the config's control socket.
pub const EXIT_NOT_RUNNING: u8 = 3;
/// The daemon speaks another control protocol version.
pub const EXIT_VERSION: u8 = 4;

/// The options every daemon command takes.
#[derive(Args)]
pub struct Common {
    /// Config file (default: ~/.config/warmlake/config.toml; macOS: ~/Library/Application
    /// Support/warmlake/config.toml); its state folder holds the
    /// daemon's control socket.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Common {
    pub fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(config::default_path)
    }

    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config_path())?)
    }

    /// Sends one request to the daemon; a daemon that is not running is reported with how to
    /// start it.
    pub fn request(&self, request: &Request, on_event: impl FnMut(Value)) -> anyhow::Result<Value> {
        let config = self.load()?;
        let mut client = Client::connect(&config.state_dir).map_err(|e| self.explain(e))?;
        client.request(request, on_event).map_err(|e| self.explain(e))
    }

    fn explain(&self, e: ControlError) -> anyhow::Error {
        match e {
            ControlError::NotRunning { .. } => NotRunning(format!(
                "{e}\nstart it with `warmlake daemon --config {}` (in the foreground) or `warmlake service install`",
                self.config_path().display()
            ))
            .into(),
            e => e.into(),
        }
    }
}

/// No daemon runs for the config, with how to start one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotRunning(String);

/// The exit code for an error: see the module docs.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<NotRunning>().is_some() {
        return EXIT_NOT_RUNNING;
    }
    match e.chain().find_map(|c| c.downcast_ref::<ControlError>()) {
        Some(ControlError::Version { .. }) => EXIT_VERSION,
        _ => 1,
    }
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
}

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let status = args.common.request(&Request::Status, |_| {})?;
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print!("{}", render_status(&status));
    Ok(())
}

/// The human status: one line per part, each saying what to do about a problem.
fn render_status(s: &Value) -> String {
    let text = |key: &str| s[key].as_str().unwrap_or("-").to_string();
    let mut out = format!("lake      {} ({})\n", text("lake"), text("catalog"));
    out += &format!(
        "snapshot  {}{}\n",
        s["snapshot"].as_i64().map_or("none".into(), |id| id.to_string()),
        s["snapshot_time"].as_str().map(|t| format!(" of {t}")).unwrap_or_default()
    );
    out += &format!("refreshed {}\n", s["last_refresh_unix"].as_u64().map_or("never".into(), when));
    if let Some(e) = s["last_error"].as_str() {
        let offline = if s["offline"].as_bool() == Some(true) { " (offline: serving the local mirror)" } else { "" };
        out += &format!("error     last refresh failed{offline}: {e}\n");
    }
    out += &format!("data      {}\n", text("data"));
    if let (Some(mirror), Some(mount)) = (s["mirror"].as_str(), s["mount"].as_str()) {
        // The mirror is a DuckLake catalog; the mount's .data/ has the files at its paths.
        out += &format!(
            "mirror    {mirror}: ATTACH 'ducklake:sqlite:{mirror}' AS lake (DATA_PATH '{}/.data/', \
             OVERRIDE_DATA_PATH true, READ_ONLY)\n",
            mount.trim_end_matches('/')
        );
    }
    for (table, why) in s["unreadable_tables"].as_object().into_iter().flatten() {
        out += &format!(
            "table     {table} cannot be read (every other table is served): {}\n",
            why.as_str().unwrap_or("?")
        );
    }
    match s.get("cache").filter(|c| !c.is_null()) {
        Some(c) => {
            let totals = &c["totals"];
            let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
            let (hits, misses) = (n(totals, "hits"), n(totals, "misses"));
            let ratio = if hits + misses == 0 {
                "no reads yet".to_string()
            } else {
                format!("hit ratio {:.0}% ({hits} hits, {misses} misses)", 100.0 * hits as f64 / (hits + misses) as f64)
            };
            out += &format!(
                "cache     {} of {} used, {ratio}; {} fetched, {} served from the cache\n",
                bytes(n(c, "bytes_stored")),
                bytes(n(c, "max_cache")),
                bytes(n(totals, "bytes_fetched")),
                bytes(n(totals, "bytes_served_from_cache")),
            );
        }
        None => out += "cache     none: the lake's data is on this machine and is read in place\n",
    }
    out += &format!("policy    {}\n", text("policy"));
    if let Some(e) = s["policy_error"].as_str() {
        out += &format!("          error (the last good policy stays in force): {e}\n");
    }
    if let Some(next) = s["next_prewarm"].as_array() {
        let jobs: Vec<&str> =
            next.get(1).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        out += &format!(
            "prewarm   next: {} at {}\n",
            jobs.join(", "),
            next.first().and_then(Value::as_str).unwrap_or("?")
        );
    }
    for job in s["prewarm_running"].as_array().into_iter().flatten() {
        let p = &job["progress"];
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        out += &format!(
            "prewarm   running: {}, {} of {} files, {} of {}{}\n",
            job["name"].as_str().unwrap_or("?"),
            n("files_done"),
            n("files_total"),
            bytes(n("bytes_done")),
            bytes(n("bytes_total")),
            if job["resumed"].as_bool() == Some(true) { " (resumed: the last run did not finish)" } else { "" }
        );
    }
    out += &format!("mount     {}\n", s["mount"].as_str().unwrap_or("none"));
    match (s["sql_socket"].as_str(), s["sql_unavailable"].as_str()) {
        (Some(socket), _) => match crate::sql_client::psql_target(std::path::Path::new(socket)) {
            Ok((dir, port)) => out += &format!("sql       psql -h {} -p {port} -d lake\n", dir.display()),
            Err(_) => out += &format!("sql       {socket}\n"),
        },
        (None, Some(why)) => out += &format!("sql       none: {why}\n"),
        (None, None) => out += "sql       none ([sql] enabled = false)\n",
    }
    out
}

/// A Unix time as UTC and how long ago.
fn when(secs: u64) -> String {
    let at = i64::try_from(secs).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    let ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.as_secs().saturating_sub(secs))
        .unwrap_or_default();
    match at {
        Some(at) => format!("{} ({ago} s ago)", at.format("%Y-%m-%d %H:%M:%S UTC")),
        None => format!("{secs}"),
    }
}

/// A byte count in binary units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[derive(Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    common: Common,
}

pub fn refresh(args: RefreshArgs) -> anyhow::Result<()> {
    let result = args.common.request(&Request::Refresh, |_| {})?;
    if args.common.json {
        println!("{result}");
        return Ok(());
    }
    let snapshot = result["snapshot"].as_i64().context("the daemon's answer has no snapshot")?;
    match result["previous"].as_i64() {
        Some(previous) if previous == snapshot => println!("refreshed: snapshot {snapshot} (unchanged)"),
        Some(previous) => println!("refreshed: snapshot {snapshot} (was {previous})"),
        None => println!("refreshed: snapshot {snapshot}"),
    }
    Ok(())
}

#[derive(Args)]
pub struct EvictArgs {
    /// Tables to drop from the cache, as schema.table.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    tables: Vec<String>,
    /// Drop everything cached.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    common: Common,
}

pub fn evict(args: EvictArgs) -> anyhow::Result<()> {
    let json = args.common.json;
    let mut events = Vec::new();
    let request = Request::Evict { tables: args.tables, all: args.all };
    let mut result = args.common.request(&request, |event| {
        if !json && let (Some(table), Some(n)) = (event["table"].as_str(), event["evicted_bytes"].as_u64()) {
            println!("{table}: {} evicted", bytes(n));
        }
        events.push(event);
    })?;
    if json {
        result["tables"] = Value::Array(events);
        println!("{result}");
    } else if result["cache"].as_bool() == Some(false) {
        println!("nothing to evict: the lake's data is on this machine and is not cached");
    } else {
        println!("evicted {}", bytes(result["evicted_bytes"].as_u64().unwrap_or(0)));
    }
    Ok(())
}

#[derive(Args)]
pub struct PrewarmArgs {
    /// Tables to fetch, as schema.table (globs such as `sales.*` work).
    #[arg(required = true)]
    tables: Vec<String>,
    /// Only these columns (names or globs, comma-separated); default: all columns the policy
    /// lets this machine cache.
    #[arg(long, value_delimiter = ',', conflicts_with = "hot")]
    columns: Vec<String>,
    /// Only the columns people have read (the daemon's heat statistics).
    #[arg(long)]
    hot: bool,
    /// Pin what is fetched: the cache's budget evicts it last (`warmlake unpin` undoes it).
    #[arg(long)]
    pin: bool,
    /// Fetch the files of this snapshot (one the daemon keeps: see `ls .snapshots`) instead
    /// of the one it serves.
    #[arg(long)]
    snapshot: Option<i64>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct UnpinArgs {
    /// Tables whose cached bytes the budget may evict like any others again (schema.table).
    #[arg(required = true)]
    tables: Vec<String>,
    #[command(flatten)]
    common: Common,
}

pub fn unpin(args: UnpinArgs) -> anyhow::Result<()> {
    let result = args.common.request(&Request::Unpin { tables: args.tables }, |_| {})?;
    if args.common.json {
        println!("{result}");
    } else {
        println!("unpinned {}", bytes(result["unpinned_bytes"].as_u64().unwrap_or(0)));
    }
    Ok(())
}

/// Prewarms with a progress bar on a terminal, one line per file otherwise (logs, CI), and
/// `--json` events as they come. Ctrl-C closes the connection, which cancels the job between
/// files: what was fetched stays cached, and running it again fetches only the rest.
pub fn prewarm(args: PrewarmArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let columns = match (args.hot, args.columns.is_empty()) {
        (true, _) => PrewarmColumns::Named("hot".into()),
        (false, true) => PrewarmColumns::Named("all".into()),
        (false, false) => PrewarmColumns::Listed(args.columns),
    };
    let json = args.common.json;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let request = Request::Prewarm { tables: args.tables, columns, pin: args.pin, snapshot: args.snapshot };
    let result = args.common.request(&request, |event| {
        let n = |k: &str| event[k].as_u64().unwrap_or(0);
        if json {
            println!("{event}");
        } else if let Some(bar) = &bar {
            bar.set_length(n("bytes_total"));
            bar.set_position(n("bytes_done"));
            bar.set_message(format!("{}/{} files", n("files_done"), n("files_total")));
        } else {
            println!(
                "{}/{} files, {} of {}, {} fetched",
                n("files_done"),
                n("files_total"),
                bytes(n("bytes_done")),
                bytes(n("bytes_total")),
                bytes(n("bytes_fetched"))
            );
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let result = result?;
    if json {
        println!("{result}");
        return Ok(());
    }
    let p = &result["progress"];
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    println!(
        "prewarmed {} files of {}: {} of column chunks, {} fetched from the store in {:.1} s",
        n("files_done"),
        result["tables"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        bytes(n("bytes_done")),
        bytes(n("bytes_fetched")),
        n("elapsed_ms") as f64 / 1000.0
    );
    for skipped in result["skipped"].as_array().into_iter().flatten() {
        println!("skipped {}: {}", skipped[0].as_str().unwrap_or("?"), skipped[1].as_str().unwrap_or(""));
    }
    if result["cancelled"].as_bool() == Some(true) {
        anyhow::bail!("cancelled; run it again to fetch the rest");
    }
    Ok(())
}

#[derive(Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    common: Common,
}

pub fn metrics(args: MetricsArgs) -> anyhow::Result<()> {
    let result = args.common.request(&Request::Metrics, |_| {})?;
    let text = result["text"].as_str().context("the daemon's answer has no metrics text")?;
    if args.common.json {
        println!("{result}");
    } else {
        print!("{text}");
    }
    Ok(())
}

#[derive(Args)]
pub struct LsArgs {
    /// A folder or file in the lake, as in the mount (`sales/orders`); default the root.
    #[arg(default_value = "")]
    path: String,
    #[command(flatten)]
    common: Common,
}

pub fn ls(args: LsArgs) -> anyhow::Result<()> {
    let result = args.common.request(&Request::Ls { path: args.path }, |_| {})?;
    if args.common.json {
        println!("{result}");
        return Ok(());
    }
    for entry in result["entries"].as_array().context("the daemon's answer has no entries")? {
        let name = entry["name"].as_str().unwrap_or("?");
        if entry["kind"] == "dir" {
            println!("{:>10}  {name}/", "-");
        } else {
            println!("{:>10}  {name}", bytes(entry["size"].as_u64().unwrap_or(0)));
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct QueryArgs {
    /// The SQL to run (read-only statements; several separated by `;` print the last result).
    sql: String,
    #[command(flatten)]
    common: Common,
}

/// `warmlake query`: asks the daemon where its SQL socket is, then queries it as psql would.
pub fn query(args: QueryArgs) -> anyhow::Result<()> {
    let status = args.common.request(&Request::Status, |_| {})?;
    let socket = match (status["sql_socket"].as_str(), status["sql_unavailable"].as_str()) {
        (Some(socket), _) => PathBuf::from(socket),
        (None, Some(why)) => anyhow::bail!("the daemon serves no SQL socket: {why}"),
        (None, None) => anyhow::bail!("the daemon serves no SQL socket ([sql] enabled = false in its config)"),
    };
    let (dir, port) = crate::sql_client::psql_target(&socket)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(crate::sql_client::sql_query(&dir, port, &args.sql))?;
    if args.common.json {
        println!("{}", serde_json::json!({ "columns": result.columns, "rows": result.rows }));
    } else {
        print!("{}", crate::sql_client::render_table(&result.text()));
    }
    Ok(())
}

/// `warmlake policy reload`: the daemon re-reads its policy files now.
pub fn policy_reload(common: &Common) -> anyhow::Result<()> {
    let result = common.request(&Request::PolicyReload, |_| {})?;
    if common.json {
        println!("{result}");
    } else {
        println!("policy in force: {}", result["policy"].as_str().unwrap_or("-"));
    }
    if let Some(e) = result["policy_error"].as_str() {
        anyhow::bail!("the policy files are not usable (the last good policy stays in force): {e}");
    }
    Ok(())
}
