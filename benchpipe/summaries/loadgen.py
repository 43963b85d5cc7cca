"""Latency as the load generator measured it (wrk2's view, mu2sls's figures): the measurement
run's percentiles from raw/measure.json, p75 from its HdrHistogram where it has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from benchpipe.collect import check_report


def point_loadgen(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    rep = check_report(raw / "measure.json", ("completed", "p50_ms", "p90_ms", "p99_ms"))
    done = int(rep["completed"]) > 0
    p75 = None
    if done and rep.get("histogram"):
        p75 = HdrHistogram.decode(rep["histogram"]).get_value_at_percentile(75) / 1e3
    # A saturated point where every request timed out has no latency (null), not a zero.
    return {
        "p50_ms": float(rep["p50_ms"]) if done else None,
        "p75_ms": p75,
        "p90_ms": float(rep["p90_ms"]) if done else None,
        "p99_ms": float(rep["p99_ms"]) if done else None,
        "completed": int(rep["completed"]),
        "errors": int(rep.get("errors", 0)) + int(rep.get("timeouts", 0)),
    }
