"""Figure 14's numbers: time-averaged storage of the durable log plus the written values.

- log: the `LogSize` (bytes) each rw call reports, averaged over time (each value holds until the
  next call finishes), after skipping the warm-up share of the entries.
- write: written values stay stored until the garbage collector runs; with a GC interval G, a value
  lives for one GC period G, so the time average is
  (writes per second) x VALUE_SIZE x G.
Values are kept in KB in the table (`*_kb`); figures convert to the unit their axis names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchpipe.errors import RawDataError
from benchpipe.summaries.outputs import decode_outputs


def time_average(samples: list[tuple[float, float]]) -> float:
    """Average of a step function given as (time, value) samples sorted by time."""
    if len(samples) == 1:
        return samples[0][1]
    span = samples[-1][0] - samples[0][0]
    if span <= 0:
        return sum(v for _, v in samples) / len(samples)
    return sum(v * (samples[i + 1][0] - t) for i, (t, v) in enumerate(samples[:-1])) / span


def write_bytes_average(writes: int, seconds: float, value_size: int, gc_interval_ms: float) -> float:
    """Bytes of written values alive on average: each lives one GC interval before it is collected."""
    return writes / seconds * value_size * gc_interval_ms / 1000.0 if seconds > 0 else 0.0


def point_logsize(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    entries = decode_outputs(raw / "async_results")
    entries = entries[int(len(entries) * summary["skip_fraction"]) :]
    samples = sorted((fin / 1e6, float(o["LogSize"])) for _, fin, o in entries if "LogSize" in o)
    if not samples:
        raise RawDataError(f"{raw / 'async_results'}: no entry reports LogSize")
    log_b = time_average(samples)
    seconds = samples[-1][0] - samples[0][0]
    writes = sum(int(o.get("Writes", 0)) for _, _, o in entries)
    value_size = int(params.get("value_size", params.get("v", 0)) or 0)
    gc_ms = float(params.get("gc", summary.get("gc_interval_ms", 0)) or 0)
    write_b = write_bytes_average(writes, seconds, value_size, gc_ms)
    return {"log_kb": log_b / 1024, "write_kb": write_b / 1024, "total_kb": (log_b + write_b) / 1024}
