"""Random DuckLake histories written by the real extension (DuckDB 1.5.5 + ducklake 1.5.5).

A history is a list of SQL statements run against a lake attached as `l`, drawn from a seeded
`random.Random`, so a seed names a lake exactly. Every statement DuckLake accepts is fair game:
schemas and tables created and dropped, appends small enough to be inlined and large enough to
be written as Parquet, deletes, updates, columns added (with defaults of every type), dropped
and renamed, tables renamed, partitioning (by value and by `year()`), and the maintenance
functions (`merge_adjacent_files`, `flush_inlined_data`, `expire_snapshots`). Values are SQL
expressions of the row number and a per-statement salt, so they are random but reproducible
and the extension computes them itself; about one value in seven is NULL.
"""

import dataclasses
import os
import pathlib
import random
import shutil

import duckdb

VERSION = "1.5.5"


def extension(name: str) -> str:
    """The path of a DuckDB extension shipped in its PyPI wheel (`duckdb-extension-NAME`)."""
    import importlib.util

    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"duckdb-extension-{name}=={VERSION} is not installed (scripts/test installs it)")
    return os.path.join(list(spec.submodule_search_locations)[0], "extensions", f"v{VERSION}", f"{name}.duckdb_extension")


def load_extensions(con, scratch: pathlib.Path):
    """Loads ducklake, httpfs (needed to write encrypted files) and the catalog scanners. The
    sqlite and postgres extensions load only from files named after their internal names."""
    scratch.mkdir(parents=True, exist_ok=True)
    con.execute(f"LOAD '{extension('ducklake')}'")
    con.execute(f"LOAD '{extension('httpfs')}'")
    for name, internal in [("sqlite", "sqlite_scanner"), ("postgres", "postgres_scanner")]:
        target = scratch / f"{internal}.duckdb_extension"
        if not target.exists():
            shutil.copyfile(extension(name), target)
        con.execute(f"LOAD '{target}'")


# Column types: (DuckDB type, value expression over `{i}` (row number) and `{s}` (salt), a
# literal usable as a default). Nested types hold no BLOB (their JSON rendering is lossy).
TYPES = [
    ("TINYINT", "(hash({i}, {s}) % 200)::INT - 100", "7"),
    ("SMALLINT", "(hash({i}, {s}) % 60000)::INT - 30000", "-300"),
    ("INTEGER", "(hash({i}, {s}) % 2000000)::BIGINT - 1000000", "42"),
    ("BIGINT", "(hash({i}, {s}) % 9000000000000000000)::BIGINT - 4000000000000000000", "-9000000000"),
    ("HUGEINT", "(hash({i}, {s})::HUGEINT * 1000003) - 170141183460469231731687303715884105", "123456789012345678901234"),
    ("UBIGINT", "hash({i}, {s})", "18446744073709551615"),
    ("DOUBLE", "(hash({i}, {s}) % 1000000)::DOUBLE / 7.0 - 50000", "2.5"),
    ("FLOAT", "((hash({i}, {s}) % 100000)::DOUBLE / 8.0)::FLOAT", "-0.125"),
    ("DECIMAL(9,2)", "((hash({i}, {s}) % 100000000)::BIGINT - 50000000)::DECIMAL(18,0) / 100", "12.34"),
    ("DECIMAL(38,10)", "(hash({i}, {s})::DECIMAL(38,0) / 10000000000)::DECIMAL(38,10)", "-1.0000000001"),
    ("VARCHAR", "'v' || (hash({i}, {s}) % 1000)::VARCHAR || CASE WHEN hash({i}, {s}) % 5 = 0 THEN ' ünï ''q' ELSE '' END", "'x''y'"),
    ("BOOLEAN", "hash({i}, {s}) % 2 = 0", "true"),
    ("DATE", "DATE '1990-01-01' + (hash({i}, {s}) % 20000)::INT", "'2024-02-29'"),
    ("TIMESTAMP", "TIMESTAMP '2000-01-01' + to_microseconds((hash({i}, {s}) % 1000000000000000)::BIGINT)", "'2021-06-01 12:34:56.789'"),
    ("TIMESTAMPTZ", "(TIMESTAMP '2000-01-01' + to_microseconds((hash({i}, {s}) % 1000000000000000)::BIGINT))::TIMESTAMPTZ", "'2022-01-01 10:00:00+02'"),
    ("TIME", "TIME '00:00:00' + to_microseconds((hash({i}, {s}) % 86400000000)::BIGINT)", "'23:59:59'"),
    ("UUID", "md5({i}::VARCHAR || {s}::VARCHAR)::UUID", "'6ba7b810-9dad-11d1-80b4-00c04fd430c8'"),
    ("BLOB", "unhex(md5({i}::VARCHAR || {s}::VARCHAR))", "'\\xAA\\x00b'"),
    ("INTEGER[]", "[(hash({i}, {s}) % 100)::INT, NULL, (hash({i}, {s}) % 7)::INT][1:(hash({i}, {s}) % 4)::INT]", None),
    ("STRUCT(a INTEGER, b VARCHAR)", "{{'a': (hash({i}, {s}) % 100)::INT, 'b': 'w' || ({i} % 9)::VARCHAR}}", None),
    ("MAP(VARCHAR, INTEGER)", "MAP {{'k' || ({i} % 3)::VARCHAR: (hash({i}, {s}) % 10)::INT}}", None),
    ("STRUCT(l DOUBLE[], d DATE)", "{{'l': [{i}::DOUBLE / 4], 'd': DATE '2020-01-01' + ({i} % 300)::INT}}", None),
]
TYPE_BY_NAME = {t[0]: t for t in TYPES}


def value_expr(sql_type: str, salt: int, var: str = "i") -> str:
    """A random value of `sql_type` computed from the column `var`; NULL one time in seven."""
    expr = TYPE_BY_NAME[sql_type][1].format(i=var, s=salt)
    return f"CASE WHEN hash({var}, {salt + 1}) % 7 = 0 THEN NULL ELSE CAST(({expr}) AS {sql_type}) END"


@dataclasses.dataclass
class Table:
    schema: str
    name: str
    columns: list  # [(name, type)]
    partitioned: bool = False


@dataclasses.dataclass
class Options:
    """How a lake is attached: its catalog backend and the extension's knobs."""

    backend: str  # duckdb | sqlite | postgres
    encrypted: bool
    inlining_limit: int
    row_group_size: int


class History:
    """Draws statements for one lake; `tables` tracks what exists so each draw is valid."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.tables: list[Table] = []
        self.schemas = ["main"]
        self.counter = 0
        self.salt = seed % 1000003

    def options(self, backend: str, encrypted: bool) -> Options:
        return Options(
            backend=backend,
            encrypted=encrypted,
            inlining_limit=self.rng.choice([0, 5, 10, 50]),
            row_group_size=self.rng.choice([64, 500, 122880]),
        )

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def next_salt(self) -> int:
        self.salt = (self.salt * 31 + 17) % 1000003
        return self.salt

    def q(self, t: Table) -> str:
        return f'l."{t.schema}"."{t.name}"'

    def rows(self) -> int:
        # small appends are inlined (below the limit), large ones written to Parquet
        return self.rng.choice([1, 3, 8, 20, 200, 1500, 5000])

    def create_table(self) -> list[str]:
        schema = self.rng.choice(self.schemas)
        name = self.fresh("t")
        n = self.rng.randint(1, 5)
        cols = [("id", "BIGINT")] + [(f"c{k}", self.rng.choice(TYPES)[0]) for k in range(n)]
        t = Table(schema, name, cols)
        self.tables.append(t)
        ddl = ", ".join(f'"{c}" {ty}' for c, ty in cols)
        return [f'CREATE TABLE {self.q(t)} ({ddl})'] + self.insert(t)

    def insert(self, t: Table) -> list[str]:
        n = self.rows()
        start = self.rng.randint(0, 10**6)
        exprs = ["i"] + [value_expr(ty, self.next_salt()) for _, ty in t.columns[1:]]
        cols = ", ".join(f'"{c}"' for c, _ in t.columns)
        return [f"INSERT INTO {self.q(t)} ({cols}) SELECT {', '.join(exprs)} FROM range({start}, {start + n}) r(i)"]

    def delete(self, t: Table) -> list[str]:
        m = self.rng.choice([2, 3, 10])
        return [f"DELETE FROM {self.q(t)} WHERE hash(id, {self.next_salt()}) % {m} = 0"]

    def update(self, t: Table) -> list[str]:
        if len(t.columns) < 2:
            return self.delete(t)
        c, ty = self.rng.choice(t.columns[1:])
        expr = value_expr(ty, self.next_salt(), var="id")
        return [f'UPDATE {self.q(t)} SET "{c}" = {expr} WHERE hash(id, {self.next_salt()}) % 3 = 0']

    def add_column(self, t: Table) -> list[str]:
        ty = self.rng.choice(TYPES)
        name = self.fresh("a")
        default = ""
        if ty[2] is not None and self.rng.random() < 0.7:
            default = f" DEFAULT {ty[2]}"
        t.columns.append((name, ty[0]))
        return [f'ALTER TABLE {self.q(t)} ADD COLUMN "{name}" {ty[0]}{default}']

    def drop_column(self, t: Table) -> list[str]:
        if len(t.columns) < 3 or t.partitioned:
            return self.add_column(t)
        c = self.rng.choice(t.columns[1:])
        t.columns.remove(c)
        return [f'ALTER TABLE {self.q(t)} DROP COLUMN "{c[0]}"']

    def rename_column(self, t: Table) -> list[str]:
        if len(t.columns) < 2 or t.partitioned:
            return self.add_column(t)
        k = self.rng.randrange(1, len(t.columns))
        old, ty = t.columns[k]
        new = self.fresh("r")
        t.columns[k] = (new, ty)
        return [f'ALTER TABLE {self.q(t)} RENAME COLUMN "{old}" TO "{new}"']

    def rename_table(self, t: Table) -> list[str]:
        old = self.q(t)
        t.name = self.fresh("t")
        return [f'ALTER TABLE {old} RENAME TO "{t.name}"']

    def partition(self, t: Table) -> list[str]:
        keys = [c for c, ty in t.columns if ty in ("INTEGER", "VARCHAR", "BOOLEAN", "DATE")]
        times = [c for c, ty in t.columns if ty in ("DATE", "TIMESTAMP")]
        if times and self.rng.random() < 0.5:
            key = f'year("{self.rng.choice(times)}")'
        elif keys:
            key = f'"{self.rng.choice(keys)}"'
        else:
            return self.insert(t)
        t.partitioned = True
        return [f"ALTER TABLE {self.q(t)} SET PARTITIONED BY ({key})"] + self.insert(t)

    def drop_table(self, t: Table) -> list[str]:
        self.tables.remove(t)
        return [f"DROP TABLE {self.q(t)}"]

    def create_schema(self) -> list[str]:
        name = self.fresh("s")
        self.schemas.append(name)
        return [f'CREATE SCHEMA l."{name}"']

    def step(self) -> list[str]:
        """One random statement (or a few that belong together)."""
        r = self.rng.random()
        if not self.tables or r < 0.08:
            return self.create_table()
        if r < 0.11:
            return self.create_schema()
        t = self.rng.choice(self.tables)
        ops = [
            (0.30, self.insert),
            (0.10, self.delete),
            (0.10, self.update),
            (0.12, self.add_column),
            (0.05, self.drop_column),
            (0.05, self.rename_column),
            (0.03, self.rename_table),
            (0.05, self.partition),
            (0.03, self.drop_table),
        ]
        x = self.rng.random() * sum(w for w, _ in ops)
        for w, op in ops:
            x -= w
            if x <= 0:
                return op(t)
        return self.insert(t)

    def maintenance(self) -> list[str]:
        """A maintenance call, now and then, between steps."""
        r = self.rng.random()
        if r < 0.05:
            return ["CALL ducklake_merge_adjacent_files('l')"]
        if r < 0.09:
            return ["CALL ducklake_flush_inlined_data('l')"]
        if r < 0.11:
            return [EXPIRE_OLDER_HALF]
        return []


# Stands for a `ducklake_expire_snapshots` call of the older half of the snapshots, resolved when
# it runs (the ids are the extension's).
EXPIRE_OLDER_HALF = "-- expire the older half of the snapshots"


def expire_older_half(con) -> str:
    ids = [r[0] for r in con.execute("SELECT snapshot_id FROM ducklake_snapshots('l') ORDER BY 1").fetchall()]
    victims = ids[: len(ids) // 2]
    return f"CALL ducklake_expire_snapshots('l', versions => {victims})" if victims else "SELECT 1"


@dataclasses.dataclass
class Lake:
    """A written lake: how to attach it, and what happened to it."""

    seed: int
    options: Options
    catalog: str  # what the extension attaches after `ducklake:`
    warmlake_catalog: str  # the same catalog as warmlake's config names it
    data: pathlib.Path
    statements: list
    # statements the extension refused, with its error (left out of the history)
    refused: list


def attach_sql(catalog: str, data: pathlib.Path, options: Options, at: int | None = None) -> str:
    """The ATTACH of the lake as `l` for writing, or read only at snapshot `at` as `l<at>`."""
    if at is not None:
        return f"ATTACH 'ducklake:{catalog}' AS l{at} (DATA_PATH '{data}/', SNAPSHOT_VERSION {at}, READ_ONLY)"
    opts = [f"DATA_PATH '{data}/'"]
    if options.encrypted:
        opts.append("ENCRYPTED")
    opts.append(f"DATA_INLINING_ROW_LIMIT {options.inlining_limit}")
    return f"ATTACH 'ducklake:{catalog}' AS l ({', '.join(opts)})"


def write(seed: int, root: pathlib.Path, backend: str, encrypted: bool, pg_dsn: str | None, steps: int) -> Lake:
    """Writes the lake `seed` names under `root` with `backend`'s catalog."""
    h = History(seed)
    options = h.options(backend, encrypted)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    if backend == "duckdb":
        catalog = str(root / "catalog.ducklake")
        warmlake_catalog = catalog
    elif backend == "sqlite":
        catalog = f"sqlite:{root / 'catalog.sqlite'}"
        warmlake_catalog = catalog
    else:
        catalog = f"postgres:{pg_dsn}"
        warmlake_catalog = pg_dsn
    def connect():
        con = duckdb.connect()
        load_extensions(con, root / "extensions")
        con.execute(attach_sql(catalog, data, options))
        return con

    con = connect()
    con.execute(f"CALL l.set_option('parquet_row_group_size', {options.row_group_size})")
    statements, refused = [], []
    for _ in range(steps):
        for sql in h.step() + h.maintenance():
            if sql == EXPIRE_OLDER_HALF:
                sql = expire_older_half(con)
            try:
                con.execute(sql)
                statements.append(sql)
            except duckdb.Error as e:
                # The extension's own limits (it cannot read back some inlined nested values
                # from SQLite, say) are not warmlake's to test: the statement is left out of
                # the history, on a fresh connection. The model of the tables may then be off
                # by that statement; later statements it makes invalid are refused in turn.
                refused.append(f"{sql}: {e}")
                con.close()
                con = connect()
    con.close()
    return Lake(seed, options, catalog, warmlake_catalog, data, statements, refused)
