//! Prewarm throughput (issue 8): a prewarm of every column of `web.events` through the daemon
//! (footers first, then column chunks at background priority, with progress), against plain
//! parallel ranged GETs of the same bytes through the same latency proxy, in the same run.
//! Reported as throughput ratios (goal ≥ 0.9), for GETs as parallel as the prefetch budget
//! (`max_prefetch_requests`) and as the whole store (`max_requests`).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use warmlake_bench::remote::{RemoteLake, mib};
use warmlake_daemon::generate::LakeSpec;
use warmlake_daemon::layout;
use warmlake_daemon::store::{Priority, Store, StoreConfig};

#[derive(Parser)]
#[command(about = "Prewarm throughput vs plain parallel ranged GETs of the same bytes")]
struct Args {
    /// Rows of web.events (plain, uncompressed pages: about 160 bytes a row, so the default
    /// is about 1 GiB, the size).
    #[arg(long, default_value_t = 7_000_000)]
    rows: u64,
    #[arg(long, default_value_t = 50)]
    files: u64,
    /// Round-trip time to the bucket, in milliseconds (the latency proxy in front of it).
    #[arg(long, default_value_t = 30)]
    rtt_ms: u64,
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Every column chunk and footer of the events files (as the local copy's metadata places them).
fn ranges(lake: &RemoteLake) -> anyhow::Result<Vec<(String, Range<u64>)>> {
    let mut out = Vec::new();
    for f in &lake.snapshot.table("web", "events").context("web.events")?.files {
        let bytes = std::fs::read(lake.lake.data_dir.join(f.key.as_str()))?;
        let size = bytes.len() as u64;
        let footer = layout::footer_range(size, f.footer_size.context("footer size")? as u64)?;
        let l = layout::parse_footer(&bytes[footer.start as usize..], size)?;
        out.push((f.key.as_str().to_string(), l.footer.clone()));
        out.extend(l.chunks.iter().map(|c| (f.key.as_str().to_string(), c.range.clone())));
    }
    Ok(out)
}

/// GETs every range, `parallel` at a time; returns the time taken and bytes received.
fn raw_gets(
    lake: &RemoteLake,
    store: &Store,
    ranges: &[(String, Range<u64>)],
    parallel: usize,
) -> anyhow::Result<(Duration, u64)> {
    let received = AtomicU64::new(0);
    let started = Instant::now();
    lake.runtime.block_on(async {
        let mut gets = futures::stream::iter(ranges.iter().map(|(key, r)| {
            let received = &received;
            async move {
                let got = store.get_range(key, r.clone(), Priority::Demand).await?;
                received.fetch_add(got.bytes.len() as u64, Ordering::Relaxed);
                anyhow::Ok(())
            }
        }))
        .buffer_unordered(parallel);
        while let Some(r) = gets.next().await {
            r?;
        }
        anyhow::Ok(())
    })?;
    Ok((started.elapsed(), received.load(Ordering::Relaxed)))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spec = LakeSpec { events_rows: args.rows, events_files: args.files, plain: true, ..LakeSpec::default() };
    let lake = RemoteLake::new(&spec, Duration::from_millis(args.rtt_ms))?;
    let ranges = ranges(&lake)?;
    let defaults = StoreConfig::default();

    // Prewarm: a fresh cache and daemon each run.
    let mut prewarms = Vec::new();
    let mut events = 0;
    for _ in 0..args.runs.max(1) {
        lake.clear_cache()?;
        let daemon = lake.start_daemon()?;
        let request = warmlake_daemon::prewarm::all_columns(&["web.events"]).map_err(anyhow::Error::msg)?;
        let count = AtomicU64::new(0);
        let progress = |_: &warmlake_daemon::prewarm::PrewarmProgress| {
            count.fetch_add(1, Ordering::Relaxed);
        };
        let report = lake.runtime.block_on(daemon.prewarm(&request, &progress, &CancellationToken::new()))?;
        events = count.load(Ordering::Relaxed);
        prewarms.push((Duration::from_millis(report.progress.elapsed_ms), report.progress.bytes_fetched));
        daemon.stop()?;
    }
    prewarms.sort();
    let (t_prewarm, b_prewarm) = prewarms[prewarms.len() / 2];

    // Plain GETs of the same ranges, as parallel as the prefetch budget, then as the store.
    let store = lake.store()?;
    let mut raw = Vec::new();
    for parallel in [defaults.max_prefetch_requests, defaults.max_requests] {
        let mut runs: Vec<(Duration, u64)> =
            (0..args.runs.max(1)).map(|_| raw_gets(&lake, &store, &ranges, parallel)).collect::<Result<_, _>>()?;
        runs.sort();
        raw.push((parallel, runs[runs.len() / 2]));
    }

    let rate = |bytes: u64, t: Duration| mib(bytes) / t.as_secs_f64();
    let prewarm_rate = rate(b_prewarm, t_prewarm);
    println!(
        "\nweb.events: {} rows, {} files, {:.0} MiB of chunks and footers in {} ranges; {} ms RTT; medians of {}\n",
        args.rows,
        args.files,
        mib(ranges.iter().map(|(_, r)| r.end - r.start).sum()),
        ranges.len(),
        args.rtt_ms,
        args.runs.max(1)
    );
    println!("| measure | time | MiB | MiB/s | prewarm ÷ this (goal ≥ 0.9) |");
    println!("|---|---|---|---|---|");
    println!(
        "| prewarm (all columns; {events} progress events) | {:.2} s | {:.1} | {:.1} | |",
        t_prewarm.as_secs_f64(),
        mib(b_prewarm),
        prewarm_rate
    );
    for (parallel, (t, b)) in raw {
        println!(
            "| plain ranged GETs, {parallel} in parallel | {:.2} s | {:.1} | {:.1} | **{:.2}** |",
            t.as_secs_f64(),
            mib(b),
            rate(b, t),
            prewarm_rate / rate(b, t)
        );
    }
    Ok(())
}
