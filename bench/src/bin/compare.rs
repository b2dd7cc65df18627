//! warmlake against the other ways to query a lake in a bucket through a mount (issue #10),
//! side by side in one run, over the same bucket behind the same latency proxy:
//!
//! - **local**: the local copy of the data files (the warm limit);
//! - **warmlake**: the daemon's mount, queried through its `lake.sql`;
//! - **rclone**: `rclone mount --vfs-cache-mode full`;
//! - **s3fs**: s3fs-fuse with `use_cache`.
//!
//! Each of the 8 dashboard queries (`dashboard::DASHBOARD`) runs in a new in-process DuckDB
//! over views of the lake (view creation timed on every side alike), and every answer is
//! checked against the local files'. **Cold**: an empty cache and a new mount, one query
//! timed, then the mount is stopped (`--cold-runs` times per query and system); the bytes the
//! proxy delivered from the mount's start to its end are what that system downloaded for the
//! query. **Warm**: a new mount, one pass of every query (cold), then the median of `--runs`
//! of each on the same mount. Medians with min–max.
//!
//! Goals: warmlake cold ÷ rclone cold ≤ 0.3 at 30 ms RTT; warm mount ÷ local ≤ 1.05.
//!
//! `cargo run -p warmlake-bench --bin compare -- [--rows N] [--files N] [--runs N] [--cold-runs N] [--rtt-ms N]`

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use warmlake_bench::dashboard::DASHBOARD;
use warmlake_bench::other_mounts::{OtherMount, Tool};
use warmlake_bench::remote::{RemoteLake, S3Access, mib};
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;
use warmlake_daemon::local_query::{TextResult, script_query_text};

#[derive(Parser)]
#[command(about = "warmlake vs rclone and s3fs mounts of the same bucket: the dashboard, cold and warm")]
struct Args {
    /// Rows of web.events (2,000,000 are about 15 MiB of Parquet). The defaults keep the whole
    /// run to about 6 minutes: s3fs takes over a minute per pass of the dashboard.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Data files web.events is split into.
    #[arg(long, default_value_t = 2)]
    files: u64,
    /// Append snapshots of 2,000 rows of sales.orders (each is one small file).
    #[arg(long, default_value_t = 20)]
    order_batches: u64,
    /// Timed warm runs per query and system (the median is reported, with min and max).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Cold runs per query and system: each is a new mount with an empty cache.
    #[arg(long, default_value_t = 3)]
    cold_runs: usize,
    /// Round-trip time to the bucket, in milliseconds (the latency proxy in front of it).
    #[arg(long, default_value_t = 30)]
    rtt_ms: u64,
    /// The link's bandwidth in each direction, in Mbit/s, shared by every connection (as a
    /// laptop's Wi-Fi or a home line is); 0 for none (loopback: bytes cost nothing).
    #[arg(long, default_value_t = 100)]
    mbit: u64,
}

/// A system under test, in the order of the tables.
#[derive(Clone, Copy)]
enum System {
    Warmlake,
    Other(Tool),
}

const SYSTEMS: [System; 3] = [System::Warmlake, System::Other(Tool::Rclone), System::Other(Tool::S3fs)];

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Warmlake => "warmlake",
            System::Other(tool) => tool.name(),
        }
    }

    /// A new mount of the lake with an empty cache, and the views over it a user would query.
    /// `flat` is the lake's flat copy, which the other tools mount.
    fn mount_cold(self, lake: &RemoteLake, flat: &S3Access) -> anyhow::Result<Mounted> {
        match self {
            System::Warmlake => {
                lake.clear_cache()?;
                let daemon = lake.start_daemon()?;
                let script = std::fs::read_to_string(lake.mount().join("lake.sql")).context("lake.sql in the mount")?;
                Ok(Mounted { running: Running::Daemon(Box::new(daemon)), script })
            }
            System::Other(tool) => {
                let mount = OtherMount::start(tool, flat)?;
                let script = lake.flat_script(mount.root());
                Ok(Mounted { running: Running::Other(mount), script })
            }
        }
    }
}

/// A live mount and the views over it.
struct Mounted {
    running: Running,
    script: String,
}

enum Running {
    /// The local files: nothing to stop.
    Local,
    Daemon(Box<Daemon>),
    Other(OtherMount),
}

impl Mounted {
    /// Runs query `q` of the dashboard, checks its answer, and returns how long it took.
    fn query(&self, q: usize, expected: &[TextResult]) -> anyhow::Result<Duration> {
        let (name, sql) = DASHBOARD[q];
        let started = Instant::now();
        let got = script_query_text(&self.script, sql)?;
        let took = started.elapsed();
        ensure!(
            got.rows == expected[q].rows,
            "{name}: answered {:?}, the local files {:?}",
            got.rows,
            expected[q].rows
        );
        Ok(took)
    }

    /// Unmounts (and, for another tool, ends its process and deletes its cache).
    fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Running::Local => Ok(()),
            Running::Daemon(d) => Ok(d.stop()?),
            Running::Other(m) => {
                drop(m);
                Ok(())
            }
        }
    }
}

/// Timed runs of one measurement.
#[derive(Default, Clone)]
struct Times(Vec<Duration>);

impl Times {
    fn median(&self) -> f64 {
        let mut t = self.0.clone();
        t.sort();
        t.get(t.len() / 2).map_or(f64::NAN, Duration::as_secs_f64)
    }

    /// `median ms (min–max)`.
    fn cell(&self) -> String {
        let min = self.0.iter().min().map_or(f64::NAN, Duration::as_secs_f64);
        let max = self.0.iter().max().map_or(f64::NAN, Duration::as_secs_f64);
        if self.0.len() == 1 {
            format!("{:.0} ms", self.median() * 1e3)
        } else {
            format!("{:.0} ms ({:.0}–{:.0})", self.median() * 1e3, min * 1e3, max * 1e3)
        }
    }
}

/// One system's measurements, per dashboard query.
struct Measured {
    cold: Vec<Times>,
    warm: Vec<Times>,
    /// Bytes downloaded for each cold query (the median over the cold runs).
    cold_bytes: Vec<u64>,
    /// Bytes downloaded during the warm runs (after the first pass), all queries.
    warm_bytes: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spec = LakeSpec {
        events_rows: args.rows,
        events_files: args.files,
        order_batches: args.order_batches,
        ..LakeSpec::default()
    };
    let bandwidth = (args.mbit > 0).then(|| args.mbit * 1_000_000 / 8);
    let lake = RemoteLake::with_link(&spec, Duration::from_millis(args.rtt_ms), bandwidth)?;
    let flat = lake.flat_copy()?;
    let data_bytes: u64 = lake.snapshot.tables.iter().flat_map(|t| &t.files).map(|f| f.size as u64).sum();
    let data_files: usize = lake.snapshot.tables.iter().map(|t| t.files.len()).sum();

    // The local files: one pass takes the answers (and fills the page cache), then the runs.
    let local = Mounted { running: Running::Local, script: lake.local_script() };
    let expected = DASHBOARD
        .iter()
        .map(|(_, sql)| Ok(script_query_text(&local.script, sql)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut local_times = vec![Times::default(); DASHBOARD.len()];
    for _ in 0..args.runs.max(1) {
        for (q, times) in local_times.iter_mut().enumerate() {
            times.0.push(local.query(q, &expected)?);
        }
    }
    let run = |s: System| anyhow::Ok((s, measure(s, &lake, &flat, &args, &expected)?));
    let all = [run(SYSTEMS[0])?, run(SYSTEMS[1])?, run(SYSTEMS[2])?];

    println!(
        "web.events: {} rows in {} files; {data_files} data files of {:.1} MiB in all; round trip to the store {} ms, \
         link {}; cold: {} runs of each query, each a new mount with an empty cache; warm: {} runs on one mount after a \
         cold pass",
        args.rows,
        args.files,
        mib(data_bytes),
        args.rtt_ms,
        if args.mbit > 0 { format!("{} Mbit/s", args.mbit) } else { "uncapped".into() },
        args.cold_runs.max(1),
        args.runs.max(1)
    );
    cold_table(&local_times, &all);
    bytes_table(&all);
    warm_table(&local_times, &all);
    Ok(())
}

/// Cold runs of every query (each a new mount with an empty cache), then warm runs on one
/// mount after a cold pass.
fn measure(
    system: System,
    lake: &RemoteLake,
    flat: &S3Access,
    args: &Args,
    expected: &[TextResult],
) -> anyhow::Result<Measured> {
    let n = DASHBOARD.len();
    let mut cold = vec![Times::default(); n];
    let mut bytes = vec![Vec::new(); n];
    for run in 0..args.cold_runs.max(1) {
        for q in 0..n {
            // From before the mount to after it is gone: whatever the tool fetched for the query,
            // at start, during it, and ahead of it in the background.
            let before = lake.bytes_delivered();
            let mounted = system.mount_cold(lake, flat)?;
            cold[q].0.push(mounted.query(q, expected)?);
            mounted.stop()?;
            bytes[q].push(lake.bytes_delivered() - before);
        }
        eprintln!("{}: cold run {} of {} done", system.name(), run + 1, args.cold_runs.max(1));
    }
    let mounted = system.mount_cold(lake, flat)?;
    for q in 0..n {
        mounted.query(q, expected)?;
    }
    let before = lake.bytes_delivered();
    let mut warm = vec![Times::default(); n];
    for _ in 0..args.runs.max(1) {
        for (q, times) in warm.iter_mut().enumerate() {
            times.0.push(mounted.query(q, expected)?);
        }
    }
    let warm_bytes = lake.bytes_delivered() - before;
    mounted.stop()?;
    eprintln!("{}: warm runs done", system.name());
    let cold_bytes = bytes
        .into_iter()
        .map(|mut b| {
            b.sort_unstable();
            b[b.len() / 2]
        })
        .collect();
    Ok(Measured { cold, warm, cold_bytes, warm_bytes })
}

/// The geometric mean: every query counts the same, however long it takes.
fn geomean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (sum / n as f64).exp()
}

fn cold_table(local: &[Times], all: &[(System, Measured); 3]) {
    let [(_, warmlake), (_, rclone), (_, s3fs)] = all;
    println!();
    println!(
        "| query, cold (empty cache, new mount) | local files (warm) | warmlake cold | rclone cold | s3fs cold | \
         **warmlake ÷ rclone** | warmlake ÷ s3fs |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (q, (name, _)) in DASHBOARD.iter().enumerate() {
        let w = warmlake.cold[q].median();
        println!(
            "| {name} | {} | {} | {} | {} | {:.2} | {:.2} |",
            local[q].cell(),
            warmlake.cold[q].cell(),
            rclone.cold[q].cell(),
            s3fs.cold[q].cell(),
            w / rclone.cold[q].median(),
            w / s3fs.cold[q].median()
        );
    }
    let g = |t: &[Times]| geomean(t.iter().map(Times::median)) * 1e3;
    let ratio =
        |other: &Measured| geomean((0..DASHBOARD.len()).map(|q| warmlake.cold[q].median() / other.cold[q].median()));
    println!(
        "| **geometric mean** (goal warmlake ÷ rclone ≤ 0.3) | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | **{:.2}** | {:.2} |",
        g(local),
        g(&warmlake.cold),
        g(&rclone.cold),
        g(&s3fs.cold),
        ratio(rclone),
        ratio(s3fs)
    );
}

fn bytes_table(all: &[(System, Measured); 3]) {
    println!();
    let names: Vec<&str> = all.iter().map(|(s, _)| s.name()).collect();
    println!("| MiB downloaded per cold query (proxy count, mount start to stop) | {} |", names.join(" | "));
    println!("|---|---|---|---|");
    for (q, (name, _)) in DASHBOARD.iter().enumerate() {
        let cells: Vec<String> = all.iter().map(|(_, m)| format!("{:.2}", mib(m.cold_bytes[q]))).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = all.iter().map(|(_, m)| format!("**{:.2}**", mib(m.cold_bytes.iter().sum()))).collect();
    println!("| **all 8 cold queries** | {} |", totals.join(" | "));
    let warm: Vec<String> = all.iter().map(|(_, m)| format!("{:.2}", mib(m.warm_bytes))).collect();
    println!("| during the warm runs (all queries) | {} |", warm.join(" | "));
}

fn warm_table(local: &[Times], all: &[(System, Measured); 3]) {
    println!();
    let heads: Vec<String> = all.iter().map(|(s, _)| format!("{} warm | ÷ local", s.name())).collect();
    println!("| query, warm (same mount, after a cold pass) | local files | {} |", heads.join(" | "));
    println!("|---|---|{}", "---|---|".repeat(all.len()));
    for (q, (name, _)) in DASHBOARD.iter().enumerate() {
        let cells: Vec<String> = all
            .iter()
            .map(|(_, m)| format!("{} | {:.2}", m.warm[q].cell(), m.warm[q].median() / local[q].median()))
            .collect();
        println!("| {name} | {} | {} |", local[q].cell(), cells.join(" | "));
    }
    let g = |t: &[Times]| geomean(t.iter().map(Times::median)) * 1e3;
    let cells: Vec<String> = all
        .iter()
        .map(|(_, m)| {
            let ratio = geomean((0..DASHBOARD.len()).map(|q| m.warm[q].median() / local[q].median()));
            format!("{:.0} ms | **{ratio:.2}**", g(&m.warm))
        })
        .collect();
    println!("| **geometric mean** (goal warmlake ≤ 1.05) | {:.0} ms | {} |", g(local), cells.join(" | "));
}
