"""warmlake answers exactly as the DuckLake extension does, on random lakes the extension wrote.

For each lake (a seed, a catalog backend, plain or encrypted; see history.py), every table at
every snapshot the extension still has is read four ways and compared with the extension's own
`SELECT * FROM t AT (VERSION => n)`, as a multiset of rows, with the extension's column names
and types:

- through the SQL socket (psycopg), the time-travel schemas `"<schema>@<n>"`;
- through the mount's `.snapshots/<n>/lake.sql` (and the root `lake.sql`), run by DuckDB 1.5.5;
- both again after a restart with the catalog unreachable, from the offline mirror.

Budget: `WARMLAKE_EXACT_LAKES` lakes (default 6, two per backend, the fifth encrypted) of
`WARMLAKE_EXACT_STEPS` statements (default 25), from seed `WARMLAKE_EXACT_SEED` on (default 1;
`random` draws one, printed). A lake that fails has its case appended to `fuzz/ducklake-exact.seeds`, and
every case there is replayed first, so a failure found once stays tested.
"""

import collections
import json
import os
import pathlib
import random
import struct
import sys

import duckdb
import psycopg
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import history  # noqa: E402
from conftest import Daemon, make_unreachable, require_fuse  # noqa: E402

SEEDS_FILE = pathlib.Path(__file__).resolve().parents[2] / "fuzz" / "ducklake-exact.seeds"
BACKENDS = ["duckdb", "sqlite", "postgres"]


def cases_kept():
    if not SEEDS_FILE.exists():
        return []
    out = []
    for line in SEEDS_FILE.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            seed, backend, encrypted = line.split()
            out.append((int(seed), backend, encrypted == "encrypted"))
    return out


def cases():
    """(seed, backend, encrypted): the kept failures first, then the run's budget."""
    kept = cases_kept()
    count = int(os.environ.get("WARMLAKE_EXACT_LAKES", "6"))
    # CI replays the same lakes every run (a fixed seed); `scripts/reliability --full` draws new ones.
    seed = os.environ.get("WARMLAKE_EXACT_SEED", "1")
    start = random.randrange(10**9) if seed == "random" else int(seed)
    print(f"differential lakes: WARMLAKE_EXACT_SEED={start} WARMLAKE_EXACT_LAKES={count}", file=sys.stderr)
    fresh = [(start + k, BACKENDS[k % 3], k % 5 == 4) for k in range(count)]
    return kept + [c for c in fresh if c not in kept]


def case_id(case):
    seed, backend, encrypted = case
    return f"{seed}-{backend}{'-encrypted' if encrypted else ''}"


NESTED = ("[]", "STRUCT", "MAP")


def is_nested(sql_type: str) -> bool:
    return any(m in sql_type for m in NESTED)


class Truth:
    """The extension's answers for every table at every snapshot it has, each snapshot attached
    as it was (`SNAPSHOT_VERSION`), so tables later renamed or dropped are read by their names
    at that snapshot."""

    def __init__(self, lake: history.Lake, scratch: pathlib.Path):
        def connect():
            con = duckdb.connect()
            history.load_extensions(con, scratch)
            return con

        con = connect()
        con.execute(history.attach_sql(lake.catalog, lake.data, lake.options))
        self.snapshots = [r[0] for r in con.execute("SELECT snapshot_id FROM ducklake_snapshots('l') ORDER BY 1").fetchall()]
        con.execute("DETACH l")
        self.failed = []  # tables the extension itself could not read, with its error
        self.tables = {}  # (snapshot, schema, table) -> (columns [(name, type)], rows, rows with nested as JSON)
        for n in self.snapshots:
            con.execute(history.attach_sql(lake.catalog, lake.data, lake.options, at=n))
            names = con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?", [f"l{n}"]
            ).fetchall()
            for schema, table in names:
                source = f'l{n}."{schema}"."{table}"'
                try:
                    columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {source}").fetchall()]
                    rows = con.execute(f"SELECT * FROM {source}").fetchall()
                    as_json = ", ".join(
                        f'to_json("{c}")::VARCHAR AS "{c}"' if is_nested(t) else f'"{c}"' for c, t in columns
                    )
                    json_rows = con.execute(f"SELECT {as_json} FROM {source}").fetchall()
                except duckdb.Error as e:
                    # no ground truth where the extension cannot read its own table (a fatal
                    # error of its own invalidates the database: read on from a new one); but
                    # the harness's own environment failing (a Python module DuckDB needs to
                    # hand values over) is no limit of the extension's
                    if "Required module" in str(e):
                        raise
                    self.failed.append(f"{schema}.{table}@{n}: {e}")
                    con.close()
                    con = connect()
                    con.execute(history.attach_sql(lake.catalog, lake.data, lake.options, at=n))
                    continue
                self.tables[(n, schema, table)] = (columns, rows, json_rows)
            con.execute(f"DETACH l{n}")
        con.close()

    def by_snapshot(self) -> dict:
        """The tables' keys, by snapshot."""
        out = collections.defaultdict(list)
        for key in self.tables:
            out[key[0]].append(key)
        return out


def canon(v):
    """A hashable form of a DuckDB Python value (lists and structs become tuples)."""
    if isinstance(v, list):
        return tuple(canon(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), canon(x)) for k, x in v.items()))
    return v


def f32(x):
    return None if x is None else struct.unpack("f", struct.pack("f", x))[0]


def canon_socket(v, sql_type: str):
    """A value as it arrives through psycopg, made comparable with [`canon_truth_socket`]."""
    if v is None:
        return None
    if is_nested(sql_type):
        return canon(json.loads(v) if isinstance(v, str) else v)
    if sql_type == "FLOAT":
        return f32(v)
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def canon_truth_socket(v, sql_type: str):
    if v is None:
        return None
    if is_nested(sql_type):
        return canon(json.loads(v))
    if sql_type == "FLOAT":
        return f32(v)
    return v


class Tally:
    def __init__(self):
        self.compared = 0
        self.unreadable = 0
        self.mirror_compared = 0


def unreadable_error(message: str, schema: str, table: str, encrypted: bool) -> bool:
    """An error that names the table as unreadable because it is encrypted: what warmlake gives
    for an encrypted table's files until it decrypts them."""
    return encrypted and f"table {schema}.{table} cannot be read" in message and "encrypted" in message


def check_socket(daemon: Daemon, truth: Truth, kept: set, current: int, encrypted: bool, tally: Tally):
    with psycopg.connect(daemon.dsn(), autocommit=True) as conn:
        for (n, schema, table), (columns, _, json_rows) in truth.tables.items():
            assert n in kept or n == current, f"snapshot {n} is not served (kept: {sorted(kept)}, current {current})"
            name = f'"{schema}@{n}"."{table}"'
            where = f"socket {name}"
            try:
                described = conn.execute(f"DESCRIBE {name}").fetchall()
                got = conn.execute(f"SELECT * FROM {name}").fetchall()
            except psycopg.Error as e:
                if unreadable_error(str(e), f"{schema}@{n}", table, encrypted):
                    tally.unreadable += 1
                    continue
                raise AssertionError(f"{where}: {e}") from e
            assert [(r[0], r[1]) for r in described] == columns, f"{where}: columns"
            types = [t for _, t in columns]
            want = collections.Counter(tuple(canon_truth_socket(v, t) for v, t in zip(r, types)) for r in json_rows)
            have = collections.Counter(tuple(canon_socket(v, t) for v, t in zip(r, types)) for r in got)
            assert have == want, f"{where}: rows differ: missing {list((want - have).elements())[:3]}, " \
                                 f"extra {list((have - want).elements())[:3]}"
            tally.compared += 1


def check_mount(daemon: Daemon, truth: Truth, current: int, encrypted: bool, tally: Tally):
    for n, keys in truth.by_snapshot().items():
        scripts = [daemon.mnt / ".snapshots" / str(n) / "lake.sql"]
        if n == current:
            scripts.append(daemon.mnt / "lake.sql")
        for script in scripts:
            con = duckdb.connect()
            con.execute(script.read_text())
            for key in keys:
                _, schema, table = key
                columns, rows, _ = truth.tables[key]
                where = f"{script.relative_to(daemon.mnt)} {schema}.{table}"
                try:
                    described = con.execute(f'DESCRIBE "{schema}"."{table}"').fetchall()
                    got = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                except duckdb.Error as e:
                    if unreadable_error(str(e), schema, table, encrypted):
                        tally.unreadable += 1
                        continue
                    raise AssertionError(f"{where}: {e}") from e
                assert_same(where, described, got, columns, rows)
                tally.compared += 1
            con.close()


def assert_same(where: str, described, got, columns, rows):
    """A table as DuckDB read it (`DESCRIBE`d, then its rows) equals the extension's answer."""
    assert [(r[0], r[1]) for r in described] == columns, f"{where}: columns"
    want = collections.Counter(canon(list(r)) for r in rows)
    have = collections.Counter(canon(list(r)) for r in got)
    assert have == want, f"{where}: rows differ: missing {list((want - have).elements())[:3]}, " \
                         f"extra {list((have - want).elements())[:3]}"


def check_mirror(daemon: Daemon, truth: Truth, tally: Tally):
    """The mirror as a DuckLake catalog the extension attaches, with the mount's `.data/` (the
    lake's files at their paths below the data path) as its data path: every table at every
    snapshot as the extension answers from the lake's own catalog."""
    mirror = daemon.root / "state" / "mirror" / "exact.sqlite"
    con = duckdb.connect()
    history.load_extensions(con, daemon.root / "mirror-extensions")
    for n, keys in truth.by_snapshot().items():
        con.execute(f"ATTACH 'ducklake:sqlite:{mirror}' AS m{n} (DATA_PATH '{daemon.mnt}/.data/', OVERRIDE_DATA_PATH true, "
                    f"SNAPSHOT_VERSION {n}, READ_ONLY)")
        for key in keys:
            _, schema, table = key
            columns, rows, _ = truth.tables[key]
            where = f"mirror m{n}.{schema}.{table}"
            source = f'm{n}."{schema}"."{table}"'
            try:
                described = con.execute(f"DESCRIBE {source}").fetchall()
                got = con.execute(f"SELECT * FROM {source}").fetchall()
            except duckdb.Error as e:
                raise AssertionError(f"{where}: {e}") from e
            assert_same(where, described, got, columns, rows)
            tally.mirror_compared += 1
        con.execute(f"DETACH m{n}")
    con.close()


def check(daemon: Daemon, truth: Truth, encrypted: bool, tally: Tally):
    status = daemon.status()
    current, kept = status["snapshot"], set(status["kept_snapshots"])
    assert current == truth.snapshots[-1], f"the daemon serves snapshot {current}, the extension's last is {truth.snapshots[-1]}"
    check_socket(daemon, truth, kept, current, encrypted, tally)
    check_mount(daemon, truth, current, encrypted, tally)


def keep_seed(case):
    SEEDS_FILE.parent.mkdir(exist_ok=True)
    with SEEDS_FILE.open("a") as f:
        seed, backend, encrypted = case
        f.write(f"{seed} {backend} {'encrypted' if encrypted else 'plain'}\n")


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_warmlake_answers_as_the_extension(case, tmp_path, request):
    require_fuse()
    seed, backend, encrypted = case
    pg = request.getfixturevalue("pg_server") if backend == "postgres" else None
    steps = int(os.environ.get("WARMLAKE_EXACT_STEPS", "25"))
    daemon = None
    try:
        lake = history.write(seed, tmp_path / "lake", backend, encrypted, pg.create_database() if pg else None, steps)
        truth = Truth(lake, tmp_path / "lake" / "extensions")
        daemon = Daemon(tmp_path, lake.warmlake_catalog)
        tally = Tally()
        daemon.start()
        check(daemon, truth, encrypted, tally)
        daemon.stop()
        make_unreachable(lake, pg)
        daemon.start()
        assert daemon.status()["offline"], "the restarted daemon serves the mirror"
        check(daemon, truth, encrypted, tally)
        check_mirror(daemon, truth, tally)
        print(f"\nlake {case_id(case)}: {len(lake.statements)} statements ({len(lake.refused)} refused by the "
              f"extension), {len(truth.snapshots)} snapshots, {len(truth.tables)} table snapshots "
              f"({len(truth.failed)} the extension cannot read), {tally.compared} reads equal to the extension, "
              f"{tally.unreadable} named unreadable (encrypted); {tally.mirror_compared} reads through the "
              f"extension over the mirror equal")
    except BaseException:
        if case not in cases_kept():
            keep_seed(case)
        raise
    finally:
        if daemon is not None:
            daemon.stop()
