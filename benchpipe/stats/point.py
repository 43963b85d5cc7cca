"""One measurement of a point, checked: its per-second series (warm-up and measurement), the
client's view beside the paper's rule, the stability flags and within-run intervals.

Used by summarize (per attempt, per repetition) and by the run stage (measure.rerun_unstable:
re-measure a flagged point). Reads only a raw folder: the generator's report (measure.json) and,
where the stack records every call, its async_results.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchpipe.stats.intervals import Interval, window_interval
from benchpipe.stats.stability import (
    Flag,
    Series,
    Thresholds,
    check_drift,
    check_errors,
    check_fell_behind,
    check_stall,
    check_views,
    check_warmup,
)

# Open-loop load only: a closed loop or a sequential client sets its own pace (and switching
# experiments change their load on purpose), so trends there are not instability.
OPEN_LOOP = ("openloop", "wrk2")
# Within-run intervals of the paper rule's latency columns: the statistic per resampled windows.
WITHIN_RUN: dict[str, str | float] = {"p50_ms": 0.5, "p99_ms": 0.99, "mean_ms": "mean"}


@dataclass
class PointCheck:
    flags: list[Flag] = field(default_factory=list)
    client: dict[str, float | None] = field(default_factory=dict)
    within: dict[str, Interval] = field(default_factory=dict)
    warmup: Series | None = None
    measure: Series | None = None

    def names(self) -> list[str]:
        return [f.name for f in self.flags]


def _json(path: Path) -> dict[str, Any]:
    """A raw JSON file as a dict; {} when it is missing or not a JSON object (checked elsewhere)."""
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}


def client_view(rep: Mapping[str, Any]) -> dict[str, float | None]:
    """The generator's own percentiles (latency from the intended send time, its HdrHistogram)."""
    done = int(rep.get("completed", 0) or 0) > 0
    return {f"client_{k}": (float(rep[k]) if done and rep.get(k) is not None else None) for k in ("p50_ms", "p99_ms")}


def _calls(raw: Path, sleep_ms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(dispatch s, finished s, latency ms) of every call the stack recorded, or None."""
    path = raw / "async_results"
    if not path.exists() or path.stat().st_size == 0:
        return None
    from benchpipe.summaries.latency import read_async_results

    df = read_async_results(path)
    d = df["dispatchTs"].cast(pl.Float64).to_numpy() / 1e6
    f = df["finishedTs"].cast(pl.Float64).to_numpy() / 1e6
    return d, f, (f - d) * 1e3 - sleep_ms


def _sleep_ms(summary: Mapping[str, Any], params: Mapping[str, Any]) -> float:
    if summary.get("sleep_ms_per_op") and summary.get("ops_param"):
        return float(summary["sleep_ms_per_op"]) * float(params[summary["ops_param"]])
    return 0.0


def check_point(
    raw: Path,
    summary: Mapping[str, Any],
    params: Mapping[str, Any],
    th: Thresholds,
    paper: Mapping[str, Any] | None = None,
    seed: int = 0,
    within: bool = True,
) -> PointCheck:
    """Check one measurement (a raw folder or one attempt's folder). `paper`: the paper rule's
    numbers already computed for it (p50_ms, p99_ms, mean_ms, dropped_share), if any; `within`:
    also its within-run intervals (a point measured once)."""
    out = PointCheck()
    rep = _json(raw / "measure.json")
    timing = _json(raw / "timing.json")
    out.client = client_view(rep)
    if rep:
        out.flags += [
            f for f in (check_fell_behind(bool(rep.get("fell_behind")), rep.get("fell_behind_reason", "")),) if f
        ]
        failed = int(rep.get("errors", 0) or 0) + int(rep.get("timeouts", 0) or 0)
        flag = check_errors(failed, int(rep.get("sent", 0) or 0), th)
        if flag:
            out.flags.append(flag)
    calls = _calls(raw, _sleep_ms(summary, params))
    phases = _phases(raw, rep, timing, calls)
    if calls is not None and phases is not None:
        dispatch, finished, lat = calls
        (t0, t1), warm_window = phases
        out.measure = Series.from_events(finished, lat, t0, t1)
        for flag in (check_drift(out.measure.t, out.measure.p50, th, "per-second p50"), check_stall(out.measure, th)):
            if flag:
                out.flags.append(flag)
        if warm_window is not None:
            out.warmup = _warmup_series(finished, lat, *warm_window)
            flag = check_warmup(out.warmup, th)
            if flag:
                out.flags.append(flag)
        if within and paper and paper.get("p50_ms") is not None and "outlier_factor" in summary:
            # Per-second blocks of the measurement's calls, the paper's outlier rule applied.
            sel = (dispatch >= t0) & (dispatch < t1)
            d, x = dispatch[sel], lat[sel]
            if x.size:
                med = float(np.median(x))
                keep = x < med * float(summary["outlier_factor"]) if med > 0 else np.ones(x.size, bool)
                d, x = d[keep], x[keep]
                sec = np.floor(d - t0).astype(int)
                windows = [x[sec == i] for i in range(math.ceil(t1 - t0))]
                for col, fn in WITHIN_RUN.items():
                    if paper.get(col) is not None:
                        out.within[col] = window_interval(windows, fn, float(paper[col]), seed=seed)
    if paper:
        flag = check_views(paper.get("p99_ms"), out.client.get("client_p99_ms"), paper.get("dropped_share"), th)
        if flag:
            out.flags.append(flag)
    return out


def _phases(
    raw: Path, rep: Mapping[str, Any], timing: Mapping[str, Any], calls: Any
) -> tuple[tuple[float, float], tuple[float, float] | None] | None:
    """The measurement's window and the warm-up's (or None) whose calls the checks see; None when
    there is nothing to check (no per-call records, a closed loop, no measurement timing)."""
    if (
        calls is None
        or rep.get("generator") not in OPEN_LOOP
        or "measure_start" not in timing
        or "measure_end" not in timing
    ):
        return None
    t0, t1 = float(timing["measure_start"]), float(timing["measure_end"])
    if rep.get("duration_s"):
        # The offered-load period: after it the generator only waits for its last answers,
        # and the stack's completions tail off (not a stall).
        t1 = min(t1, t0 + float(rep["duration_s"]))
    warm = None
    if "warmup_start" in timing and "warmup_end" in timing:
        w0, w1 = float(timing["warmup_start"]), float(timing["warmup_end"])
        declared = _json(raw / "warmup.json").get("duration_s")
        warm = (w0, min(w1, w0 + float(declared)) if declared else w1)
    return (t0, t1), warm


def _warmup_series(finished: np.ndarray, lat: np.ndarray, w0: float, w1: float) -> Series:
    # Per second; a warm-up shorter than 8 s (the local scale) in eighths, to see a trend.
    width = 1.0 if w1 - w0 >= 8 else max((w1 - w0) / 8, 1e-3)
    return Series.from_events(finished, lat, w0, w1, width)


def attempts(raw: Path) -> list[tuple[int, Path]]:
    """A point's measurement attempts, oldest first: raw/attempts/<k>/ (re-measured after a flag,
    kept), then raw/ itself, the last one."""
    earlier = sorted((int(p.name), p) for p in (raw / "attempts").glob("*") if p.is_dir() and p.name.isdigit())
    return [*earlier, (len(earlier) + 1, raw)]


CHECKS_ENV = "BENCHPIPE_MEASURE_CHECKS"


def announce_checks(config: Mapping[str, Any]) -> None:
    """Called by the Snakemake process as it parses the workflow (like the scheduler's pid): its
    jobs inherit measure.rerun_unstable and the stability limits. Not a job parameter, so that
    changing them re-measures nothing already measured; they apply to points measured from now."""
    os.environ[CHECKS_ENV] = json.dumps(
        {"rerun_unstable": config["measure"].get("rerun_unstable", 0), "stability": config.get("stability") or {}}
    )


def announced_checks() -> tuple[int, Thresholds]:
    """(rerun_unstable, limits) as the run that started this job announced them; (0, defaults)."""
    try:
        got = json.loads(os.environ.get(CHECKS_ENV, "{}"))
    except ValueError:
        got = {}
    return int(got.get("rerun_unstable", 0)), Thresholds.from_config(got.get("stability"))


SERIES_FILE = "series.json"


def write_series(raw: Path) -> bool:
    """raw/series.json: the warm-up's and the measurement's windows (completions, p50, p99 per
    window), as the stability checks see them; written by collect beside the files it comes from.
    False when the point has no per-call records (nothing written)."""
    from benchpipe.model import write_json_atomic

    # The series only: no check runs here (the checks' Theil-Sen trends need scipy.stats, which
    # collect has no other use for); summaries and the run stage check the same windows.
    rep, timing = _json(raw / "measure.json"), _json(raw / "timing.json")
    calls = _calls(raw, 0.0)
    phases = _phases(raw, rep, timing, calls)
    if calls is None or phases is None:
        return False
    _dispatch, finished, lat = calls
    (t0, t1), warm = phases
    series = {"measure": Series.from_events(finished, lat, t0, t1)}
    if warm is not None:
        series["warmup"] = _warmup_series(finished, lat, *warm)
    write_json_atomic(raw / SERIES_FILE, {k: series[k].to_dict() for k in ("warmup", "measure") if k in series})
    return True
