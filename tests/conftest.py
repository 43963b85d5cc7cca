"""Shared fixtures: repository paths, and a guard that no stand-in process outlives a test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def stack_processes() -> list[str]:
    """Command lines of running stand-in stack processes (python -m standin ...)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines()[1:] if "-m standin" in line and "ps -eo" not in line]


@pytest.fixture(autouse=True)
def no_stray_stack():
    """Fails the test if it leaves a stand-in process running."""
    before = set(stack_processes())
    yield
    left = [p for p in stack_processes() if p not in before]
    assert not left, f"stand-in processes left running: {left}"


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
