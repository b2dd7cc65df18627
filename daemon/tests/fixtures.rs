//! Locating the shared DuckLake fixtures (`../shared/fixtures/ducklake` beside the checkout).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The fixture root; `WARMLAKE_FIXTURES` overrides it.
pub fn root() -> PathBuf {
    if let Ok(p) = std::env::var("WARMLAKE_FIXTURES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ducklake")
}

/// Unpacks a gzipped fixture catalog into `dir` and returns the unpacked path.
pub fn gunzip(src: &Path, dir: &Path) -> PathBuf {
    let name = src.file_name().and_then(|n| n.to_str()).unwrap_or("catalog.db.gz");
    let out = dir.join(name.trim_end_matches(".gz"));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc '{}' > '{}'", src.display(), out.display()))
        .status()
        .expect("gzip runs");
    assert!(status.success(), "gunzip {}", src.display());
    out
}
