"""Figure 10's numbers: p50/p99 of the read, write and invoke timings each singleop call reports.

The function's output is {"Output": {"Read": us, "Write": us, "Invoke": us}} (microseconds, as the
real singleop binaries write it; the stand-in writes the same). singleop_latency.py in
Halfmoon-bench: skip the first 1/6 of the entries, drop values at or above 30 x the median (per
operation), then p50 and p99, printed in ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchpipe.errors import RawDataError
from benchpipe.summaries.latency import latency_stats
from benchpipe.summaries.outputs import decode_outputs

OPERATIONS = ("Read", "Write", "Invoke")
SINGLEOP_OUTLIER_FACTOR = 30.0
US_PER_MS = 1000.0


def point_singleop(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    entries = decode_outputs(raw / "async_results")
    skip = int(len(entries) * summary["skip_fraction"])
    row: dict[str, Any] = {}
    timings = [o["Output"] for _, _, o in entries[skip:] if isinstance(o.get("Output"), dict)]
    for op in OPERATIONS:
        values = np.array([float(t[op]) / US_PER_MS for t in timings if op in t])
        if len(values) == 0:
            raise RawDataError(
                f"{raw / 'async_results'}: no entry reports a {op} timing (expected outputs "
                '{"Output": {"Read": us, "Write": us, "Invoke": us}})'
            )
        stats = latency_stats(values, 0.0, SINGLEOP_OUTLIER_FACTOR)
        row[f"{op.lower()}_p50_ms"] = stats["p50_ms"]
        row[f"{op.lower()}_p99_ms"] = stats["p99_ms"]
        row[f"{op.lower()}_n"] = stats["n"]
    return row
