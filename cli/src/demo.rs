//! `warmlake demo`: the README's first command.
//!
//! It generates a small lake into a local folder, starts the daemon in the foreground on it
//! (mirror, SQL socket, and the mount when FUSE is usable), answers a sample query through the
//! mount and through the SQL socket with exact DuckLake semantics, prints what to try next, and
//! waits for Ctrl-C. The demo never prints what did not happen: every answer shown was just
//! computed through the path it names.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::local_query;
use warmlake_daemon::prewarm;
use warmlake_daemon::store::StoreConfig;
use warmlake_daemon::view_sql;

use crate::sql_client::{psql_target, render_table, sql_query};

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the demo lake and the daemon's state (default: a new folder in the temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Stop (and unmount) right after the sample query instead of waiting for Ctrl-C.
    #[arg(long)]
    pub no_wait: bool,
}

const SAMPLE_QUERY: &str = "SELECT region, count(*) AS orders, sum(amount) AS revenue, \
    count(*) FILTER (WHERE channel = 'app') AS app_orders \
    FROM sales.orders GROUP BY region ORDER BY region";

/// The demo's governance policy: columns tagged as personal data never reach this machine.
const DEMO_POLICY: &str = "# warmlake demo policy: columns tagged pii = true (sales.customers.email) are denied.\n\
    [[rule]]\ntag = { pii = \"true\" }\naction = \"deny\"\nreason = \"personal data stays in the lake\"\n";

/// Where PATH finds `program`, if anywhere.
fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// How to run this binary from a new terminal: `warmlake` when that is what PATH finds, else
/// its absolute path (after `scripts/demo` it is in the build's target folder).
fn warmlake_command() -> String {
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let found = find_on_path("warmlake").and_then(|p| std::fs::canonicalize(p).ok());
    match (me, found) {
        (Some(me), Some(found)) if me == found => "warmlake".to_string(),
        (Some(me), _) => me.display().to_string(),
        (None, _) => "warmlake".to_string(),
    }
}

fn demo_config(dir: &Path, mount: bool) -> anyhow::Result<Config> {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, DEMO_POLICY).with_context(|| format!("writing {}", policy.display()))?;
    let mut text = format!(
        "[lake]\nname = \"demo\"\ncatalog = \"catalog.ducklake\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n\
         [policy]\nfile = \"{}\"\n",
        dir.join("state").display(),
        dir.join("cache").display(),
        policy.display()
    );
    if mount {
        text.push_str(&format!("[mount]\npath = \"{}\"\n", dir.join("mnt").display()));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(Config::parse(&text, &path)?)
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("warmlake-demo-{}", std::process::id())),
    };
    println!("warmlake demo\n");
    println!("1. Generating a DuckLake lake in {}", dir.display());
    // The data goes to a folder used as an object store (`file://`), the embedded stand-in for
    // a bucket: the daemon reads it through the chunk cache exactly as it would read S3.
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    let bucket = format!("file://{}/bucket/", dir.display());
    let targets = generate::Targets {
        data: Some(generate::DataStore { url: bucket.clone(), config: StoreConfig::default() }),
        ..generate::Targets::default()
    };
    let lake = generate::generate_to(&dir, &LakeSpec::default(), &[CatalogKind::DuckDb, CatalogKind::Sqlite], &targets)
        .context("generating the demo lake")?;
    println!(
        "   {} Parquet files ({} KiB) in the store {bucket}, {} snapshots, catalogs: {}",
        lake.files,
        lake.bytes / 1024,
        lake.latest_snapshot + 1,
        lake.catalogs.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    );

    let catalog = &lake.catalogs[0];
    let reader = CatalogReader::open(&CatalogLocation::parse(&catalog.to_string_lossy()), None)?;
    let snapshot = reader.read_snapshot(reader.latest_snapshot()?.id)?;
    println!("\n2. The catalog (DuckLake {}) at snapshot {}:", snapshot.version, snapshot.snapshot.id);
    for t in &snapshot.tables {
        let deletes: usize = t.files.iter().map(|f| f.deletes.len()).sum();
        let inlined: usize = t.inlined.iter().map(|b| b.rows.len()).sum();
        let tags: Vec<String> = t.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "   {:<16} {:>2} columns  {:>2} data files  {:>2} delete files  {:>2} inlined rows  {}",
            format!("{}.{}", t.schema, t.name),
            t.columns.len(),
            t.files.len(),
            deletes,
            inlined,
            tags.join(" ")
        );
    }

    println!("\n3. Starting the daemon (mirror + mount + SQL socket)");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (daemon, config) = match Daemon::start(demo_config(&dir, true)?, runtime.handle().clone()) {
        Ok(d) => (d, dir.join("config.toml")),
        Err(e) => {
            println!("   the mount is not available here ({e}); running without it");
            (Daemon::start(demo_config(&dir, false)?, runtime.handle().clone())?, dir.join("config.toml"))
        }
    };
    let status = daemon.status();
    println!("   mirror  {}", status.mirror.display());
    let mounted = status.mount.is_some();
    if mounted {
        println!("   mount   {} (read-only; the lake as a folder)", mnt.display());
    }
    if let Some(socket) = &status.sql_socket {
        println!("   SQL     {} (PostgreSQL protocol)", socket.display());
    }
    println!("   policy  {} ({}): sales.customers.email is denied", dir.join("policy.toml").display(), status.policy);

    println!("\n4. Prewarming sales.orders: its footers and column chunks into the cache, in the background");
    let request = prewarm::all_columns(&["sales.orders"]).map_err(anyhow::Error::msg)?;
    let report = runtime.block_on(daemon.prewarm(&request, &|_| {}, &CancellationToken::new()))?;
    println!(
        "   {} files, {} KiB fetched from the store in {:.2} s; {} in {} now",
        report.progress.files_done,
        report.progress.bytes_fetched / 1024,
        report.progress.elapsed_ms as f64 / 1000.0,
        daemon.status().cache.map(|c| format!("{} KiB cached", c.bytes_stored / 1024)).unwrap_or_default(),
        dir.join("cache").display()
    );

    println!("\n5. Query with DuckLake semantics (deletes applied, renamed/added columns, inlined rows):");
    println!("   {SAMPLE_QUERY}");
    let result = if mounted {
        println!("   through the mount: DuckDB runs {}/lake.sql, which reads the files in the mount\n", mnt.display());
        let script = std::fs::read_to_string(mnt.join("lake.sql")).context("reading lake.sql from the mount")?;
        local_query::script_query_text(&script, SAMPLE_QUERY)?
    } else {
        println!("   reading the store's files directly\n");
        let root = snapshot.data_root.trim_start_matches("file://").to_string();
        let script = view_sql::lake_script(&snapshot, &|k| format!("{root}{k}"));
        local_query::script_query_text(&script, SAMPLE_QUERY)?
    };
    for line in render_table(&result).lines() {
        println!("   {line}");
    }

    let psql = match &status.sql_socket {
        Some(socket) => {
            let (host, port) = psql_target(socket)?;
            println!("\n6. The same query through the SQL socket, as psql, psycopg or JDBC tools would send it:\n");
            let result = runtime.block_on(sql_query(&host, port, SAMPLE_QUERY))?.text();
            for line in render_table(&result).lines() {
                println!("   {line}");
            }
            Some(format!("psql -h {} -p {port} -d lake", host.display()))
        }
        None => None,
    };
    // Lines that run as printed, in a new terminal: `warmlake` by its path unless this binary is
    // the one on PATH, and the command that installs a missing tool before the line needing it.
    let warmlake = warmlake_command();
    println!("\nTry next, in another terminal:");
    if let Some(psql) = &psql {
        if !on_path("psql") {
            println!("   sudo apt-get install -y postgresql-client   # psql (or your system's package)");
        }
        println!("   {psql} -c '\\dt'");
    }
    if mounted {
        println!("   ls -l {}/sales/orders", mnt.display());
        if !on_path("duckdb") {
            println!("   python3 -m pip install --user duckdb-cli   # the DuckDB CLI, on PATH as duckdb");
        }
        println!("   duckdb -init {}/lake.sql -c 'SELECT kind, count(*) FROM web.events GROUP BY 1'", mnt.display());
        println!("   cat {}/.warmlake/status.json", mnt.display());
    }
    println!(
        "   {warmlake} policy explain sales.customers.email --policy {} --catalog {}",
        dir.join("policy.toml").display(),
        catalog.display()
    );
    println!("   {warmlake} dev query {} 'SELECT * FROM sales.returns'", catalog.display());
    println!("   {warmlake} daemon --config {}", config.display());

    if !args.no_wait {
        let shutdown = {
            let _entered = runtime.enter();
            crate::daemon_cmd::shutdown_signal()?
        };
        println!("\nThe daemon is running. Press Ctrl-C to unmount and exit.");
        runtime.block_on(shutdown);
    }
    daemon.stop()?;
    println!("Stopped{}.", if mounted { "; the lake is unmounted" } else { "" });
    Ok(())
}
