//! Mount benchmark (issue #5), against the local copy of the same files measured in the same
//! run:
//!
//! - **dashboard**: a warm set of typical GROUP BY / filter / top-N / join queries over
//!   `web.events` and `sales.orders`, through the views of the mount's `lake.sql`, against the
//!   same views over the local files. Goal ≤ 1.05.
//! - **file reads**, as mountpoint-s3 publishes them: sequential 1 MiB reads and random
//!   256 KiB reads (`pread`) of the largest data file from `--threads` threads, through the
//!   mount with a cold cache (new cache, new mount) and a warm one (new mount, so the kernel
//!   holds none of its pages), against the local file with its pages dropped from the kernel's
//!   cache and with them cached. MiB/s and ratio.
//!
//! `cargo run -p warmlake-bench --bin mount -- [--rows N] [--files N] [--runs N] [--rtt-ms N]`

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use warmlake_bench::dashboard::DASHBOARD;
use warmlake_bench::median_time;
use warmlake_bench::remote::{RemoteLake, mib};
use warmlake_daemon::generate::LakeSpec;
use warmlake_daemon::local_query::script_query_text;

/// Block of the sequential reads.
const SEQ_BLOCK: u64 = 1 << 20;
/// Block of the random reads (offsets are multiples of it, as fio aligns them).
const RANDOM_BLOCK: u64 = 256 << 10;

#[derive(Parser)]
#[command(about = "The mount vs local files: a warm dashboard, and sequential / random file reads")]
struct Args {
    /// Rows of web.events. With one file (the default), that file is the one the read
    /// benchmark reads: 20,000,000 rows are about 150 MiB.
    #[arg(long, default_value_t = 20_000_000)]
    rows: u64,
    /// Data files web.events is split into.
    #[arg(long, default_value_t = 1)]
    files: u64,
    /// Append snapshots of 2,000 rows of sales.orders (each is one small file, as DuckLake
    /// writes them).
    #[arg(long, default_value_t = 50)]
    order_batches: u64,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Reader threads of the file-read benchmark.
    #[arg(long, default_value_t = 2)]
    threads: u64,
    /// Random reads per thread.
    #[arg(long, default_value_t = 128)]
    random_reads: u64,
    /// Round-trip time to the bucket, in milliseconds (the latency proxy in front of it).
    #[arg(long, default_value_t = 30)]
    rtt_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spec = LakeSpec {
        events_rows: args.rows,
        events_files: args.files,
        order_batches: args.order_batches,
        ..LakeSpec::default()
    };
    let lake = RemoteLake::new(&spec, Duration::from_millis(args.rtt_ms))?;
    println!(
        "web.events: {} rows in {} files; sales.orders: {} files; round trip to the store {} ms; {} runs",
        args.rows,
        args.files,
        lake.snapshot.table("sales", "orders").map(|t| t.files.len()).unwrap_or(0),
        args.rtt_ms,
        args.runs
    );
    dashboard(&lake, &args)?;
    file_reads(&lake, &args)?;
    Ok(())
}

/// The dashboard through the mount's `lake.sql` (warm cache, same mount) vs the local views.
fn dashboard(lake: &RemoteLake, args: &Args) -> anyhow::Result<()> {
    let local_script = lake.local_script();
    let daemon = lake.start_daemon()?;
    let mount_script = std::fs::read_to_string(lake.mount().join("lake.sql")).context("lake.sql in the mount")?;
    // Warm up: the first pass fills the cache; the timed ones read it.
    for (_, sql) in DASHBOARD {
        script_query_text(&mount_script, sql)?;
    }
    println!();
    println!("| dashboard query | local files | mount (warm) | ratio |");
    println!("|---|---|---|---|");
    let mut log_ratios = 0.0;
    for (name, sql) in DASHBOARD {
        let (local, expected) = median_time(args.runs, || Ok(script_query_text(&local_script, sql)?))?;
        let (mount, got) = median_time(args.runs, || Ok(script_query_text(&mount_script, sql)?))?;
        ensure!(
            got.rows == expected.rows,
            "{name}: the mount answered {:?}, the local files {:?}",
            got.rows,
            expected.rows
        );
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2} |",
            ms(local),
            ms(mount),
            mount.as_secs_f64() / local.as_secs_f64()
        );
        log_ratios += (mount.as_secs_f64() / local.as_secs_f64()).ln();
    }
    // The geometric mean: every tile counts the same, however long its query takes.
    println!("| **geometric mean** (goal ≤ 1.05) | | | **{:.2}** |", (log_ratios / DASHBOARD.len() as f64).exp());
    daemon.stop()?;
    Ok(())
}

/// Sequential and random reads of the largest events file, local vs mount, cold vs warm.
fn file_reads(lake: &RemoteLake, args: &Args) -> anyhow::Result<()> {
    let events = lake.snapshot.table("web", "events").context("web.events")?;
    let file = events.files.iter().max_by_key(|f| f.size).context("web.events has files")?;
    let local = lake.lake.data_dir.join(file.key.as_str());
    let mounted = lake.mount().join("web/events").join(&file.name);
    println!();
    println!(
        "file reads: {} ({:.1} MiB), {} threads; sequential: {} MiB blocks over the whole file; random: {} × {} KiB \
         per thread",
        file.name,
        mib(file.size as u64),
        args.threads,
        SEQ_BLOCK >> 20,
        args.random_reads,
        RANDOM_BLOCK >> 10
    );
    println!();
    println!("| reads | local, not in page cache | local, page-cached | mount, cold cache | mount, warm cache |");
    println!("|---|---|---|---|---|");
    for pattern in [Pattern::Sequential, Pattern::Random] {
        let job = Job { pattern, threads: args.threads, random_reads: args.random_reads };
        let local_cold = median_rate(args.runs, || {
            drop_page_cache(&local)?;
            job.run(&local)
        })?;
        let local_warm = median_rate(args.runs, || job.run(&local))?;
        let mount_cold = median_rate(args.runs, || {
            lake.clear_cache()?;
            let daemon = lake.start_daemon()?;
            let rate = job.run(&mounted)?;
            daemon.stop()?;
            Ok(rate)
        })?;
        let mount_warm = median_rate(args.runs, || {
            let daemon = lake.start_daemon()?;
            let rate = job.run(&mounted)?;
            daemon.stop()?;
            Ok(rate)
        })?;
        println!(
            "| {} | {local_cold:.0} MiB/s | {local_warm:.0} MiB/s | {mount_cold:.0} MiB/s ({:.2}× local, not cached) \
             | {mount_warm:.0} MiB/s ({:.2}× local, page-cached) |",
            pattern.name(),
            mount_cold / local_cold,
            mount_warm / local_warm
        );
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Pattern {
    Sequential,
    Random,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Sequential => "sequential 1 MiB",
            Pattern::Random => "random 256 KiB",
        }
    }
}

/// One fio-style job: `threads` readers with their own file handle.
#[derive(Clone, Copy)]
struct Job {
    pattern: Pattern,
    threads: u64,
    random_reads: u64,
}

impl Job {
    /// Runs the job over `path` and returns MiB/s of bytes delivered to the readers.
    fn run(&self, path: &Path) -> anyhow::Result<f64> {
        let size = std::fs::metadata(path)?.len();
        let started = Instant::now();
        let bytes = std::thread::scope(|s| {
            let readers: Vec<_> = (0..self.threads).map(|t| s.spawn(move || self.reader(path, size, t))).collect();
            readers.into_iter().try_fold(0u64, |sum, r| match r.join() {
                Ok(bytes) => Ok(sum + bytes?),
                Err(_) => bail!("a reader thread panicked"),
            })
        })?;
        Ok(mib(bytes) / started.elapsed().as_secs_f64())
    }

    /// Reader `t`: its share of the file in order (sequential), or its own seeded offsets
    /// (random). Returns the bytes read.
    fn reader(&self, path: &Path, size: u64, t: u64) -> anyhow::Result<u64> {
        let file = File::open(path)?;
        let mut buf = vec![0; SEQ_BLOCK.max(RANDOM_BLOCK) as usize];
        let mut read = 0;
        match self.pattern {
            Pattern::Sequential => {
                // Contiguous shares on block boundaries, so each reader streams.
                let blocks = size.div_ceil(SEQ_BLOCK);
                let (first, last) = (blocks * t / self.threads, blocks * (t + 1) / self.threads);
                for b in first..last {
                    read += read_block(&file, &mut buf, b * SEQ_BLOCK, SEQ_BLOCK, size)?;
                }
            }
            Pattern::Random => {
                let blocks = (size / RANDOM_BLOCK).max(1);
                let mut x = 0x9e37_79b9_7f4a_7c15 ^ (t + 1);
                for _ in 0..self.random_reads {
                    // xorshift64: the same offsets in every run and on both sides.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    read += read_block(&file, &mut buf, (x % blocks) * RANDOM_BLOCK, RANDOM_BLOCK, size)?;
                }
            }
        }
        Ok(read)
    }
}

/// One `pread` of up to `len` bytes at `offset` (less at the end of the file), looping over
/// short reads.
fn read_block(file: &File, buf: &mut [u8], offset: u64, len: u64, size: u64) -> anyhow::Result<u64> {
    let want = len.min(size.saturating_sub(offset)) as usize;
    file.read_exact_at(&mut buf[..want], offset)?;
    Ok(want as u64)
}

/// The median of `runs` rates (MiB/s).
fn median_rate(runs: usize, mut f: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut rates = (0..runs.max(1)).map(|_| f()).collect::<anyhow::Result<Vec<f64>>>()?;
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// Drops one file's pages from the kernel's page cache (`dd iflag=nocache count=0` is
/// `posix_fadvise(DONTNEED)` over the whole file), without touching the rest of the machine's
/// cache as `drop_caches` would.
fn drop_page_cache(path: &Path) -> anyhow::Result<()> {
    File::open(path)?.sync_all()?;
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .context("running dd")?;
    ensure!(status.success(), "dd iflag=nocache failed on {}", path.display());
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
