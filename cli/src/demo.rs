//! `warmlake demo`: the README's first command.
//!
//! It generates a small lake into a local folder, starts the daemon in the foreground on it
//! (mirror, and the mount when FUSE is usable), answers a sample query through the mount with
//! exact DuckLake semantics, prints what to try next, and waits for Ctrl-C. Parts that are not
//! built yet (the SQL socket, the chunk cache) are reported as such: the demo never prints what
//! did not happen.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};
use warmlake_daemon::local_query::{self, TextResult};

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

fn demo_config(dir: &Path, mount: bool) -> anyhow::Result<Config> {
    let mut text = format!(
        "[lake]\nname = \"demo\"\ncatalog = \"catalog.ducklake\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n",
        dir.join("state").display(),
        dir.join("cache").display()
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
    let lake = generate::generate(&dir, &LakeSpec::default(), &[CatalogKind::DuckDb, CatalogKind::Sqlite])
        .context("generating the demo lake")?;
    println!(
        "   {} Parquet files ({} KiB), {} snapshots, catalogs: {}",
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

    println!("\n3. Starting the daemon (mirror + mount)");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
    let (daemon, config) = match Daemon::start(demo_config(&dir, true)?) {
        Ok(d) => (d, dir.join("config.toml")),
        Err(e) => {
            println!("   the mount is not available here ({e}); running without it");
            (Daemon::start(demo_config(&dir, false)?)?, dir.join("config.toml"))
        }
    };
    let status = daemon.status();
    println!("   mirror  {}", status.mirror.display());
    let mounted = status.mount.is_some();
    if mounted {
        println!("   mount   {} (read-only; the lake as a folder)", mnt.display());
    }

    println!("\n4. Query with DuckLake semantics (deletes applied, renamed/added columns, inlined rows):");
    println!("   {SAMPLE_QUERY}");
    let result = if mounted {
        println!("   through the mount: DuckDB runs {}/lake.sql, which reads the files in the mount\n", mnt.display());
        let script = std::fs::read_to_string(mnt.join("lake.sql")).context("reading lake.sql from the mount")?;
        local_query::script_query_text(&script, SAMPLE_QUERY)?
    } else {
        println!("   reading the lake's files directly\n");
        local_query::query_text(&snapshot, SAMPLE_QUERY)?
    };
    for line in render_table(&result).lines() {
        println!("   {line}");
    }

    println!("\n5. Not in this build yet: the SQL socket (psql), the chunk cache and prewarming (see the issues).");
    println!("\nTry next, in another terminal:");
    if mounted {
        println!("   ls -l {}/sales/orders", mnt.display());
        println!("   duckdb -init {}/lake.sql -c 'SELECT kind, count(*) FROM web.events GROUP BY 1'", mnt.display());
        println!("   cat {}/.warmlake/status.json", mnt.display());
    }
    println!("   warmlake dev query {} 'SELECT * FROM sales.returns'", catalog.display());
    println!("   warmlake daemon --config {}", config.display());

    if !args.no_wait {
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
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

/// Renders a result as an aligned text table.
pub fn render_table(result: &TextResult) -> String {
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &result.rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(&result.columns);
    out.push_str(&format!("{}\n", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")));
    for row in &result.rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!("({} rows)\n", result.rows.len()));
    out
}
