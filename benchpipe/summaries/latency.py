"""Latency of a workflow point from the gateway's async_results, by the seed's rules.

compute_latency.py in Halfmoon-bench: skip the first 1/6 of the entries (the warm-up share of the
file), latency = finishedTs - dispatchTs in ms minus the workload's own sleep, drop values at or
above `outlier_factor` x the median, then p50 / p99 / mean (numpy's linear percentiles).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchpipe.errors import RawDataError


def read_async_results(path: Path) -> pl.DataFrame:
    try:
        df = pl.read_ndjson(path, schema_overrides={"recvTs": pl.Int64, "dispatchTs": pl.Int64, "finishedTs": pl.Int64})
    except FileNotFoundError:
        raise RawDataError(f"{path}: missing") from None
    except Exception as e:  # polars raises ComputeError and friends for bad JSON
        raise RawDataError(f"{path}: cannot be read as JSON lines ({e.__class__.__name__})") from None
    missing = [c for c in ("recvTs", "dispatchTs", "finishedTs") if c not in df.columns]
    if missing:
        raise RawDataError(f"{path}: missing fields {', '.join(missing)}")
    return df


def latency_stats(
    latencies_ms: np.ndarray, skip_fraction: float, outlier_factor: float, sleep_ms: float = 0.0
) -> dict[str, float | int]:
    """The seed's trimming on latencies in file order; returns p50/p99/mean and counts."""
    n_all = len(latencies_ms)
    kept = np.asarray(latencies_ms[int(n_all * skip_fraction) :], dtype=float) - sleep_ms
    if len(kept) == 0:
        raise ValueError("no latency left after skipping the warm-up share")
    median = float(np.median(kept))
    after_skip = len(kept)
    kept = kept[kept < median * outlier_factor] if median > 0 else kept
    return {
        "n": len(kept),
        "n_dropped": int(n_all - len(kept)),
        # The share of the measured requests the outlier rule dropped (the client's view keeps them).
        "dropped_share": (after_skip - len(kept)) / after_skip,
        "p50_ms": float(np.percentile(kept, 50)),
        "p99_ms": float(np.percentile(kept, 99)),
        "mean_ms": float(np.mean(kept)),
    }


def point_latency(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    df = read_async_results(raw / "async_results")
    failed = int((~df["success"].fill_null(False)).sum()) if "success" in df.columns else 0
    lat = ((df["finishedTs"] - df["dispatchTs"]).cast(pl.Float64) / 1000.0).to_numpy()
    sleep_ms = 0.0
    if summary.get("sleep_ms_per_op") and summary.get("ops_param"):
        sleep_ms = float(summary["sleep_ms_per_op"]) * float(params[summary["ops_param"]])
    stats = latency_stats(lat, summary["skip_fraction"], summary["outlier_factor"], sleep_ms)
    return {**stats, "failed_calls": failed}


def nan_to_none(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v
