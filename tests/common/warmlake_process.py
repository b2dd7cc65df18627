"""What both Python suites (tests/python, tests/ducklake) need to run the real binary: where it
is, whether FUSE is here (on CI its absence is a failure, never a skip), and whether a path is
still mounted."""

import os
import pathlib
import shutil

import pytest


def warmlake_bin() -> str:
    path = os.environ.get("WARMLAKE_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/warmlake-target"))
        path = os.path.join(target, "debug", "warmlake")
    if not os.path.exists(path):
        pytest.fail(f"warmlake binary not found at {path}: build it (cargo build -p warmlake) or set WARMLAKE_BIN")
    return path


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
