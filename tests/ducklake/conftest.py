"""Real parts for the differential tests: a throwaway PostgreSQL server (Debian's binaries) for
PostgreSQL catalogs, and a real `warmlake daemon` with its FUSE mount and SQL socket.

These tests run in their own virtualenv (scripts/test makes it), because the DuckLake extension's
wheels are built for DuckDB 1.5.5 exactly, while the other client tests use the newest DuckDB.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from warmlake_process import mounted, require, require_fuse, start_warmlake  # noqa: E402,F401


def pg_binaries() -> pathlib.Path | None:
    if os.environ.get("WARMLAKE_PG_BIN"):
        return pathlib.Path(os.environ["WARMLAKE_PG_BIN"])
    found = sorted(
        (int(p.name), p / "bin")
        for p in pathlib.Path("/usr/lib/postgresql").glob("*")
        if p.name.isdigit() and (p / "bin" / "pg_ctl").exists()
    )
    return found[-1][1] if found else None


class PgServer:
    """A cluster in a temporary folder, on a Unix socket only (no TCP port to collide on). As root
    (CI) it runs as Debian's `postgres` user, since PostgreSQL refuses root."""

    PORT = 5432

    def __init__(self, bin_dir: pathlib.Path):
        self.bin = bin_dir
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="wl-pg"))
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                 "--no-sync")
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "-o",
                 f"-h '' -k {self.dir} -p {self.PORT} -F", "start")
        self.databases = 0

    def command(self, program: str, *args: str) -> list[str]:
        cmd = [str(self.bin / program), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_postgres else cmd

    def run(self, program: str, *args: str):
        out = subprocess.run(self.command(program, *args), capture_output=True, text=True, cwd=self.dir)
        if out.returncode != 0:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"{program} failed: {out.stdout}{out.stderr}{log}")

    def dsn(self, dbname: str) -> str:
        return f"host={self.dir} port={self.PORT} user=postgres dbname={dbname}"

    def psql(self, sql: str):
        """Runs `sql` in the `postgres` database."""
        self.run("psql", "-h", str(self.dir), "-p", str(self.PORT), "-U", "postgres", "-d", "postgres", "-c", sql)

    def create_database(self) -> str:
        self.databases += 1
        name = f"lake{self.databases}"
        self.psql(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self):
        subprocess.run(self.command("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"),
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    bin_dir = pg_binaries()
    require(bin_dir is not None, "no PostgreSQL server binaries (Debian's postgresql package; scripts/test installs it)")
    server = PgServer(bin_dir)
    yield server
    server.stop()


class Daemon:
    """`warmlake daemon` serving one catalog with a mount and the SQL socket, every snapshot kept."""

    def __init__(self, root: pathlib.Path, catalog: str):
        self.root = root
        self.mnt = root / "mnt"
        self.sock = root / "sock"
        self.mnt.mkdir(exist_ok=True)
        self.config = root / "config.toml"
        self.config.write_text(
            f'[lake]\nname = "exact"\ncatalog = "{catalog}"\n'
            f'[state]\ndir = "{root / "state"}"\n[cache]\ndir = "{root / "cache"}"\n'
            f'[mount]\npath = "{self.mnt}"\n'
            f'[sql]\nsocket_dir = "{self.sock}"\nport = 5433\n'
            f"[refresh]\nkeep_snapshots = 100000\n"
        )
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.process = start_warmlake(
            ["daemon", "--config", str(self.config)], self.root / f"daemon-{self.starts}.log",
            lambda: (self.mnt / "lake.sql").exists() and (self.sock / ".s.PGSQL.5433").exists(),
            "the daemon did not start", timeout=120)

    def log(self) -> str:
        return (self.root / f"daemon-{self.starts}.log").read_text()

    def dsn(self) -> str:
        return f"host={self.sock} port=5433 dbname=lake"

    def status(self) -> dict:
        import json

        return json.loads((self.mnt / ".warmlake" / "status.json").read_text())

    def stop(self):
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.process = None
        assert code == 0, self.log()
        assert not mounted(self.mnt), "the daemon unmounts on SIGTERM"


def make_unreachable(lake, pg):
    """Takes the catalog away, as a laptop going offline would: the file is moved, or the
    database renamed (after ending the sessions the extension's connection pool left)."""
    if lake.options.backend == "postgres":
        dbname = lake.warmlake_catalog.rsplit("dbname=", 1)[1]
        pg.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")
        pg.psql(f"ALTER DATABASE {dbname} RENAME TO {dbname}_gone")
    else:
        path = pathlib.Path(lake.warmlake_catalog.removeprefix("sqlite:"))
        path.rename(path.with_name(path.name + ".gone"))
