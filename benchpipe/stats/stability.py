"""Stability checks of one measured point: each a named flag with the numbers behind it.

Flags (names as they appear in a summary's `flags` column):
  drift           the per-second p50 (or throughput) trends across the measurement window: the
                  Theil-Sen slope's 95% interval excludes 0 and the fitted change is larger than
                  `drift_min_change` (a fraction of the fitted start value) and than
                  `drift_min_abs` (in the series' unit, ms)
  stall           a one-second window with no completion while the others have some, or a window
                  whose p99 is over `stall_p99_factor` x the median window's p99 and over it by
                  `stall_min_gap_ms`
  fell_behind     the load generator could not offer its target rate (its own judgement)
  errors          errors and timeouts above `max_error_share` of the requests sent
  outlier_rep     a repetition outside median +- `outlier_mads` x MAD of the repetitions and over
                  `outlier_min_rel` of the median away
  warmup_short    the warm-up's per-second p50 still trending at its end (Theil-Sen over its last
                  half, interval excluding 0, change above `warmup_min_change`)
  views_disagree  the client's p99 (the generator's, from the intended send time) over
                  `views_max_ratio` x the paper's p99 and `views_min_gap_ms` above it (sub-ms
                  server times make any ratio large), or the paper's rule dropped more than
                  `views_max_dropped_share` of the requests
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

FLAG_NAMES = ("drift", "stall", "fell_behind", "errors", "outlier_rep", "warmup_short", "views_disagree")
DETAIL_SEP = " | "


@dataclass(frozen=True)
class Thresholds:
    """The checks' limits (config `stability:`; these are the defaults)."""

    drift_min_change: float = 0.5
    drift_min_abs: float = 1.0
    stall_p99_factor: float = 10.0
    stall_min_gap_ms: float = 250.0
    max_error_share: float = 0.01
    outlier_mads: float = 3.0
    outlier_min_rel: float = 0.05
    warmup_min_change: float = 0.25
    views_max_ratio: float = 5.0
    views_min_gap_ms: float = 100.0
    views_max_dropped_share: float = 0.02
    # Flags that make `measure.rerun_unstable` re-measure a point (an overloaded point's flags are
    # what overload looks like, and a re-measurement would show them again).
    rerun_flags: tuple[str, ...] = ("stall", "drift", "errors")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Thresholds:
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if k == "rerun_flags" else float(v)) for k, v in cfg.items() if k in known}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


@dataclass(frozen=True)
class Flag:
    name: str
    detail: str  # human-readable, with the numbers

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True)
class Series:
    """Per-second windows of a phase: start of each window (s from the phase start), completions,
    p50 and p99 of the latencies (ms; nan for an empty window)."""

    t: np.ndarray
    count: np.ndarray
    p50: np.ndarray
    p99: np.ndarray

    @classmethod
    def from_events(
        cls, done_s: np.ndarray, latency_ms: np.ndarray, start_s: float, end_s: float, width_s: float = 1.0
    ) -> Series:
        """Windows of `width_s` over [start_s, end_s) (whole windows only) from completion times
        (s) and their latencies."""
        n = math.floor((end_s - start_s) / width_s + 1e-9)
        idx = np.floor((np.asarray(done_s, dtype=float) - start_s) / width_s).astype(int)
        lat = np.asarray(latency_ms, dtype=float)
        count = np.zeros(n, dtype=int)
        p50 = np.full(n, np.nan)
        p99 = np.full(n, np.nan)
        for i in range(n):
            w = lat[idx == i]
            count[i] = w.size
            if w.size:
                p50[i], p99[i] = np.percentile(w, [50, 99])
        return cls(np.arange(n) * width_s, count, p50, p99)

    def to_dict(self) -> dict[str, Any]:
        def ms(a: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), 3) for v in a]

        width = float(self.t[1] - self.t[0]) if self.t.size > 1 else 1.0
        return {"window_s": width, "count": self.count.tolist(), "p50_ms": ms(self.p50), "p99_ms": ms(self.p99)}


def _trend(
    t: np.ndarray, y: np.ndarray, large: Callable[[float, float], bool] | None = None, confidence: float = 0.95
) -> tuple[float, float, float, float] | None:
    """Theil-Sen slope, its interval and the fitted relative change across t; None if too short,
    or if `large(slope, change)` says the trend is too small to flag whatever its interval.

    The gate uses Theil-Sen's point estimate as scipy.stats.theilslopes defines it (the median of
    the pairwise slopes; intercept median(y) - slope * median(t)), a few numpy lines; only a trend
    large enough to matter gets scipy's full result (slope, interval), which decides the flag. Most
    points never trend, and importing scipy.stats costs ~1 s in the run and collect jobs."""
    ok = np.isfinite(y)
    t, y = np.asarray(t, dtype=float)[ok], np.asarray(y, dtype=float)[ok]
    if t.size < 4 or np.ptp(t) == 0:
        return None
    if large is not None:
        dt, dy = t[:, None] - t, y[:, None] - y
        est = float(np.median(dy[dt > 0] / dt[dt > 0]))
        if not large(est, _change(t, y, est, float(np.median(y)) - est * float(np.median(t)))):
            return None
    from scipy import stats  # here, not at import: the run and collect jobs of every point import this module

    slope, intercept, low, high = stats.theilslopes(y, t, alpha=confidence)
    return float(slope), float(low), float(high), _change(t, y, float(slope), float(intercept))


def _change(t: np.ndarray, y: np.ndarray, slope: float, intercept: float) -> float:
    """The fitted line's change across t, relative to its start (or to the series' size)."""
    start = intercept + slope * t[0]
    end = intercept + slope * t[-1]
    base = start if abs(start) > 1e-12 else float(np.median(np.abs(y))) or 1.0
    return float((end - start) / abs(base))


# The gate's margin: the point estimate is scipy's to the last bit, but a trend within 1% of a
# limit gets scipy's result all the same.
_GATE = 0.99


def check_drift(t: Sequence[float], y: Sequence[float], th: Thresholds, what: str = "p50") -> Flag | None:
    span = float(np.ptp(np.asarray(t, dtype=float)))

    def large(slope: float, change: float) -> bool:
        return abs(change) > _GATE * th.drift_min_change and abs(slope * span) > _GATE * th.drift_min_abs

    got = _trend(np.asarray(t), np.asarray(y), large)
    if got is None:
        return None
    slope, low, high, change = got
    # And by more than drift_min_abs in the series' unit (ms): sub-ms p50s double on noise.
    if (low > 0 or high < 0) and abs(change) > th.drift_min_change and abs(slope * span) > th.drift_min_abs:
        return Flag(
            "drift",
            f"{what} {'rose' if change > 0 else 'fell'} {abs(change):.0%} across {span:.0f} s "
            f"(Theil-Sen {slope:.3g}/s, 95% CI {low:.3g}..{high:.3g}; limit {th.drift_min_change:.0%})",
        )
    return None


def check_stall(series: Series, th: Thresholds) -> Flag | None:
    count, p99 = series.count, series.p99
    if count.size < 3 or not count.any():
        return None
    empty = np.flatnonzero(count == 0)
    if empty.size:
        at = ", ".join(f"{series.t[i]:.0f} s" for i in empty[:5])
        return Flag(
            "stall",
            f"no completion in {empty.size} of {count.size} one-second windows (at {at}); "
            f"median {np.median(count):.0f} per window",
        )
    ref = float(np.nanmedian(p99))
    worst = int(np.nanargmax(p99))
    # Both far above in ratio and by an absolute gap: sub-ms windows make any ratio large.
    if ref > 0 and p99[worst] > th.stall_p99_factor * ref and p99[worst] - ref > th.stall_min_gap_ms:
        return Flag(
            "stall",
            f"p99 of the window at {series.t[worst]:.0f} s is {p99[worst]:.1f} ms, "
            f"{p99[worst] / ref:.0f}x the median window's {ref:.1f} ms "
            f"(limits {th.stall_p99_factor:g}x and {th.stall_min_gap_ms:g} ms)",
        )
    return None


def check_fell_behind(fell_behind: bool, reason: str) -> Flag | None:
    return Flag("fell_behind", reason or "the load generator fell behind its target rate") if fell_behind else None


def check_errors(errors: int, sent: int, th: Thresholds) -> Flag | None:
    if sent <= 0:
        return None
    share = errors / sent
    if share > th.max_error_share:
        return Flag(
            "errors", f"{errors} of {sent} requests failed or timed out ({share:.1%}; limit {th.max_error_share:.1%})"
        )
    return None


def outlier_repetitions(values: Sequence[float], th: Thresholds) -> list[int]:
    """Indices of the values outside median +- outlier_mads x MAD (needs 3 values or more)."""
    v = np.asarray([np.nan if x is None else float(x) for x in values], dtype=float)
    ok = np.isfinite(v)
    if ok.sum() < 3:
        return []
    med = float(np.median(v[ok]))
    from scipy import stats  # here, not at import: the run and collect jobs of every point import this module

    mad = float(stats.median_abs_deviation(v[ok]))
    # With three values the MAD is the smaller of two gaps, often tiny: a repetition also has to be
    # `outlier_min_rel` of the median away to count.
    limit = max(th.outlier_mads * mad, th.outlier_min_rel * abs(med), 1e-12)
    return [i for i in range(v.size) if ok[i] and abs(v[i] - med) > limit]


def check_outlier_reps(metric: str, values: Sequence[float], th: Thresholds) -> Flag | None:
    out = outlier_repetitions(values, th)
    if not out:
        return None
    med = float(np.nanmedian(np.asarray(values, dtype=float)))
    reps = ", ".join(f"rep {i + 1} = {float(values[i]):.3g}" for i in out)
    return Flag(
        "outlier_rep",
        f"{metric}: {reps}; median {med:.3g} (limits {th.outlier_mads:g} MAD and {th.outlier_min_rel:.0%})",
    )


def check_warmup(series: Series, th: Thresholds) -> Flag | None:
    """Was the warm-up still trending at its end? Theil-Sen over its last half (3 windows or more)."""
    n = series.t.size
    if n < 4:
        return None
    k = max(4, n - n // 2)
    t, y = series.t[-k:], series.p50[-k:]
    got = _trend(t, y, lambda _slope, change: abs(change) > _GATE * th.warmup_min_change)
    if got is None:
        return None
    slope, low, high, change = got
    if (low > 0 or high < 0) and abs(change) > th.warmup_min_change:
        return Flag(
            "warmup_short",
            f"warm-up p50 still {'rising' if slope > 0 else 'falling'} at its end: {slope:.3g} ms/s "
            f"({change:+.0%} over its last {np.ptp(t):.1f} s; 95% CI {low:.3g}..{high:.3g})",
        )
    return None


def check_views(
    paper_p99: float | None, client_p99: float | None, dropped_share: float | None, th: Thresholds
) -> Flag | None:
    parts = []
    if (
        paper_p99
        and client_p99
        and paper_p99 > 0
        and client_p99 > th.views_max_ratio * paper_p99
        and client_p99 - paper_p99 > th.views_min_gap_ms
    ):
        parts.append(
            f"client p99 {client_p99:.1f} ms is {client_p99 / paper_p99:.1f}x the paper rule's {paper_p99:.1f} ms "
            f"(limits {th.views_max_ratio:g}x and {th.views_min_gap_ms:g} ms)"
        )
    if dropped_share is not None and dropped_share > th.views_max_dropped_share:
        parts.append(
            f"the paper's rule dropped {dropped_share:.1%} of requests (limit {th.views_max_dropped_share:.1%})"
        )
    return Flag("views_disagree", "; ".join(parts)) if parts else None


def join(flags: Sequence[Flag]) -> tuple[str, str]:
    """The summary's `flags` (';'-joined names, each once) and `flag_detail` columns."""
    names = list(dict.fromkeys(f.name for f in flags))
    return ";".join(names), DETAIL_SEP.join(str(f) for f in flags)


def row_flags(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Per summary row (a dict of its columns): [(flag name, reason)], empty when stable."""
    detail = row.get("flag_detail") or ""
    out = []
    for part in detail.split(DETAIL_SEP) if detail else []:
        name, _, reason = part.partition(": ")
        out.append((name, reason))
    known = {n for n, _ in out}
    out += [(n, "") for n in (row.get("flags") or "").split(";") if n and n not in known]
    return out


def rerun_reasons(flags: Sequence[Flag], th: Thresholds) -> list[Flag]:
    """The flags that call for a re-measurement: none when the generator fell behind (overload)."""
    if any(f.name == "fell_behind" for f in flags):
        return []
    return [f for f in flags if f.name in th.rerun_flags]
