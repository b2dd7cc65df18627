//! What the CLI tests share: the binary under test, a way to run it, and whether FUSE is here.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_warmlake");

/// A finished `warmlake` run.
pub struct Output {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `warmlake args...` to completion.
pub fn warmlake(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("warmlake runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the lake can be mounted here; on CI it must be.
pub fn fuse_available() -> bool {
    let there = Path::new("/dev/fuse").exists();
    assert!(there || std::env::var("CI").as_deref() != Ok("true"), "FUSE is required on CI");
    there
}
