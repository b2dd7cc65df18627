//! PostgreSQL catalogs, against a real PostgreSQL server (see `pg_server`): the generator writes
//! one, it reads back exactly like the DuckDB-file and SQLite catalogs of the same lake, and a
//! catalog server that is down or silent is an unreachable catalog that never shows a password.

mod pg_server;
mod same_lake;

use pg_server::PgServer;
use warmlake_daemon::catalog::{CatalogError, CatalogLocation, CatalogReader};
use warmlake_daemon::generate::{self, CatalogKind, LakeSpec};

fn small_spec() -> LakeSpec {
    LakeSpec { events_rows: 5_000, events_files: 2, row_group_rows: 1_000, order_batches: 3, plain: false }
}

/// The catalog lives in its own schema, as the DuckLake extension's `METADATA_SCHEMA` puts it,
/// so the search-path route the reader documents is what the tests use.
const SCHEMA: &str = "lake_meta";

fn with_search_path(conn: &str) -> String {
    format!("{conn} options=-csearch_path={SCHEMA}")
}

#[test]
fn duckdb_sqlite_and_postgres_catalogs_read_back_identically_at_every_snapshot() {
    let Some(pg) = PgServer::start_or_skip("duckdb_sqlite_and_postgres_catalogs_read_back_identically") else {
        return;
    };
    let db = pg.create_database("lake");
    pg.execute("lake", &format!("CREATE SCHEMA {SCHEMA}"));
    let conn = with_search_path(&db);

    let tmp = tempfile::tempdir().expect("tempdir");
    let lake =
        generate::generate_with_postgres(tmp.path(), &small_spec(), &[CatalogKind::DuckDb, CatalogKind::Sqlite], &conn)
            .expect("generate");
    assert_eq!(lake.postgres, Some(CatalogLocation::Postgres(conn.clone())));

    let open = |loc: &CatalogLocation| CatalogReader::open(loc, None).unwrap_or_else(|e| panic!("open {loc}: {e}"));
    let duck = open(&CatalogLocation::parse(&lake.catalogs[0].to_string_lossy()));
    let lite = open(&CatalogLocation::parse(&lake.catalogs[1].to_string_lossy()));
    let postgres = open(&CatalogLocation::parse(&format!("postgres:{conn}")));
    assert!(matches!(postgres.location(), CatalogLocation::Postgres(_)));
    assert_eq!(postgres.features().version, "1.0");

    // A PostgreSQL catalog has no file to be relative to: its data_path is the absolute data
    // folder, and resolves to the same root the file catalogs reach through `data/`.
    let data_root = format!("{}/", tmp.path().join("data").display());
    assert_eq!(postgres.data_root(), data_root);
    assert_eq!(duck.data_root(), data_root);

    // Not a vacuous comparison: the lake is there, with its history, read from PostgreSQL.
    let latest = postgres.read_snapshot(lake.latest_snapshot).expect("latest");
    assert_eq!(same_lake::rows(&latest, "SELECT count(*) FROM sales.orders"), [["7400"]]);
    assert_eq!(same_lake::rows(&latest, "SELECT sum(refund) FROM sales.returns"), [["47.75"]]);
    let email = latest.table("sales", "customers").and_then(|t| t.columns.iter().find(|c| c.name == "email"));
    assert_eq!(email.and_then(|c| c.tags.get("pii")).map(String::as_str), Some("true"));

    let compared = same_lake::assert_same_lake(&[("duckdb", &duck), ("sqlite", &lite), ("postgres", &postgres)]);
    assert_eq!(compared as i64, lake.latest_snapshot + 1);

    // Without the search path the catalog's schema is not visible: not a DuckLake catalog.
    match CatalogReader::open(&CatalogLocation::Postgres(db), None) {
        Err(CatalogError::NotDuckLake { .. }) => {}
        other => panic!("expected NotDuckLake without the search path, got {:?}", other.err()),
    }
}

/// The reader blocks, but must not panic when called on a runtime's thread (a `block_on` in the
/// caller's thread would: "Cannot start a runtime from within a runtime").
#[test]
fn reading_from_inside_an_async_runtime_does_not_panic() {
    let Some(pg) = PgServer::start_or_skip("reading_from_inside_an_async_runtime_does_not_panic") else {
        return;
    };
    let conn = pg.create_database("lake");
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = generate::generate_with_postgres(tmp.path(), &small_spec(), &[], &conn).expect("generate");
    assert!(lake.catalogs.is_empty(), "only the PostgreSQL catalog was asked for");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let latest = rt.block_on(async {
        let reader = CatalogReader::open(&CatalogLocation::Postgres(conn), None).expect("open");
        reader.latest_snapshot().expect("latest").id
    });
    assert_eq!(latest, lake.latest_snapshot);
}

#[test]
fn a_missing_database_or_catalog_is_a_clear_error_without_the_password() {
    let Some(pg) = PgServer::start_or_skip("a_missing_database_or_catalog_is_a_clear_error") else {
        return;
    };
    let missing = format!("{} password=hunter2-secret", pg.conn("no_such_db"));
    match CatalogReader::open(&CatalogLocation::Postgres(missing), None) {
        Err(e @ CatalogError::Unreachable { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("no_such_db") && msg.contains("does not exist"), "{msg}");
            assert!(!msg.contains("hunter2"), "password shown: {msg}");
        }
        other => panic!("expected Unreachable, got {:?}", other.err()),
    }
    let empty = pg.create_database("empty");
    match CatalogReader::open(&CatalogLocation::Postgres(empty), None) {
        Err(CatalogError::NotDuckLake { reason, .. }) => assert!(reason.contains("ducklake_metadata"), "{reason}"),
        other => panic!("expected NotDuckLake, got {:?}", other.err()),
    }
}

/// A port that was free a moment ago: nothing listens there.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn a_server_that_is_down_is_unreachable_and_the_password_stays_hidden() {
    let port = closed_port();
    for conn in [
        format!("postgresql://warmlake:hunter2-secret@127.0.0.1:{port}/lake"),
        format!("host=127.0.0.1 port={port} user=warmlake password=hunter2-secret dbname=lake"),
    ] {
        match CatalogReader::open(&CatalogLocation::parse(&conn), None) {
            Err(e @ CatalogError::Unreachable { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("error connecting to server"), "{msg}");
                assert!(msg.contains(&port.to_string()), "names the server: {msg}");
                assert!(!msg.contains("hunter2"), "password shown: {msg}");
            }
            other => panic!("expected Unreachable for a closed port, got {:?}", other.err()),
        }
    }
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepted by the kernel's backlog, never read: the startup message gets no reply. The
    // driver's own connect_timeout only covers opening the socket.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let conn = format!("host=127.0.0.1 port={port} user=warmlake dbname=lake connect_timeout=1");
    match CatalogReader::open(&CatalogLocation::Postgres(conn), None) {
        Err(e @ CatalogError::Unreachable { .. }) => assert!(e.to_string().contains("no answer"), "{e}"),
        other => panic!("expected Unreachable for a silent server, got {:?}", other.err()),
    }
}
