//! Load: 50 SQL socket clients run dashboard queries while 16 readers read every data file
//! through the mount, a prewarm evicts and refetches a table again and again, and a refresh
//! lands every two seconds — against a lake in a real S3-compatible server, read through the
//! real mount and chunk cache. Every answer must equal the one given before the load, every
//! file must read byte-identical to the source, nothing may fail, and a watchdog fails the run
//! when any request takes longer than 30 s (a deadlock or a starved session, not slowness).
//! The process's peak resident memory is reported and must stay under a bound.
//!
//! `.ci/run` runs the short profile (20 s); `WARMLAKE_LOAD_SECONDS=60 cargo nextest run -p
//! warmlake-daemon --test load --no-capture` runs the full one.

mod cache_support;
mod fixtures;
mod remote_lake;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_support::sha256;
use remote_lake::RemoteLake;
use tokio_postgres::SimpleQueryMessage;
use tokio_util::sync::CancellationToken;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::{self, LakeSpec};
use warmlake_daemon::prewarm;

const CLIENTS: usize = 50;
const READERS: usize = 16;
const WATCHDOG: Duration = Duration::from_secs(30);
/// DuckDB's memory limit for all sessions; with the rest of the process, the bound below.
const MEMORY_LIMIT_MIB: u64 = 1024;
/// What the process may grow by over its size at rest: DuckDB's limit, plus room for 66
/// threads' stacks, the kernel-facing FUSE buffers and the allocator's slack.
const GROWTH_BOUND: u64 = (MEMORY_LIMIT_MIB + 512) << 20;

/// Dashboard-shaped queries: aggregates over a few columns, a timestamp filter, a top-N, a join.
const QUERIES: [&str; 5] = [
    "SELECT kind, count(*), sum(duration_ms) FROM web.events GROUP BY kind ORDER BY kind",
    "SELECT count(*), max(event_id) FROM web.events WHERE ts >= (SELECT min(ts) FROM web.events) + INTERVAL 1 HOUR",
    "SELECT session_id, sum(duration_ms) AS d FROM web.events GROUP BY session_id ORDER BY d DESC, session_id LIMIT 10",
    "SELECT count(*), sum(amount) FROM sales.orders",
    "SELECT o.region, count(*) FROM sales.orders o JOIN sales.customers c USING (customer_id) GROUP BY o.region ORDER BY 1",
];

/// Failures and work done, shared by every thread.
#[derive(Default)]
struct Tally {
    errors: Mutex<Vec<String>>,
    queries: AtomicU64,
    file_reads: AtomicU64,
    bytes_verified: AtomicU64,
    prewarms: AtomicU64,
    refreshes: AtomicU64,
}

impl Tally {
    fn error(&self, e: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}

#[test]
fn fifty_clients_sixteen_readers_a_prewarm_and_refreshes() {
    let seconds = std::env::var("WARMLAKE_LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let spec = LakeSpec { events_rows: 200_000, events_files: 4, order_batches: 6, ..LakeSpec::default() };
    let Some(remote) = RemoteLake::mounted("fifty_clients_sixteen_readers_a_prewarm_and_refreshes", &spec) else {
        return;
    };
    let cfg = remote.config_with(&format!("[sql]\nmemory_limit = \"{MEMORY_LIMIT_MIB}MiB\"\nmax_connections = 64\n"));
    let rt = &remote.rt;
    let daemon = Daemon::start(cfg.clone(), rt.handle().clone()).expect("daemon starts");
    let settings = cfg.sql.clone().expect("sql");
    let mut pg = tokio_postgres::Config::new();
    pg.host_path(&settings.socket_dir).port(settings.port).dbname("lake").user("load");
    let clients_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    // The answers and files before the load: what every answer under load must equal.
    let expected: Vec<String> = clients_rt.block_on(async {
        let client = connect(&pg).await.expect("connect");
        let mut out = Vec::new();
        for q in QUERIES {
            out.push(rows(&client, q).await.expect("query before the load"));
        }
        out
    });
    let files = data_files(&remote);
    assert!(files.len() >= 8, "{files:?}");
    let rest = rss_bytes();

    let tally = Tally::default();
    let done = AtomicBool::new(false);
    let peak = AtomicU64::new(rest);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // When each thread's current request started (0: idle), for the watchdog.
    let started_at: Vec<AtomicU64> = (0..READERS + 2).map(|_| AtomicU64::new(0)).collect();
    let epoch = Instant::now();
    let now_ms = || epoch.elapsed().as_millis() as u64 + 1;
    let stuck = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        for (r, slot) in started_at.iter().take(READERS).enumerate() {
            let (files, tally) = (&files, &tally);
            s.spawn(move || {
                let mut i = r;
                while Instant::now() < deadline {
                    let (path, digest) = &files[i % files.len()];
                    i += 1;
                    slot.store(now_ms(), Ordering::Relaxed);
                    match std::fs::read(path) {
                        Ok(bytes) if &sha256(&bytes) == digest => {
                            tally.file_reads.fetch_add(1, Ordering::Relaxed);
                            tally.bytes_verified.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        }
                        Ok(_) => tally.error(format!("{}: bytes differ from the source", path.display())),
                        Err(e) => tally.error(format!("{}: {e}", path.display())),
                    }
                    slot.store(0, Ordering::Relaxed);
                }
            });
        }
        // A prewarm that keeps working: evict web.events, prewarm all its columns, again.
        let prewarm_slot = &started_at[READERS];
        let (daemon, tally) = (&daemon, &tally);
        s.spawn(move || {
            let cache = daemon.cache().expect("remote data has a cache");
            let request = prewarm::all_columns(&["web.events"]).expect("request");
            while Instant::now() < deadline {
                prewarm_slot.store(now_ms(), Ordering::Relaxed);
                let result = cache.evict_table("web.events").map_err(|e| e.to_string()).and_then(|_| {
                    rt.block_on(daemon.prewarm(&request, &|_| {}, &CancellationToken::new())).map_err(|e| e.to_string())
                });
                prewarm_slot.store(0, Ordering::Relaxed);
                match result {
                    Ok(_) => tally.prewarms.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tally.error(format!("prewarm: {e}"));
                        0
                    }
                };
            }
        });
        // A refresh lands every two seconds (an empty snapshot: the answers stay the same).
        let refresh_slot = &started_at[READERS + 1];
        let catalog = remote.lake.catalogs[0].clone();
        s.spawn(move || {
            while Instant::now() + Duration::from_secs(2) < deadline {
                std::thread::sleep(Duration::from_secs(2));
                refresh_slot.store(now_ms(), Ordering::Relaxed);
                let result = generate::commit_empty_snapshot(&catalog).map_err(|e| e.to_string()).and_then(|id| {
                    match daemon.refresh() {
                        Ok(served) if served == id => Ok(()),
                        Ok(served) => Err(format!("refresh serves {served}, the catalog's newest is {id}")),
                        Err(e) => Err(e.to_string()),
                    }
                });
                refresh_slot.store(0, Ordering::Relaxed);
                match result {
                    Ok(()) => tally.refreshes.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tally.error(format!("refresh: {e}"));
                        0
                    }
                };
            }
        });
        // The watchdog over the threads above; the clients time their own requests.
        let watchdog = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let now = now_ms();
                for (i, slot) in started_at.iter().enumerate() {
                    let since = slot.load(Ordering::Relaxed);
                    if since != 0 && now.saturating_sub(since) > WATCHDOG.as_millis() as u64 {
                        return Some(format!("thread {i} has been stuck in one request for over {WATCHDOG:?}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            None
        });
        clients_rt.block_on(run_clients(&pg, &expected, deadline, tally));
        // Wait for the other threads, unless the watchdog finds one stuck.
        while started_at.iter().any(|s| s.load(Ordering::Relaxed) != 0) && !watchdog.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if watchdog.is_finished() {
            return watchdog.join().ok().flatten();
        }
        done.store(true, Ordering::Relaxed);
        watchdog.join().ok().flatten()
    });
    if let Some(stuck) = stuck {
        // A stuck thread cannot be joined: end the process with the finding.
        eprintln!("load: {stuck}");
        std::process::exit(1);
    }
    let peak = peak.into_inner();
    let errors = tally.errors.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "load: {seconds} s, {CLIENTS} clients, {READERS} readers: {} queries, {} file reads ({} MiB verified), \
         {} prewarms, {} refreshes, {} errors; RSS at rest {} MiB, peak {} MiB",
        tally.queries.load(Ordering::Relaxed),
        tally.file_reads.load(Ordering::Relaxed),
        tally.bytes_verified.load(Ordering::Relaxed) >> 20,
        tally.prewarms.load(Ordering::Relaxed),
        tally.refreshes.load(Ordering::Relaxed),
        errors.len(),
        rest >> 20,
        peak >> 20
    );
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert!(tally.queries.load(Ordering::Relaxed) >= CLIENTS as u64, "every client ran");
    assert!(tally.file_reads.load(Ordering::Relaxed) >= READERS as u64, "every reader read");
    assert!(tally.prewarms.load(Ordering::Relaxed) >= 1 && tally.refreshes.load(Ordering::Relaxed) >= 1);
    assert!(peak <= rest + GROWTH_BOUND, "peak RSS {} MiB over {} MiB at rest", peak >> 20, rest >> 20);
    // After the load: the socket serves the last snapshot and the same answers.
    let last = clients_rt.block_on(async {
        let client = connect(&pg).await.expect("connect");
        rows(&client, "SHOW warmlake.snapshot").await.expect("snapshot")
    });
    let newest = rusqlite::Connection::open(&remote.lake.catalogs[0])
        .and_then(|db| db.query_row("SELECT max(snapshot_id) FROM ducklake_snapshot", [], |r| r.get::<_, i64>(0)))
        .expect("catalog");
    assert_eq!(last, newest.to_string());
    daemon.stop().expect("stop");
}

/// Every data file of the served snapshot, through the mount, with its source's digest.
fn data_files(remote: &RemoteLake) -> Vec<(PathBuf, String)> {
    let snapshot = remote.snapshot();
    let mut out = Vec::new();
    for t in &snapshot.tables {
        for f in &t.files {
            let source = std::fs::read(remote.lake.data_dir.join(f.key.as_str())).expect("source");
            out.push((remote.mnt().join(&t.schema).join(&t.name).join(&f.name), sha256(&source)));
        }
    }
    out
}

async fn connect(pg: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = pg.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

/// A query's rows as text, one line per row.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Result<String, String> {
    let messages = client.simple_query(sql).await.map_err(|e| {
        e.as_db_error().map_or_else(|| e.to_string(), |d| format!("{}: {}", d.code().code(), d.message()))
    })?;
    let mut out = BTreeMap::new();
    for (i, m) in messages.iter().enumerate() {
        if let SimpleQueryMessage::Row(r) = m {
            let cells: Vec<&str> = (0..r.len()).map(|c| r.get(c).unwrap_or("NULL")).collect();
            out.insert(i, cells.join("|"));
        }
    }
    Ok(out.into_values().collect::<Vec<_>>().join("\n"))
}

/// `CLIENTS` sessions, each running the queries in turn from its own offset until `deadline`,
/// comparing every answer with the one given before the load.
async fn run_clients(pg: &tokio_postgres::Config, expected: &[String], deadline: Instant, tally: &Tally) {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (pg, expected) = (pg.clone(), expected.to_vec());
            tokio::spawn(async move {
                let (mut errors, mut queries) = (Vec::new(), 0u64);
                let client = match tokio::time::timeout(WATCHDOG, connect(&pg)).await {
                    Ok(Ok(client)) => client,
                    Ok(Err(e)) => return (vec![format!("client {c}: {e}")], 0),
                    Err(_) => return (vec![format!("client {c}: no connection within {WATCHDOG:?}")], 0),
                };
                let mut n = c;
                while Instant::now() < deadline {
                    let q = n % QUERIES.len();
                    n += 1;
                    match tokio::time::timeout(WATCHDOG, rows(&client, QUERIES[q])).await {
                        Ok(Ok(got)) if got == expected[q] => queries += 1,
                        Ok(Ok(got)) => errors.push(format!("client {c}, query {q}: {got:?} != {:?}", expected[q])),
                        Ok(Err(e)) => errors.push(format!("client {c}, query {q}: {e}")),
                        Err(_) => {
                            errors.push(format!("client {c}, query {q}: slower than {WATCHDOG:?} (watchdog)"));
                            break;
                        }
                    }
                }
                (errors, queries)
            })
        })
        .collect();
    for task in tasks {
        match task.await {
            Ok((errors, queries)) => {
                tally.queries.fetch_add(queries, Ordering::Relaxed);
                errors.into_iter().for_each(|e| tally.error(e));
            }
            Err(e) => tally.error(format!("a client task panicked: {e}")),
        }
    }
}

/// This process's resident memory (`VmRSS`), 0 when it cannot be read.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        })
        .map_or(0, |kib: u64| kib << 10)
}
