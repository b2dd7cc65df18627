//! The daemon's configuration file (`~/.config/warmlake/config.toml`).
//!
//! Every option has a default, so a file with only `[lake] catalog = "..."` works. Unknown keys
//! are errors (a typo must not silently fall back to a default), and every error names the
//! file, line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration, with defaults filled in and `~` expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Name of the lake; also the mirror's file name.
    pub lake_name: String,
    /// The catalog location string (DuckDB file, `sqlite:PATH`, `postgres://...`).
    pub catalog: String,
    /// Overrides the catalog's `data_path` (e.g. a bucket reached under another URL).
    pub data: Option<String>,
    /// Private state: the mirror, sockets (`~/.local/state/warmlake`).
    pub state_dir: PathBuf,
    /// The chunk cache (`~/.cache/warmlake`).
    pub cache_dir: PathBuf,
    /// Where to mount the lake; `None` runs without a mount.
    pub mount: Option<PathBuf>,
    /// How often the catalog is polled for a new snapshot. A minute keeps a laptop quiet and
    /// dashboards fresh; schedules in the policy can ask for more.
    pub refresh_interval: Duration,
    /// Snapshots kept visible under `.snapshots/` (the newest ones).
    pub keep_snapshots: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    lake: LakeSection,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    cache: CacheSection,
    #[serde(default)]
    mount: MountSection,
    #[serde(default)]
    refresh: RefreshSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LakeSection {
    name: Option<String>,
    catalog: String,
    data: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StateSection {
    dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheSection {
    dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MountSection {
    path: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshSection {
    interval_seconds: Option<u64>,
    keep_snapshots: Option<usize>,
}

/// The user's home directory (`$HOME`).
fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

/// Expands a leading `~/` to the home directory.
pub fn expand(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None if path == "~" => home(),
        None => PathBuf::from(path),
    }
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

/// The default config file: `$XDG_CONFIG_HOME/warmlake/config.toml`.
pub fn default_path() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("warmlake/config.toml")
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` is used in messages and to resolve a relative catalog path.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse { path: path.to_path_buf(), line, column, message: e.message().to_string() }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let relative_to_file = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let catalog = match file.lake.catalog.as_str() {
            c if c.contains("://") || c.starts_with("postgres:") => c.to_string(),
            c => {
                let (prefix, rest) = match c.split_once(':') {
                    Some((p @ ("sqlite" | "duckdb"), rest)) => (format!("{p}:"), rest),
                    _ => (String::new(), c),
                };
                format!("{prefix}{}", relative_to_file(expand(rest)).display())
            }
        };
        let interval = file.refresh.interval_seconds.unwrap_or(60);
        if interval == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "refresh.interval_seconds must be at least 1".into(),
            });
        }
        let mount = match (file.mount.enabled, file.mount.path) {
            (Some(false), _) | (_, None) => None,
            (_, Some(p)) => Some(relative_to_file(expand(&p))),
        };
        Ok(Config {
            lake_name: file.lake.name.unwrap_or_else(|| "lake".into()),
            catalog,
            data: file.lake.data,
            state_dir: file
                .state
                .dir
                .map(|d| expand(&d))
                .unwrap_or_else(|| xdg("XDG_STATE_HOME", ".local/state").join("warmlake")),
            cache_dir: file
                .cache
                .dir
                .map(|d| expand(&d))
                .unwrap_or_else(|| xdg("XDG_CACHE_HOME", ".cache").join("warmlake")),
            mount,
            refresh_interval: Duration::from_secs(interval),
            keep_snapshots: file.refresh.keep_snapshots.unwrap_or(3),
        })
    }

    /// The mirror database of this lake.
    pub fn mirror_path(&self) -> PathBuf {
        self.state_dir.join("mirror").join(format!("{}.sqlite", self.lake_name))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c =
            Config::parse("[lake]\ncatalog = \"cat.ducklake\"\n", Path::new("/etc/wl/config.toml")).expect("parses");
        assert_eq!(c.catalog, "/etc/wl/cat.ducklake");
        assert_eq!(c.lake_name, "lake");
        assert_eq!(c.mount, None);
        assert_eq!(c.refresh_interval, Duration::from_secs(60));
        assert!(c.mirror_path().ends_with("warmlake/mirror/lake.sqlite"));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let text = "[lake]\ncatalog = \"x\"\n\n[mount]\npaht = \"~/lake\"\n";
        let err = Config::parse(text, Path::new("c.toml")).expect_err("typo refused");
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml:5:1:"), "{msg}");
        assert!(msg.contains("paht"), "{msg}");
        let err = Config::parse("[lake]\n", Path::new("c.toml")).expect_err("catalog required");
        assert!(err.to_string().contains("catalog"), "{err}");
    }

    #[test]
    fn catalog_forms_are_kept_or_resolved() {
        let parse = |c: &str| {
            Config::parse(&format!("[lake]\ncatalog = \"{c}\"\n"), Path::new("/d/c.toml")).expect("ok").catalog
        };
        assert_eq!(parse("sqlite:lake.sqlite"), "sqlite:/d/lake.sqlite");
        assert_eq!(parse("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(parse("/abs/c.ducklake"), "/abs/c.ducklake");
    }
}
