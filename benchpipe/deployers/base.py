"""The deployer interface: how the system under test starts, and is reset, for each point."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from benchpipe.errors import StackError
from benchpipe.model import Cluster


class Stack(Protocol):
    endpoint: str  # base URL of the gateway, e.g. http://127.0.0.1:8080


class Deployer(Protocol):
    def __init__(self, settings: dict[str, Any]) -> None: ...

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """The concrete deployment of one point (commands or compose file), as JSON-able data."""
        ...

    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> Stack:
        """Start a fresh stack (fresh state) from `rendered`; results go under `remote_dir`."""
        ...

    def wait_ready(self, stack: Stack, timeout_s: float) -> None: ...

    def fetch(self, stack: Stack, dest: Path) -> list[Path]:
        """Bring the stack's raw outputs (async_results, ...) into `dest`."""
        ...

    def collect_logs(self, stack: Stack, dest: Path) -> None:
        """Every container's or process's log, for a failed point."""
        ...

    def stop(self, stack: Stack) -> None:
        """Stop and remove the stack; idempotent, also after a failure."""
        ...


def wait_for_count(count: Callable[[], int], expected: int, timeout_s: float, interval_s: float) -> int:
    """Poll `count()` until it reaches `expected`, stops growing for 5 s, or time runs out; returns it."""
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while True:
        n = count()
        if n >= expected:
            return n
        if n != last:
            last, last_change = n, time.monotonic()
        if time.monotonic() > deadline or time.monotonic() - last_change > min(5.0, timeout_s):
            return n
        time.sleep(interval_s)


def answers_200(url: str, timeout_s: float) -> bool:
    """Does `url` answer HTTP 200 within `timeout_s` (no answer, or another status, is False)?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class DeployError(StackError):
    """A stack that could not be started or did not become ready."""


def service_argv(svc: dict[str, Any], values: dict[str, str]) -> list[str]:
    """A stack.process service's argv with its placeholders filled; an unknown placeholder is named."""
    try:
        return [a.format(**values) for a in svc["argv"]]
    except KeyError as e:
        raise DeployError(
            f"stack.process.{svc['name']}.argv: unknown placeholder {e}; expected one of {', '.join(sorted(values))}"
        ) from None
