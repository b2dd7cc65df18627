//! SQL socket benchmark (issue #6). The real daemon serves a generated local lake (no mount,
//! no `[lake] data`: the socket reads the files in place) in this process; clients are
//! tokio-postgres over the Unix socket.
//!
//! - **warm query, socket ÷ in process**: a 1-row aggregate over `web.events`, and a result of
//!   `--result-rows` rows fetched completely and decoded into Rust values, against the same
//!   query in an in-process DuckDB over the same views of the same local files, whose rows are
//!   decoded the same way. Both sides are warm (connected, views created, files in the page
//!   cache). Goal ≤ 1.15. With `--remote-rtt-ms`, again with the lake's data in `s3s-fs`,
//!   read by the socket through the daemon's mount and chunk cache.
//! - **soak**: `--clients` connections run the dashboard queries for `--soak-seconds` while a
//!   thread commits an empty snapshot and calls `Daemon::refresh` every `--refresh-seconds`
//!   (so the socket replaces its views under load). Reports queries/s, latency percentiles,
//!   errors, and this process's resident memory (`VmRSS`, sampled every 100 ms): at rest and
//!   at its peak. Any error, or a query slower than 30 s, fails the run.
//!
//! `cargo run -p warmlake-bench --bin socket -- [--rows N] [--runs N] [--clients N] [--soak-seconds N]`

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use futures::StreamExt as _;
use tokio_postgres::SimpleQueryMessage;
use warmlake_bench::dashboard::DASHBOARD;
use warmlake_bench::local::LocalLake;
use warmlake_bench::remote::{RemoteLake, mib};
use warmlake_bench::rss_bytes;
use warmlake_daemon::daemon::Daemon;
use warmlake_daemon::generate::LakeSpec;

/// A 1-row aggregate that reads two columns of every row. The sum is cast to BIGINT so both
/// sides decode it as an `i64` (DuckDB sums an INTEGER into a HUGEINT).
const AGGREGATE: &str =
    "SELECT count(*) AS events, sum(duration_ms)::BIGINT AS total_ms, max(event_id) AS last_id FROM web.events";

/// The soak's watchdog: a query slower than this fails the run (it would mean a session is
/// starved or stuck, not merely slow on 2 cores).
const WATCHDOG: Duration = Duration::from_secs(30);

/// How often the soak samples the process's resident memory.
const RSS_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Parser)]
#[command(about = "The SQL socket vs DuckDB in process, and a soak of concurrent clients while the daemon refreshes")]
struct Args {
    /// Rows of web.events (at least `--result-rows`).
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Data files web.events is split into.
    #[arg(long, default_value_t = 4)]
    files: u64,
    /// Append snapshots of 2,000 rows of sales.orders (the dashboard's second table).
    #[arg(long, default_value_t = 50)]
    order_batches: u64,
    /// Rows of the large result (`SELECT event_id, kind, duration_ms FROM web.events LIMIT n`).
    #[arg(long, default_value_t = 1_000_000)]
    result_rows: u64,
    /// Timed runs per measurement, after one warm-up run (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Concurrent clients of the soak.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// How long the soak runs.
    #[arg(long, default_value_t = 60)]
    soak_seconds: u64,
    /// Seconds between the soak's refreshes (each publishes a new, empty snapshot).
    #[arg(long, default_value_t = 5)]
    refresh_seconds: u64,
    /// Also measure the warm queries with the lake's data in an S3-compatible server (`s3s-fs`
    /// on 127.0.0.1, as the `cache` and `mount` benchmarks start it), read by the socket through
    /// the daemon's mount and chunk cache; every store request first waits this many ms. The
    /// baseline stays DuckDB in process over the local copy of the same files.
    #[arg(long)]
    remote_rtt_ms: Option<u64>,
    /// DuckDB's memory limit for all sessions (`[sql] memory_limit`), in MiB: what bounds the
    /// socket's memory, so the soak's peak is reported against it.
    #[arg(long, default_value_t = 2048)]
    memory_limit_mib: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rows >= args.result_rows, "--rows must be at least --result-rows");
    let spec = LakeSpec {
        events_rows: args.rows,
        events_files: args.files,
        order_batches: args.order_batches,
        ..LakeSpec::default()
    };
    let lake = LocalLake::new(&spec)?;
    // The daemon's runtime (cache, SQL server) and the clients' are separate, as they would
    // be in separate processes. The daemon's and the soak's have one worker per core; the
    // warm queries' one client runs on one thread, its connection task beside the code
    // reading its rows, as a single-connection program would run it (on a multi-thread runtime
    // every batch of rows the connection task reads is handed to another thread: the 10⁶-row
    // ratio was 1.9–2.0 that way, against 1.4–1.5).
    let daemon_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let clients_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let memory_limit = format!("{}MiB", args.memory_limit_mib);
    let daemon = lake.start_daemon(daemon_rt.handle().clone(), Some(&memory_limit))?;
    // The daemon at rest, before any query: the base the soak's memory bound is stated from.
    let started_rss = rss_bytes()?;
    let socket = daemon.status().sql_socket.context("the daemon serves no SQL socket")?;
    let client_config = client_config(&socket)?;
    println!(
        "web.events: {} rows in {} files; sales.orders: {} files; socket {}; {} runs",
        args.rows,
        args.files,
        lake.snapshot.table("sales", "orders").map(|t| t.files.len()).unwrap_or(0),
        socket.display(),
        args.runs
    );
    println!();
    println!("Local lake (no mount; the socket reads the files in place):");
    client_rt.block_on(ratios(&lake.local_script(), &socket, &args))?;
    println!();
    python_ratios(&lake.local_script(), &socket, &args)?;
    if let Some(rtt) = args.remote_rtt_ms {
        remote_ratios(&spec, &client_rt, rtt, &args)?;
    }
    soak(&lake, &daemon, &clients_rt, &client_config, &args, started_rss)?;
    daemon.stop()?;
    Ok(())
}

/// A client config for the socket at `<dir>/.s.PGSQL.<port>`, named as libpq names it.
fn client_config(socket: &Path) -> anyhow::Result<tokio_postgres::Config> {
    let dir = socket.parent().context("socket path has a folder")?;
    let name = socket.file_name().and_then(|n| n.to_str()).context("socket file name")?;
    let port: u16 = name.strip_prefix(".s.PGSQL.").context("libpq socket name")?.parse()?;
    let mut config = tokio_postgres::Config::new();
    config.host_path(dir).port(port).user("bench").dbname("lake");
    Ok(config)
}

/// Connects, driving the connection on the current runtime.
async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.context("connecting to the socket")?;
    tokio::spawn(conn);
    Ok(client)
}

/// One row of the large result, as both sides decode it.
type EventRow = (i64, String, i32);

/// How a client asks the socket for a result.
#[derive(Clone, Copy)]
enum Ask<'a> {
    /// `client.query(sql)`: a Parse/Describe round trip, then Bind/Execute, binary results
    /// (what a driver does for a query string).
    Extended(&'a str),
    /// `client.query(&statement)`, prepared once before the timed runs: Bind/Execute only.
    Prepared(&'a tokio_postgres::Statement),
    /// `client.simple_query(sql)`: one round trip, text results (what psql does).
    Simple(&'a str),
    /// A simple query read as bytes, nothing decoded ([`RawClient`]): the server's share.
    Bytes(&'a str),
}

impl Ask<'_> {
    fn name(self) -> &'static str {
        match self {
            Ask::Extended(_) => "query string, binary",
            Ask::Prepared(_) => "prepared once, binary",
            Ask::Simple(_) => "simple query, text",
            Ask::Bytes(_) => "simple query, text, read as bytes: the server's share",
        }
    }
}

/// A result row decoded into the same Rust values from DuckDB, from a binary row and from a
/// text row.
trait Decode: Sized + Ord + std::fmt::Debug {
    fn duckdb(row: &duckdb::Row<'_>) -> duckdb::Result<Self>;
    fn binary(row: &tokio_postgres::Row) -> anyhow::Result<Self>;
    fn text(row: &tokio_postgres::SimpleQueryRow) -> anyhow::Result<Self>;
}

/// Column `i` of a text row, parsed.
fn text_column<T: std::str::FromStr>(row: &tokio_postgres::SimpleQueryRow, i: usize) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(row.try_get(i)?.context("NULL")?.parse()?)
}

impl Decode for [i64; 3] {
    fn duckdb(row: &duckdb::Row<'_>) -> duckdb::Result<Self> {
        Ok([row.get(0)?, row.get(1)?, row.get(2)?])
    }
    fn binary(row: &tokio_postgres::Row) -> anyhow::Result<Self> {
        Ok([row.try_get(0)?, row.try_get(1)?, row.try_get(2)?])
    }
    fn text(row: &tokio_postgres::SimpleQueryRow) -> anyhow::Result<Self> {
        Ok([text_column(row, 0)?, text_column(row, 1)?, text_column(row, 2)?])
    }
}

impl Decode for EventRow {
    fn duckdb(row: &duckdb::Row<'_>) -> duckdb::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
    fn binary(row: &tokio_postgres::Row) -> anyhow::Result<Self> {
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
    fn text(row: &tokio_postgres::SimpleQueryRow) -> anyhow::Result<Self> {
        Ok((text_column(row, 0)?, text_column(row, 1)?, text_column(row, 2)?))
    }
}

/// Every row of `sql` from the in-process DuckDB, decoded.
fn local_rows<R: Decode>(local: &duckdb::Connection, sql: &str) -> anyhow::Result<Vec<R>> {
    let mut stmt = local.prepare(sql)?;
    let rows = stmt.query_map([], |r| R::duckdb(r))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every row through the socket, decoded as it arrives (the client's streaming API, as the
/// in-process side decodes while DuckDB produces: neither holds undecoded rows).
async fn socket_rows<R: Decode>(client: &tokio_postgres::Client, ask: Ask<'_>) -> anyhow::Result<Vec<R>> {
    let mut out = Vec::new();
    match ask {
        Ask::Extended(sql) => {
            let rows = client.query_raw(sql, std::iter::empty::<i32>()).await?;
            decode_stream(rows, &mut out).await?;
        }
        Ask::Prepared(stmt) => {
            let rows = client.query_raw(stmt, std::iter::empty::<i32>()).await?;
            decode_stream(rows, &mut out).await?;
        }
        Ask::Simple(sql) => {
            let mut messages = std::pin::pin!(client.simple_query_raw(sql).await?);
            while let Some(m) = messages.next().await {
                if let SimpleQueryMessage::Row(r) = m? {
                    out.push(R::text(&r)?);
                }
            }
        }
        Ask::Bytes(_) => bail!("rows read as bytes are not decoded"),
    }
    Ok(out)
}

/// Decodes each binary row of `rows` into `out`.
async fn decode_stream<R: Decode>(rows: tokio_postgres::RowStream, out: &mut Vec<R>) -> anyhow::Result<()> {
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.next().await {
        out.push(R::binary(&row?)?);
    }
    Ok(())
}

/// Times `sql` in process and through the socket in every [`Ask`], after a warm-up run of each
/// that also checks the socket's rows are DuckDB's (in any order: `LIMIT` without `ORDER BY`
/// may pick its rows in any order). Runs take turns (a slower stretch of a noisy machine slows
/// every way alike). Prints one table row per way of asking.
async fn compare<R: Decode>(
    name: &str,
    local: &duckdb::Connection,
    client: &tokio_postgres::Client,
    raw: &mut RawClient,
    sql: &str,
    runs: usize,
) -> anyhow::Result<()> {
    let mut expected: Vec<R> = local_rows(local, sql)?;
    expected.sort_unstable();
    let prepared = client.prepare(sql).await?;
    let asks = [Ask::Extended(sql), Ask::Prepared(&prepared), Ask::Simple(sql), Ask::Bytes(sql)];
    for ask in asks {
        if let Ask::Bytes(sql) = ask {
            raw.query(sql).await?;
            continue;
        }
        let mut got: Vec<R> = socket_rows(client, ask).await?;
        got.sort_unstable();
        ensure!(got == expected, "{sql}: the {}'s rows differ from DuckDB's in process", ask.name());
    }
    drop(expected);
    let (mut in_process, mut socket) = (Vec::new(), vec![Vec::new(); asks.len()]);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        local_rows::<R>(local, sql)?;
        in_process.push(start.elapsed());
        for (ask, times) in asks.iter().zip(&mut socket) {
            let start = Instant::now();
            match ask {
                Ask::Bytes(sql) => drop(raw.query(sql).await?),
                ask => drop(socket_rows::<R>(client, *ask).await?),
            }
            times.push(start.elapsed());
        }
    }
    let in_process = median(in_process);
    for (ask, times) in asks.iter().zip(socket) {
        let socket = median(times);
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.2} |",
            ask.name(),
            ms(in_process),
            ms(socket),
            socket.as_secs_f64() / in_process.as_secs_f64()
        );
    }
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The warm queries through the socket at `socket` vs in process over `local_script` (the
/// lake's views over its local files).
async fn ratios(local_script: &str, socket: &Path, args: &Args) -> anyhow::Result<()> {
    let local = duckdb::Connection::open_in_memory()?;
    local.execute_batch(local_script)?;
    let client = connect(&client_config(socket)?).await?;
    let mut raw = RawClient::connect(socket).await?;
    println!("| warm query | how the client asks | in process (local files) | socket | ratio (goal ≤ 1.15) |");
    println!("|---|---|---|---|---|");
    compare::<[i64; 3]>("1-row aggregate over web.events", &local, &client, &mut raw, AGGREGATE, args.runs).await?;
    let rows_sql = format!("SELECT event_id, kind, duration_ms FROM web.events LIMIT {}", args.result_rows);
    let name = format!("{} rows × 3 columns, fetched and decoded", args.result_rows);
    compare::<EventRow>(&name, &local, &client, &mut raw, &rows_sql, args.runs).await
}

/// A client that speaks just enough of the protocol to send a query and read its answer as
/// bytes: what the server costs when the client costs nothing.
struct RawClient {
    stream: tokio::net::UnixStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(socket: &Path) -> anyhow::Result<Self> {
        use tokio::io::AsyncWriteExt as _;
        let mut body = 196_608_i32.to_be_bytes().to_vec(); // protocol 3.0
        for s in ["user", "bench", "database", "lake", ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut client = Self { stream: tokio::net::UnixStream::connect(socket).await?, buf: vec![0; 1 << 20] };
        client.stream.write_all(&(i32::try_from(body.len() + 4)?).to_be_bytes()).await?;
        client.stream.write_all(&body).await?;
        client.until_ready().await?;
        Ok(client)
    }

    /// Sends `sql` and reads until ReadyForQuery; returns the bytes read.
    async fn query(&mut self, sql: &str) -> anyhow::Result<usize> {
        use tokio::io::AsyncWriteExt as _;
        let mut message = vec![b'Q'];
        message.extend_from_slice(&(i32::try_from(sql.len() + 5)?).to_be_bytes());
        message.extend_from_slice(sql.as_bytes());
        message.push(0);
        self.stream.write_all(&message).await?;
        self.until_ready().await
    }

    /// Reads messages until ReadyForQuery; fails on an ErrorResponse.
    async fn until_ready(&mut self) -> anyhow::Result<usize> {
        use tokio::io::AsyncReadExt as _;
        let (mut pending, mut total) = (Vec::new(), 0);
        loop {
            let n = self.stream.read(&mut self.buf).await?;
            ensure!(n > 0, "the server closed the connection");
            total += n;
            pending.extend_from_slice(&self.buf[..n]);
            let mut at = 0;
            while let Some(header) = pending.get(at..at + 5) {
                let len = usize::try_from(i32::from_be_bytes([header[1], header[2], header[3], header[4]]))?;
                if pending.len() < at + 1 + len {
                    break;
                }
                match header[0] {
                    b'Z' => return Ok(total),
                    b'E' => bail!("the server answered with an error"),
                    _ => at += 1 + len,
                }
            }
            pending.drain(..at);
        }
    }
}

/// The large result as a Python user fetches it (`bench/python/fetch.py`): DuckDB's Python
/// client in process against psycopg 3 over the socket, both building Python tuples. Prints a
/// table; needs `python3` with `duckdb` and `psycopg` (scripts/test installs them).
fn python_ratios(local_script: &str, socket: &Path, args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("lake.sql");
    std::fs::write(&script, local_script)?;
    let port = socket
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(".s.PGSQL."))
        .context("libpq socket name")?;
    let sql = format!("SELECT event_id, kind, duration_ms FROM web.events LIMIT {}", args.result_rows);
    let fetch = concat!(env!("CARGO_MANIFEST_DIR"), "/python/fetch.py");
    let out = std::process::Command::new("python3")
        .arg(fetch)
        .arg("--script")
        .arg(&script)
        .arg("--socket-dir")
        .arg(socket.parent().context("socket folder")?)
        .args(["--port", port, "--sql", &sql, "--runs", &args.runs.to_string()])
        .output()
        .context("running python3 bench/python/fetch.py")?;
    ensure!(out.status.success(), "fetch.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let seconds = |k: &str| result[k].as_f64().with_context(|| format!("{k} in {result}"));
    let rows: Vec<u64> =
        result["rows"].as_array().context("rows")?.iter().filter_map(serde_json::Value::as_u64).collect();
    ensure!(rows.len() == 3 && rows.iter().all(|r| *r == args.result_rows), "row counts differ: {rows:?}");
    let in_process = seconds("in_process")?;
    println!(
        "| Python, {} rows × 3 columns into tuples | in process: DuckDB's Python client | socket: psycopg 3 | ratio (goal ≤ 1.15) |",
        args.result_rows
    );
    println!("|---|---|---|---|");
    for (name, key) in [("text (psycopg's default)", "socket_text"), ("binary", "socket_binary")] {
        let socket = seconds(key)?;
        println!("| {name} | {:.1} ms | {:.1} ms | {:.2} |", in_process * 1e3, socket * 1e3, socket / in_process);
    }
    Ok(())
}

/// The warm queries again, with the same lake's data in a bucket behind the mount.
fn remote_ratios(spec: &LakeSpec, client_rt: &tokio::runtime::Runtime, rtt_ms: u64, args: &Args) -> anyhow::Result<()> {
    let lake = RemoteLake::new(spec, Duration::from_millis(rtt_ms))?;
    let daemon = lake.start_daemon_with_sql()?;
    let socket = daemon.status().sql_socket.context("the daemon serves no SQL socket")?;
    println!();
    println!(
        "Remote lake (s3s-fs, {rtt_ms} ms RTT; the socket reads through the mount and a cache the warm-up \
         filled):"
    );
    client_rt.block_on(ratios(&lake.local_script(), &socket, args))?;
    daemon.stop()?;
    Ok(())
}

/// What the soak's clients saw.
#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

/// Concurrent clients on the dashboard while the daemon refreshes, with memory sampled.
fn soak(
    lake: &LocalLake,
    daemon: &Daemon,
    clients_rt: &tokio::runtime::Runtime,
    config: &tokio_postgres::Config,
    args: &Args,
    started_rss: u64,
) -> anyhow::Result<()> {
    let rest_before = rss_bytes()?;
    let peak = AtomicU64::new(rest_before);
    let done = AtomicBool::new(false);
    let duration = Duration::from_secs(args.soak_seconds);
    let started = Instant::now();
    let (outcome, refreshes) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Ok(rss) = rss_bytes() {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(RSS_INTERVAL);
            }
        });
        let refresher = s.spawn(|| {
            let (mut published, mut errors) = (Vec::new(), Vec::new());
            let every = Duration::from_secs(args.refresh_seconds.max(1));
            let mut next = Instant::now() + every;
            while next < started + duration {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                next += every;
                let result = lake.commit_empty_snapshot().and_then(|id| {
                    let served = daemon.refresh()?;
                    ensure!(served == id, "refresh serves snapshot {served}, the catalog's newest is {id}");
                    Ok(id)
                });
                match result {
                    Ok(id) => published.push(id),
                    Err(e) => errors.push(format!("refresh: {e:#}")),
                }
            }
            (published, errors)
        });
        let outcome = clients_rt.block_on(run_clients(config, args.clients, started + duration));
        let refreshes = refresher.join();
        done.store(true, Ordering::Relaxed);
        (outcome, refreshes)
    });
    let elapsed = started.elapsed();
    let mut outcome = outcome?;
    let (published, refresh_errors) = refreshes.map_err(|_| anyhow::anyhow!("the refresh thread panicked"))?;
    outcome.errors.extend(refresh_errors);
    // Every session must see the last snapshot published.
    let last = published.last().copied().unwrap_or(lake.snapshot.snapshot.id);
    let shown = clients_rt.block_on(async {
        let client = connect(config).await?;
        let messages = client.simple_query("SHOW warmlake.snapshot").await?;
        anyhow::Ok(messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        }))
    })?;
    if shown.as_deref() != Some(last.to_string().as_str()) {
        outcome.errors.push(format!("after the soak a new session sees snapshot {shown:?}, not {last}"));
    }
    // At rest again: the clients are gone; give the session threads a moment to end.
    std::thread::sleep(Duration::from_secs(2));
    let rest_after = rss_bytes()?;
    let peak = peak.into_inner();

    let mut latencies = outcome.latencies;
    latencies.sort();
    let percentile =
        |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied();
    let bound = started_rss + (args.memory_limit_mib << 20);
    println!();
    println!(
        "| soak: {} clients, {:.0} s, dashboard queries, refresh every {} s | value |",
        args.clients,
        elapsed.as_secs_f64(),
        args.refresh_seconds
    );
    println!("|---|---|");
    println!("| queries | {} ({:.1}/s) |", latencies.len(), latencies.len() as f64 / elapsed.as_secs_f64());
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        println!("| latency {name} | {:.0} ms |", percentile(p).map_or(0.0, ms));
    }
    println!("| errors | {} |", outcome.errors.len());
    println!("| snapshots published during the soak | {} |", published.len());
    println!("| RSS of the daemon just started, before any query | {:.0} MiB |", mib(started_rss));
    println!("| RSS at rest before the soak (after the warm queries) | {:.0} MiB |", mib(rest_before));
    println!(
        "| RSS peak | {:.0} MiB ({} the bound: just started + memory_limit {} MiB = {:.0} MiB) |",
        mib(peak),
        if peak <= bound { "within" } else { "ABOVE" },
        args.memory_limit_mib,
        mib(bound)
    );
    println!("| RSS at rest after | {:.0} MiB |", mib(rest_after));
    if !outcome.errors.is_empty() {
        for e in outcome.errors.iter().take(10) {
            eprintln!("error: {e}");
        }
        bail!("the soak saw {} errors", outcome.errors.len());
    }
    Ok(())
}

/// `clients` connections, each running the dashboard's queries in turn (starting at its own
/// offset, so all queries run at once) until `deadline`.
async fn run_clients(config: &tokio_postgres::Config, clients: usize, deadline: Instant) -> anyhow::Result<Outcome> {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let config = config.clone();
            tokio::spawn(async move {
                let mut out = Outcome::default();
                let client = match tokio::time::timeout(WATCHDOG, connect(&config)).await {
                    Ok(Ok(client)) => client,
                    Ok(Err(e)) => {
                        out.errors.push(format!("client {c}: {e:#}"));
                        return out;
                    }
                    Err(_) => {
                        out.errors.push(format!("client {c}: no connection within {WATCHDOG:?}"));
                        return out;
                    }
                };
                let mut n = c;
                while Instant::now() < deadline {
                    let (name, sql) = DASHBOARD[n % DASHBOARD.len()];
                    n += 1;
                    let start = Instant::now();
                    match tokio::time::timeout(WATCHDOG, client.simple_query(sql)).await {
                        Ok(Ok(_)) => out.latencies.push(start.elapsed()),
                        Ok(Err(e)) => out.errors.push(format!("client {c}, {name}: {e}")),
                        Err(_) => {
                            out.errors.push(format!("client {c}, {name}: slower than {WATCHDOG:?}"));
                            return out;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Outcome::default();
    for task in tasks {
        let out = task.await.context("a client task panicked")?;
        all.latencies.extend(out.latencies);
        all.errors.extend(out.errors);
    }
    Ok(all)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
