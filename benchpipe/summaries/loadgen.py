"""Latency as the load generator measured it (wrk2's view, mu2sls's figures): the measurement
run's percentiles from raw/measure.json, p75 from its HdrHistogram where it has one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from benchpipe.errors import RawDataError


def point_loadgen(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    path = raw / "measure.json"
    try:
        rep = json.loads(path.read_text())
    except FileNotFoundError:
        raise RawDataError(f"{path}: missing (the load generator wrote no report)") from None
    except ValueError:
        raise RawDataError(f"{path}: not valid JSON") from None
    if not rep.get("completed"):
        raise RawDataError(f"{path}: no request completed during the measurement")
    p75 = None
    if rep.get("histogram"):
        p75 = HdrHistogram.decode(rep["histogram"]).get_value_at_percentile(75) / 1e3
    return {
        "p50_ms": float(rep["p50_ms"]),
        "p75_ms": p75,
        "p90_ms": float(rep["p90_ms"]),
        "p99_ms": float(rep["p99_ms"]),
        "completed": int(rep["completed"]),
        "errors": int(rep.get("errors", 0)) + int(rep.get("timeouts", 0)),
    }
