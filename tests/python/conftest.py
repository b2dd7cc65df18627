"""Shared fixtures: a generated lake served by a real `warmlake daemon` with a FUSE mount."""

import pathlib
import signal
import sys
import subprocess
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from warmlake_process import mounted, require_fuse, warmlake_bin  # noqa: E402,F401


def serve_sql(catalog: pathlib.Path, root: pathlib.Path) -> tuple[subprocess.Popen, pathlib.Path]:
    """`warmlake serve-sql` on `catalog`, its socket in `root/sock`, once it listens: the server
    and the socket's folder."""
    sock = root / "sock"
    log = open(root / "serve-sql.log", "w")
    server = subprocess.Popen([warmlake_bin(), "serve-sql", str(catalog), "--socket-dir", str(sock), "--port", "5433"],
                              stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while not (sock / ".s.PGSQL.5433").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"serve-sql did not start: {(root / 'serve-sql.log').read_text()}")
        time.sleep(0.1)
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
    log = open(root / "daemon.log", "w")
    daemon = subprocess.Popen([warmlake_bin(), "daemon", "--config", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while not (mnt / "lake.sql").exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            pytest.fail(f"daemon did not mount: {(root / 'daemon.log').read_text()}")
        time.sleep(0.1)
    yield {"mnt": mnt, "data": lake_dir / "data", "root": root}
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0, (root / "daemon.log").read_text()
    assert not mounted(mnt), "the daemon unmounts on SIGTERM"
