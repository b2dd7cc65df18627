//! A real PostgreSQL server for tests, from Debian's `postgresql` package.
//!
//! Each [`PgServer`] is a throwaway cluster in its own temporary directory, listening only on a
//! Unix socket in that directory (no TCP port, so parallel tests cannot collide), and stopped
//! with `pg_ctl stop -m immediate` when dropped, also when the test panics. nextest runs every
//! test in its own process, where a server shared through a `static` would never be dropped and
//! would outlive the run, so each test starts its own; `initdb` plus start takes about a second.
//!
//! PostgreSQL refuses to run as root, and CI runs tests as root: then the cluster belongs to the
//! `postgres` system user the Debian package creates, and its programs run through
//! `runuser -u postgres --`. A developer running as themselves needs no such step.
//!
//! Without the server binaries a test prints a loud skip, except on CI (`CI=true`), where it
//! fails: `scripts/test` installs the package.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The port in the socket's file name (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres_user: bool,
}

impl PgServer {
    /// Starts a server for `test`, or returns `None` after printing why the test is skipped.
    pub fn start_or_skip(test: &str) -> Option<PgServer> {
        let Some(bin) = server_binaries() else {
            let why = "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl; set WARMLAKE_PG_BIN \
                       or install Debian's postgresql package, as scripts/test does)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {why}; CI=true, so this is a failure, not a skip");
            }
            eprintln!("\n**********\n*** SKIPPED {test}: {why}\n**********\n");
            return None;
        };
        Some(PgServer::start(bin))
    }

    fn start(bin: PathBuf) -> PgServer {
        let dir = tempfile::Builder::new().prefix("wl-pg").tempdir().expect("tempdir");
        let as_postgres_user = std::fs::metadata(dir.path()).expect("stat tempdir").uid() == 0;
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:postgres").arg(dir.path()), "chown the server directory");
        }
        let server = PgServer { dir, bin, as_postgres_user };
        run(
            server.command("initdb").arg("-D").arg(server.data_dir()).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            "initdb",
        );
        // pg_ctl hands -o to a shell: `''` is the empty listen_addresses (no TCP at all).
        let options = format!("-h '' -k {} -p {PORT} -F", server.socket_dir().display());
        let started = server
            .command("pg_ctl")
            .arg("-D")
            .arg(server.data_dir())
            .arg("-l")
            .arg(server.log_file())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("pg_ctl runs");
        if !started.status.success() {
            let log = std::fs::read_to_string(server.log_file()).unwrap_or_default();
            panic!("pg_ctl start failed: {}\nserver log:\n{log}", describe(&started));
        }
        server
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres_user {
            // Root's PATH usually has /usr/sbin, but a CI runner's may not.
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser"].into_iter().find(|p| Path::new(p).is_file());
            let mut c = Command::new(runuser.unwrap_or("runuser"));
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.current_dir(self.dir.path());
        c
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The directory holding the server's socket (libpq's `host` for Unix sockets).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A libpq connection string for database `dbname` as the superuser `postgres`.
    pub fn conn(&self, dbname: &str) -> String {
        format!("host={} port={PORT} user=postgres dbname={dbname}", self.socket_dir().display())
    }

    /// Runs SQL (statements separated by `;`) in database `dbname`, panicking on failure.
    pub fn execute(&self, dbname: &str, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&self.conn(dbname), tokio_postgres::NoTls).await.expect("connect");
            let driver = tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            drop(client);
            let _ = driver.await;
        });
    }

    /// Creates database `name` and returns its connection string.
    pub fn create_database(&self, name: &str) -> String {
        self.execute("postgres", &format!("CREATE DATABASE {name}"));
        self.conn(name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"]).output();
    }
}

/// `WARMLAKE_PG_BIN`, or the newest `/usr/lib/postgresql/<major>/bin` holding `pg_ctl`.
fn server_binaries() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("WARMLAKE_PG_BIN") {
        let bin = PathBuf::from(dir);
        return bin.join("pg_ctl").is_file().then_some(bin);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("pg_ctl").is_file() && bin.join("initdb").is_file()).then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", describe(&out));
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
