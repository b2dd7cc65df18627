"""What both Python suites (tests/python, tests/ducklake) need to run the real binary: where it
is, starting it until it is ready, whether FUSE is here (on CI its absence is a failure, never a
skip), and whether a path is still mounted."""

import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest


def warmlake_bin() -> str:
    path = os.environ.get("WARMLAKE_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/warmlake-target"))
        path = os.path.join(target, "debug", "warmlake")
    if not os.path.exists(path):
        pytest.fail(f"warmlake binary not found at {path}: build it (cargo build -p warmlake) or set WARMLAKE_BIN")
    return path


def start_warmlake(args: list[str], log: pathlib.Path, ready: Callable[[], bool], what: str,
                   timeout: float = 60) -> subprocess.Popen:
    """Runs `warmlake args` (output to `log`) until `ready()`; fails the test with the log when it
    exits or is not ready within `timeout` seconds."""
    with open(log, "w") as out:
        process = subprocess.Popen([warmlake_bin(), *args], stdout=out, stderr=out)
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what}: {log.read_text()}")
        time.sleep(0.1)
    return process


def require(condition: bool, why: str):
    """Skips a test that cannot run here, except on CI (CI=true), where it fails."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true, so this is a failure, not a skip")
    pytest.skip(why)


def require_fuse():
    require(os.path.exists("/dev/fuse") and bool(shutil.which("fusermount3")),
            "FUSE is required (/dev/fuse and fusermount3 from Debian's fuse3)")


def mounted(path: pathlib.Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)
