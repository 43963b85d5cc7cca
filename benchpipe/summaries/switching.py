"""Figure 15's data: latency over time of the switching run, and each transition with its duration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchpipe.errors import RawDataError
from benchpipe.generators.closedloop import parse_trace


def point_switching(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per request (kind=request) and per transition (kind=transition), time from the first entry."""
    try:
        requests, transitions = parse_trace(raw / "trace.txt")
    except FileNotFoundError:
        raise RawDataError(f"{raw / 'trace.txt'}: missing") from None
    except ValueError as e:
        raise RawDataError(str(e)) from None
    if not requests:
        raise RawDataError(f"{raw / 'trace.txt'}: no request finished")
    t0 = min([r["time_us"] for r in requests] + [t["begin_us"] for t in transitions])
    rows: list[dict[str, Any]] = [
        {
            "kind": "request",
            "time_s": (r["time_us"] - t0) / 1e6,
            "latency_ms": r["latency_ms"],
            "mode": r["mode"],
            "duration_ms": None,
        }
        for r in requests
    ]
    rows += [
        {
            "kind": "transition",
            "time_s": (t["begin_us"] - t0) / 1e6,
            "latency_ms": None,
            "mode": None,
            "duration_ms": t["duration_ms"],
        }
        for t in transitions
    ]
    return rows
