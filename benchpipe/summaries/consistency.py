"""Cross-service consistency of a point, from the reader's trace (traces.jsonl, one line per
notification it consumed), as Antipode's artifact computes it from its Jaeger traces:
per_inconsistencies = % of traces whose read did not find the post (`consistency_bool == False`),
the consistency window = read_notification_ts - post_written_ts (`post_notification_diff_ms`) at
p50/p90 (pandas' linear interpolation), and the barrier's wait. Requests that succeeded but left
no trace (the reader had not consumed their notification when the point stopped) are counted as
skipped, as the artifact counts traces missing a tag. Requests finished: the stack's async_results, or
where the stack writes none (DeathStarBench under --profile ssh) the load generator's own count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from benchpipe.collect import json_lines

TRACE = "traces.jsonl"
FIELDS = ("post_written_ts", "read_notification_ts", "consistent")


def read_traces(path: Path) -> pl.DataFrame:
    rows = list(
        json_lines(
            path,
            lambda rec: all(k in rec for k in FIELDS),
            f"fields {', '.join(FIELDS)}",
            "the reader wrote no trace",
            "the reader consumed no notification",
        )
    )
    return pl.DataFrame(rows, infer_schema_length=None)


def _finished(raw: Path) -> int:
    """Requests that finished: the stack's own records (async_results) where it writes them, else
    the load generator's count from its output (wrk2's "N requests in", less non-2xx)."""
    try:
        with open(raw / "async_results", "rb") as f:
            return sum(1 for line in f if line.strip() and json.loads(line).get("success"))
    except FileNotFoundError:
        pass
    try:
        return int(json.loads((raw / "measure.json").read_text()).get("completed", 0))
    except (FileNotFoundError, ValueError):
        return 0


def point_consistency(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    df = read_traces(raw / TRACE)
    window = (pl.col("read_notification_ts") - pl.col("post_written_ts")) / 1e3
    df = df.with_columns(window.alias("window_ms"))
    inconsistent = int((~df["consistent"]).sum())

    def q(col: str, p: float) -> float:
        return float(df[col].quantile(p, interpolation="linear"))  # type: ignore[arg-type]

    wait = df["antipode_wait_us"] / 1e3 if "antipode_wait_us" in df.columns else None
    return {
        "traces": df.height,
        "traces_skipped": max(0, _finished(raw) - df.height),
        "inconsistent": inconsistent,
        "per_inconsistencies": 100.0 * inconsistent / df.height,
        "window_p50_ms": q("window_ms", 0.5),
        "window_p90_ms": q("window_ms", 0.9),
        "antipode_wait_p90_ms": float(wait.quantile(0.9, interpolation="linear")) if wait is not None else None,  # type: ignore[arg-type]
    }
