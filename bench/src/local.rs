//! A generated lake whose data files stay in a local folder, served by the real daemon without
//! a mount: its SQL socket then reads the files in place, so a socket benchmark measures the
//! socket (protocol, sessions, encoding) and not the cache or FUSE.

use warmlake_daemon::catalog::LakeSnapshot;
use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{self, GeneratedLake, LakeSpec};

/// The lake and the daemon's folders, all in one temporary folder (removed on drop).
pub struct LocalLake {
    /// The lake as generated: its SQLite catalog and its data files in `lake.data_dir`.
    pub lake: GeneratedLake,
    /// The newest snapshot, read from the catalog.
    pub snapshot: LakeSnapshot,
    dir: tempfile::TempDir,
}

impl LocalLake {
    /// Generates `spec` into a temporary folder (SQLite catalog, local data files).
    pub fn new(spec: &LakeSpec) -> anyhow::Result<LocalLake> {
        let crate::BenchLake { dir, lake, snapshot } = crate::generate_lake(spec, &["state", "cache", "sock"])?;
        Ok(LocalLake { lake, snapshot, dir })
    }

    /// The daemon's config: no mount and no `[lake] data` (so the SQL socket reads the local
    /// files), the socket in the temporary folder, `memory_limit` for DuckDB when given, an
    /// empty policy file (a user's own policy must not change what is measured), and no
    /// periodic refresh (a benchmark refreshes when it wants to).
    fn config(&self, memory_limit: Option<&str>) -> anyhow::Result<Config> {
        let dir = self.dir.path();
        let memory = memory_limit.map(|m| format!("memory_limit = \"{m}\"\n")).unwrap_or_default();
        let text = format!(
            "[lake]\nname = \"bench\"\ncatalog = \"sqlite:{catalog}\"\n\
             [state]\ndir = \"{state}\"\n[cache]\ndir = \"{cache}\"\n\
             [sql]\nsocket_dir = \"{sock}\"\nport = 5433\n{memory}[policy]\nfile = \"{policy}\"\n\
             [refresh]\ninterval_seconds = 3600\n",
            catalog = self.lake.catalogs[0].display(),
            state = dir.join("state").display(),
            cache = dir.join("cache").display(),
            sock = dir.join("sock").display(),
            policy = dir.join("policy.toml").display(),
        );
        Ok(Config::parse(&text, &dir.join("config.toml"))?)
    }

    /// Starts a daemon over the lake with its SQL socket (fetches and the socket run on
    /// `runtime`).
    pub fn start_daemon(&self, runtime: tokio::runtime::Handle, memory_limit: Option<&str>) -> anyhow::Result<Daemon> {
        Ok(Daemon::start(self.config(memory_limit)?, runtime)?)
    }

    /// The lake's views over the local files, as the socket builds them (the in-process
    /// baseline).
    pub fn local_script(&self) -> String {
        let root = format!("{}/", self.lake.data_dir.display());
        warmlake_daemon::view_sql::lake_script(&self.snapshot, &|k| format!("{root}{k}"))
    }

    /// Commits an empty snapshot ([`generate::commit_empty_snapshot`]): the socket then
    /// replaces its views under load without the data changing under the queries.
    pub fn commit_empty_snapshot(&self) -> anyhow::Result<i64> {
        Ok(generate::commit_empty_snapshot(&self.lake.catalogs[0])?)
    }
}
