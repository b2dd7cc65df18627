//! Shared helpers for warmlake's benchmarks (see `bench/README.md`).

pub mod dashboard;
pub mod latency;
pub mod local;
pub mod remote;

use std::time::{Duration, Instant};

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
