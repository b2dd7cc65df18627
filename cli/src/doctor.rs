//! `warmlake doctor`: checks what the daemon needs from this machine, says how to fix what is
//! wrong, and exits 1 when something is. Needs no running daemon (it says whether one runs).

use std::path::Path;

use clap::Args;
use serde_json::json;
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::config::Config;
use warmlake_daemon::control::{Client, ControlError};
use warmlake_daemon::store::Store;

use crate::ctl::{Common, bytes};

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    common: Common,
}

/// One check's outcome: `fix` is set when it failed.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, ok: true, detail: detail.into(), fix: None }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, ok: false, detail: detail.into(), fix: Some(fix.into()) }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let path = args.common.config_path();
    let mut checks = Vec::new();
    match Config::load(&path) {
        Ok(config) => {
            checks.push(pass("config", path.display().to_string()));
            checks.extend(check_all(&config));
        }
        Err(e) => checks.push(fail(
            "config",
            e.to_string(),
            format!("write {} with at least [lake] catalog = \"...\" (see the README)", path.display()),
        )),
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if args.common.json {
        let list: Vec<_> =
            checks.iter().map(|c| json!({ "check": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix })).collect();
        println!("{}", json!({ "ok": failed == 0, "checks": list }));
    } else {
        for c in &checks {
            println!("{} {:<9} {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("               fix: {fix}");
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} check(s) failed");
    Ok(())
}

fn check_all(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    if config.mount.is_some() {
        checks.extend(fuse());
    }
    checks.push(private_dir("state dir", &config.state_dir));
    checks.push(private_dir("cache dir", &config.cache_dir));
    checks.push(free_disk(config));
    let data = catalog(config, &mut checks);
    if let Some(data) = data {
        checks.push(store(config, &data));
    }
    checks.push(match Client::connect(&config.state_dir) {
        Ok(_) => pass("daemon", "running (warmlake status)"),
        Err(ControlError::NotRunning { .. }) => {
            pass("daemon", "not running (start it with warmlake daemon or warmlake service install)")
        }
        Err(e) => fail("daemon", e.to_string(), "stop the stale daemon, or remove the control socket if none runs"),
    });
    checks
}

fn fuse() -> Vec<Check> {
    let mut checks = Vec::new();
    if cfg!(target_os = "macos") {
        checks.push(if Path::new("/Library/Filesystems/macfuse.fs").exists() {
            pass("fuse", "macFUSE is installed")
        } else {
            fail("fuse", "macFUSE is not installed", "brew install --cask macfuse (then allow its extension)")
        });
        return checks;
    }
    checks.push(match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => pass("fuse", "/dev/fuse can be opened"),
        Err(e) => fail(
            "fuse",
            format!("/dev/fuse: {e}"),
            "sudo modprobe fuse; in a container run with --device /dev/fuse --cap-add SYS_ADMIN",
        ),
    });
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()))
        .unwrap_or(false);
    checks.push(if on_path {
        pass("fusermount", "fusermount3 is on PATH")
    } else {
        fail("fusermount", "fusermount3 is not on PATH (needed to mount as a user)", "sudo apt install fuse3")
    });
    checks
}

/// The folder must be the user's own and closed to others (it holds the mirror and cached
/// bytes the policy governs); a missing one is created that way at start.
fn private_dir(name: &'static str, dir: &Path) -> Check {
    use std::os::unix::fs::MetadataExt as _;
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return pass(name, format!("{} (created 0700 at start)", dir.display()));
        }
        Err(e) => return fail(name, format!("{}: {e}", dir.display()), "check the path in the config"),
    };
    let uid = rustix::process::getuid().as_raw();
    if !meta.is_dir() {
        fail(name, format!("{} is not a folder", dir.display()), "point the config at a folder")
    } else if meta.uid() != uid {
        fail(
            name,
            format!("{} is owned by uid {}", dir.display(), meta.uid()),
            format!("chown {uid} {}", dir.display()),
        )
    } else if meta.mode() & 0o077 != 0 {
        fail(
            name,
            format!("{} is open to others (mode {:o})", dir.display(), meta.mode() & 0o777),
            format!("chmod 700 {}", dir.display()),
        )
    } else {
        pass(name, format!("{} (private)", dir.display()))
    }
}

fn free_disk(config: &Config) -> Check {
    // The nearest folder that exists: the cache folder may not have been created yet.
    let Some(dir) = config.cache_dir.ancestors().find(|d| d.exists()) else {
        return fail("disk", "no part of the cache path exists", "check [cache] dir");
    };
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free > config.min_free_disk {
                pass("disk", format!("{} free at {}", bytes(free), dir.display()))
            } else {
                fail(
                    "disk",
                    format!(
                        "{} free at {}, below min_free_disk ({})",
                        bytes(free),
                        dir.display(),
                        bytes(config.min_free_disk)
                    ),
                    "free disk space, move [cache] dir, or lower [cache] min_free_disk",
                )
            }
        }
        Err(e) => fail("disk", format!("{}: {e}", dir.display()), "check [cache] dir"),
    }
}

/// Reads the newest snapshot; returns the data root to check and the first file in it.
fn catalog(config: &Config, checks: &mut Vec<Check>) -> Option<(String, Option<String>)> {
    let location = CatalogLocation::parse(&config.catalog);
    let read = CatalogReader::open(&location, config.data.as_deref())
        .and_then(|r| r.latest_snapshot().and_then(|s| r.read_snapshot(s.id)));
    match read {
        Ok(snapshot) => {
            checks.push(pass("catalog", format!("{location}: snapshot {}", snapshot.snapshot.id)));
            let file = snapshot.tables.iter().flat_map(|t| &t.files).next().map(|f| f.key.as_str().to_string());
            Some((snapshot.data_root, file))
        }
        Err(e) => {
            checks.push(fail(
                "catalog",
                e.to_string(),
                "check [lake] catalog and the network; the daemon serves its mirror meanwhile",
            ));
            None
        }
    }
}

fn store(config: &Config, (root, file): &(String, Option<String>)) -> Check {
    let local = root.strip_prefix("file://").unwrap_or(root);
    if !local.contains("://") {
        return match std::fs::read_dir(local) {
            Ok(_) => pass("store", format!("{local} (local folder)")),
            Err(e) => fail("store", format!("{local}: {e}"), "the lake's data folder must be readable"),
        };
    }
    let Some(key) = file else { return pass("store", format!("{root} (the lake has no files yet)")) };
    let head = Store::open(root, &config.store).map_err(|e| e.to_string()).and_then(|store| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(store.head(key)).map_err(|e| e.to_string())
    });
    match head {
        Ok((size, _)) => pass("store", format!("{root}: read {key} ({})", bytes(size))),
        Err(e) => fail("store", e, "check [store] (endpoint, region, credentials in AWS_*/GOOGLE_*/AZURE_*)"),
    }
}
