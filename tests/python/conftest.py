"""Shared fixtures: a generated lake served by a real `warmlake daemon` with a FUSE mount."""

import pathlib
import signal
import sys
import subprocess

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from warmlake_process import mounted, require_fuse, start_warmlake, warmlake_bin  # noqa: E402,F401


def serve_sql(catalog: pathlib.Path, root: pathlib.Path) -> tuple[subprocess.Popen, pathlib.Path]:
    """`warmlake serve-sql` on `catalog`, its socket in `root/sock`, once it listens: the server
    and the socket's folder."""
    sock = root / "sock"
    server = start_warmlake(["serve-sql", str(catalog), "--socket-dir", str(sock), "--port", "5433"],
                            root / "serve-sql.log", (sock / ".s.PGSQL.5433").exists, "serve-sql did not start")
    return server, sock


@pytest.fixture(scope="session")
def lake(tmp_path_factory):
    """A generated lake (DuckDB catalog) and a running daemon mounting it; yields paths."""
    require_fuse()
    root = tmp_path_factory.mktemp("warmlake")
    lake_dir = root / "lake"
    subprocess.run(
        [warmlake_bin(), "dev", "make-lake", str(lake_dir), "--events-rows", "200000", "--events-files", "4"],
        check=True,
        capture_output=True,
    )
    mnt = root / "mnt"
    mnt.mkdir()
    config = root / "config.toml"
    config.write_text(
        f'[lake]\nname = "pytest"\ncatalog = "{lake_dir / "catalog.ducklake"}"\n'
        f'[state]\ndir = "{root / "state"}"\n[cache]\ndir = "{root / "cache"}"\n'
        f'[mount]\npath = "{mnt}"\n'
    )
    daemon = start_warmlake(["daemon", "--config", str(config)], root / "daemon.log", (mnt / "lake.sql").exists,
                            "daemon did not mount")
    yield {"mnt": mnt, "data": lake_dir / "data", "root": root}
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0, (root / "daemon.log").read_text()
    assert not mounted(mnt), "the daemon unmounts on SIGTERM"
