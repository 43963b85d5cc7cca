"""Confidence intervals of a median (scipy.stats.bootstrap), used for repetitions and within-run windows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("repetitions", "within-run", "none")
# Enough resamples for stable 95% bounds; more only costs time per summary row.
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A median with its confidence interval; low = high = nan when there is none (kind "none")."""

    estimate: float
    low: float
    high: float
    n: int
    kind: str

    @property
    def has_bounds(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def median_interval(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0, *, kind: str = "repetitions"
) -> Interval:
    """The median of `values` with a bootstrap (percentile) interval at `confidence`.

    Non-finite values are dropped. Fewer than two values give no interval (kind "none"). The
    percentile method, not BCa: BCa's jackknife is undefined for the median of 2-3 values, which is
    the usual number of repetitions. `kind` names where the values came from ("repetitions" or
    "within-run", per-second windows of one measurement).
    """
    if kind not in KINDS:
        raise ValueError(f"interval kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r}: expected a number between 0 and 1")
    data = np.asarray([float(v) for v in values if v is not None], dtype=float)
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "none")
    estimate = float(np.median(data))
    if n < 2:
        return Interval(estimate, math.nan, math.nan, n, "none")
    if np.all(data == data[0]):
        # Every resample has the same median; scipy warns on such degenerate data.
        return Interval(estimate, estimate, estimate, n, kind)
    from scipy import stats  # here, not at import: the run and collect jobs of every point import this module

    res = stats.bootstrap(
        (data,),
        np.median,
        confidence_level=confidence,
        n_resamples=N_RESAMPLES,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval(estimate, min(low, estimate), max(high, estimate), n, kind)


def window_interval(
    windows: Sequence[np.ndarray],
    statistic: str | float,
    estimate: float,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 500,
) -> Interval:
    """A within-run interval of one measurement's `statistic` ("mean", or a quantile in (0, 1))
    of its pooled values: bootstrap (scipy.stats.bootstrap) over its windows (per-second blocks,
    resampled whole, which keeps each second's correlation inside its block). `estimate` is the
    run's own value (the paper's rule), kept as is; fewer than 4 non-empty windows: no interval.

    A resample is a count per window; the pooled statistic is the count-weighted mean or quantile
    of the values sorted once, so resamples are computed together (a few ms for 10^4 values)."""
    blocks = [np.asarray(w, dtype=float) for w in windows if len(w)]
    k = len(blocks)
    if k < 4 or not math.isfinite(estimate):
        return Interval(estimate, math.nan, math.nan, 1, "none")
    values = np.concatenate(blocks)
    labels = np.repeat(np.arange(k), [b.size for b in blocks])
    order = np.argsort(values, kind="stable")
    values, labels = values[order], labels[order]

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx)
        flat = idx.reshape(-1, idx.shape[-1])
        counts = np.stack([np.bincount(r, minlength=k) for r in flat])
        w = counts[:, labels].astype(float)
        total = w.sum(axis=1)
        if statistic == "mean":
            got = (w * values).sum(axis=1) / total
        else:
            cum = np.cumsum(w, axis=1)
            pos = (cum < float(statistic) * total[:, None]).sum(axis=1)
            got = values[np.minimum(pos, values.size - 1)]
        return got.reshape(idx.shape[:-1])

    from scipy import stats  # here, not at import: the run and collect jobs of every point import this module

    res = stats.bootstrap(
        (np.arange(k),),
        stat,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        batch=100,  # resamples x values at a time: bounded memory at the paper's scale
        rng=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return Interval(estimate, math.nan, math.nan, 1, "none")
    return Interval(estimate, min(low, estimate), max(high, estimate), 1, "within-run")
