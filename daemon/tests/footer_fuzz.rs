//! Hostile Parquet footers: every data file of the DuckLake fixtures (written by DuckDB's own
//! DuckLake extension), mutated at random — bytes flipped, truncated, spliced, lengths forged —
//! must parse to a layout or fail with an error, never panic, and a layout that parses must
//! stay inside the file. The cache parses footers fetched from any bucket, so this is input
//! from outside the machine.

mod fixtures;
mod fuzz_support;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use warmlake_daemon::layout::{self, FOOTER_TAIL_LEN};

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// (footer bytes, file size) of every fixture data file.
fn footers() -> Vec<(Vec<u8>, u64)> {
    let mut files = Vec::new();
    parquet_files(&fixtures::root(), &mut files);
    assert!(files.len() > 10, "fixture Parquet files under {}", fixtures::root().display());
    files
        .iter()
        .filter_map(|f| {
            let bytes = std::fs::read(f).ok()?;
            let size = bytes.len() as u64;
            let meta_len = layout::metadata_len_from_tail(&bytes[bytes.len() - FOOTER_TAIL_LEN as usize..]).ok()?;
            let range = layout::footer_range(size, meta_len).ok()?;
            Some((bytes[range.start as usize..].to_vec(), size))
        })
        .collect()
}

/// A mutation of a footer.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate { keep: usize },
    Splice { at: usize, bytes: Vec<u8> },
    ForgeLength { len: u32 },
    ForgeSize { size: u64 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
        any::<u32>().prop_map(|len| Mutation::ForgeLength { len }),
        any::<u64>().prop_map(|size| Mutation::ForgeSize { size }),
    ]
}

fn apply(footer: &mut Vec<u8>, size: &mut u64, m: &Mutation) {
    let n = footer.len();
    match m {
        Mutation::Flip { at, xor } if n > 0 => footer[at % n] ^= xor,
        Mutation::Truncate { keep } => footer.truncate(keep % (n + 1)),
        Mutation::Splice { at, bytes } => {
            let at = at % (n + 1);
            footer.splice(at..at, bytes.iter().copied());
        }
        Mutation::ForgeLength { len } if n >= 8 => footer[n - 8..n - 4].copy_from_slice(&len.to_le_bytes()),
        Mutation::ForgeSize { size: s } => *size = *s,
        _ => {}
    }
}

#[test]
fn mutated_footers_parse_or_fail_cleanly() {
    let strategy = (any::<usize>(), proptest::collection::vec(mutation(), 1..4));
    let regressions = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/footer.proptest-regressions");
    fuzz_support::fuzz("footer fuzz", regressions, 3000, strategy, |(pick, mutations)| {
        let all = footers_cached();
        let (footer, size) = &all[pick % all.len()];
        let (mut footer, mut size) = (footer.clone(), *size);
        for m in &mutations {
            apply(&mut footer, &mut size, m);
        }
        if let Ok(l) = layout::parse_footer(&footer, size) {
            // Whatever parsed describes chunks inside the file's data region.
            for c in &l.chunks {
                prop_assert!(c.range.start >= 4 && c.range.end <= l.footer.start && c.range.start <= c.range.end);
            }
            prop_assert!(l.footer.end == size);
        }
        let _ = layout::metadata_len_from_tail(&footer);
        Ok(())
    });
}

fn footers_cached() -> &'static [(Vec<u8>, u64)] {
    static FOOTERS: std::sync::OnceLock<Vec<(Vec<u8>, u64)>> = std::sync::OnceLock::new();
    FOOTERS.get_or_init(footers)
}

#[test]
fn every_fixture_footer_parses() {
    let mut chunks = 0;
    for (footer, size) in footers_cached() {
        // Some files are empty results: no row groups, so no chunks.
        chunks += layout::parse_footer(footer, *size).expect("a real footer parses").chunks.len();
    }
    assert!(chunks > 100, "{chunks} column chunks");
}
