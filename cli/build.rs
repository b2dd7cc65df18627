//! Stamps the binary with the commit it was built from (`warmlake --version`), so a user (and
//! `warmlake service install`'s unit) can tell which build is installed. Outside a git checkout
//! (a source tarball) the version says so.

use std::process::Command;

fn main() {
    // The checkout's HEAD, branch refs and index: a commit, a checkout or a staged change
    // rebuilds the stamp. Only paths that exist (cargo reruns a build script on every build
    // for a path that does not), and this file itself.
    println!("cargo:rerun-if-changed=build.rs");
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs", "../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("commit {hash}{}", if dirty { ", with uncommitted changes" } else { "" })
        }
        None => "not built from a git checkout".to_string(),
    };
    println!("cargo:rustc-env=WARMLAKE_BUILD={commit}");
}
