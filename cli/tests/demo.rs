//! The README's first command, run as a user would: real binary, real generated lake.

use std::process::Command;

fn warmlake(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warmlake")).args(args).output().expect("warmlake runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_prints_real_rows_from_the_generated_lake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lake");
    let (ok, out, err) = warmlake(&["demo", "--no-wait", "--dir", &dir.to_string_lossy()]);
    assert!(ok, "demo failed: {err}\n{out}");
    // The sample query's rows: one per region, orders summing to what the generator wrote
    // (3 batches of 2,000, minus ids ending in 3, plus 2,000 appended after the schema change).
    let rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("apac ") || l.starts_with("eu ") || l.starts_with("us "))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    // Twice: through the mount (or the files) and through the SQL socket, with a real client.
    assert_eq!(rows.len(), 6, "{out}");
    assert_eq!(rows[..3], rows[3..], "{out}");
    let total: i64 = rows[..3].iter().map(|r| r[1].parse::<i64>().expect("count")).sum();
    assert_eq!(total, 7400, "{out}");
    let app: i64 = rows[..3].iter().map(|r| r[3].parse::<i64>().expect("app orders")).sum();
    assert_eq!(app, 2000, "{out}");
    assert!(out.contains("through the SQL socket"), "{out}");
    // The demo policy hides the PII column.
    assert!(out.contains("sales.customers.email"), "{out}");
    // It ran the daemon with the mount (FUSE is there on CI).
    if std::path::Path::new("/dev/fuse").exists() {
        assert!(out.contains("through the mount"), "{out}");
        assert!(out.contains("the lake is unmounted"), "{out}");
    }
}

#[test]
fn dev_query_reads_inlined_rows_and_reports_bad_catalogs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lake");
    let (ok, _, err) =
        warmlake(&["dev", "make-lake", &dir.to_string_lossy(), "--catalog", "sqlite", "--events-rows", "1000"]);
    assert!(ok, "{err}");
    let catalog = dir.join("catalog.sqlite");
    let (ok, out, err) =
        warmlake(&["dev", "query", &catalog.to_string_lossy(), "SELECT reason FROM sales.returns ORDER BY return_id"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("damaged") && out.contains("wrong size") && out.contains("late") && out.contains("(3 rows)"),
        "{out}"
    );

    let (ok, _, err) = warmlake(&["dev", "query", &tmp.path().join("missing.ducklake").to_string_lossy(), "SELECT 1"]);
    assert!(!ok);
    assert!(err.contains("cannot open DuckLake catalog"), "{err}");
}

/// The demo as typed in a terminal: it waits with the lake mounted, every line it says to try
/// next runs as printed, and Ctrl-C (SIGINT) unmounts and exits cleanly.
#[test]
fn demo_waits_mounted_and_ctrl_c_unmounts() {
    use std::io::BufRead as _;
    if !std::path::Path::new("/dev/fuse").exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "FUSE is required on CI");
        eprintln!("SKIPPED demo_waits_mounted_and_ctrl_c_unmounts: no /dev/fuse");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lake");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmlake"))
        .args(["demo", "--dir", &dir.to_string_lossy()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut next_steps = Vec::new();
    let mut in_next = false;
    let waiting = lines.by_ref().map_while(Result::ok).any(|l| {
        in_next |= l.starts_with("Try next");
        if in_next && l.starts_with("   ") {
            next_steps.push(l.trim().to_string());
        }
        l.contains("Press Ctrl-C")
    });
    assert!(waiting, "the demo waits for Ctrl-C");
    let mnt = dir.join("mnt");
    assert!(mnt.join("sales/orders").is_dir(), "mounted while waiting");
    // Each next step runs as printed, in a shell of its own (but the foreground daemon); the
    // failures are told after the demo is stopped, so a failing step leaves no mount behind.
    let failed: Vec<String> = next_steps
        .iter()
        .filter(|s| !s.contains(" daemon --config "))
        .filter_map(|step| {
            let out = Command::new("sh").args(["-c", step]).output().expect("sh");
            (!out.status.success()).then(|| {
                format!("{step}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
            })
        })
        .collect();
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().expect("demo exits");
    assert!(exit.success(), "exit status {exit:?}, output {rest:?}");
    assert!(rest.iter().any(|l| l.contains("the lake is unmounted")), "{rest:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mountinfo.contains(&*mnt.to_string_lossy()), "still mounted");
    assert!(next_steps.len() >= 5, "{next_steps:?}");
    assert!(failed.is_empty(), "next steps that fail as printed: {failed:#?}");
}

/// `--version` names the commit the binary was built from (the tests run from a checkout).
#[test]
fn version_names_the_commit() {
    let (ok, out, _) = warmlake(&["--version"]);
    assert!(ok);
    let commit = out.split("commit ").nth(1).map(|s| s.chars().take_while(char::is_ascii_hexdigit).count());
    assert_eq!(commit, Some(12), "{out}");
}
