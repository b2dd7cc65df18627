//! Chunk-cache benchmark (issue #4): a DuckDB query over 3 of the 20 columns of `web.events`,
//! run through the FUSE mount of a daemon whose data is in a real S3-compatible server.
//!
//! Reported:
//! - **bytes fetched ÷ bytes needed**, cold cache: what the cache fetched from the store (its
//!   own counter, and the GETs seen at the wire) over the bytes the query cannot do without:
//!   the column chunks of those 3 columns plus each file's footer, from each file's Parquet
//!   metadata. Goal ≤ 1.1.
//! - **warm time ÷ local time**: the same query again on a warm cache (on the same mount, whose
//!   pages the kernel may still hold, and on a fresh mount of a restarted daemon, where every
//!   read goes through FUSE and the chunk cache) over the same query on the local copy of the
//!   same files, measured in the same run. Medians of `--runs`.
//!
//! `cargo run -p warmlake-bench --bin cache -- [--rows N] [--files N] [--runs N] [--rtt-ms N]`

use std::collections::BTreeSet;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use warmlake_bench::median_time;
use warmlake_bench::remote::{RemoteLake, mib};
use warmlake_daemon::generate::LakeSpec;
use warmlake_daemon::layout;
use warmlake_daemon::local_query::{TextResult, script_query_text};

/// The query: 3 of the 20 columns of `web.events` (kind, duration_ms, latency_ms). The average
/// is rounded: a parallel float sum differs in its last digits from run to run.
const QUERY: &str = "SELECT kind, count(*) AS events, sum(duration_ms) AS total_ms, round(avg(latency_ms), 3) AS avg_latency \
                     FROM web.events GROUP BY kind ORDER BY kind";
/// The Parquet field ids (DuckLake column ids) of the columns `QUERY` reads.
const QUERY_FIELDS: [i32; 3] = [5, 12, 18];

#[derive(Parser)]
#[command(about = "Chunk cache: bytes fetched vs bytes needed, warm query time vs local files")]
struct Args {
    /// Rows of web.events (the size; about 77 MiB of Parquet, generated in ~15 s).
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Data files web.events is split into.
    #[arg(long, default_value_t = 20)]
    files: u64,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Round-trip time to the bucket, in milliseconds (the latency proxy in front of it).
    #[arg(long, default_value_t = 30)]
    rtt_ms: u64,
}

fn main() -> anyhow::Result<()> {
    // RUST_LOG=warmlake_daemon::cache=debug shows every fetch.
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let spec = LakeSpec { events_rows: args.rows, events_files: args.files, ..LakeSpec::default() };
    let lake = RemoteLake::new(&spec, Duration::from_millis(args.rtt_ms))?;
    let (needed, coalesced) = needed_bytes(&lake)?;
    let local_script = lake.local_script();
    let expected = script_query_text(&local_script, QUERY)?;

    // Cold: an empty cache and a new mount.
    let daemon = lake.start_daemon()?;
    let mount_script = std::fs::read_to_string(lake.mount().join("lake.sql")).context("lake.sql in the mount")?;
    let started = Instant::now();
    check(&script_query_text(&mount_script, QUERY)?, &expected)?;
    let cold = started.elapsed();
    let cache = daemon.cache().context("remote data has a cache")?;
    let stats = cache.stats().totals;
    let (wire_gets, wire_bytes) = lake.wire();
    let by_column = fetched_by_column(&lake, cache)?;

    // Warm, same mount: the kernel may serve pages it kept (FOPEN_KEEP_CACHE).
    let (warm_same, result) = median_time(args.runs, || Ok(script_query_text(&mount_script, QUERY)?))?;
    check(&result, &expected)?;
    daemon.stop()?;

    // Warm, fresh mount each run: nothing in the kernel's page cache for the mount.
    let mut fresh_times = Vec::new();
    let mut fetched_warm = 0;
    for _ in 0..args.runs.max(1) {
        let daemon = lake.start_daemon()?;
        let started = Instant::now();
        let result = script_query_text(&mount_script, QUERY)?;
        fresh_times.push(started.elapsed());
        check(&result, &expected)?;
        fetched_warm += daemon.cache().map(|c| c.stats().totals.bytes_fetched).unwrap_or(0);
        daemon.stop()?;
    }
    fresh_times.sort();
    let warm_fresh = fresh_times[fresh_times.len() / 2];

    let (local, result) = median_time(args.runs, || Ok(script_query_text(&local_script, QUERY)?))?;
    check(&result, &expected)?;

    let events_bytes: u64 = events_files(&lake)?.iter().map(|f| f.size as u64).sum();
    println!(
        "web.events: {} rows, {} files, {:.1} MiB; query reads 3 of 20 columns; round trip to the store {} ms; {} runs",
        args.rows,
        args.files,
        mib(events_bytes),
        args.rtt_ms,
        args.runs
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| bytes needed (3 column chunks + footer, all files) | {:.2} MiB |", mib(needed));
    println!(
        "| bytes fetched by the cache (cold) | {:.2} MiB in {} requests ({:.2} MiB each) |",
        mib(stats.bytes_fetched),
        stats.requests,
        mib(stats.bytes_fetched) / stats.requests.max(1) as f64
    );
    println!("| GETs at the wire | {wire_gets} for {:.2} MiB |", mib(wire_bytes));
    println!("| **fetched ÷ needed** (goal ≤ 1.1) | **{:.3}** |", stats.bytes_fetched as f64 / needed as f64);
    let named: Vec<String> = by_column
        .iter()
        .map(|(id, bytes)| {
            let name = id.map_or("outside chunks".to_string(), |i| format!("field {i}"));
            let queried = id.is_some_and(|i| QUERY_FIELDS.contains(&i));
            format!("{name}{}: {:.2}", if queried { " (queried)" } else { "" }, mib(*bytes))
        })
        .collect();
    println!("| cached after the cold query, MiB by column | {} |", named.join(", "));
    println!(
        "| needed ranges merged across gaps < 256 KiB (the cache's coalescing), ÷ needed | {:.3} |",
        coalesced as f64 / needed as f64
    );
    println!("| cold query (empty cache, {} ms RTT) | {:.3} s |", args.rtt_ms, cold.as_secs_f64());
    println!("| local files (baseline) | {:.3} s |", local.as_secs_f64());
    println!(
        "| warm, same mount | {:.3} s, **{:.2}× local** |",
        warm_same.as_secs_f64(),
        warm_same.as_secs_f64() / local.as_secs_f64()
    );
    println!(
        "| warm, fresh mount (daemon restarted) | {:.3} s, **{:.2}× local** ({} bytes fetched) |",
        warm_fresh.as_secs_f64(),
        warm_fresh.as_secs_f64() / local.as_secs_f64(),
        fetched_warm
    );
    Ok(())
}

/// The data files of `web.events`.
fn events_files(lake: &RemoteLake) -> anyhow::Result<&[std::sync::Arc<warmlake_daemon::catalog::DataFile>]> {
    Ok(&lake.snapshot.table("web", "events").context("web.events")?.files)
}

/// The cache's default `coalesce_gap`: fetches closer than this are merged into one GET.
const COALESCE_GAP: u64 = 256 << 10;

/// Bytes the query cannot do without: the footer of every file, and every chunk of the
/// queried columns, as the local copy's Parquet metadata places them. Also those ranges merged
/// across gaps under [`COALESCE_GAP`], as the cache would if it saw them all at once: the part
/// of any excess that coalescing explains (the rest comes from reads wider than the query's).
fn needed_bytes(lake: &RemoteLake) -> anyhow::Result<(u64, u64)> {
    let fields: BTreeSet<i32> = QUERY_FIELDS.into_iter().collect();
    let (mut total, mut coalesced) = (0, 0);
    for f in events_files(lake)? {
        let layout = local_layout(lake, f)?;
        let mut ranges: Vec<Range<u64>> = layout
            .chunks
            .iter()
            .filter(|c| c.field_id.is_some_and(|id| fields.contains(&id)))
            .map(|c| c.range.clone())
            .chain(std::iter::once(layout.footer.clone()))
            .collect();
        total += ranges.iter().map(|r| r.end - r.start).sum::<u64>();
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end + COALESCE_GAP => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        coalesced += merged.iter().map(|r| r.end - r.start).sum::<u64>();
    }
    Ok((total, coalesced))
}

/// The Parquet layout of `f`, from the local copy's footer.
fn local_layout(lake: &RemoteLake, f: &warmlake_daemon::catalog::DataFile) -> anyhow::Result<layout::Layout> {
    let size = f.size as u64;
    let footer = layout::footer_range(size, f.footer_size.context("footer size")? as u64)?;
    let mut file = std::fs::File::open(lake.lake.data_dir.join(f.key.as_str()))?;
    file.seek(SeekFrom::Start(footer.start))?;
    let mut bytes = vec![0; (footer.end - footer.start) as usize];
    file.read_exact(&mut bytes)?;
    Ok(layout::parse_footer(&bytes, size)?)
}

/// Cached bytes of `web.events` after the cold query, by the column chunk they lie in (field
/// id; `None`: bytes outside any column chunk, such as footers and page indexes): where the
/// fetched bytes went.
fn fetched_by_column(
    lake: &RemoteLake,
    cache: &warmlake_daemon::cache::Cache,
) -> anyhow::Result<std::collections::BTreeMap<Option<i32>, u64>> {
    let store = lake.store()?;
    let mut out = std::collections::BTreeMap::new();
    for f in events_files(lake)? {
        let layout = local_layout(lake, f)?;
        let object = warmlake_daemon::cache::ObjectRef::new(store.clone(), f.key.as_str(), f.size as u64);
        for p in cache.pieces(&object) {
            let mut in_chunks = 0;
            for c in layout.chunks_overlapping(p.range.clone()) {
                let overlap = c.range.end.min(p.range.end) - c.range.start.max(p.range.start);
                *out.entry(c.field_id).or_insert(0) += overlap;
                in_chunks += overlap;
            }
            *out.entry(None).or_insert(0) += (p.range.end - p.range.start) - in_chunks;
        }
    }
    Ok(out)
}

/// The mount must answer exactly as the local files do.
fn check(got: &TextResult, expected: &TextResult) -> anyhow::Result<()> {
    ensure!(got.rows == expected.rows, "the mount answered {:?}, the local files {:?}", got.rows, expected.rows);
    Ok(())
}
