//! Shared helpers for warmlake's benchmarks (see `bench/README.md`).

pub mod dashboard;
pub mod local;
pub mod other_mounts;
pub mod remote;

use std::time::{Duration, Instant};

use warmlake_daemon::catalog::{CatalogLocation, CatalogReader, LakeSnapshot};
use warmlake_daemon::generate::{self, CatalogKind, GeneratedLake, LakeSpec};

/// Runs `f` `runs` times and returns the median wall time: machines here are noisy, so single
/// runs are not trusted, and every result is reported next to a baseline from the same run.
pub fn median_time<T>(runs: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(Duration, T)> {
    let mut times = Vec::with_capacity(runs.max(1));
    let mut last = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        last = Some(f()?);
        times.push(start.elapsed());
    }
    times.sort();
    let out = last.ok_or_else(|| anyhow::anyhow!("no run"))?;
    Ok((times[times.len() / 2], out))
}

/// This process's resident memory (`VmRSS`): the daemon's, when it runs in the benchmark.
pub fn rss_bytes() -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .context("VmRSS in /proc/self/status")?;
    Ok(kib.trim().parse::<u64>()? << 10)
}

/// A lake generated for a benchmark, with the daemon's folders beside it.
pub struct BenchLake {
    /// The temporary folder holding everything (removed on drop).
    pub dir: tempfile::TempDir,
    /// The lake as generated: its SQLite catalog and its data files in `lake.data_dir`.
    pub lake: GeneratedLake,
    /// The newest snapshot, read from the catalog.
    pub snapshot: LakeSnapshot,
}

/// Generates `spec` (SQLite catalog, local data files) into a new temporary folder, saying how
/// long it took, and creates `folders` and an empty `policy.toml` there (a user's own policy
/// must not change what is measured).
pub fn generate_lake(spec: &LakeSpec, folders: &[&str]) -> anyhow::Result<BenchLake> {
    let dir = tempfile::Builder::new().prefix("warmlake-bench-").tempdir()?;
    let started = Instant::now();
    let lake = generate::generate(&dir.path().join("lake"), spec, &[CatalogKind::Sqlite])?;
    eprintln!(
        "generated {} Parquet files, {:.0} MiB, in {:.1} s",
        lake.files,
        remote::mib(lake.bytes),
        started.elapsed().as_secs_f64()
    );
    let catalog = CatalogLocation::Sqlite(lake.catalogs[0].clone());
    let snapshot = CatalogReader::open(&catalog, None)?.read_snapshot(lake.latest_snapshot)?;
    for d in folders {
        std::fs::create_dir(dir.path().join(d))?;
    }
    std::fs::write(dir.path().join("policy.toml"), "")?;
    Ok(BenchLake { dir, lake, snapshot })
}
