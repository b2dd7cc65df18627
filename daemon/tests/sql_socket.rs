//! The SQL socket with real clients: psql (Debian postgresql-client) and tokio-postgres.
//! Answers equal DuckDB reading the lake directly; the socket admits only its own Unix user;
//! sessions cannot read anything but the lake; results stream; statements can be cancelled.

mod sql_support;

use std::os::unix::fs::PermissionsExt;

use sql_support::{TestServer, client_available, psql};
use tokio_postgres::SimpleQueryMessage;
use warmlake_daemon::local_query::query_text;
use warmlake_daemon::sql::{SqlLake, TcpConfig};
use warmlake_daemon::view_sql::{Script, Statement, ViewTarget};

/// The text rows of a simple query.
async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}

/// Sends CancelRequests until `statement` (which cannot end otherwise) fails, and returns its
/// failure. A CancelRequest reaching the server before the statement runs does nothing (as in
/// PostgreSQL), hence the repeats; 30 s without an interrupt fails the test.
async fn cancel_until_it_fails(
    token: &tokio_postgres::CancelToken,
    statement: impl std::future::Future<Output = (String, String)>,
) -> (String, String) {
    tokio::pin!(statement);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        token.cancel_query(tokio_postgres::NoTls).await.expect("cancel request");
        if let Ok(failed) = tokio::time::timeout(std::time::Duration::from_millis(50), &mut statement).await {
            return failed;
        }
        assert!(std::time::Instant::now() < deadline, "the statement was not interrupted");
    }
}

/// The SQLSTATE and message of a statement that must fail.
async fn failure(client: &tokio_postgres::Client, sql: &str) -> (String, String) {
    let err = client.simple_query(sql).await.err().unwrap_or_else(|| panic!("{sql} should fail"));
    let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: not a server error: {err}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_is_private_and_named_like_libpq() {
    let server = TestServer::start(|_| {}).await;
    let dir_mode = std::fs::metadata(server.socket_dir()).expect("dir").permissions().mode() & 0o777;
    let sock = server.socket_dir().join(".s.PGSQL.5433");
    let sock_mode = std::fs::metadata(&sock).expect("socket").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    assert_eq!(sock_mode, 0o600);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_equal_duckdb_reading_the_lake() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    for sql in [
        "SELECT count(*), sum(id) FROM sales.orders",
        "SELECT id, customer_id FROM sales.orders ORDER BY id LIMIT 50",
        "SELECT * FROM sales.returns ORDER BY 1",
        "SELECT count(*) FROM web.events",
    ] {
        let expected = query_text(server.latest(), sql).expect("duckdb directly");
        let rows = simple_rows(&client, sql).await;
        let got: Vec<Vec<String>> =
            rows.into_iter().map(|r| r.into_iter().map(|v| v.unwrap_or_else(|| "NULL".into())).collect()).collect();
        assert_eq!(got, expected.rows, "{sql}");
    }
    // extended protocol with a parameter and typed results: a parameter the SQL casts is
    // described with the cast's type, so the client sends an i64
    let rows =
        client.query("SELECT id FROM sales.orders WHERE id < $1::BIGINT ORDER BY id", &[&5_i64]).await.expect("query");
    let ids: Vec<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
    let expected = query_text(server.latest(), "SELECT id FROM sales.orders WHERE id < 5 ORDER BY id").expect("duckdb");
    assert_eq!(ids.iter().map(i64::to_string).collect::<Vec<_>>(), expected.rows.concat());
    // DuckDB does not report parameter types, so other parameters are described as text: the
    // client sends text, DuckDB casts
    let text: Vec<i64> = client
        .query("SELECT id FROM sales.orders WHERE id < $1 ORDER BY id", &[&"5"])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(text, ids);
    // parameters the client types are decoded by that type (binary here)
    let stmt = client
        .prepare_typed("SELECT id FROM sales.orders WHERE id < $1 ORDER BY id", &[tokio_postgres::types::Type::INT8])
        .await
        .expect("prepare");
    let typed: Vec<i64> = client.query(&stmt, &[&5_i64]).await.expect("query").iter().map(|r| r.get(0)).collect();
    assert_eq!(typed, ids);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn types_map_to_postgres_types() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    // Types as described (prepare sends Describe only: no values are encoded).
    let typed = "SELECT 1::INTEGER AS i, 2::BIGINT AS b, 1.5::DOUBLE AS f, 'x' AS s, true AS t, \
                 DATE '2024-01-02' AS d, 12.34::DECIMAL(10,2) AS n, [1, 2] AS l, {'a': 1} AS st";
    let stmt = client.prepare(typed).await.expect("prepare");
    let types: Vec<String> = stmt.columns().iter().map(|c| c.type_().name().to_owned()).collect();
    assert_eq!(types, ["int4", "int8", "float8", "text", "bool", "date", "numeric", "json", "json"]);
    // Binary results (what tokio-postgres asks for) for the types that have a binary encoder.
    let row = client
        .query_one("SELECT 1::INTEGER AS i, 2::BIGINT AS b, 1.5::DOUBLE AS f, 'x' AS s, true AS t", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, i64>(1), 2);
    assert_eq!(row.get::<_, f64>(2), 1.5);
    assert_eq!(row.get::<_, &str>(3), "x");
    assert!(row.get::<_, bool>(4));
    let text = simple_rows(
        &client,
        "SELECT true, DATE '2024-01-02', [1, 2], {'a': 'b'}, '\\x01ff'::BLOB, TIMESTAMP '2024-01-02 03:04:05'",
    )
    .await;
    assert_eq!(
        text[0],
        ["t", "2024-01-02", "[1,2]", "{\"a\":\"b\"}", "\\x016666", "2024-01-02 03:04:05"].map(|s| Some(s.to_owned()))
    );
    let version = simple_rows(&client, "SELECT version()").await;
    assert!(version[0][0].as_deref().unwrap_or("").starts_with("PostgreSQL 16.0 (warmlake"), "{version:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_cannot_reach_beyond_the_lake() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let outside = server.tmp.path().join("outside.csv");
    std::fs::write(&outside, "a\n1\n").expect("write");
    let inside = format!("{}out.csv", server.latest().data_root);
    for sql in [
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        format!("SELECT * FROM read_csv('{}')", outside.display()),
        "SELECT * FROM read_text('/etc/hostname')".to_owned(),
        "SELECT * FROM glob('/etc/*')".to_owned(),
        "ATTACH '/tmp/other.db' AS other".to_owned(),
        "INSTALL httpfs".to_owned(),
        "LOAD httpfs".to_owned(),
        format!("COPY (SELECT 1) TO '{inside}'"),
        "COPY (SELECT 1) TO '/tmp/warmlake-escape.csv'".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
        "DROP VIEW sales.orders".to_owned(),
        "SELECT 1; ATTACH '/tmp/other.db' AS other".to_owned(),
    ] {
        let (code, message) = failure(&client, &sql).await;
        assert_eq!(code, "42501", "{sql}: {message}");
    }
    // configuration cannot be unlocked: SET never reaches DuckDB
    client.simple_query("SET enable_external_access = true").await.expect("SET is a session setting");
    let (code, _) = failure(&client, "SELECT * FROM read_csv('/etc/passwd')").await;
    assert_eq!(code, "42501");
    assert!(!std::path::Path::new(&inside).exists());
    // and the lake still reads
    let rows = simple_rows(&client, "SELECT count(*) > 0 FROM sales.orders").await;
    assert_eq!(rows, [[Some("t".to_owned())]]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_results_stream() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    use futures::StreamExt;
    let stream = client
        .query_raw("SELECT i, repeat('x', 100) AS pad FROM range(1000000) t(i)", std::iter::empty::<i64>())
        .await
        .expect("query");
    futures::pin_mut!(stream);
    let mut count = 0_u64;
    let mut sum = 0_i64;
    while let Some(row) = stream.next().await {
        let row = row.expect("row");
        sum += row.get::<_, i64>(0);
        count += 1;
    }
    assert_eq!(count, 1_000_000);
    assert_eq!(sum, 999_999 * 1_000_000 / 2);
    server.stop().await;
}

/// Rows reach the client while DuckDB still produces the result, in both protocols: after the
/// first row a CancelRequest stops the query. Were the result collected before its first row
/// was sent (as pgwire's own Execute does), every row would arrive and the cancel find nothing
/// running.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_rows_arrive_while_the_query_runs() {
    use futures::StreamExt;
    const ROWS: i64 = 10_000_000;
    let sql = format!("SELECT i FROM range({ROWS}) t(i)");
    let server = TestServer::start(|_| {}).await;
    for simple in [false, true] {
        let client = server.client().await;
        let token = client.cancel_token();
        let mut rows: std::pin::Pin<Box<dyn futures::Stream<Item = Result<(), tokio_postgres::Error>> + Send>> =
            if simple {
                Box::pin(client.simple_query_raw(&sql).await.expect("query").map(|m| m.map(|_| ())))
            } else {
                Box::pin(client.query_raw(&sql, std::iter::empty::<i64>()).await.expect("query").map(|r| r.map(|_| ())))
            };
        rows.next().await.expect("a first message").expect("no error yet");
        token.cancel_query(tokio_postgres::NoTls).await.expect("cancel request");
        let mut received = 1_i64;
        let error = loop {
            match rows.next().await {
                Some(Ok(())) => received += 1,
                Some(Err(e)) => break e,
                None => panic!(
                    "simple protocol {simple}: all {received} messages arrived, the cancel found nothing running"
                ),
            }
        };
        let code = error.as_db_error().map(|e| e.code().code().to_owned());
        assert_eq!(code.as_deref(), Some("57014"), "simple protocol {simple}: {error}");
        assert!(received < ROWS, "simple protocol {simple}: {received} rows before the cancel");
        // the session goes on
        assert_eq!(simple_rows(&client, "SELECT 1").await, [[Some("1".to_owned())]]);
    }
    server.stop().await;
}

/// A session remembers what it described (drivers describe every query string), but never
/// past a change of the views: after a publish the same statement is described anew.
#[tokio::test(flavor = "multi_thread")]
async fn a_described_statement_is_described_anew_when_the_views_change() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let lake = |snapshot, select: &str| SqlLake { snapshot, script: views(&[("v", select)]) };
    let names =
        |stmt: &tokio_postgres::Statement| stmt.columns().iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
    server.publish_lake(&client, lake(1001, "SELECT 1::BIGINT AS a")).await;
    for _ in 0..2 {
        let stmt = client.prepare("SELECT * FROM t.v").await.expect("prepare");
        assert_eq!(names(&stmt), ["a"]);
        assert_eq!(client.query_one(&stmt, &[]).await.expect("query").get::<_, i64>(0), 1);
    }
    server.publish_lake(&client, lake(1002, "SELECT 2::BIGINT AS a, 'x' AS b")).await;
    let stmt = client.prepare("SELECT * FROM t.v").await.expect("prepare");
    assert_eq!(names(&stmt), ["a", "b"]);
    let row = client.query_one(&stmt, &[]).await.expect("query");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), (2, "x".to_owned()));
    server.stop().await;
}

/// SQL cursors (psycopg's named cursors, psycopg2, SQLAlchemy's `stream_results`): DECLARE
/// inside a transaction, FETCH and MOVE forward in both protocols while other statements run,
/// CLOSE. A cursor without `WITH HOLD` closes with its transaction; one with it stays until
/// closed. What PostgreSQL refuses is refused with its SQLSTATE.
#[tokio::test(flavor = "multi_thread")]
async fn sql_cursors_read_a_result_in_parts() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let ints = |rows: Vec<Vec<Option<String>>>| -> Vec<i64> {
        rows.iter().map(|r| r[0].as_deref().expect("a value").parse().expect("an integer")).collect()
    };
    let run = |sql: &'static str| {
        let client = &client;
        async move { client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")) }
    };
    assert_eq!(failure(&client, "DECLARE c CURSOR FOR SELECT 1").await.0, "25P01");

    run("BEGIN").await;
    run("DECLARE c CURSOR FOR SELECT i FROM range(100000) t(i)").await;
    run("DECLARE \"Held\" NO SCROLL CURSOR WITH HOLD FOR SELECT i * 2 AS j FROM range(10) t(i)").await;
    assert_eq!(ints(simple_rows(&client, "FETCH 3 FROM c").await), [0, 1, 2]);
    assert_eq!(ints(simple_rows(&client, "SELECT 42").await), [42]);
    let moved = client.simple_query("MOVE 10 IN c").await.expect("move");
    assert!(matches!(moved.as_slice(), [SimpleQueryMessage::CommandComplete(10)]), "{moved:?}");
    assert_eq!(ints(simple_rows(&client, "FETCH NEXT FROM c").await), [13]);
    // positioned forward: the row 2 ahead, onto row 20, row 22 (rows count from 1)
    assert_eq!(ints(simple_rows(&client, "FETCH RELATIVE 2 FROM c").await), [15]);
    run("MOVE ABSOLUTE 20 IN c").await;
    assert_eq!(ints(simple_rows(&client, "FETCH ABSOLUTE 22 FROM c").await), [21]);
    let rest = ints(simple_rows(&client, "FETCH ALL FROM c").await);
    assert_eq!((rest.len(), rest.first(), rest.last()), (100_000 - 22, Some(&22), Some(&99_999)));
    assert!(simple_rows(&client, "FETCH 5 FROM c").await.is_empty(), "past the end");
    assert_eq!(ints(simple_rows(&client, "FETCH 2 FROM \"Held\"").await), [0, 2]);
    run("COMMIT").await;

    assert_eq!(failure(&client, "FETCH 1 FROM c").await.0, "34000", "closed with its transaction");
    assert_eq!(ints(simple_rows(&client, "FETCH 2 FROM \"Held\"").await), [4, 6]);
    run("CLOSE \"Held\"").await;
    assert_eq!(failure(&client, "FETCH 1 FROM \"Held\"").await.0, "34000");

    run("BEGIN").await;
    run("DECLARE d CURSOR FOR SELECT 1").await;
    assert_eq!(failure(&client, "DECLARE d CURSOR FOR SELECT 2").await.0, "42P03");
    run("ROLLBACK").await;
    run("BEGIN").await;
    run("DECLARE e CURSOR FOR SELECT 1").await;
    assert_eq!(failure(&client, "FETCH BACKWARD 1 FROM e").await.0, "55000");
    assert_eq!(ints(simple_rows(&client, "FETCH ABSOLUTE 1 FROM e").await), [1]);
    assert_eq!(failure(&client, "FETCH ABSOLUTE 1 FROM e").await.0, "55000", "the row it is on");
    // the extended protocol: Parse/Describe (the cursor's columns), then Bind/Execute; each
    // FETCH gets its rows in the format it asks for (binary here), whatever the DECLARE's
    run("DECLARE b CURSOR FOR SELECT i, 'v' || i AS s FROM range(10) t(i)").await;
    let rows = client.query("FETCH FORWARD 2 FROM b", &[]).await.expect("fetch (extended, binary)");
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get("i"), r.get("s"))).collect();
    assert_eq!(got, [(0, "v0".to_owned()), (1, "v1".to_owned())]);
    assert_eq!(simple_rows(&client, "FETCH 1 FROM b").await, [[Some("2".to_owned()), Some("v2".to_owned())]]);
    let rows = client.query("FETCH ALL FROM b", &[]).await.expect("the rest, binary");
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>("i")).collect::<Vec<_>>(), (3..10).collect::<Vec<i64>>());
    assert_eq!(failure(&client, "DECLARE f CURSOR FOR ATTACH 'x.db'").await.0, "42501");
    run("ROLLBACK").await;
    server.stop().await;
}

const ENDLESS: &str = "SELECT sum(a.i * b.i) FROM range(100000000) a(i), range(100000000) b(i)";

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_stops_a_query() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    client.simple_query("SET statement_timeout = '200ms'").await.expect("set");
    let (code, message) = failure(&client, ENDLESS).await;
    assert_eq!(code, "57014");
    assert!(message.contains("statement timeout"), "{message}");
    client.simple_query("RESET statement_timeout").await.expect("reset");
    assert_eq!(simple_rows(&client, "SHOW statement_timeout").await, [[Some("0".to_owned())]]);
    server.stop().await;
}

/// `statement_timeout` times each FETCH of a cursor, not the cursor's life: a cursor read
/// slowly outlives the timeout, and a FETCH that takes longer than it is interrupted.
#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_times_each_fetch() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    client.batch_execute("SET statement_timeout = '300ms'; BEGIN").await.expect("begin");
    // a cursor whose query is still running (its batches wait for FETCHes)
    client.batch_execute("DECLARE c CURSOR FOR SELECT i FROM range(10000000) t(i)").await.expect("declare");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // more rows than the batches already encoded before the timeout: the query must go on
    let rows = simple_rows(&client, "FETCH 20000 FROM c").await;
    assert_eq!((rows.len(), rows[19_999][0].as_deref()), (20_000, Some("19999")));
    client.batch_execute(&format!("DECLARE e CURSOR FOR {ENDLESS}")).await.expect("declare");
    let (code, message) = failure(&client, "FETCH 1 FROM e").await;
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("statement timeout"), "{message}");
    server.stop().await;
}

/// A CancelRequest during a FETCH interrupts the cursor's query, even when other statements
/// ran since the cursor was declared.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_request_reaches_a_fetch() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let token = client.cancel_token();
    client.batch_execute("BEGIN").await.expect("begin");
    client.batch_execute(&format!("DECLARE e CURSOR FOR {ENDLESS}")).await.expect("declare");
    assert_eq!(simple_rows(&client, "SELECT 1").await, [[Some("1".to_owned())]]);
    let (code, message) = cancel_until_it_fails(&token, failure(&client, "FETCH 1 FROM e")).await;
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("user request"), "{message}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_request_stops_a_query() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let token = client.cancel_token();
    let (code, message) =
        cancel_until_it_fails(&token, failure(&client, "SELECT sum(i) FROM range(10000000000) t(i)")).await;
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("user request"), "{message}");
    // the session goes on
    assert_eq!(simple_rows(&client, "SELECT 1").await, [[Some("1".to_owned())]]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_report_their_status_and_snapshots_swap_between_statements() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let latest = server.latest().snapshot.id;
    let show = simple_rows(&client, "SHOW warmlake.snapshot").await;
    assert_eq!(show, [[Some(latest.to_string())]]);
    let count = |rows: Vec<Vec<Option<String>>>| rows[0][0].clone().expect("count");
    let before = count(simple_rows(&client, "SELECT count(*) FROM sales.orders").await);
    // an older snapshot published: the next statement sees it whole
    // the newest snapshot whose orders differ from the latest one's
    let (older, expected) = server
        .snapshots
        .iter()
        .rev()
        .filter(|s| s.table("sales", "orders").is_some())
        .map(|s| (s, query_text(s, "SELECT count(*) FROM sales.orders").expect("duckdb").rows[0][0].clone()))
        .find(|(_, n)| *n != before)
        .expect("a snapshot with other orders");
    server.publish(&client, older).await;
    assert_eq!(count(simple_rows(&client, "SELECT count(*) FROM sales.orders").await), expected);
    let mut c = server.client().await;
    let tx = c.transaction().await.expect("begin");
    tx.simple_query("SELECT 1").await.expect("in transaction");
    tx.commit().await.expect("commit");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_is_off_unless_configured() {
    let server = TestServer::start(|_| {}).await;
    assert!(server.config.tcp.is_none());
    assert_eq!(server.tcp_addr, None, "no TCP listener is bound by default");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_requires_the_password() {
    let server = TestServer::start(|c| c.tcp = Some(TcpConfig { port: 0, password: "correct horse".to_owned() })).await;
    let addr = server.tcp_addr.expect("TCP listener");
    assert!(addr.ip().is_loopback(), "{addr}");
    let client = server.tcp_client(Some("correct horse")).await.expect("the right password is accepted");
    let expected = query_text(server.latest(), "SELECT count(*) FROM sales.orders").expect("duckdb");
    assert_eq!(simple_rows(&client, "SELECT count(*) FROM sales.orders").await, [[Some(expected.rows[0][0].clone())]]);
    for wrong in [Some("battery staple"), Some(""), None] {
        let err = server.tcp_client(wrong).await.err().unwrap_or_else(|| panic!("{wrong:?} must be refused"));
        match err.as_db_error() {
            Some(db) => assert_eq!(db.code().code(), "28P01", "{wrong:?}: {db}"),
            // without a password the client gives up before the server answers
            None => assert!(wrong.is_none(), "{wrong:?}: {err}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_reads_the_lake() {
    if !client_available("psql", "psql_reads_the_lake") {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let (out, err, ok) = psql(&server, &["-c", "SELECT count(*) FROM sales.orders"]);
    assert!(ok, "{err}");
    let expected = query_text(server.latest(), "SELECT count(*) FROM sales.orders").expect("duckdb");
    assert_eq!(out.trim(), expected.rows[0][0]);

    let (out, err, ok) = psql(&server, &["-c", "\\dt"]);
    assert!(ok, "\\dt: {err}");
    assert!(out.contains("sales|orders"), "\\dt: {out}");
    // `\d table`: the columns with their types as PostgreSQL names them (and as results
    // announce them), in the table's order
    let (out, err, ok) = psql(&server, &["-c", "\\d sales.orders"]);
    assert!(ok, "\\d: {err}");
    let columns: Vec<&str> = out.lines().filter_map(|l| l.strip_suffix("|||")).collect();
    assert_eq!(
        columns,
        [
            "id|bigint",
            "customer_id|integer",
            "region|text",
            "amount|numeric(12,2)",
            "ordered_at|timestamp without time zone",
            "comment|text",
            "channel|text"
        ],
        "\\d: {out}"
    );
    let (out, err, ok) = psql(&server, &["-c", "\\dn"]);
    assert!(ok, "\\dn: {err}");
    assert!(out.lines().any(|l| l.starts_with("sales|")) && out.lines().any(|l| l.starts_with("web|")), "\\dn: {out}");
    let (out, err, ok) = psql(&server, &["-c", "\\l"]);
    assert!(ok && out.lines().count() == 1, "\\l: {out} {err}");

    // `\copy (query) to file`: COPY ... TO STDOUT, written by psql; the file holds the rows
    let file = server.tmp.path().join("copied.csv");
    let query = "SELECT id, customer_id, region FROM sales.orders ORDER BY id LIMIT 20";
    let copy = format!("\\copy ({query}) to '{}' with (format csv, header)", file.display());
    let (out, err, ok) = psql(&server, &["-c", &copy]);
    assert!(ok, "\\copy: {err}");
    assert_eq!(out.trim(), "COPY 20");
    let expected = query_text(server.latest(), query).expect("duckdb");
    let mut lines = vec!["id,customer_id,region".to_owned()];
    lines.extend(expected.rows.iter().map(|r| r.join(",")));
    assert_eq!(std::fs::read_to_string(&file).expect("copied file"), lines.join("\n") + "\n");
    // text format: tab-separated, NULL as \N, backslashes escaped
    let (out, err, ok) = psql(&server, &["-c", "COPY (SELECT 1 AS a, NULL AS b, 'x\\y' AS c) TO STDOUT"]);
    assert!(ok, "COPY text: {err}");
    assert_eq!(out, "1\t\\N\tx\\\\y\n");

    let (_, err, ok) = psql(&server, &["-c", "SELECT * FROM read_csv('/etc/passwd')"]);
    assert!(!ok && err.contains("Permission"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_user_is_refused() {
    if !client_available("psql", "another_user_is_refused") {
        return;
    }
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let runuser = std::process::Command::new("runuser").arg("--help").output().is_ok();
    if !is_root || !runuser {
        assert!(std::env::var("CI").as_deref() != Ok("true") || !is_root, "runuser is required on CI");
        eprintln!("another_user_is_refused: skipped, needs root and runuser to connect as nobody");
        return;
    }
    // a folder of its own that `nobody` can reach, so the refusal comes from the peer check
    let shared = tempfile::Builder::new().prefix("warmlake-sql-uid").tempdir_in("/tmp").expect("tempdir");
    let socket_dir = shared.path().join("sock");
    let server = TestServer::start(|c| c.socket_dir = socket_dir.clone()).await;
    for p in [shared.path(), socket_dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(socket_dir.join(".s.PGSQL.5433"), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "psql", "-X", "-h"])
        .arg(&socket_dir)
        .args(["-p", "5433", "-d", "lake", "-c", "SELECT 1"])
        .output()
        .expect("runuser psql");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("FATAL") && err.contains("only to its own Unix user"), "{err}");
    server.stop().await;
}

/// A portal read in parts (pgjdbc with a fetch size) stays open while the session runs other
/// statements and opens other portals; its rows go on where they stopped. A session holds at
/// most 16 such cursors; the 17th is refused with a clear error and the session goes on.
#[tokio::test(flavor = "multi_thread")]
async fn portals_read_in_parts_stay_open_between_statements() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.client().await;
    let tx = client.transaction().await.expect("begin");
    let stmt = tx.prepare("SELECT i FROM range(100000) t(i)").await.expect("prepare");
    let values = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>();
    let portal = tx.bind(&stmt, &[]).await.expect("bind");
    assert_eq!(values(tx.query_portal(&portal, 3).await.expect("first rows")), [0, 1, 2]);
    let other = tx.query_one("SELECT 42::BIGINT", &[]).await.expect("a statement while the portal is open");
    assert_eq!(other.get::<_, i64>(0), 42);
    let second = tx.bind(&stmt, &[]).await.expect("bind a second portal");
    assert_eq!(values(tx.query_portal(&second, 2).await.expect("its first rows")), [0, 1]);
    assert_eq!(values(tx.query_portal(&portal, 3).await.expect("more rows")), [3, 4, 5]);
    let rest = values(tx.query_portal(&portal, 0).await.expect("the rest"));
    assert_eq!(rest.len(), 100_000 - 6);
    assert_eq!(rest.first(), Some(&6));
    assert_eq!(rest.last(), Some(&99_999));
    drop(second);
    tx.rollback().await.expect("rollback");

    let tx = client.transaction().await.expect("begin");
    let mut open = Vec::new();
    let refused = loop {
        let portal = tx.bind(&stmt, &[]).await.expect("bind");
        match tx.query_portal(&portal, 1).await {
            Ok(rows) => assert_eq!(rows.len(), 1),
            Err(e) => break e,
        }
        open.push(portal);
        assert!(open.len() <= 16, "{} cursors open", open.len());
    };
    assert_eq!(open.len(), 16);
    let db = refused.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "54000", "{}", db.message());
    assert!(db.message().contains("at most 16 open cursors"), "{}", db.message());
    tx.rollback().await.expect("rollback");

    // portals end with their transaction, as in PostgreSQL, and their cursors with them: the
    // next transaction may open 16 again (a cursor's thread ends just after its portal)
    let tx = client.transaction().await.expect("begin");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut reopened = Vec::new();
    while reopened.len() < 16 {
        let portal = tx.bind(&stmt, &[]).await.expect("bind");
        match tx.query_portal(&portal, 1).await {
            Ok(rows) => reopened.push((portal, rows.len())),
            Err(e) if std::time::Instant::now() < deadline => {
                assert_eq!(e.as_db_error().map(|d| d.code().code()), Some("54000"), "{e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the last transaction's cursors are still open: {e}"),
        }
    }
    assert!(reopened.iter().all(|(_, n)| *n == 1));
    let gone = tx.query_portal(&open[0], 1).await.expect_err("a portal of an ended transaction");
    assert!(gone.as_db_error().is_some(), "{gone}");
    drop(tx);
    assert_eq!(simple_rows(&client, "SELECT 1").await, [[Some("1".to_owned())]]);
    server.stop().await;
}

/// Reads (and drops) the rest of `portal` row by row until it fails: the failure's SQLSTATE
/// and message.
async fn rest_fails(tx: &tokio_postgres::Transaction<'_>, portal: &tokio_postgres::Portal) -> (String, String) {
    let mut rows = std::pin::pin!(tx.query_portal_raw(portal, 0).await.expect("portal read"));
    while let Some(row) = futures::StreamExt::next(&mut rows).await {
        if let Err(e) = row {
            let db = e.as_db_error().unwrap_or_else(|| panic!("not a server error: {e}"));
            return (db.code().code().to_owned(), db.message().to_owned());
        }
    }
    panic!("an endless portal ended");
}

/// Each Execute of a portal read in parts (pgjdbc's fetch size) is timed by `statement_timeout`,
/// not the time between them, and a CancelRequest reaches it after other statements ran.
#[tokio::test(flavor = "multi_thread")]
async fn each_read_of_a_portal_in_parts_is_timed_and_can_be_canceled() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.client().await;
    let token = client.cancel_token();
    let values = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>();
    let endless = "SELECT i FROM range(1000000000000) t(i)";
    client.batch_execute("SET statement_timeout = '300ms'").await.expect("set");
    let tx = client.transaction().await.expect("begin");
    let stmt = tx.prepare(endless).await.expect("prepare");
    let portal = tx.bind(&stmt, &[]).await.expect("bind");
    assert_eq!(values(tx.query_portal(&portal, 3).await.expect("first rows")), [0, 1, 2]);
    // time between reads is the client's, not the statement's
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(values(tx.query_portal(&portal, 3).await.expect("more rows")), [3, 4, 5]);
    let (code, message) = tokio::time::timeout(std::time::Duration::from_secs(30), rest_fails(&tx, &portal))
        .await
        .expect("the read was not timed");
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("statement timeout"), "{message}");
    tx.rollback().await.expect("rollback");

    client.batch_execute("SET statement_timeout = 0").await.expect("set");
    let tx = client.transaction().await.expect("begin");
    let stmt = tx.prepare(endless).await.expect("prepare");
    let portal = tx.bind(&stmt, &[]).await.expect("bind");
    assert_eq!(values(tx.query_portal(&portal, 3).await.expect("first rows")), [0, 1, 2]);
    assert_eq!(tx.query_one("SELECT 42::BIGINT", &[]).await.expect("a statement between").get::<_, i64>(0), 42);
    let (code, message) = cancel_until_it_fails(&token, rest_fails(&tx, &portal)).await;
    assert_eq!(code, "57014", "{message}");
    assert!(message.contains("user request"), "{message}");
    tx.rollback().await.expect("rollback");
    server.stop().await;
}

/// A script creating schema `t` and the views `(name, select)` in it.
fn views(views: &[(&str, &str)]) -> Script {
    let mut statements = vec![Statement { sql: "CREATE SCHEMA IF NOT EXISTS t".into(), view: None, unreadable: None }];
    for (name, select) in views {
        statements.push(Statement {
            sql: format!("CREATE OR REPLACE VIEW t.{name} AS {select}"),
            view: Some(ViewTarget {
                schema: "t".into(),
                name: name.to_string(),
                columns: vec![("a".into(), "BIGINT".into())],
            }),
            unreadable: None,
        });
    }
    Script { header: String::new(), statements }
}

/// A view DuckDB refuses to create (here a file that is not there) does not keep the others
/// from publishing: it is served as a view whose every read fails naming the table and
/// DuckDB's reason, and the server reports it.
#[tokio::test(flavor = "multi_thread")]
async fn a_view_duckdb_refuses_is_served_as_unreadable_and_the_others_publish() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client().await;
    let missing = server.latest().data_root.clone() + "no/such/file.parquet";
    let bad = format!("SELECT a FROM read_parquet('{missing}')");
    server
        .publish_lake(
            &client,
            SqlLake { snapshot: 1001, script: views(&[("good", "SELECT 1::BIGINT AS a"), ("bad", &bad)]) },
        )
        .await;
    let good = client.query_one("SELECT a FROM t.good", &[]).await.expect("the good view is served");
    assert_eq!(good.get::<_, i64>(0), 1);
    for q in ["SELECT * FROM t.bad", "SELECT count(*) FROM t.bad", "SELECT a FROM t.bad WHERE a = 2"] {
        let err = client.query(q, &[]).await.expect_err("an unreadable table fails");
        let message = err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.contains("warmlake: table t.bad cannot be read"), "{q}: {message}");
        assert!(message.contains("file.parquet"), "DuckDB's reason is kept: {message}");
    }
    let described = client.prepare("SELECT * FROM t.bad").await.expect("its columns are described");
    assert_eq!(described.columns()[0].name(), "a");
    server.stop().await;
}
