"""Real clients read the lake through the mount: the DuckDB CLI, Python DuckDB, Polars, pyarrow.

Every answer through the mount is compared with the same question asked of the lake's own
files on local disk (the `lake.sql` views re-pointed at the data folder), so the mount must
be byte-exact and the views must hold DuckLake semantics in both places.
"""

import shutil
import subprocess

from conftest import warmlake_bin

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

QUERIES = [
    "SELECT count(*) FROM sales.orders",
    "SELECT region, count(*), sum(amount), count(*) FILTER (WHERE channel = 'app') FROM sales.orders GROUP BY 1 ORDER BY 1",
    "SELECT comment FROM sales.orders WHERE id = 7",
    # Floating-point sums depend on the order of parallel aggregation: rounded.
    "SELECT kind, count(*), sum(revenue), round(avg(latency_ms), 6) FROM web.events GROUP BY 1 ORDER BY 1",
    "SELECT * FROM sales.returns ORDER BY return_id",
    "SELECT count(*) FROM sales.customers WHERE email LIKE '%@example.com'",
]


def views(lake, through_mount: bool) -> str:
    """The lake's views, reading through the mount or the lake's own files in place."""
    if through_mount:
        return (lake["mnt"] / "lake.sql").read_text()
    catalog = lake["data"].parent / "catalog.ducklake"
    return subprocess.run([warmlake_bin(), "dev", "lake-sql", str(catalog)], check=True, capture_output=True, text=True).stdout


def run(script: str, sql: str):
    con = duckdb.connect()
    con.execute(script)
    return con.execute(sql).fetchall()


@pytest.mark.parametrize("sql", QUERIES)
def test_python_duckdb_through_the_mount_equals_local_files(lake, sql):
    assert run(views(lake, True), sql) == run(views(lake, False), sql)


def test_duckdb_cli_with_lake_sql(lake):
    cli = shutil.which("duckdb")
    assert cli, "the DuckDB CLI (pip install duckdb-cli) is needed"
    out = subprocess.run(
        [cli, "-init", str(lake["mnt"] / "lake.sql"), "-csv", "-noheader", "-c", "SELECT count(*), sum(amount) FROM sales.orders"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip().splitlines()[-1]
    expected = run(views(lake, False), "SELECT count(*), sum(amount) FROM sales.orders")[0]
    assert out == f"{expected[0]},{expected[1]}"


def test_polars_scans_the_mounted_files(lake):
    mounted = pl.scan_parquet(str(lake["mnt"] / "web/events/*.parquet"))
    local = pl.scan_parquet(str(lake["data"] / "web/events/*.parquet"))
    agg = lambda lf: lf.group_by("country").agg(pl.len(), pl.col("revenue").sum()).sort("country").collect()
    assert agg(mounted).equals(agg(local))
    assert mounted.select(pl.len()).collect().item() == 200_000


def test_pyarrow_reads_a_file_and_its_metadata(lake):
    files = sorted((lake["mnt"] / "sales/customers").glob("*.parquet"))
    assert files
    table = pq.read_table(files[0])
    assert table.num_rows == 97
    local = pq.read_table(lake["data"] / "sales/customers" / files[0].name)
    assert table.equals(local)


def test_listing_and_stat_come_from_the_catalog(lake):
    mnt = lake["mnt"]
    assert sorted(p.name for p in mnt.iterdir()) == [".data", ".snapshots", ".warmlake", "lake.sql", "main", "sales",
                                                     "web"]
    for f in (mnt / "web/events").glob("*.parquet"):
        assert f.stat().st_size == (lake["data"] / "web/events" / f.name).stat().st_size
        assert oct(f.stat().st_mode & 0o777) == "0o444"
    # .data: the lake's files at their paths below its data path, delete files beside theirs
    served = {p.relative_to(mnt / ".data") for p in (mnt / ".data").rglob("*.parquet")}
    on_disk = {p.relative_to(lake["data"]) for p in lake["data"].rglob("*.parquet")}
    assert served and served <= on_disk, served - on_disk
