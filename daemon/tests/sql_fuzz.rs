//! Hostile SQL through the socket: statements made of the words the socket classifies itself
//! (cursors, COPY, SET/SHOW, transactions), quotes, dollar quotes, comments, parameters and
//! nesting, sent in both protocols by a real client. Each statement gets an answer or an
//! error; the connection and the server survive it, and a plain query answers right after.
//! 64 cases of 1–6 statements a run; `WARMLAKE_FUZZ_SECONDS` runs rounds for that long.

mod fuzz_support;
mod sql_support;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sql_support::TestServer;

/// Longer than any statement may take: the session's `statement_timeout` (5 s) bounds queries.
const WATCHDOG: Duration = Duration::from_secs(60);

const WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "LIMIT",
    "DECLARE",
    "CURSOR",
    "FOR",
    "WITH",
    "WITHOUT",
    "HOLD",
    "BINARY",
    "SCROLL",
    "NO",
    "FETCH",
    "MOVE",
    "FORWARD",
    "BACKWARD",
    "PRIOR",
    "ALL",
    "NEXT",
    "IN",
    "CLOSE",
    "COPY",
    "TO",
    "STDOUT",
    "CSV",
    "HEADER",
    "FORMAT",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SET",
    "RESET",
    "SHOW",
    "ATTACH",
    "INSTALL",
    ";",
    "(",
    ")",
    ",",
    "=",
    "$1",
    "$2",
    "$$",
    "$a$",
    "--",
    "/*",
    "*/",
    "range(3)",
    "t(i)",
    "i",
    "*",
    "1",
    "-1",
    "0",
    "9223372036854775808",
    "sales.orders",
    "web.events",
    "\"sales@1\".orders",
    "count(*)",
    "'x'",
    "'it''s'",
    "E'\\''",
    "\"c\"",
    "\"C\"\"q\"",
    "c",
    "pg_catalog.pg_class",
    "warmlake.snapshot",
    "search_path",
    "é",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
        1 => "-?[0-9]{1,6}",
        // any characters but NUL, which the protocol's strings cannot carry (the client refuses it)
        1 => "\\PC{0,4}".prop_map(|s| s.replace('\0', "")),
    ]
}

fn statement() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 1..14).prop_map(|t| t.join(" "))
}

/// Fails the case unless `result` is an answer or an error the server sent (not a lost
/// connection or a hang).
fn answered<T>(
    sql: &str,
    result: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<(), TestCaseError> {
    match result {
        Err(_) => Err(TestCaseError::fail(format!("no answer within {WATCHDOG:?}: {sql:?}"))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.as_db_error().is_some() => Ok(()),
        Ok(Err(e)) => Err(TestCaseError::fail(format!("{sql:?}: not a server error: {e}"))),
    }
}

#[test]
fn hostile_statements_get_answers_or_errors() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let server = rt.block_on(TestServer::start(|_| {}));
    let regressions = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/sql.proptest-regressions");
    let strategy = proptest::collection::vec(statement(), 1..6);
    fuzz_support::fuzz("sql fuzz", regressions, 64, strategy, |statements| {
        rt.block_on(async {
            let client = server.client().await;
            client.batch_execute("SET statement_timeout = '5s'").await.expect("set statement_timeout");
            for sql in &statements {
                answered(sql, tokio::time::timeout(WATCHDOG, client.simple_query(sql)).await)?;
                answered(sql, tokio::time::timeout(WATCHDOG, client.prepare(sql)).await)?;
            }
            let one = tokio::time::timeout(WATCHDOG, client.simple_query("ROLLBACK; SELECT 1")).await;
            match one {
                Ok(Ok(messages))
                    if messages.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))) =>
                {
                    Ok(())
                }
                other => Err(TestCaseError::fail(format!("after {statements:?}, SELECT 1 answered {other:?}"))),
            }
        })
    });
    rt.block_on(server.stop());
}
