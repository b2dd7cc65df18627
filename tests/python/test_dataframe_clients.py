"""Dataframe clients against the SQL socket, as a data person points them at it: Polars through
connectorx (its default engine; libpq-style `sslmode=prefer`, which asks the Unix socket for TLS
first) with and without partitioning, Polars and the DBAPI through ADBC's PostgreSQL driver
(which types results by `pg_type.typreceive` and reads them with binary COPY). Each reads every
type of the reference `types` lake, compared with the DuckLake extension's own answer
(`expected/main.all_types@3.parquet`)."""

import datetime
import decimal
import importlib
import json
import os
import pathlib
import shutil
import urllib.parse
import uuid

import pyarrow.parquet as pq
import pytest

from conftest import serve_sql

# The reference lakes: beside the checkout, or where WARMLAKE_FIXTURES says (as for the Rust tests).
FIXTURES = pathlib.Path(os.environ.get("WARMLAKE_FIXTURES")
                        or pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ducklake")
REFERENCE = FIXTURES / "reference" / "types"


def needed(module: str):
    """A client module: on CI it must be there (scripts/test installs it), elsewhere the test skips."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="module")
def types_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("warmlake-clients")
    shutil.copytree(REFERENCE, root / "types")
    server, sock = serve_sql(root / "types" / "catalog.ducklake", root)
    expected = pq.read_table(REFERENCE / "expected" / "main.all_types@3.parquet").to_pylist()
    # the URI a user writes for a Unix socket: the folder, percent-encoded, as the host
    uri = f"postgresql://analyst@{urllib.parse.quote(str(sock), safe='')}:5433/lake"
    yield {"uri": uri, "expected": expected}
    server.terminate()
    server.wait(timeout=30)


def canonical(value, like):
    """`value` as a client gave it, in the form of `like` (the extension's value of the same
    cell), so that equal values compare equal whatever Python type each side uses."""
    if value is None or like is None:
        return value
    if isinstance(like, bool):
        return bool(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, int):
        return int(value)
    if isinstance(like, decimal.Decimal):
        return decimal.Decimal(str(value)).normalize()
    if isinstance(like, uuid.UUID):
        # Polars keeps Arrow's UUID as its 16 bytes
        return uuid.UUID(bytes=value) if isinstance(value, bytes) else uuid.UUID(str(value))
    if isinstance(like, datetime.datetime):
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value)
        if like.tzinfo is not None:
            return value.astimezone(datetime.timezone.utc) if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        return value
    if isinstance(like, (list, dict)) and isinstance(value, str):
        # nested values travel as JSON text
        value = json.loads(value)
    if isinstance(like, list) and like and isinstance(like[0], tuple):
        # a MAP: the extension's (key, value) pairs, the socket's JSON object
        return dict(value) if isinstance(value, dict) else dict(value)
    if isinstance(like, str) and isinstance(value, (dict, list)):
        return value
    return value


def expected_canonical(like):
    if isinstance(like, decimal.Decimal):
        return like.normalize()
    if isinstance(like, datetime.datetime) and like.tzinfo is not None:
        return like.astimezone(datetime.timezone.utc)
    if isinstance(like, list) and like and isinstance(like[0], tuple):
        return dict(like)
    if isinstance(like, str):
        try:
            parsed = json.loads(like)
            return parsed if isinstance(parsed, (dict, list)) else like
        except ValueError:
            return like
    return like


def assert_rows_equal(rows: list[dict], expected: list[dict]):
    """Compares as multisets, by a key both sides have (`i32`, then `s`)."""
    assert len(rows) == len(expected)
    key = lambda r: (r["i32"] is None, r["i32"] or 0, str(r["s"]))  # noqa: E731
    for got, want in zip(sorted(rows, key=key), sorted(expected, key=key)):
        for column, like in want.items():
            value = got[column]
            if isinstance(like, str) and isinstance(value, str):
                # JSON columns compare as JSON, text as text
                assert expected_canonical(like) == expected_canonical(value), (column, value, like)
                continue
            assert canonical(value, like) == expected_canonical(like), (column, value, like)


def test_polars_through_connectorx_reads_every_type(types_lake):
    pl = needed("polars")
    needed("connectorx")
    # connectorx reads every numeric into a decimal(38, 10) through rust_decimal, which holds 28
    # digits: HUGEINT values past 10^18 fail there (as such numerics do from PostgreSQL), so
    # they are read as text.
    frame = pl.read_database_uri("SELECT * REPLACE (h::VARCHAR AS h) FROM main.all_types", types_lake["uri"])
    assert_rows_equal(frame.to_dicts(), types_lake["expected"])
    # split into partitions on an integer column, each its own connection and query
    parts = pl.read_database_uri("SELECT i32, s FROM main.all_types WHERE i32 IS NOT NULL", types_lake["uri"],
                                 partition_on="i32", partition_num=4)
    assert sorted(parts["i32"].to_list()) == sorted(r["i32"] for r in types_lake["expected"] if r["i32"] is not None)


def test_polars_and_the_dbapi_through_adbc_read_every_type(types_lake):
    pl = needed("polars")
    dbapi = needed("adbc_driver_postgresql.dbapi")
    frame = pl.read_database_uri("SELECT * FROM main.all_types", types_lake["uri"], engine="adbc")
    assert_rows_equal(frame.to_dicts(), types_lake["expected"])
    with dbapi.connect(types_lake["uri"]) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM main.all_types")
        table = cur.fetch_arrow_table()
        # every column typed by its PostgreSQL type, none opaque bytes
        opaque = [f.name for f in table.schema if str(f.type).startswith("extension<arrow.opaque[storage_type=binary")]
        assert opaque == [], table.schema
        assert_rows_equal(table.to_pylist(), types_lake["expected"])
