//! DuckLake semantics through the SQL socket: every table of every reference lake, at every
//! snapshot the DuckLake extension recorded, read by a client over the socket, equals the
//! extension's own answer (`expected/<schema>.<table>@<snapshot>.parquet`) as a multiset of rows.
//! The expected file is read through the same socket, so both sides reach the client through the
//! same encoder and are compared as the client sees them: column names, wire types and text;
//! every value must have a binary encoding too.

mod fixtures;
mod reference_support;
mod sql_support;

use std::path::PathBuf;

use reference_support::{expected_answers, lake_dir, open_lake};
use sql_support::TestServer;
use tokio_postgres::SimpleQueryMessage;

type Rows = Vec<Vec<Option<String>>>;

/// The rows of `sql` as text, sorted (row order is not part of the answer).
async fn sorted_rows(client: &tokio_postgres::Client, sql: &str) -> Rows {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows: Rows = messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect();
    rows.sort();
    rows
}

/// Column names and announced PostgreSQL types of `sql` (a Describe, nothing runs).
async fn columns(client: &tokio_postgres::Client, sql: &str) -> Vec<(String, String)> {
    let stmt = client.prepare(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    stmt.columns().iter().map(|c| (c.name().to_owned(), c.type_().name().to_owned())).collect()
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks every expected answer of lake `name` over the socket; returns how many.
async fn check_lake(name: &str) -> usize {
    let reader = open_lake(name);
    let answers = expected_answers(name);
    let mut snapshots: Vec<i64> = answers.iter().map(|a| a.snapshot).collect();
    snapshots.sort_unstable();
    snapshots.dedup();
    let lakes: Vec<_> = snapshots.iter().map(|id| reader.read_snapshot(*id).expect("snapshot reads")).collect();
    let expected_dir = lake_dir(name).join("expected").canonicalize().expect("expected dir");
    let readable = vec![PathBuf::from(reader.data_root()), expected_dir];
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = TestServer::serve(tmp, lakes.clone(), readable, |_| {}).await;
    let client = server.client().await;
    let mut checked = 0;
    for lake in &lakes {
        server.publish(&client, lake).await;
        for answer in answers.iter().filter(|a| a.snapshot == lake.snapshot.id) {
            let stem = &answer.stem;
            let table = format!("{}.{}", ident(&answer.schema), ident(&answer.table));
            // the expected file's columns cast to the view's types: Parquet has no HUGEINT and
            // DuckDB writes TIMESTAMP_MS as TIMESTAMP (`fixtures::same_type`)
            let view_types = client
                .simple_query(&format!("DESCRIBE {table}"))
                .await
                .unwrap_or_else(|e| panic!("{stem}: describe: {e}"));
            let casts: Vec<String> = view_types
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some((r.get(0)?.to_owned(), r.get(1)?.to_owned())),
                    _ => None,
                })
                .map(|(column, ty)| format!("CAST({} AS {ty}) AS {}", ident(&column), ident(&column)))
                .collect();
            let file = answer.path.canonicalize().expect("expected file").display().to_string().replace('\'', "''");
            let expected_sql = format!("SELECT {} FROM read_parquet('{file}')", casts.join(", "));
            let got_sql = format!("SELECT * FROM {table}");
            assert_eq!(columns(&client, &got_sql).await, columns(&client, &expected_sql).await, "{stem}: columns");
            let (got, want) = (sorted_rows(&client, &got_sql).await, sorted_rows(&client, &expected_sql).await);
            if got != want {
                let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
                let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
                panic!(
                    "{stem}: {} rows, expected {}; e.g. extra {extra:?}, missing {missing:?}",
                    got.len(),
                    want.len()
                );
            }
            // every value also has a binary encoding (what tokio-postgres asks for)
            let binary = client.query(&got_sql, &[]).await.unwrap_or_else(|e| panic!("{stem}: binary: {e}"));
            assert_eq!(binary.len(), want.len(), "{stem}: binary rows");
            checked += 1;
        }
    }
    server.stop().await;
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn shop_over_the_socket_matches_the_extension_at_every_snapshot() {
    assert_eq!(check_lake("shop").await, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn types_over_the_socket_match_the_extension_at_every_snapshot() {
    assert_eq!(check_lake("types").await, 3);
}
