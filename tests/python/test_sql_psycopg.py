"""psycopg 3 against the SQL socket (`warmlake serve-sql`): server-side parameters, typed
results, a large streamed result, refusals, savepoints, and answers equal to DuckDB reading the
lake; SQLAlchemy and pandas over psycopg."""

import datetime
import decimal
import os
import subprocess
import threading
import uuid

import duckdb
import pytest

from conftest import serve_sql, warmlake_bin

psycopg = pytest.importorskip("psycopg") if os.environ.get("CI") != "true" else __import__("psycopg")


@pytest.fixture(scope="module")
def sql_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("warmlake-sql")
    lake_dir = root / "lake"
    subprocess.run([warmlake_bin(), "dev", "make-lake", str(lake_dir), "--events-rows", "50000", "--events-files", "2"],
                   check=True, capture_output=True)
    server, sock = serve_sql(lake_dir / "catalog.ducklake", root)
    lake_sql = subprocess.run([warmlake_bin(), "dev", "lake-sql", str(lake_dir / "catalog.ducklake")],
                              check=True, capture_output=True, text=True).stdout
    yield {"dsn": f"host={sock} port=5433 dbname=lake", "sock": sock, "lake_sql": lake_sql}
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


@pytest.mark.parametrize("binary", [False, True])
def test_named_cursors_read_in_parts(sql_lake, binary):
    """psycopg's server-side cursors: DECLARE with a bound parameter, a describe of the cursor by
    its name, FETCHes of `itersize` rows, a scroll forward, CLOSE; other statements run while the
    cursor is open. The rows equal DuckDB's reading the lake."""
    sql = "SELECT event_id, kind, duration_ms FROM web.events WHERE duration_ms > %s ORDER BY event_id"
    expected = duck(sql_lake["lake_sql"], sql.replace("%s", "100"))
    assert len(expected) > 1000
    with psycopg.connect(sql_lake["dsn"]) as conn:
        with conn.cursor(name="events", binary=binary) as cur:
            cur.itersize = 500
            cur.execute(sql, (100,))
            assert [d.name for d in cur.description] == ["event_id", "kind", "duration_ms"]
            first = cur.fetchmany(10)
            assert conn.execute("SELECT 42").fetchone() == (42,)
            cur.scroll(5)
            rest = list(cur)
        assert first + rest == expected[:10] + expected[15:]
        conn.rollback()
        with conn.cursor(name="gone") as cur:
            cur.execute("SELECT 1")
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                cur.scroll(-1)


def test_file_access_is_refused(sql_lake):
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ATTACH '/tmp/x.db' AS x")
        assert conn.execute("SELECT count(*) > 0 FROM sales.orders").fetchone() == (True,)


def test_typed_server_side_parameters(sql_lake):
    """psycopg declares each parameter's type (int8, date, numeric ...) and sends dates in binary;
    the server decodes them by that type, with and without a named prepared statement."""
    lake_sql = sql_lake["lake_sql"]
    cases = [
        ("SELECT count(*) FROM sales.orders WHERE id < %s", (50,), "id < 50"),
        ("SELECT count(*) FROM sales.orders WHERE ordered_at >= %s", (datetime.date(2024, 3, 1),),
         "ordered_at >= DATE '2024-03-01'"),
        ("SELECT count(*) FROM sales.orders WHERE ordered_at < %s", (datetime.datetime(2024, 3, 1, 12, 30),),
         "ordered_at < TIMESTAMP '2024-03-01 12:30:00'"),
        ("SELECT count(*) FROM sales.orders WHERE amount > %s", (decimal.Decimal("100.5"),), "amount > 100.5"),
        ("SELECT count(*) FROM sales.orders WHERE region = %s AND id > %s", ("eu", 10), "region = 'eu' AND id > 10"),
    ]
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        for sql, params, where in cases:
            (expected,) = duck(lake_sql, f"SELECT count(*) FROM sales.orders WHERE {where}")[0]
            for prepare in (False, True):
                assert conn.execute(sql, params, prepare=prepare).fetchone() == (expected,), (sql, prepare)
        # values come back with their types
        row = conn.execute("SELECT %s + 1, %s, %s, %s * 2", (decimal.Decimal("1.5"), datetime.date(2024, 1, 2),
                                                             True, 1.25)).fetchone()
        assert row == (decimal.Decimal("2.5"), datetime.date(2024, 1, 2), True, 2.5)


BINARY_VALUES = ("SELECT DATE '2024-01-02' AS d, TIME '01:02:03.25' AS t, TIMESTAMP '2024-01-02 03:04:05.5' AS ts, "
                 "TIMESTAMPTZ '2024-01-02 03:04:05+00' AS tstz, 1.25::DECIMAL(10,2) AS n, "
                 "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID AS u, INTERVAL '1 year 2 months 3 days 04:05:06.5' AS i, "
                 "NULL::DATE AS nd")


def test_binary_results(sql_lake):
    """Binary cursors decode date, time, timestamp(tz), numeric, uuid and interval as the text
    format does, and lake rows read the same in both formats."""
    utc = datetime.timezone.utc
    expected = (datetime.date(2024, 1, 2), datetime.time(1, 2, 3, 250000), datetime.datetime(2024, 1, 2, 3, 4, 5, 500000),
                datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc), decimal.Decimal("1.25"),
                uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                datetime.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.5), None)
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        for binary in (True, False):
            assert conn.cursor(binary=binary).execute(BINARY_VALUES).fetchone() == expected, binary
        lake = "SELECT * FROM sales.orders ORDER BY id LIMIT 500"
        as_binary = conn.cursor(binary=True).execute(lake).fetchall()
        assert as_binary == conn.cursor().execute(lake).fetchall()
        assert as_binary == duck(sql_lake["lake_sql"], lake)


def test_cancel_stops_a_running_query(sql_lake):
    """conn.cancel() sends a CancelRequest; the running statement fails with 57014 and the
    connection stays usable. A cancel arriving before the statement runs does nothing (as in
    PostgreSQL), so the test cancels until the statement ends: it cannot end any other way."""
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        outcome = {}

        def run():
            try:
                conn.execute("SELECT sum(i) FROM range(10000000000) t(i)")
                outcome["error"] = None
            except psycopg.Error as e:
                outcome["error"] = e

        worker = threading.Thread(target=run)
        worker.start()
        while worker.is_alive():
            conn.cancel()
            worker.join(0.05)
        assert isinstance(outcome["error"], psycopg.errors.QueryCanceled), outcome
        assert outcome["error"].sqlstate == "57014"
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_copy_to_stdout(sql_lake):
    """COPY (query) TO STDOUT in text and binary, read with psycopg's copy; rows equal DuckDB's."""
    query = "SELECT id, region, amount, ordered_at FROM sales.orders ORDER BY id LIMIT 200"
    expected = duck(sql_lake["lake_sql"], query)
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        cur = conn.cursor()
        for options in ("", " (FORMAT binary)"):
            with cur.copy(f"COPY ({query}) TO STDOUT{options}") as copy:
                copy.set_types(["int8", "text", "numeric", "timestamp"])
                assert list(copy.rows()) == expected, options
            assert cur.rowcount == len(expected)


def test_savepoints_nest_transactions(sql_lake):
    with psycopg.connect(sql_lake["dsn"]) as conn:
        conn.execute("SELECT 1")
        # psycopg nests with SAVEPOINT; a failure inside rolls back to it and the outer goes on
        with pytest.raises(psycopg.errors.UndefinedTable):
            with conn.transaction():
                conn.execute("SELECT * FROM no_such_table")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        (n,) = conn.execute("SELECT count(*) FROM sales.orders").fetchone()
        assert n == duck(sql_lake["lake_sql"], "SELECT count(*) FROM sales.orders")[0][0]
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            conn.execute("RELEASE SAVEPOINT never_set")
        conn.rollback()
    with psycopg.connect(sql_lake["dsn"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.NoActiveSqlTransaction):
            conn.execute("SAVEPOINT outside")


def test_sqlalchemy_and_pandas_read_the_lake(sql_lake):
    pd = pytest.importorskip("pandas") if os.environ.get("CI") != "true" else __import__("pandas")
    sa = pytest.importorskip("sqlalchemy") if os.environ.get("CI") != "true" else __import__("sqlalchemy")
    # connecting runs SQLAlchemy's dialect setup: SHOW TRANSACTION ISOLATION LEVEL, psycopg's
    # type lookup in a savepoint (to_regtype, ::regtype)
    engine = sa.create_engine(f"postgresql+psycopg://me@/lake?host={sql_lake['sock']}&port=5433")
    sql = "SELECT id, customer_id, region FROM sales.orders WHERE id < 40 ORDER BY id"
    expected = duck(sql_lake["lake_sql"], sql)
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text("SELECT id, customer_id, region FROM sales.orders WHERE id < :n ORDER BY id"),
                            conn, params={"n": 40})
        assert [tuple(r) for r in frame.itertuples(index=False)] == expected
        inspector = sa.inspect(conn)
        assert {"sales", "web"} <= set(inspector.get_schema_names())
        assert "orders" in inspector.get_view_names(schema="sales")
        # column reflection: pg_attribute, pg_sequence, json_build_object, CAST(... AS REGCLASS)
        columns = inspector.get_columns("orders", schema="sales")
        described = duck(sql_lake["lake_sql"], "DESCRIBE sales.orders")
        assert [c["name"] for c in columns] == [row[0] for row in described]
        assert str(columns[0]["type"]) == "BIGINT"
        # whole-table reflection (keys, indexes, options: pg_index, pg_opclass, current_setting)
        orders = sa.Table("orders", sa.MetaData(), schema="sales", autoload_with=conn)
        (n,) = conn.execute(sa.select(sa.func.count()).select_from(orders)).one()
        assert n == duck(sql_lake["lake_sql"], "SELECT count(*) FROM sales.orders")[0][0]
        assert pd.read_sql_table("orders", conn, schema="sales").shape == (n, len(described))
    with engine.connect() as conn:
        rows = sum(len(chunk) for chunk in pd.read_sql("SELECT * FROM web.events", conn, chunksize=10_000))
        assert rows == duck(sql_lake["lake_sql"], "SELECT count(*) FROM web.events")[0][0]
    engine.dispose()
