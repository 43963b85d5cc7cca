"""Pronghorn's per-cell numbers from the per-request rows: the median client latency of the
requests after the first eviction, and Table 4's convergence column.

Convergence (the artifact's evaluation notebook): target = the median client latency of the
requests from number 400 on (of 500); slide a 20-request window from request 100 (PyPy; 200 for
the JVM); the answer is the first window start whose median lies within 2 % of the target. A run
with fewer requests (the local scale) keeps those proportions: 0.8, 0.2 (0.4), 0.04 of its count.
summary.convergence: start_fraction (0.2), target_fraction (0.8), window_fraction (0.04),
tolerance (0.02).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchpipe.summaries.requests import read_requests

DEFAULTS = {"start_fraction": 0.2, "target_fraction": 0.8, "window_fraction": 0.04, "tolerance": 0.02}


def convergence_index(latencies: list[float], rule: dict[str, float] | None = None) -> int | None:
    """The first window start (0-based request index) whose window median is within tolerance of
    the target; None if no window gets there (or the run is too short to have a target)."""
    r = {**DEFAULTS, **(rule or {})}
    n = len(latencies)
    lat = np.asarray(latencies, dtype=float)
    target_from, start = round(r["target_fraction"] * n), round(r["start_fraction"] * n)
    window = max(1, round(r["window_fraction"] * n))
    if target_from >= n:
        return None
    target = float(np.median(lat[target_from:]))
    for i in range(start, n - window + 1):
        if abs(float(np.median(lat[i : i + window])) - target) <= r["tolerance"] * target:
            return i
    return None


def point_convergence(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in read_requests(raw / "measure.requests.csv") if r["ok"]]
    lat = [float(r["client_us"]) for r in rows]
    eviction = params.get(summary.get("eviction_param", "eviction"))
    after = lat[int(eviction) :] if eviction is not None else []
    return {
        "median_client_us": float(np.median(lat)) if lat else None,
        "median_after_eviction_us": float(np.median(after)) if after else None,
        "convergence_request": convergence_index(lat, summary.get("convergence")),
        "requests_ok": len(lat),
    }
