"""Ports for the services a stack on this machine starts.

A port is chosen before the service that binds it has started. The kernel's own choice (bind to 0,
close) is in the ephemeral range, where any outgoing connection on the machine (a load generator's,
another test's) may take it in that gap: CI saw a point's service fail to bind so. So ports come
from below that range, and each is reserved machine-wide for a while in a small locked file, so
two stacks starting at once never get the same one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchpipe.filelock import locked

# Below: registered ports real services hold, and Ray's default worker ports (10002-19999).
FLOOR = 20_000
RESERVE_S = 600.0  # long enough for any stack's start; the port is bound (or given up) by then
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in _EPHEMERAL.read_text().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999  # Linux's default
    return lo, hi


def candidates() -> Sequence[int]:
    lo, hi = ephemeral_range()
    if lo - FLOOR >= 2000:
        return range(FLOOR, lo)
    if 65535 - hi >= 2000:
        return range(hi + 1, 65536)
    return range(1024, 65536)  # a machine whose ephemeral range is everything: nothing better


def _reservations() -> Path:
    base = os.environ.get("BENCHPIPE_PORTS_FILE")
    if base:
        return Path(base)
    return Path(tempfile.gettempdir()) / f"benchpipe-ports-{os.getuid()}.json"


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def reserve(host: str, n: int = 1) -> list[int]:
    """n distinct ports, free on `host` now and not handed out by this function in the last
    RESERVE_S seconds (to any process of this user)."""
    path = _reservations()
    pool = candidates()
    with locked(path):
        now = time.time()
        held: dict[str, float] = {}
        with contextlib.suppress(OSError, ValueError):
            held = {k: float(v) for k, v in json.loads(path.read_text()).items() if float(v) > now}
        chosen: list[int] = []
        for _ in range(50 * n + 200):
            if len(chosen) == n:
                break
            port = random.choice(pool)
            if str(port) in held or port in chosen or not _bindable(host, port):
                continue
            chosen.append(port)
        if len(chosen) < n:
            raise OSError(f"no {n} free ports on {host} in {min(pool)}-{max(pool)} (reservations: {path})")
        held.update({str(p): now + RESERVE_S for p in chosen})
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(held))
        tmp.replace(path)
    return chosen


def free_port(host: str) -> int:
    return reserve(host, 1)[0]
