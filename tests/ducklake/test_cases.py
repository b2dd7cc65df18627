"""Lakes the extension writes that once stopped `warmlake daemon`, each compared with the
extension's answers through the SQL socket, and one bad table among good ones."""

import json
import pathlib
import sqlite3

import duckdb
import psycopg
import pytest

import history
from conftest import Daemon, make_unreachable, require_fuse


@pytest.fixture(autouse=True)
def fuse():
    require_fuse()


def write(root: pathlib.Path, statements: list[str], backend: str = "duckdb", pg_dsn: str | None = None,
          inlining_limit: int = 0) -> history.Lake:
    data = root / "data"
    data.mkdir(parents=True)
    catalog = {
        "duckdb": str(root / "catalog.ducklake"),
        "sqlite": f"sqlite:{root / 'catalog.sqlite'}",
        "postgres": f"postgres:{pg_dsn}",
    }[backend]
    options = history.Options(backend=backend, encrypted=False, inlining_limit=inlining_limit, row_group_size=122880)
    con = duckdb.connect()
    history.load_extensions(con, root / "extensions")
    con.execute(history.attach_sql(catalog, data, options))
    for sql in statements:
        con.execute(sql)
    con.close()
    return history.Lake(0, options, catalog, catalog.removeprefix("postgres:"), data, statements, [])


def extension_rows(lake: history.Lake, sql: str):
    con = duckdb.connect()
    history.load_extensions(con, lake.data.parent / "extensions")
    con.execute(history.attach_sql(lake.catalog, lake.data, lake.options))
    rows = con.execute(sql.replace("FROM ", "FROM l.")).fetchall()
    con.close()
    return rows


def test_columns_added_with_defaults_of_different_types(tmp_path):
    """Two added columns whose defaults have different types (a VARCHAR and a DOUBLE) once made
    the view's field-id map impossible to type, and the daemon did not start."""
    lake = write(tmp_path / "lake", [
        "CREATE TABLE l.t (i INTEGER)",
        "INSERT INTO l.t SELECT range FROM range(100)",
        "ALTER TABLE l.t ADD COLUMN a VARCHAR DEFAULT 'x'",
        "ALTER TABLE l.t ADD COLUMN b DOUBLE DEFAULT 2.5",
        "ALTER TABLE l.t ADD COLUMN c DATE DEFAULT '2024-02-29'",
        "INSERT INTO l.t SELECT range, 'y', NULL, NULL FROM range(100, 105)",
    ])
    daemon = Daemon(tmp_path, lake.warmlake_catalog)
    daemon.start()
    try:
        query = "SELECT a, b, c, count(*) FROM main.t GROUP BY ALL ORDER BY ALL"
        with psycopg.connect(daemon.dsn()) as conn:
            assert conn.execute(query).fetchall() == extension_rows(lake, query)
        con = duckdb.connect()
        con.execute((daemon.mnt / "lake.sql").read_text())
        assert con.execute(query).fetchall() == extension_rows(lake, query)
    finally:
        daemon.stop()


def test_one_bad_table_never_stops_the_daemon(tmp_path):
    """A table whose catalog row names a file outside the lake, and one whose file is gone: the
    daemon starts and serves the good table. The first is named in status with why, and a query
    of it fails naming it; a query of the second fails naming its file, in the table's folder
    (a file's absence shows only when it is read)."""
    lake = write(tmp_path / "lake", [
        "CREATE TABLE l.good (i INTEGER)",
        "INSERT INTO l.good SELECT range FROM range(10)",
        "CREATE TABLE l.escapes (i INTEGER)",
        "INSERT INTO l.escapes SELECT range FROM range(10)",
        "CREATE TABLE l.missing (i INTEGER)",
        "INSERT INTO l.missing SELECT range FROM range(10)",
    ], backend="sqlite")
    db = sqlite3.connect(lake.warmlake_catalog.removeprefix("sqlite:"))
    (escapes_id,) = db.execute("SELECT table_id FROM ducklake_table WHERE table_name = 'escapes'").fetchone()
    db.execute("UPDATE ducklake_data_file SET path = '../../../etc/passwd' WHERE table_id = ?", (escapes_id,))
    (missing_path,) = db.execute(
        "SELECT f.path FROM ducklake_data_file f JOIN ducklake_table t USING (table_id) WHERE t.table_name = 'missing'"
    ).fetchone()
    db.commit()
    db.close()
    gone = list(lake.data.rglob(missing_path))
    assert len(gone) == 1, missing_path
    gone[0].unlink()

    daemon = Daemon(tmp_path, lake.warmlake_catalog)
    daemon.start()
    try:
        with psycopg.connect(daemon.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT sum(i) FROM main.good").fetchone() == (45,)
            with pytest.raises(psycopg.Error) as e:
                conn.execute("SELECT count(*) FROM main.escapes")
            assert "warmlake: table main.escapes cannot be read: data file" in str(e.value), str(e.value)
            assert "passwd" in str(e.value), str(e.value)
            with pytest.raises(psycopg.Error) as e:
                conn.execute("SELECT * FROM main.missing")
            assert f"main/missing/{missing_path}" in str(e.value), str(e.value)
            assert conn.execute("SELECT count(*) FROM main.good").fetchone() == (10,), "the session goes on"
        unreadable = daemon.status()["unreadable_tables"]
        # the current view and the time-travel ones of the snapshots that hold the file
        assert "main.escapes" in unreadable and all(t.endswith(".escapes") for t in unreadable), unreadable
        assert "data file" in unreadable["main.escapes"]
        lake_sql = (daemon.mnt / "lake.sql").read_text()
        assert "-- cannot be read: main.escapes: data file" in lake_sql
    finally:
        daemon.stop()


@pytest.mark.parametrize("backend", ["duckdb", "sqlite", "postgres"])
def test_inlined_text_and_binary_values(tmp_path, request, backend):
    """Inlined rows are read from the catalog as text: SQLite hands back a BLOB's raw bytes, and
    PostgreSQL stores BLOB and VARCHAR values as bytea. Each must read back as the extension
    reads it (they once came back as raw bytes that would not cast, and as `\\x…` hex), online
    and from the offline mirror (which once could not even find a PostgreSQL lake's snapshots:
    it held their ids as text)."""
    dsn = request.getfixturevalue("pg_server").create_database() if backend == "postgres" else None
    lake = write(tmp_path / "lake", [
        "CREATE TABLE l.t (b BLOB, s VARCHAR, l VARCHAR[])",
        "INSERT INTO l.t VALUES (unhex('0cc1ff00'), 'é''x\\', ['a', 'ü']), ('\\xAA'::BLOB, NULL, NULL), "
        "(''::BLOB, '', []), ('plain'::BLOB, 'a\nb', ['\\x41'])",
    ], backend=backend, pg_dsn=dsn, inlining_limit=10)
    query = "SELECT b, s, l FROM main.t ORDER BY b"
    want = extension_rows(lake, query)
    daemon = Daemon(tmp_path, lake.warmlake_catalog)
    try:
        for online in [True, False]:
            if not online:
                daemon.stop()
                make_unreachable(lake, request.getfixturevalue("pg_server") if dsn else None)
            daemon.start()
            assert daemon.status()["offline"] is not online
            with psycopg.connect(daemon.dsn()) as conn:
                got = [(bytes(b) if b is not None else None, s, json.loads(l) if isinstance(l, str) else l)
                       for b, s, l in conn.execute(query).fetchall()]
            assert got == want, "online" if online else "offline"
    finally:
        daemon.stop()
