//! The daemon's configuration file (`~/.config/warmlake/config.toml`).
//!
//! Every option has a default, so a file with only `[lake] catalog = "..."` works. Unknown keys
//! are errors (a typo must not silently fall back to a default), and every error names the
//! file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::paths::{self, Dirs};
use crate::store::StoreConfig;

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
#[derive(Debug, Clone)]
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
    /// Most bytes the cache may hold (`[cache] max_cache`, 10 GiB); the policy can lower it.
    pub max_cache: u64,
    /// Bytes the cache leaves free on its disk (`[cache] min_free_disk`, 2 GiB).
    pub min_free_disk: u64,
    /// How the data store is reached when the lake's data is not on this machine (`[store]`).
    pub store: StoreConfig,
    /// The SQL socket, unless `[sql] enabled = false`.
    pub sql: Option<SqlSettings>,
    /// `[policy] file`: the local policy, which must then exist. Unset: the default file
    /// (`~/.config/warmlake/policy.toml`), which may be absent.
    pub policy_file: Option<PathBuf>,
    /// `[policy] central`: the organisation's policy in the lake's store (`s3://.../policy.toml`),
    /// reached with the `[store]` options.
    pub central_policy: Option<String>,
    /// Where to mount the lake; `None` runs without a mount.
    pub mount: Option<PathBuf>,
    /// How often the catalog is polled for a new snapshot. A minute keeps a laptop quiet and
    /// dashboards fresh; schedules in the policy can ask for more.
    pub refresh_interval: Duration,
    /// Snapshots kept visible under `.snapshots/` (the newest ones).
    pub keep_snapshots: usize,
}

/// The `[sql]` section: where and how the SQL socket listens.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlSettings {
    /// Folder of the socket: `psql -h <socket_dir> -p <port>`. The state dir by default.
    pub socket_dir: PathBuf,
    /// The port in the socket's name; 5433, beside a real PostgreSQL on 5432.
    pub port: u16,
    /// A new session's statement timeout (none by default; clients may `SET` their own).
    pub statement_timeout: Option<Duration>,
    /// DuckDB's memory limit for all sessions together, e.g. "2GB" (DuckDB's default when unset).
    pub memory_limit: Option<String>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Also listen on 127.0.0.1 (`[sql] tcp = true`), with SCRAM-SHA-256 and a password:
    /// for tools that cannot use a Unix socket (JDBC). Off by default.
    pub tcp: Option<crate::sql::TcpConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    lake: LakeSection,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    cache: CacheSection,
    /// Free-form: a few warmlake keys plus `object_store` options, validated in [`store_config`].
    #[serde(default)]
    store: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    sql: SqlSection,
    #[serde(default)]
    policy: PolicySection,
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
    max_cache: Option<Spanned<String>>,
    min_free_disk: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    file: Option<String>,
    central: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SqlSection {
    enabled: Option<bool>,
    socket_dir: Option<String>,
    port: Option<u16>,
    statement_timeout: Option<Spanned<String>>,
    memory_limit: Option<String>,
    max_connections: Option<usize>,
    tcp: Option<Spanned<bool>>,
    tcp_port: Option<u16>,
    password: Option<String>,
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

/// Expands a leading `~/` to the home directory.
pub fn expand(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => paths::home().join(rest),
        None if path == "~" => paths::home(),
        None => PathBuf::from(path),
    }
}

/// The default config file: `~/.config/warmlake/config.toml`, or the platform's equivalent
/// ([`crate::paths`]).
pub fn default_path() -> PathBuf {
    Dirs::current().config.join("config.toml")
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
        // An error about one value, located at it.
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            ConfigError::Parse { path: path.to_path_buf(), line, column, message }
        };
        let size = |v: &Option<Spanned<String>>, key: &str, default: u64| match v {
            None => Ok(default),
            Some(v) => warmlake_policy::size::parse_size(v.get_ref()).map_err(|e| at(v.span(), format!("{key}: {e}"))),
        };
        let max_cache = size(&file.cache.max_cache, "max_cache", 10 << 30)?;
        let min_free_disk = size(&file.cache.min_free_disk, "min_free_disk", 2 << 30)?;
        let store = store_config(&file.store, &at)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let relative_to_file = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let catalog = match file.lake.catalog.as_str() {
            // A PostgreSQL location is no path (a bare `host=... dbname=...` string included).
            c if matches!(crate::catalog::CatalogLocation::parse(c), crate::catalog::CatalogLocation::Postgres(_)) => {
                c.to_string()
            }
            c if c.contains("://") => c.to_string(),
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
        let state_dir = file.state.dir.map(|d| expand(&d)).unwrap_or_else(|| Dirs::current().state);
        // The password may come from the environment, so it need not sit in the file.
        let tcp = match &file.sql.tcp {
            Some(on) if *on.get_ref() => {
                let password = std::env::var("WARMLAKE_SQL_PASSWORD").ok().or(file.sql.password.clone());
                match password.filter(|p| !p.is_empty()) {
                    Some(password) => Some(crate::sql::TcpConfig {
                        port: file.sql.tcp_port.or(file.sql.port).unwrap_or(5433),
                        password,
                    }),
                    None => {
                        return Err(at(
                            on.span(),
                            "sql.tcp needs a password: set [sql] password or WARMLAKE_SQL_PASSWORD".into(),
                        ));
                    }
                }
            }
            _ => None,
        };
        let sql = match file.sql.enabled {
            Some(false) => None,
            _ => Some(SqlSettings {
                socket_dir: file
                    .sql
                    .socket_dir
                    .map(|d| relative_to_file(expand(&d)))
                    .unwrap_or_else(|| state_dir.clone()),
                port: file.sql.port.unwrap_or(5433),
                statement_timeout: match &file.sql.statement_timeout {
                    None => None,
                    Some(v) => Some(
                        warmlake_policy::duration::parse_duration(v.get_ref())
                            .map_err(|e| at(v.span(), format!("statement_timeout: {e}")))?,
                    ),
                },
                memory_limit: file.sql.memory_limit,
                max_connections: file.sql.max_connections.unwrap_or(64).max(1),
                tcp,
            }),
        };
        Ok(Config {
            lake_name: file.lake.name.unwrap_or_else(|| "lake".into()),
            catalog,
            data: file.lake.data,
            state_dir,
            cache_dir: file.cache.dir.map(|d| expand(&d)).unwrap_or_else(|| Dirs::current().cache),
            max_cache,
            min_free_disk,
            store,
            sql,
            policy_file: file.policy.file.map(|p| relative_to_file(expand(&p))),
            central_policy: file.policy.central,
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

/// The `[store]` section: warmlake's own keys (timeouts, limits, `allow_http`) and, for every
/// other key, an `object_store` option by its documented name (`endpoint`, `region`,
/// `access_key_id`, `aws_virtual_hosted_style_request`, `google_service_account`,
/// `azure_storage_account_name`, ...). Option names are checked here, against the S3, GCS and
/// Azure builders, so a typo is reported at its line rather than when the store is first used.
fn store_config(
    section: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<StoreConfig, ConfigError> {
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;
    let mut config = StoreConfig::default();
    for (key, value) in section {
        let name = key.get_ref().as_str();
        let span = value.span();
        let seconds = |v: &toml::Value| match v {
            toml::Value::String(s) => {
                warmlake_policy::duration::parse_duration(s).map_err(|e| at(span.clone(), format!("{name}: {e}")))
            }
            _ => Err(at(span.clone(), format!("{name}: expected a duration such as \"30s\""))),
        };
        let count = |v: &toml::Value| match v {
            toml::Value::Integer(n) if *n >= 0 => Ok(usize::try_from(*n).unwrap_or(usize::MAX)),
            _ => Err(at(span.clone(), format!("{name}: expected a non-negative integer"))),
        };
        match name {
            "allow_http" => match value.get_ref() {
                toml::Value::Boolean(b) => config.allow_http = *b,
                _ => return Err(at(span, "allow_http: expected true or false".into())),
            },
            "connect_timeout" => config.connect_timeout = seconds(value.get_ref())?,
            "request_timeout" => config.request_timeout = seconds(value.get_ref())?,
            "retry_timeout" => config.retry_timeout = seconds(value.get_ref())?,
            "max_retries" => config.max_retries = count(value.get_ref())?,
            "max_requests" => config.max_requests = count(value.get_ref())?.max(1),
            "max_prefetch_requests" => config.max_prefetch_requests = count(value.get_ref())?.max(1),
            _ => {
                let known = name.parse::<AmazonS3ConfigKey>().is_ok()
                    || name.parse::<GoogleConfigKey>().is_ok()
                    || name.parse::<AzureConfigKey>().is_ok();
                if !known {
                    return Err(at(key.span(), format!("unknown store option `{name}`")));
                }
                let text = match value.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Integer(n) => n.to_string(),
                    _ => return Err(at(span, format!("{name}: expected a string"))),
                };
                config.options.push((name.to_string(), text));
            }
        }
    }
    Ok(config)
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

    /// Every section, as a user who sets everything writes it.
    const FULL: &str = "[lake]\nname = \"acme\"\ncatalog = \"sqlite:cat.sqlite\"\ndata = \"s3://b/data/\"\n\
        [store]\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"auto\"\nallow_http = true\n\
        connect_timeout = \"5s\"\nmax_retries = 3\nmax_requests = 16\n\
        [state]\ndir = \"~/st\"\n[cache]\ndir = \"~/ca\"\nmax_cache = \"10GiB\"\nmin_free_disk = \"2GiB\"\n\
        [mount]\npath = \"~/lake\"\n[sql]\nport = 5433\nstatement_timeout = \"5m\"\nmax_connections = 8\n\
        tcp = true\ntcp_port = 6543\npassword = \"pw\"\n[policy]\nfile = \"p.toml\"\n\
        [refresh]\ninterval_seconds = 60\nkeep_snapshots = 3\n";

    /// Hostile text, tried exhaustively: the full config cut at every character, and every
    /// value replaced by each odd value an editor or a bad template leaves behind. Each parses
    /// or fails with an error that names the file and points inside the text; none panics.
    #[test]
    fn truncated_and_odd_configs_are_located_errors() {
        const ODD: [&str; 12] = [
            "",
            "\"",
            "\"\"\"",
            "[",
            "-1",
            "1e400",
            "99999999999999999999999",
            "\"99999999999999999999PiB\"",
            "\"\u{0}\"",
            "\"ü\"",
            "{ a = 1 }",
            "[1, \"a\"]",
        ];
        let path = Path::new("/d/c.toml");
        let check = |text: &str| match Config::parse(text, path) {
            Ok(_) => {}
            Err(ConfigError::Parse { line, column, .. }) => {
                assert!(line >= 1 && line <= text.lines().count() + 1 && column >= 1, "{line}:{column} in {text:?}");
            }
            Err(ConfigError::Invalid { path: p, .. }) => assert_eq!(p, path),
            Err(e) => panic!("parsing reads no file: {e}"),
        };
        Config::parse(FULL, path).expect("the full config parses");
        for cut in (0..FULL.len()).filter(|&i| FULL.is_char_boundary(i)) {
            check(&FULL[..cut]);
        }
        let lines: Vec<&str> = FULL.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((key, _)) = line.split_once('=') else { continue };
            for odd in ODD {
                let mut edited = lines.clone();
                let replaced = format!("{key}= {odd}");
                edited[i] = &replaced;
                check(&edited.join("\n"));
            }
        }
    }

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
        assert_eq!(parse("host=/run/pg port=5432 dbname=lake"), "host=/run/pg port=5432 dbname=lake");
        assert_eq!(parse("postgres:dbname=lake"), "postgres:dbname=lake");
        assert_eq!(parse("/abs/c.ducklake"), "/abs/c.ducklake");
    }

    #[test]
    fn store_cache_and_sql_sections() {
        let text = "[lake]\ncatalog = \"c\"\n[cache]\nmax_cache = \"1GiB\"\n[store]\nendpoint = \"http://127.0.0.1:9000\"\n\
                    aws_region = \"auto\"\nallow_http = true\nmax_retries = 1\nconnect_timeout = \"2s\"\n\
                    [sql]\nport = 6000\nstatement_timeout = \"30s\"\n";
        let c = Config::parse(text, Path::new("/d/c.toml")).expect("parses");
        assert_eq!(c.max_cache, 1 << 30);
        assert_eq!(c.min_free_disk, 2 << 30);
        assert!(c.store.allow_http);
        assert_eq!(c.store.max_retries, 1);
        assert_eq!(c.store.connect_timeout, Duration::from_secs(2));
        assert_eq!(
            c.store.options,
            vec![
                ("aws_region".to_string(), "auto".to_string()),
                ("endpoint".to_string(), "http://127.0.0.1:9000".to_string())
            ]
        );
        let sql = c.sql.expect("sql on by default");
        assert_eq!((sql.port, sql.statement_timeout), (6000, Some(Duration::from_secs(30))));
        assert!(
            Config::parse("[lake]\ncatalog = \"c\"\n[sql]\nenabled = false\n", Path::new("c"))
                .expect("ok")
                .sql
                .is_none()
        );
    }

    #[test]
    fn bad_store_and_size_values_are_located() {
        let err = Config::parse("[lake]\ncatalog = \"c\"\n[store]\nendpont = \"x\"\n", Path::new("c.toml"))
            .expect_err("typo");
        assert!(err.to_string().starts_with("c.toml:4:1: unknown store option `endpont`"), "{err}");
        let err = Config::parse("[lake]\ncatalog = \"c\"\n[cache]\nmax_cache = \"10G\"\n", Path::new("c.toml"))
            .expect_err("ambiguous unit");
        assert!(err.to_string().starts_with("c.toml:4:13: max_cache:"), "{err}");
    }
}
