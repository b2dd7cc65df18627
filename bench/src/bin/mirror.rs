//! Mirror benchmark: a synthetic DuckLake catalog of many data files across many snapshots is
//! mirrored from scratch, then refreshed after one more snapshot.
//!
//! Baseline: SQLite's own `VACUUM INTO` copying the same catalog file (the least work any
//! local copy of the catalog can do). Reported: absolute times and the ratio mirror ÷ baseline.
//!
//! Then the real daemon over the same catalog, mounted (its data store is never reached: `ls`
//! and `stat` are answered from the mirror): its start time, its memory at rest, and `ls -l` of
//! the table's folder (every entry listed and stat'ed) against the same on a local folder of as
//! many empty files.
//!
//! `cargo run --release -p warmlake-bench --bin mirror -- [files] [snapshots] [columns]`

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use warmlake_bench::{median_time, rss_bytes};
use warmlake_daemon::catalog::{CatalogLocation, CatalogReader};
use warmlake_daemon::generate::CATALOG_DDL;
use warmlake_daemon::governance::MirrorScrub;
use warmlake_daemon::mirror::Mirror;

/// Writes a DuckLake 1.0 SQLite catalog: one table with `columns` columns, `files` data files
/// spread evenly over `snapshots` append snapshots, with per-column statistics for each file.
fn synthesize(path: &Path, files: i64, snapshots: i64, columns: i64) -> anyhow::Result<()> {
    let mut c = rusqlite::Connection::open(path)?;
    let tx = c.transaction()?;
    tx.execute_batch(CATALOG_DDL)?;
    tx.execute_batch(
        "INSERT INTO ducklake_metadata VALUES ('version', '1.0', NULL, NULL), ('created_by', 'warmlake-bench', NULL, NULL),
           ('data_path', 's3://bench/data/', NULL, NULL), ('encrypted', 'false', NULL, NULL);
         INSERT INTO ducklake_schema VALUES (0, '00000000-0000-0000-0000-000000000000', 0, NULL, 'main', 'main/', 1);
         INSERT INTO ducklake_table VALUES (1, '00000000-0000-0000-0000-000000000001', 1, NULL, 0, 'events', 'events/', 1);",
    )?;
    for col in 1..=columns {
        tx.execute(
            "INSERT INTO ducklake_column VALUES (?1, 1, NULL, 1, ?1, ?2, 'int64', NULL, 'NULL', 1, NULL, 'literal', 'duckdb')",
            rusqlite::params![col, format!("c{col}")],
        )?;
    }
    let mut snap = tx.prepare("INSERT INTO ducklake_snapshot VALUES (?1, ?2, 1, 2, ?3)")?;
    let mut change = tx.prepare("INSERT INTO ducklake_snapshot_changes VALUES (?1, ?2, NULL, NULL, NULL)")?;
    let mut file = tx.prepare(
        "INSERT INTO ducklake_data_file VALUES (?1, 1, ?2, NULL, NULL, ?3, 1, 'parquet', 100000, 50000000, 20000, ?4, NULL, NULL, NULL, NULL)",
    )?;
    let mut stat = tx.prepare(
        "INSERT INTO ducklake_file_column_stats VALUES (?1, 1, ?2, 2500000, 100000, 0, '0', '99999', NULL, NULL)",
    )?;
    let per_snapshot = (files / snapshots.max(1)).max(1);
    let mut next_file = 0;
    for s in 0..=snapshots {
        let time = format!("2026-01-01 00:00:00.{:06}+00", s % 1_000_000);
        let n = if s == 0 { 0 } else { per_snapshot };
        snap.execute(rusqlite::params![s, time, next_file + n])?;
        change.execute(rusqlite::params![
            s,
            if s == 0 { "created_table:\"main\".\"events\"".to_string() } else { "inserted_into_table:1".to_string() }
        ])?;
        for _ in 0..n {
            file.execute(rusqlite::params![
                next_file,
                s,
                format!("ducklake-{next_file:010}.parquet"),
                next_file * 100000
            ])?;
            for col in 1..=columns {
                stat.execute(rusqlite::params![next_file, col])?;
            }
            next_file += 1;
        }
    }
    drop((snap, change, file, stat));
    tx.commit()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<i64> =
        std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>().context("arguments are numbers")?;
    let files = args.first().copied().unwrap_or(100_000);
    let snapshots = args.get(1).copied().unwrap_or(1_000);
    let columns = args.get(2).copied().unwrap_or(20);
    let tmp = tempfile::tempdir()?;
    let source = tmp.path().join("catalog.sqlite");
    synthesize(&source, files, snapshots, columns)?;
    let reader = CatalogReader::open(&CatalogLocation::Sqlite(source.clone()), None)?;

    let (baseline, ()) = warmlake_bench::median_time(3, || {
        let target = tmp.path().join("copy.sqlite");
        let _ = std::fs::remove_file(&target);
        rusqlite::Connection::open(&source)?.execute("VACUUM INTO ?1", [target.to_string_lossy()])?;
        Ok(())
    })?;
    let (full, report) = warmlake_bench::median_time(3, || {
        let path = tmp.path().join("mirror.sqlite");
        let _ = std::fs::remove_file(&path);
        Ok(Mirror::open(&path)?.sync(&reader, &MirrorScrub::default())?)
    })?;
    println!("catalog: {files} data files, {snapshots} snapshots, {columns} columns ({} rows mirrored)", report.rows);
    println!("baseline (SQLite VACUUM INTO a copy):    {:>8.3} s", baseline.as_secs_f64());
    println!(
        "full mirror:                             {:>8.3} s   ratio {:.2}",
        full.as_secs_f64(),
        full.as_secs_f64() / baseline.as_secs_f64()
    );

    // One more snapshot with one new file, then an incremental refresh.
    let mut mirror = Mirror::open(&tmp.path().join("mirror.sqlite"))?;
    let c = rusqlite::Connection::open(&source)?;
    let (s, f) = (snapshots + 1, files + 1_000_000);
    c.execute_batch(&format!(
        "INSERT INTO ducklake_snapshot VALUES ({s}, '2026-01-02 00:00:00+00', 1, 2, {f});
         INSERT INTO ducklake_snapshot_changes VALUES ({s}, 'inserted_into_table:1', NULL, NULL, NULL);
         INSERT INTO ducklake_data_file VALUES ({f}, 1, {s}, NULL, NULL, 'new.parquet', 1, 'parquet', 1, 1, 1, 0, NULL, NULL, NULL, NULL);"
    ))?;
    let reader = CatalogReader::open(&CatalogLocation::Sqlite(source.clone()), None)?;
    let (incremental, report) = warmlake_bench::median_time(1, || Ok(mirror.sync(&reader, &MirrorScrub::default())?))?;
    println!(
        "incremental refresh (1 snapshot):        {:>8.3} s   ratio {:.3}   {} rows written, full = {}",
        incremental.as_secs_f64(),
        incremental.as_secs_f64() / baseline.as_secs_f64(),
        report.rows,
        report.full
    );
    daemon_listing(tmp.path(), &source, files)
}

/// Starts the daemon over `catalog` with the lake mounted and measures what the module docs say.
fn daemon_listing(dir: &Path, catalog: &Path, files: i64) -> anyhow::Result<()> {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt)?;
    std::fs::write(dir.join("policy.toml"), "")?;
    // The store's endpoint is a closed port: nothing here may need it.
    let text = format!(
        "[lake]\nname = \"bench\"\ncatalog = \"sqlite:{catalog}\"\n[state]\ndir = \"{state}\"\n\
         [cache]\ndir = \"{cache}\"\nmin_free_disk = \"0B\"\n[mount]\npath = \"{mnt}\"\n[sql]\nenabled = false\n\
         [policy]\nfile = \"{policy}\"\n[refresh]\ninterval_seconds = 3600\n\
         [store]\nendpoint = \"http://127.0.0.1:9\"\nregion = \"us-east-1\"\naccess_key_id = \"bench\"\n\
         secret_access_key = \"bench\"\nallow_http = true\n",
        catalog = catalog.display(),
        state = dir.join("state").display(),
        cache = dir.join("cache").display(),
        mnt = mnt.display(),
        policy = dir.join("policy.toml").display(),
    );
    let config = warmlake_daemon::config::Config::parse(&text, &dir.join("config.toml"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let before = rss_bytes()?;
    let started = Instant::now();
    let daemon = warmlake_daemon::daemon::Daemon::start(config, runtime.handle().clone())?;
    let start = started.elapsed();
    let at_rest = rss_bytes()?.saturating_sub(before);

    // `ls -l`: list, and stat every entry.
    let list = |folder: &Path| -> anyhow::Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(folder)? {
            std::hint::black_box(entry?.metadata()?.len());
            n += 1;
        }
        Ok(n)
    };
    let table = mnt.join("main").join("events");
    let (first_ls, listed) = median_time(1, || list(&table))?;
    anyhow::ensure!(listed as i64 >= files, "the mount lists {listed} files, the catalog has {files}");
    let (ls, _) = median_time(5, || list(&table))?;
    let local = dir.join("local-table");
    std::fs::create_dir_all(&local)?;
    for i in 0..listed {
        std::fs::File::create(local.join(format!("f{i}.parquet")))?;
    }
    let (local_ls, _) = median_time(5, || list(&local))?;
    let after_ls = rss_bytes()?.saturating_sub(before);
    daemon.stop()?;
    println!("daemon start (first mirror, publish, mount): {:>8.3} s", start.as_secs_f64());
    println!(
        "daemon memory at rest (RSS it added):    {:>8.1} MiB; after the listings {:.1} MiB",
        at_rest as f64 / 1048576.0,
        after_ls as f64 / 1048576.0
    );
    println!(
        "ls -l of the table's {listed} files:    {:>8.3} s first, {:.3} s again   ratio {:.2} to a local folder ({:.3} s)",
        first_ls.as_secs_f64(),
        ls.as_secs_f64(),
        ls.as_secs_f64() / local_ls.as_secs_f64(),
        local_ls.as_secs_f64()
    );
    Ok(())
}
