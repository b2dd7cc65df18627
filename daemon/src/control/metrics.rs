//! The daemon's status in the Prometheus text exposition format (version 0.0.4), for
//! `warmlake metrics` and for anyone scraping it with a textfile collector.
//!
//! Cache counters appear twice: the whole cache (`warmlake_cache_*_total`) and per table
//! (`warmlake_cache_table_*_total{table="schema.table"}`). They are separate families because
//! some bytes (footers read before a table is known) count towards no table, so the per-table
//! series need not add up to the totals.

use std::fmt::Write as _;

use crate::cache::Counters;
use crate::daemon::Status;

/// Renders `status` as Prometheus text.
pub fn prometheus_text(status: &Status) -> String {
    let mut out = String::new();
    let lake = format!("lake=\"{}\"", escape(&status.lake));
    let mut gauge = |name: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{lake}}} {value}");
        }
    };
    gauge("warmlake_snapshot_id", "The snapshot the daemon serves.", status.snapshot.map(|s| s as f64));
    gauge(
        "warmlake_last_refresh_timestamp_seconds",
        "When the catalog was last read successfully (Unix time).",
        status.last_refresh_unix.map(|t| t as f64),
    );
    gauge(
        "warmlake_offline",
        "1 while the catalog cannot be reached and the mirror is served.",
        Some(flag(status.offline)),
    );
    gauge("warmlake_refresh_error", "1 while the last refresh failed.", Some(flag(status.last_error.is_some())));
    gauge(
        "warmlake_unreadable_tables",
        "Tables served as unreadable (status names them and says why).",
        Some(status.unreadable_tables.len() as f64),
    );
    gauge(
        "warmlake_policy_error",
        "1 while the policy files are unusable (the last good policy stays in force).",
        Some(flag(status.policy_error.is_some())),
    );
    gauge(
        "warmlake_policy_purged_bytes",
        "Bytes dropped from the cache by the last policy change.",
        Some(status.policy_purged_bytes as f64),
    );
    if let Some(cache) = &status.cache {
        gauge("warmlake_cache_bytes", "Bytes stored in the chunk cache.", Some(cache.bytes_stored as f64));
        gauge("warmlake_cache_max_bytes", "The chunk cache's budget.", Some(cache.max_cache as f64));
        gauge("warmlake_cache_objects", "Objects with bytes in the chunk cache.", Some(cache.objects as f64));
        for (name, help, get) in COUNTERS {
            let _ =
                writeln!(out, "# HELP warmlake_cache_{name}_total {help}\n# TYPE warmlake_cache_{name}_total counter");
            let _ = writeln!(out, "warmlake_cache_{name}_total{{{lake}}} {}", get(&cache.totals));
        }
        for (name, help, get) in COUNTERS {
            let _ = writeln!(
                out,
                "# HELP warmlake_cache_table_{name}_total {help} (per table)\n\
                 # TYPE warmlake_cache_table_{name}_total counter"
            );
            for (table, counters) in &cache.per_table {
                let _ = writeln!(
                    out,
                    "warmlake_cache_table_{name}_total{{{lake},table=\"{}\"}} {}",
                    escape(table),
                    get(counters)
                );
            }
        }
    }
    out
}

type Counter = (&'static str, &'static str, fn(&Counters) -> u64);

/// The cache counters exported, by metric name.
const COUNTERS: [Counter; 7] = [
    ("hits", "Reads served entirely from the cache.", |c| c.hits),
    ("misses", "Reads that needed a fetch from the store.", |c| c.misses),
    ("fetched_bytes", "Bytes fetched from the store.", |c| c.bytes_fetched),
    ("served_bytes", "Bytes served from the cache instead of the store.", |c| c.bytes_served_from_cache),
    ("evicted_bytes", "Bytes evicted (budget, max_age, policy, warmlake evict).", |c| c.bytes_evicted),
    ("requests", "GET requests made to the store.", |c| c.requests),
    ("objects_changed", "Objects found changed in the store (size or ETag) and dropped.", |c| c.objects_changed),
];

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Escapes a label value: backslash, double quote and newline, as the format requires.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
