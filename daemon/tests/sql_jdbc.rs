//! pgjdbc (Debian libpostgresql-jdbc-java) against the SQL socket's TCP listener: connecting with
//! the password, `DatabaseMetaData.getTables`/`getColumns`, a query read with a fetch size (other
//! statements running while it is open), and a prepared statement with typed parameters. The
//! Java program is compiled with javac here.

mod sql_support;

use std::path::Path;
use std::process::Command;

use sql_support::{TestServer, client_available};
use warmlake_daemon::local_query::query_text;
use warmlake_daemon::sql::TcpConfig;

const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Whether javac, java and the pgjdbc jar are here; on CI their absence is a failure.
fn jdbc_available() -> bool {
    if !client_available("javac", "pgjdbc_reads_the_lake") || !client_available("java", "pgjdbc_reads_the_lake") {
        return false;
    }
    let jar = Path::new(JDBC_JAR).exists();
    if !jar {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{JDBC_JAR} is required on CI (libpostgresql-jdbc-java)");
        eprintln!("pgjdbc_reads_the_lake: skipped, {JDBC_JAR} is not installed");
    }
    jar
}

#[tokio::test(flavor = "multi_thread")]
async fn pgjdbc_reads_the_lake() {
    if !jdbc_available() {
        return;
    }
    let password = "jdbc secret";
    let server = TestServer::start(|c| c.tcp = Some(TcpConfig { port: 0, password: password.to_owned() })).await;
    let port = server.tcp_addr.expect("TCP listener").port().to_string();
    let classes = server.tmp.path().join("classes");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql_support/LakeJdbc.java");
    let javac = Command::new("javac").arg("-d").arg(&classes).arg(&source).output().expect("run javac");
    assert!(javac.status.success(), "javac: {}", String::from_utf8_lossy(&javac.stderr));
    let classpath = format!("{JDBC_JAR}:{}", classes.display());
    // java blocks: run it off the runtime that serves it
    let run = {
        let (classpath, port) = (classpath.clone(), port.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("java").args(["-cp", &classpath, "LakeJdbc", &port, password]).output().expect("run java")
        })
    };
    let out = run.await.expect("java thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "java: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();

    let latest = server.latest();
    let mut tables: Vec<String> =
        latest.tables.iter().filter(|t| t.schema == "sales").map(|t| format!("table sales.{}", t.name)).collect();
    tables.sort();
    let got_tables: Vec<String> = lines.iter().filter(|l| l.starts_with("table ")).map(|l| (*l).to_owned()).collect();
    assert_eq!(got_tables, tables);
    let columns: Vec<&str> = lines.iter().filter(|l| l.starts_with("column ")).copied().collect();
    assert_eq!(
        columns,
        [
            "column id int8",
            "column customer_id int4",
            "column region text",
            "column amount numeric",
            "column ordered_at timestamp",
            "column comment text",
            "column channel text"
        ]
    );
    assert!(lines.contains(&"fetched 100000 4999950000"), "{stdout}");
    // statements run while the fetch-size result was open (they waited forever before cursors)
    assert!(lines.contains(&"interleaved 4"), "{stdout}");
    let expected =
        query_text(latest, "SELECT count(*) FROM sales.orders WHERE id < 50 AND ordered_at >= DATE '2024-01-01'")
            .expect("duckdb");
    assert!(lines.contains(&format!("counted {}", expected.rows[0][0]).as_str()), "{stdout}");
    server.stop().await;
}
