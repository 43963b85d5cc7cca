"""Shared fixtures: repository paths, and a guard that no stand-in process outlives a test."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Fixtures of the aws provider's tests (a moto server on 127.0.0.1).
pytest_plugins = ["tests.aws_fixtures"]


def _parents() -> dict[int, int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    return {int(a): int(b) for a, b in (line.split() for line in out.splitlines()[1:])}


# What the harness starts: Snakemake and its jobs, the stand-in stack, load generators.
HARNESS = (
    "-m standin",
    "-m mu2sls",
    "-m antipode",
    "-m pronghorn",
    "redis-server ",
    "-m benchpipe",
    "-m snakemake",
    "/snakemake ",
    "wrk ",
    "wrk2 ",
    # A Ray runtime (the ExoFlow suite): its head, daemons and workers, and the drivers.
    "-m exoflow",
    "ray start",
    "/raylet",
    "/gcs_server",
    "ray::",
    "default_worker.py",
)


def ray_processes(mine_only: bool = True) -> list[str]:
    """A Ray runtime's processes (head, gcs_server, raylet, workers, agents)."""
    return harness_processes(mine_only, ("ray start", "/raylet", "/gcs_server", "ray::", "default_worker.py"))


def harness_processes(mine_only: bool = False, patterns: tuple[str, ...] = HARNESS) -> list[str]:
    """Command lines of running harness processes, from the process table.

    mine_only: only those this test session started (descendants of pytest) or orphaned ones, so
    that a benchmark running beside the tests is not mistaken for a leak.
    """
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found = [
        line.strip()
        for line in out.splitlines()[1:]
        if any(p in line for p in patterns) and "ps -eo" not in line and int(line.split()[0]) != os.getpid()
    ]
    if not mine_only:
        return found
    parents, me = _parents(), os.getpid()

    def ours(pid: int) -> bool:
        if parents.get(pid) == 1:
            # Orphaned on purpose (a point's stack between its stage jobs) or by a kill: ours if it
            # was started with this session's state folder (other sessions may share the machine).
            return _same_session(pid)
        while pid in parents and pid > 1:
            if pid == me:
                return True
            pid = parents[pid]
        return False

    return [line for line in found if ours(int(line.split()[0]))]


def _same_session(pid: int) -> bool:
    mine = os.environ.get("BENCHPIPE_PID_DIR")
    if not mine:
        return True
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"BENCHPIPE_PID_DIR={mine}".encode() in env


def stack_processes(mine_only: bool = False) -> list[str]:
    """The stand-in stack's processes (python -m standin ...)."""
    return harness_processes(mine_only, ("-m standin",))


@pytest.hookimpl(hookwrapper=True)  # a wrapper runs before every plain hook, xdist's included
def pytest_collection_modifyitems(config, items):
    """Under xdist (scripts/test.sh: -n 2 --dist loadgroup) the tests that use the one local test bed
    (dockerd's swarm, sshd on 127.0.0.1:2222, fixed ports such as 8080) run in one worker, one at a
    time; everything else spreads over the workers, each with its own state folders (below)."""
    for item in items:
        if item.get_closest_marker("docker") or item.get_closest_marker("ssh"):
            item.add_marker(pytest.mark.xdist_group("testbed"))
    yield


@pytest.fixture(autouse=True)
def no_stray_stack():
    """Every test is a row of the fault matrix too: it fails if it leaves a harness process running
    (counted in the process table: stack, Snakemake, its jobs, load generators)."""
    before = set(harness_processes(mine_only=True))
    yield
    deadline = time.monotonic() + 5  # a job's exit is reaped a moment after its parent returns
    while True:
        left = [p for p in harness_processes(mine_only=True) if p not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"harness processes left running: {left}"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch):
    # Locks and pid files of the harness go to a per-session folder, not the user's cache.
    state = tmp_path_factory.getbasetemp() / "benchpipe-state"
    monkeypatch.setenv("BENCHPIPE_LOCK_DIR", str(state / "locks"))
    monkeypatch.setenv("BENCHPIPE_PID_DIR", str(state / "stacks"))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
