//! The daemon commands as a user runs them: the real binary against a real daemon (real
//! generated lake, real mount, real SQL socket), stopped with SIGTERM like a service manager.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

use support::{BIN, fuse_available, warmlake};

/// A generated lake and a config for it (state, cache, mount and an empty policy in `dir`, so
/// the user's own policy does not leak in).
struct Lake {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: String,
    mount: Option<PathBuf>,
}

fn make_lake() -> Lake {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let lake = dir.join("lake");
    let made = warmlake(&["dev", "make-lake", &lake.to_string_lossy(), "--catalog", "sqlite", "--events-rows", "1000"]);
    assert_eq!(made.code, 0, "{}", made.err);
    std::fs::write(dir.join("policy.toml"), "").expect("policy");
    let mount = fuse_available().then(|| dir.join("mnt"));
    let mut text = format!(
        // min_free_disk 0: `doctor` must find this config healthy on a test machine's small disk.
        "[lake]\ncatalog = \"sqlite:{}\"\n[state]\ndir = \"{}\"\n[cache]\ndir = \"{}\"\nmin_free_disk = \"0B\"\n\
         [policy]\nfile = \"{}\"\n",
        lake.join("catalog.sqlite").display(),
        dir.join("state").display(),
        dir.join("cache").display(),
        dir.join("policy.toml").display()
    );
    if let Some(m) = &mount {
        std::fs::create_dir_all(m).expect("mount point");
        text.push_str(&format!("[mount]\npath = \"{}\"\n", m.display()));
    }
    let config = dir.join("config.toml");
    std::fs::write(&config, text).expect("config");
    Lake { _tmp: tmp, dir, config: config.to_string_lossy().into_owned(), mount }
}

/// A running `warmlake daemon`; [`Daemon::stop`] sends SIGTERM and checks it unmounted.
struct Daemon {
    child: Child,
    mount: Option<PathBuf>,
}

impl Daemon {
    /// Starts the daemon and waits for its "serving" line, printed once its sockets are bound.
    fn start(lake: &Lake, notify_socket: Option<&Path>) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["daemon", "--config", &lake.config]).stderr(Stdio::piped());
        if let Some(socket) = notify_socket {
            cmd.env("NOTIFY_SOCKET", socket);
        }
        let mut child = cmd.spawn().expect("daemon starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let serving = lines.by_ref().map_while(Result::ok).any(|l| {
            seen.push(l.clone());
            l.starts_with("warmlake: serving")
        });
        assert!(serving, "the daemon did not start: {seen:?}");
        // Keep draining stderr so the daemon never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Daemon { child, mount: lake.mount.clone() }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let exit = self.child.wait().expect("daemon exits");
        assert!(exit.success(), "daemon exit status {exit:?}");
        if let Some(m) = &self.mount {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
            assert!(!mountinfo.contains(&*m.to_string_lossy()), "still mounted at {}", m.display());
        }
    }
}

#[test]
fn status_refresh_evict_metrics_and_policy_reload() {
    let lake = make_lake();
    let daemon = Daemon::start(&lake, None);
    let cfg = lake.config.as_str();

    let status = warmlake(&["status", "--config", cfg]);
    assert_eq!(status.code, 0, "{}", status.err);
    for line in ["snapshot  ", "refreshed ", "cache     none", "policy    local.mode", "sql       psql -h "] {
        assert!(status.out.contains(line), "{line:?} missing from\n{}", status.out);
    }
    let json = warmlake(&["status", "--config", cfg, "--json"]);
    assert_eq!(json.code, 0, "{}", json.err);
    let s: serde_json::Value = serde_json::from_str(&json.out).expect("status JSON");
    let snapshot = s["snapshot"].as_i64().expect("a snapshot");
    assert!(s["last_refresh_unix"].as_u64().is_some(), "{s}");
    assert_eq!(s["mount"].as_str().map(PathBuf::from), lake.mount, "{s}");
    if let Some(mount) = &lake.mount {
        // the mirror as a DuckLake catalog over the mount's .data/
        let attach = format!("DATA_PATH '{}/.data/'", mount.display());
        assert!(status.out.contains("mirror    ") && status.out.contains(&attach), "{}", status.out);
    }
    assert!(s["sql_socket"].as_str().is_some_and(|p| p.ends_with(".s.PGSQL.5433")), "{s}");

    let refresh = warmlake(&["refresh", "--config", cfg, "--json"]);
    assert_eq!(refresh.code, 0, "{}", refresh.err);
    let r: serde_json::Value = serde_json::from_str(&refresh.out).expect("refresh JSON");
    assert_eq!((r["snapshot"].as_i64(), r["previous"].as_i64()), (Some(snapshot), Some(snapshot)), "{r}");

    // The lake's data is local, so nothing is cached; names are still checked.
    let evict = warmlake(&["evict", "--config", cfg, "sales.orders"]);
    assert_eq!(evict.code, 0, "{}", evict.err);
    assert!(evict.out.contains("nothing to evict"), "{}", evict.out);
    let all = warmlake(&["evict", "--config", cfg, "--all", "--json"]);
    let a: serde_json::Value = serde_json::from_str(&all.out).expect("evict JSON");
    assert_eq!((a["evicted_bytes"].as_u64(), a["cache"].as_bool()), (Some(0), Some(false)), "{a}");
    let typo = warmlake(&["evict", "--config", cfg, "sales.ordres"]);
    assert_eq!(typo.code, 1);
    assert!(typo.err.contains("no table sales.ordres"), "{}", typo.err);

    let metrics = warmlake(&["metrics", "--config", cfg]);
    assert_eq!(metrics.code, 0, "{}", metrics.err);
    assert!(metrics.out.contains(&format!("warmlake_snapshot_id{{lake=\"lake\"}} {snapshot}\n")), "{}", metrics.out);
    assert!(metrics.out.contains("# TYPE warmlake_last_refresh_timestamp_seconds gauge"), "{}", metrics.out);
    assert!(metrics.out.contains("warmlake_policy_error{lake=\"lake\"} 0\n"), "{}", metrics.out);

    // A malformed policy is reported by reload, and the last good one stays in force.
    std::fs::write(lake.dir.join("policy.toml"), "[[rule]\n").expect("policy");
    let reload = warmlake(&["policy", "reload", "--config", cfg]);
    assert_eq!(reload.code, 1, "{}", reload.out);
    assert!(reload.err.contains("the last good policy stays in force"), "{}", reload.err);
    let metrics = warmlake(&["metrics", "--config", cfg]);
    assert!(metrics.out.contains("warmlake_policy_error{lake=\"lake\"} 1\n"), "{}", metrics.out);
    std::fs::write(lake.dir.join("policy.toml"), "").expect("policy");
    let reload = warmlake(&["policy", "reload", "--config", cfg]);
    assert_eq!(reload.code, 0, "{}", reload.err);

    daemon.stop();
    assert!(!lake.dir.join("state/control.sock").exists(), "the control socket is removed at exit");
}

#[test]
fn query_ls_and_doctor() {
    let lake = make_lake();
    let daemon = Daemon::start(&lake, None);
    let cfg = lake.config.as_str();

    let q = warmlake(&["query", "--config", cfg, "SELECT reason FROM sales.returns ORDER BY return_id"]);
    assert_eq!(q.code, 0, "{}", q.err);
    assert!(q.out.contains("damaged") && q.out.contains("(3 rows)"), "{}", q.out);
    let q = warmlake(&["query", "--config", cfg, "--json", "SELECT NULL AS a, 'NULL' AS b"]);
    let j: serde_json::Value = serde_json::from_str(&q.out).expect("query JSON");
    assert_eq!(j, serde_json::json!({ "columns": ["a", "b"], "rows": [[null, "NULL"]] }));
    let bad = warmlake(&["query", "--config", cfg, "SELECT * FROM sales.nope"]);
    assert_eq!(bad.code, 1);
    assert!(bad.err.contains("ERROR"), "{}", bad.err);

    let root = warmlake(&["ls", "--config", cfg]);
    assert_eq!(root.code, 0, "{}", root.err);
    assert!(root.out.lines().any(|l| l.trim_start() == "-  sales/"), "{}", root.out);
    assert!(root.out.lines().any(|l| l.ends_with("  lake.sql")), "{}", root.out);
    let orders = warmlake(&["ls", "sales/orders", "--config", cfg, "--json"]);
    let o: serde_json::Value = serde_json::from_str(&orders.out).expect("ls JSON");
    let files = o["entries"].as_array().expect("entries");
    assert!(files.iter().any(|e| e["kind"] == "file" && e["size"].as_u64() > Some(0)), "{o}");
    if let Some(mount) = &lake.mount {
        // The API lists what the mount shows.
        let mut names: Vec<String> = std::fs::read_dir(mount.join("sales/orders"))
            .expect("read the mount")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let listed: Vec<String> = files.iter().map(|e| e["name"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(listed, names);
    }
    let missing = warmlake(&["ls", "nope", "--config", cfg]);
    assert_eq!(missing.code, 1);

    let doctor = warmlake(&["doctor", "--config", cfg]);
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.out, doctor.err);
    for check in ["config", "state dir", "cache dir", "disk", "catalog", "store"] {
        assert!(doctor.out.lines().any(|l| l.starts_with("ok") && l.contains(check)), "{check}: {}", doctor.out);
    }
    assert!(doctor.out.contains("daemon    running"), "{}", doctor.out);
    daemon.stop();

    // With the state folder opened to others and the catalog gone, doctor fails and says how to fix it.
    let state = lake.dir.join("state");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::rename(lake.dir.join("lake/catalog.sqlite"), lake.dir.join("moved.sqlite")).expect("move catalog");
    let doctor = warmlake(&["doctor", "--config", cfg, "--json"]);
    assert_eq!(doctor.code, 1, "{}", doctor.out);
    let d: serde_json::Value = serde_json::from_str(&doctor.out).expect("doctor JSON");
    let failed: Vec<&str> = d["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert_eq!(failed, ["state dir", "catalog"], "{d}");
    let fixes = d["checks"].to_string();
    assert!(fixes.contains(&format!("chmod 700 {}", state.display())), "{d}");
}

/// `doctor` on a machine without FUSE: run in a private mount namespace whose `/dev` is an
/// empty tmpfs and with no `fusermount3` on PATH, it fails both FUSE checks and says how to fix
/// them, while the rest of the config stays healthy.
#[test]
fn doctor_reports_a_machine_without_fuse() {
    let lake = make_lake();
    let mut config = std::fs::read_to_string(&lake.config).expect("config");
    if lake.mount.is_none() {
        config.push_str(&format!("[mount]\npath = \"{}\"\n", lake.dir.join("mnt").display()));
    }
    std::fs::write(&lake.config, config).expect("config with a mount");
    // As root a mount namespace is enough; otherwise a user namespace maps us to root in it.
    let ns: &[&str] =
        if rustix::process::geteuid().is_root() { &["--mount"] } else { &["--user", "--map-root-user", "--mount"] };
    let script = "mount -t tmpfs none /dev && PATH=/nonexistent exec \"$0\" \"$@\"";
    let out = Command::new("unshare")
        .args(ns)
        .args(["--propagation", "private", "sh", "-c", script, BIN, "doctor", "--json", "--config", &lake.config])
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot hide /dev/fuse on CI: {why}");
        eprintln!("skipped: cannot make a namespace without /dev/fuse here: {why}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let d: serde_json::Value = serde_json::from_str(&stdout).expect("doctor JSON");
    let checks = d["checks"].as_array().expect("checks");
    let failed: Vec<&str> = checks.iter().filter(|c| c["ok"] == false).filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(failed, ["fuse", "fusermount"], "{d}");
    let text = d["checks"].to_string();
    assert!(text.contains("/dev/fuse: No such file") && text.contains("modprobe fuse"), "{d}");
    assert!(text.contains("apt install fuse3"), "{d}");
}

/// Another local user cannot drive the daemon: the control socket sits in the 0700 state
/// folder, and when that folder and the socket are opened up anyway, the daemon still refuses
/// the connection because the peer's uid is not its own.
#[test]
fn another_user_cannot_use_the_control_socket() {
    let runuser = Command::new("runuser").arg("--help").output().is_ok();
    if !rustix::process::geteuid().is_root() || !runuser {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "root and runuser are required on CI");
        eprintln!("skipped: needs root and runuser");
        return;
    }
    let lake = make_lake();
    let daemon = Daemon::start(&lake, None);
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod")
    };
    // `nobody` may reach the config (and tempdir's parent), so only the socket can refuse.
    chmod(&lake.dir, 0o755);
    chmod(Path::new(&lake.config), 0o644);
    // A copy of the binary `nobody` may run (the build's own folder may be closed to others).
    let bin = lake.dir.join("warmlake");
    std::fs::copy(BIN, &bin).expect("copy the binary");
    chmod(&bin, 0o755);
    let as_nobody = || {
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .args(["status", "--config", &lake.config])
            .output()
            .expect("runuser");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = as_nobody();
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("Permission denied") && err.contains("control.sock"), "{err}");

    let state = lake.dir.join("state");
    chmod(&state, 0o711);
    chmod(&state.join("control.sock"), 0o666);
    let (code, err) = as_nobody();
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("closed the connection before answering"), "the daemon must refuse another uid: {err}");
    // The owner still gets in.
    assert_eq!(warmlake(&["status", "--config", &lake.config]).code, 0);
    daemon.stop();
}

#[test]
fn commands_say_the_daemon_is_not_running_and_how_to_start_it() {
    let lake = make_lake();
    for args in [&["status"][..], &["refresh"], &["evict", "--all"], &["metrics"], &["ls"], &["query", "SELECT 1"]] {
        let mut args = args.to_vec();
        args.extend(["--config", &lake.config]);
        let out = warmlake(&args);
        assert_eq!(out.code, 3, "{args:?}: {}", out.err);
        assert!(out.err.contains("daemon is not running"), "{args:?}: {}", out.err);
        assert!(out.err.contains(&format!("warmlake daemon --config {}", lake.config)), "{}", out.err);
    }
}

/// The protocol itself: another version is refused with the daemon's version, a bad request
/// gets an error line and the connection goes on, a cancel with nothing running is ignored.
#[test]
fn control_protocol_versions_and_errors() {
    let lake = make_lake();
    let daemon = Daemon::start(&lake, None);
    let stream = UnixStream::connect(lake.dir.join("state/control.sock")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let mut write = stream.try_clone().expect("clone");
    let mut read = BufReader::new(stream);
    let mut ask = |line: &str| -> serde_json::Value {
        write.write_all(format!("{line}\n").as_bytes()).expect("write");
        let mut answer = String::new();
        read.read_line(&mut answer).expect("read");
        serde_json::from_str(&answer).expect("a JSON line")
    };
    let newer = ask(r#"{"v":2,"op":"prewarm","tables":["sales.orders"]}"#);
    assert_eq!((newer["v"].as_u64(), newer["error"]["kind"].as_str()), (Some(1), Some("version")), "{newer}");
    let unknown = ask(r#"{"v":1,"op":"explode"}"#);
    assert_eq!(unknown["error"]["kind"], "bad_request", "{unknown}");
    let not_json = ask("status please");
    assert_eq!(not_json["error"]["kind"], "bad_request", "{not_json}");
    // The cancel (nothing runs) gets no answer: the next line answers the status request.
    let status = ask("{\"v\":1,\"op\":\"cancel\"}\n{\"v\":1,\"op\":\"status\"}");
    assert!(status["result"]["snapshot"].as_i64().is_some(), "{status}");

    // A line past the limit is refused and ends the connection.
    let mut huge = UnixStream::connect(lake.dir.join("state/control.sock")).expect("connect");
    huge.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    huge.write_all(&vec![b' '; 100 * 1024]).expect("write");
    let mut answer = String::new();
    let mut reader = BufReader::new(huge);
    reader.read_line(&mut answer).expect("read");
    let refused: serde_json::Value = serde_json::from_str(&answer).expect("a JSON line");
    assert_eq!(refused["error"]["kind"], "bad_request", "{refused}");
    answer.clear();
    // Closed: an end of stream, or a reset when the daemon closed with our excess unread.
    match reader.read_line(&mut answer) {
        Ok(n) => assert_eq!(n, 0, "closed: {answer}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    daemon.stop();
}

#[test]
fn daemon_notifies_the_service_manager() {
    let lake = make_lake();
    let socket_path = lake.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    // A safety net against a hang, not a timing assertion.
    socket.set_read_timeout(Some(Duration::from_secs(300))).expect("timeout");
    let daemon = Daemon::start(&lake, Some(&socket_path));
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(ready.lines().any(|l| l.starts_with("STATUS=serving lake at snapshot")), "{ready}");
    // Ready means the control socket answers too.
    let status = warmlake(&["status", "--config", &lake.config]);
    assert_eq!(status.code, 0, "{}", status.err);
    daemon.stop();
    let n = socket.recv(&mut buf).expect("a notification");
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
}

/// The service files: the systemd unit `service install` writes passes `systemd-analyze
/// verify`, and the launchd plist (template and rendered) parses with Python's plistlib.
#[test]
fn service_files_are_valid() {
    let lake = make_lake();
    let unit = warmlake(&["service", "install", "--config", &lake.config, "--print", "--platform", "systemd"]);
    assert_eq!(unit.code, 0, "{}", unit.err);
    assert!(unit.out.contains(&format!("ExecStart=\"{BIN}\" daemon --config \"{}\"", lake.config)), "{}", unit.out);
    assert!(unit.out.contains("Type=notify"), "{}", unit.out);
    let unit_path = lake.dir.join("warmlake.service");
    std::fs::write(&unit_path, &unit.out).expect("unit");
    match Command::new("systemd-analyze").arg("verify").arg(&unit_path).output() {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "systemd-analyze is required on CI: {e}");
            eprintln!("SKIPPED systemd-analyze verify: {e}");
        }
    }

    let plist = warmlake(&["service", "install", "--config", &lake.config, "--print", "--platform", "launchd"]);
    assert_eq!(plist.code, 0, "{}", plist.err);
    let rendered = lake.dir.join("rendered.plist");
    std::fs::write(&rendered, &plist.out).expect("plist");
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../launchd/dev.warmlake.daemon.plist");
    for (file, program) in [(&rendered, BIN.to_string()), (&template, "@WARMLAKE@".to_string())] {
        let script = "import plistlib, sys\n\
                      p = plistlib.load(open(sys.argv[1], 'rb'))\n\
                      assert p['RunAtLoad'] and p['KeepAlive'] and p['StandardErrorPath'], p\n\
                      print(p['ProgramArguments'][0])";
        let out = Command::new("python3").args(["-c", script]).arg(file).output().expect("python3 runs");
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), program);
    }

    // install --no-enable writes the unit where systemd looks for user units; uninstall removes it.
    let home = lake.dir.join("home");
    let run = |args: &[&str]| {
        let out =
            Command::new(BIN).args(args).env("XDG_CONFIG_HOME", home.join(".config")).output().expect("warmlake runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["service", "install", "--config", &lake.config, "--no-enable", "--platform", "systemd"]);
    let installed = home.join(".config/systemd/user/warmlake.service");
    assert_eq!(std::fs::read_to_string(&installed).expect("installed unit"), unit.out);
    run(&["service", "uninstall", "--platform", "systemd"]);
    assert!(!installed.exists());
}

/// A running `s3s-fs` (the S3-compatible server `scripts/test` installs) over a temp folder,
/// killed on drop.
struct S3Server {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const S3_KEY: &str = "warmlake-test";
const S3_SECRET: &str = "warmlake-test-secret";

impl S3Server {
    /// Starts one, or `None` (loudly) when `s3s-fs` is not installed outside CI.
    fn start() -> Option<S3Server> {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let bin = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([home.join(".cargo/bin")])
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file());
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "s3s-fs is required on CI (scripts/test installs it)"
            );
            eprintln!("SKIPPED: s3s-fs is not installed");
            return None;
        };
        let root = tempfile::tempdir().expect("server root");
        std::fs::create_dir(root.path().join("lake")).expect("bucket");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                S3_KEY,
                "--secret-key",
                S3_SECRET,
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let server = S3Server { child, port, _root: root };
        // Readiness, not timing: wait until it accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

/// A lake whose data is in an object store is read through the cache: status, metrics and
/// evict report real cached bytes, evict streams one event per table.
#[test]
fn evict_and_metrics_with_a_remote_lake_in_the_cache() {
    if !fuse_available() {
        eprintln!("SKIPPED: the SQL socket reads a remote lake through the mount");
        return;
    }
    let Some(s3) = S3Server::start() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = &tmp.path().to_path_buf();
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let made = Command::new(BIN)
        .args(["dev", "make-lake", &dir.join("lake").to_string_lossy(), "--catalog", "sqlite", "--events-rows", "1000"])
        .args(["--data", "s3://lake/data/", "--store-option", &format!("aws_endpoint={endpoint}")])
        .args(["--store-option", "aws_allow_http=true", "--store-option", "aws_region=us-east-1"])
        .env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .output()
        .expect("make-lake runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::write(dir.join("policy.toml"), "").expect("policy");
    std::fs::create_dir(dir.join("mnt")).expect("mount point");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nname = \"remote\"\ncatalog = \"sqlite:{lake}/catalog.sqlite\"\n[state]\ndir = \"{d}/state\"\n\
             [cache]\ndir = \"{d}/cache\"\nmin_free_disk = \"0B\"\n[mount]\npath = \"{d}/mnt\"\n\
             [policy]\nfile = \"{d}/policy.toml\"\n\
             [store]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\naccess_key_id = \"{S3_KEY}\"\n\
             secret_access_key = \"{S3_SECRET}\"\nvirtual_hosted_style_request = false\nallow_http = true\n",
            lake = dir.join("lake").display(),
            d = dir.display(),
        ),
    )
    .expect("config");
    let lake = Lake {
        _tmp: tmp,
        dir: dir.clone(),
        config: config.to_string_lossy().into_owned(),
        mount: Some(dir.join("mnt")),
    };
    let daemon = Daemon::start(&lake, None);
    let cfg = lake.config.as_str();

    let q = warmlake(&["query", "--config", cfg, "SELECT count(*) AS n FROM sales.orders"]);
    assert_eq!(q.code, 0, "{}", q.err);
    let doctor = warmlake(&["doctor", "--config", cfg]);
    assert!(
        doctor.out.lines().any(|l| l.starts_with("ok") && l.contains("store") && l.contains("s3://")),
        "{}",
        doctor.out
    );
    let status = warmlake(&["status", "--config", cfg, "--json"]);
    let s: serde_json::Value = serde_json::from_str(&status.out).expect("status JSON");
    let cached = s["cache"]["per_table"]["sales.orders"]["bytes_fetched"].as_u64().unwrap_or(0);
    assert!(cached > 0, "{s}");
    let human = warmlake(&["status", "--config", cfg]);
    assert!(human.out.contains("fetched") && human.out.contains("hit ratio"), "{}", human.out);
    let metrics = warmlake(&["metrics", "--config", cfg]);
    assert!(
        metrics.out.contains(&format!(
            "warmlake_cache_table_fetched_bytes_total{{lake=\"remote\",table=\"sales.orders\"}} {cached}\n"
        )),
        "{}",
        metrics.out
    );

    let evict = warmlake(&["evict", "--config", cfg, "--json", "sales.orders", "web.events"]);
    assert_eq!(evict.code, 0, "{}", evict.err);
    let e: serde_json::Value = serde_json::from_str(&evict.out).expect("evict JSON");
    let events = e["tables"].as_array().expect("events");
    assert_eq!(
        events.iter().map(|t| t["table"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["sales.orders", "web.events"]
    );
    let orders = events[0]["evicted_bytes"].as_u64().unwrap_or(0);
    assert!(orders > 0, "{e}");
    assert_eq!(e["evicted_bytes"].as_u64(), Some(events.iter().filter_map(|t| t["evicted_bytes"].as_u64()).sum()));
    let status = warmlake(&["status", "--config", cfg, "--json"]);
    let s: serde_json::Value = serde_json::from_str(&status.out).expect("status JSON");
    assert!(s["cache"]["per_table"]["sales.orders"]["bytes_evicted"].as_u64() >= Some(orders), "{s}");
    let all = warmlake(&["evict", "--config", cfg, "--all"]);
    assert_eq!(all.code, 0, "{}", all.err);
    assert!(all.out.starts_with("evicted "), "{}", all.out);

    // Prewarm after the eviction: progress lines (not a terminal), then a summary; again, and
    // nothing is fetched; --json streams one event per file, then the report.
    let warm = warmlake(&["prewarm", "--config", cfg, "sales.*"]);
    assert_eq!(warm.code, 0, "{}", warm.err);
    let lines: Vec<&str> = warm.out.lines().collect();
    assert!(lines.iter().any(|l| l.contains(" files, ") && l.contains("fetched")), "{}", warm.out);
    let summary = lines.last().copied().unwrap_or_default();
    assert!(summary.starts_with("prewarmed ") && summary.contains("sales.orders"), "{}", warm.out);
    let again = warmlake(&["prewarm", "--config", cfg, "--json", "sales.orders", "--columns", "amount,region"]);
    assert_eq!(again.code, 0, "{}", again.err);
    let values: Vec<serde_json::Value> =
        again.out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let (report, events) = values.split_last().expect("a report");
    assert!(!events.is_empty() && events.iter().all(|e| e["files_total"].as_u64().is_some()), "{}", again.out);
    assert_eq!(report["progress"]["bytes_fetched"].as_u64(), Some(0), "already cached: {report}");
    let pinned = warmlake(&["prewarm", "--config", cfg, "--pin", "sales.orders"]);
    assert_eq!(pinned.code, 0, "{}", pinned.err);
    let unpin = warmlake(&["unpin", "--config", cfg, "--json", "sales.orders"]);
    assert_eq!(unpin.code, 0, "{}", unpin.err);
    let u: serde_json::Value = serde_json::from_str(&unpin.out).expect("unpin JSON");
    assert!(u["unpinned_bytes"].as_u64().unwrap_or(0) > 0, "{u}");
    let none = warmlake(&["prewarm", "--config", cfg, "nosuch.table"]);
    assert_eq!(none.code, 1, "{}", none.out);
    assert!(none.err.contains("no table"), "{}", none.err);
    daemon.stop();
    drop(s3);
}
