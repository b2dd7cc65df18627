//! Test support: property fuzzing for a number of cases CI affords, or for as long as asked.
//!
//! `WARMLAKE_FUZZ_SECONDS=N` (the full reliability profile, `scripts/reliability --full`) keeps
//! running rounds of cases, each round from a fresh random seed, until N seconds have passed.
//! Failing cases are kept in `fuzz/<name>.proptest-regressions` at the workspace root (commit
//! them): every later run tries them first, so a crash found once stays tested.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// Runs `test` on values of `strategy`: `cases` of them, or rounds of `cases` until the time
/// `WARMLAKE_FUZZ_SECONDS` gives is up. `regressions` is the file of kept failing seeds. Panics
/// with the shrunk failing value on a failure; returns the number of cases tried.
pub fn fuzz<S>(
    name: &str,
    regressions: &'static str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = std::env::var("WARMLAKE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(budget);
    let mut tried = 0u64;
    loop {
        let config = Config {
            cases,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
            ..Config::default()
        };
        if let Err(e) = TestRunner::new(config).run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        tried += u64::from(cases);
        if Instant::now() >= deadline {
            break;
        }
    }
    eprintln!("{name}: {tried} cases");
    tried
}
