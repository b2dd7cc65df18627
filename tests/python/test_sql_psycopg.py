"""psycopg 3 against the SQL socket (`warmlake serve-sql`): server-side parameters, typed
results, a large streamed result, refusals, and answers equal to DuckDB reading the lake."""

import os
import subprocess
import time

import duckdb
import pytest

from conftest import warmlake_bin

psycopg = pytest.importorskip("psycopg") if os.environ.get("CI") != "true" else __import__("psycopg")


@pytest.fixture(scope="module")
def sql_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("warmlake-sql")
    lake_dir = root / "lake"
    subprocess.run([warmlake_bin(), "dev", "make-lake", str(lake_dir), "--events-rows", "50000", "--events-files", "2"],
                   check=True, capture_output=True)
    sock = root / "sock"
    log = open(root / "serve-sql.log", "w")
    server = subprocess.Popen([warmlake_bin(), "serve-sql", str(lake_dir / "catalog.ducklake"), "--socket-dir", str(sock),
                               "--port", "5433"], stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while not (sock / ".s.PGSQL.5433").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"serve-sql did not start: {(root / 'serve-sql.log').read_text()}")
        time.sleep(0.1)
    lake_sql = subprocess.run([warmlake_bin(), "dev", "lake-sql", str(lake_dir / "catalog.ducklake")],
                              check=True, capture_output=True, text=True).stdout
    yield {"dsn": f"host={sock} port=5433 dbname=lake", "lake_sql": lake_sql}
    server.terminate()
    server.wait(timeout=30)


def duck(lake_sql, sql):
    con = duckdb.connect()
    con.execute(lake_sql)
    return con.execute(sql).fetchall()


def test_parameters_and_results_equal_duckdb(sql_lake):
    with psycopg.connect(sql_lake["dsn"]) as conn:
        rows = conn.execute("SELECT id, customer_id FROM sales.orders WHERE id < %s ORDER BY id", (50,)).fetchall()
        assert rows == duck(sql_lake["lake_sql"], "SELECT id, customer_id FROM sales.orders WHERE id < 50 ORDER BY id")
        (n,) = conn.execute("SELECT count(*) FROM web.events").fetchone()
        assert n == duck(sql_lake["lake_sql"], "SELECT count(*) FROM web.events")[0][0]
        (version,) = conn.execute("SELECT version()").fetchone()
        assert version.startswith("PostgreSQL 16.0 (warmlake")


def test_large_result_streams(sql_lake):
    with psycopg.connect(sql_lake["dsn"]) as conn:
        total = count = 0
        for (i,) in conn.cursor().stream("SELECT i FROM range(1000000) t(i)"):
            total += i
            count += 1
        assert count == 1_000_000
        assert total == 999_999 * 1_000_000 // 2


def test_file_access_is_refused(sql_lake):
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ATTACH '/tmp/x.db' AS x")
        assert conn.execute("SELECT count(*) > 0 FROM sales.orders").fetchone() == (True,)
