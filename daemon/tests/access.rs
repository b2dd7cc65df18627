//! Another local user gets nothing: not the mount, not the state folder (mirror, SQL socket),
//! not the cache. Runs as root (as CI does) and tries everything as `nobody` with `runuser`.

mod fixtures;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use warmlake_daemon::config::Config;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// Runs `args` as `nobody`; returns whether it succeeded and what it printed.
fn as_nobody(args: &[&str]) -> (bool, String) {
    let out = Command::new("runuser").args(["-u", "nobody", "--"]).args(args).output().expect("runuser");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn another_user_reads_nothing() {
    if !fixtures::fuse_available("another_user_reads_nothing") {
        return;
    }
    let runuser = Command::new("runuser").arg("--help").output().is_ok();
    if !is_root() || !runuser {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "root and runuser are required on CI");
        eprintln!("SKIPPED another_user_reads_nothing: needs root and runuser");
        return;
    }
    // A parent folder `nobody` may traverse, so every refusal below comes from warmlake's own
    // permissions and the mount's.
    let tmp = tempfile::Builder::new().prefix("warmlake-access").tempdir_in("/tmp").expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spec = LakeSpec { events_rows: 1_000, events_files: 1, ..LakeSpec::default() };
    let lake = generate::generate(&tmp.path().join("lake"), &spec, &[CatalogKind::Sqlite]).expect("generate");
    std::fs::write(tmp.path().join("policy.toml"), "").expect("policy");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (state, cache) = (tmp.path().join("state"), tmp.path().join("cache"));
    let text = format!(
        "[lake]\nname = \"acl\"\ncatalog = \"sqlite:{}\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\n\
         [mount]\npath = \"{}\"\n[policy]\nfile = \"{}\"\n",
        lake.catalogs[0].display(),
        state.display(),
        cache.display(),
        mnt.display(),
        tmp.path().join("policy.toml").display()
    );
    let cfg = Config::parse(&text, &tmp.path().join("config.toml")).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    let socket = daemon.status().sql_socket.expect("socket");

    // The owner sees the lake.
    assert!(mnt.join("sales/orders").is_dir());
    // Private folders and files.
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cfg.mirror_path()), 0o600);
    assert_eq!(mode(&socket) & 0o077, 0, "socket {:o}", mode(&socket));

    let mirror = cfg.mirror_path();
    let listing = mnt.join("sales");
    for (what, args) in [
        ("list the mount", vec!["ls", listing.to_str().unwrap_or_default()]),
        ("read lake.sql", vec!["cat", mnt.join("lake.sql").to_str().unwrap_or_default()]),
        ("list the state folder", vec!["ls", state.to_str().unwrap_or_default()]),
        ("read the mirror", vec!["cat", mirror.to_str().unwrap_or_default()]),
        ("list the cache", vec!["ls", cache.to_str().unwrap_or_default()]),
    ] {
        let (ok, out) = as_nobody(&args);
        assert!(!ok, "nobody could {what}: {out}");
        assert!(out.contains("Permission denied"), "{what}: {out}");
    }
    daemon.stop().expect("stop");
}
