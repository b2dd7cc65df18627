//! `[local]` limits: how much of the disk the cache may use and for how long.
//!
//! Every limit is optional in the file. An unset limit stays unset through a merge (so a
//! central policy that says nothing does not clamp a local value to some default), and the
//! default applies only when no file sets it; the accessors below apply the defaults.

use std::fmt;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::duration::format_duration;
use crate::setting::{Origin, Setting};
use crate::size::ByteSize;

/// Free disk kept when no policy sets `min_free_disk`: 10% of the cache's file system, in
/// basis points. Enough headroom that a full cache never makes the user's own work fail
/// with ENOSPC.
pub const DEFAULT_MIN_FREE_BASIS_POINTS: u32 = 1000;

/// Snapshots kept when no policy sets `keep_snapshots`: the current one and two before it,
/// so a query started just before a refresh, and yesterday's comparison, still work offline.
pub const DEFAULT_KEEP_SNAPSHOTS: u32 = 3;

/// Cache limits, each with the file and line that set it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_cache: Option<Setting<u64>>,
    pub(crate) min_free_bytes: Option<Setting<u64>>,
    pub(crate) min_free_basis_points: Option<Setting<u32>>,
    pub(crate) max_age: Option<Setting<Duration>>,
    pub(crate) keep_snapshots: Option<Setting<u32>>,
}

impl Limits {
    /// Hard budget for cached bytes (`max_cache`); `None`: no fixed budget, only
    /// [`Limits::min_free_disk`] bounds the cache.
    pub fn max_cache(&self) -> Option<u64> {
        self.max_cache.as_ref().map(|s| s.value)
    }

    /// Bytes that must stay free on a file system of `disk_total` bytes (`min_free_disk`).
    /// After a merge both a byte count and a percentage may be set; both are honoured.
    /// Default: [`DEFAULT_MIN_FREE_BASIS_POINTS`].
    pub fn min_free_disk(&self, disk_total: u64) -> u64 {
        let of_total = |bp: u32| (u128::from(disk_total) * u128::from(bp) / 10_000) as u64;
        match (&self.min_free_bytes, &self.min_free_basis_points) {
            (None, None) => of_total(DEFAULT_MIN_FREE_BASIS_POINTS),
            (bytes, bp) => {
                let by_bytes = bytes.as_ref().map_or(0, |s| s.value);
                let by_percent = bp.as_ref().map_or(0, |s| of_total(s.value));
                by_bytes.max(by_percent)
            }
        }
    }

    /// Cached bytes older than this are dropped (`max_age`); `None`: no age limit.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age.as_ref().map(|s| s.value)
    }

    /// Snapshots kept, the current one included (`keep_snapshots`, at least 1). Default:
    /// [`DEFAULT_KEEP_SNAPSHOTS`].
    pub fn keep_snapshots(&self) -> u32 {
        self.keep_snapshots.as_ref().map_or(DEFAULT_KEEP_SNAPSHOTS, |s| s.value)
    }

    /// `max_cache` as written, with its origin.
    pub fn max_cache_setting(&self) -> Option<&Setting<u64>> {
        self.max_cache.as_ref()
    }

    /// `min_free_disk` as a byte count, with its origin.
    pub fn min_free_bytes_setting(&self) -> Option<&Setting<u64>> {
        self.min_free_bytes.as_ref()
    }

    /// `min_free_disk` as a percentage in basis points (1000 = 10%), with its origin.
    pub fn min_free_basis_points_setting(&self) -> Option<&Setting<u32>> {
        self.min_free_basis_points.as_ref()
    }

    /// `max_age` as written, with its origin.
    pub fn max_age_setting(&self) -> Option<&Setting<Duration>> {
        self.max_age.as_ref()
    }

    /// `keep_snapshots` as written, with its origin.
    pub fn keep_snapshots_setting(&self) -> Option<&Setting<u32>> {
        self.keep_snapshots.as_ref()
    }
}

fn percent(bp: u32) -> String {
    if bp.is_multiple_of(100) { format!("{}%", bp / 100) } else { format!("{}.{:02}%", bp / 100, bp % 100) }
}

fn origin_of<T>(s: &Option<Setting<T>>) -> String {
    s.as_ref().map_or_else(|| "default".to_string(), |s| s.origin.to_string())
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.max_cache {
            Some(s) => writeln!(f, "max_cache       {} ({})", ByteSize(s.value), s.origin)?,
            None => writeln!(f, "max_cache       none: bounded by min_free_disk (default)")?,
        }
        match (&self.min_free_bytes, &self.min_free_basis_points) {
            (None, None) => writeln!(f, "min_free_disk   {} (default)", percent(DEFAULT_MIN_FREE_BASIS_POINTS))?,
            (bytes, bp) => {
                let mut parts = Vec::new();
                if let Some(s) = bytes {
                    parts.push(format!("{} ({})", ByteSize(s.value), s.origin));
                }
                if let Some(s) = bp {
                    parts.push(format!("{} ({})", percent(s.value), s.origin));
                }
                writeln!(f, "min_free_disk   {}", parts.join(" and "))?;
            }
        }
        match &self.max_age {
            Some(s) => writeln!(f, "max_age         {} ({})", format_duration(s.value), s.origin)?,
            None => writeln!(f, "max_age         none (default)")?,
        }
        write!(f, "keep_snapshots  {} ({})", self.keep_snapshots(), origin_of(&self.keep_snapshots))
    }
}

#[derive(Serialize)]
struct View<'a> {
    value: u64,
    shown: String,
    origin: &'a Origin,
}

impl Serialize for Limits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Limits", 5)?;
        s.serialize_field(
            "max_cache",
            &self.max_cache.as_ref().map(|v| View {
                value: v.value,
                shown: ByteSize(v.value).to_string(),
                origin: &v.origin,
            }),
        )?;
        s.serialize_field(
            "min_free_disk_bytes",
            &self.min_free_bytes.as_ref().map(|v| View {
                value: v.value,
                shown: ByteSize(v.value).to_string(),
                origin: &v.origin,
            }),
        )?;
        s.serialize_field(
            "min_free_disk_basis_points",
            &self.min_free_basis_points.as_ref().map(|v| View {
                value: u64::from(v.value),
                shown: percent(v.value),
                origin: &v.origin,
            }),
        )?;
        s.serialize_field(
            "max_age_secs",
            &self.max_age.as_ref().map(|v| View {
                value: v.value.as_secs(),
                shown: format_duration(v.value),
                origin: &v.origin,
            }),
        )?;
        s.serialize_field("keep_snapshots", &self.keep_snapshots())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<T>(value: T) -> Option<Setting<T>> {
        Some(Setting { value, origin: Origin { file: "p.toml".into(), line: 1 } })
    }

    #[test]
    fn defaults() {
        let l = Limits::default();
        assert_eq!(l.max_cache(), None);
        assert_eq!(l.min_free_disk(1000), 100);
        assert_eq!(l.max_age(), None);
        assert_eq!(l.keep_snapshots(), 3);
    }

    #[test]
    fn min_free_disk_honours_both_forms() {
        let l = Limits { min_free_bytes: at(50), min_free_basis_points: at(1000), ..Limits::default() };
        assert_eq!(l.min_free_disk(100), 50);
        assert_eq!(l.min_free_disk(10_000), 1000);
        let bytes_only = Limits { min_free_bytes: at(50), ..Limits::default() };
        // A byte count replaces the default percentage rather than adding to it.
        assert_eq!(bytes_only.min_free_disk(10_000), 50);
        let huge = Limits { min_free_basis_points: at(10_000), ..Limits::default() };
        assert_eq!(huge.min_free_disk(u64::MAX), u64::MAX);
    }

    #[test]
    fn display() {
        let l = Limits {
            max_cache: at(50 << 30),
            min_free_basis_points: at(250),
            max_age: at(Duration::from_secs(7 * 86_400)),
            ..Limits::default()
        };
        assert_eq!(
            l.to_string(),
            "max_cache       50 GiB (p.toml:1)\n\
             min_free_disk   2.50% (p.toml:1)\n\
             max_age         1w (p.toml:1)\n\
             keep_snapshots  3 (default)"
        );
    }
}
