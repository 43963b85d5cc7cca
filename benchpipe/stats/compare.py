"""Two runs of the same experiments compared point by point, as Go's benchstat compares benchmarks:
old and new median with 95% intervals, delta %, a Mann-Whitney U p-value, `~` when the
difference is not significant.

The samples of a point are, in this order of preference: its per-repetition values (the
summary's `<m>_reps`, or one row per repetition), its per-request rows (Pronghorn's sequential
runs), or, for a single repetition, its per-second window values (`<m>_windows` when the summary
has them, else the p50/p99 of each second of the measurement, from the stack's record of every
call). Which one was used is the row's `samples` column. A point with a single value on either
side gets no p-value ("n=1"): there is nothing to test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from scipy import stats

from benchpipe.stats.intervals import Interval, median_interval

ALPHA = 0.05
# Summary columns that describe a point or its bookkeeping, never a measured metric.
NOT_METRICS = {
    "experiment",
    "baseline",
    "label",
    "point",
    "repetition",
    "attempt",
    "config_hash",
    "offered_rps",
    "send_lag_ms",
    "gen_errors",
    "fell_behind",
    "fell_behind_reason",
    "flags",
    "flag_detail",
    "ci_kind",
    "request_number",
    "repetitions",
}
SUFFIXES = ("_lo", "_hi", "_n", "_reps", "_windows")
COLUMNS = (
    "experiment",
    "baseline",
    "point",
    "metric",
    "old",
    "old_lo",
    "old_hi",
    "old_n",
    "new",
    "new_lo",
    "new_hi",
    "new_n",
    "delta_pct",
    "p_value",
    "significant",
    "samples",
)


# Latency columns whose per-second values a single measurement yields (stability.Series' fields).
WINDOWED = {"p50_ms": "p50", "p99_ms": "p99"}


@dataclass(frozen=True)
class Samples:
    values: list[float]
    kind: str  # "repetitions", "per-second windows", "per-request", "single value"
    # The summary's own estimate and interval of a single repetition (within-run), shown as is.
    shown: Interval | None = None


def window_values(raw: Path, metric: str) -> list[float]:
    """Per-second values of a latency percentile over one measurement: raw/series.json's
    measurement windows (what the stability checks saw), else computed the same way from the
    stack's record of every call (async_results) and the window (timing.json); [] when the point
    has neither."""
    field = WINDOWED.get(metric)
    if field is None:
        return []
    try:
        got = json.loads((raw / "series.json").read_text()).get("measure", {}).get(field)
    except (OSError, ValueError, AttributeError):
        got = None
    if got is None:
        try:
            timing = json.loads((raw / "timing.json").read_text())
        except (OSError, ValueError):
            return []
        calls = raw / "async_results"
        if "measure_start" not in timing or not calls.exists() or calls.stat().st_size == 0:
            return []
        from benchpipe.stats.stability import Series
        from benchpipe.summaries.latency import read_async_results

        df = read_async_results(calls)
        done = df["finishedTs"].cast(pl.Float64).to_numpy() / 1e6
        latency = done * 1e3 - df["dispatchTs"].cast(pl.Float64).to_numpy() / 1e3
        got = getattr(
            Series.from_events(done, latency, float(timing["measure_start"]), float(timing["measure_end"])), field
        )
    return [float(v) for v in got if v is not None and math.isfinite(float(v))]


def samples(rows: pl.DataFrame, metric: str, results: Path | None = None) -> Samples:
    """A point's samples of `metric` (see the module's docstring); `results`: the folder its
    summary is in, for the per-second windows of a single repetition."""
    rows = rows.filter(pl.col(metric).is_not_null())
    if rows.height == 0:
        return Samples([], "no value")
    if rows.height > 1:
        per_point = "point" not in rows.columns or rows["point"].n_unique() == rows.height
        return Samples(rows[metric].cast(pl.Float64).to_list(), "repetitions" if per_point else "per-request")
    row = rows.row(0, named=True)
    reps = row.get(f"{metric}_reps")
    if reps is not None and len([v for v in reps if v is not None]) >= 2:
        return Samples([float(v) for v in reps if v is not None], "repetitions")
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    shown = (
        Interval(float(row[metric]), float(lo), float(hi), 1, "within-run")
        if lo is not None and hi is not None
        else None
    )
    windows = row.get(f"{metric}_windows")
    if windows is None and results is not None and {"experiment", "baseline", "point"} <= set(row):
        windows = window_values(Path(results, row["experiment"], row["baseline"], row["point"], "raw"), metric)
    if windows is not None and len(windows) >= 2:
        return Samples([float(v) for v in windows if v is not None], "per-second windows", shown)
    return Samples([float(row[metric])], "single value", shown)


def interval(s: Samples) -> Interval:
    if s.shown is not None:
        return s.shown
    kind = "repetitions" if s.kind == "repetitions" else "within-run"
    return median_interval(s.values, kind=kind)


def mann_whitney(old: Sequence[float], new: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value; None when either side has fewer than 2 values."""
    if len(old) < 2 or len(new) < 2:
        return None
    if len(set(old) | set(new)) == 1:
        return 1.0  # identical constants: no difference (scipy warns on this degenerate case)
    return float(stats.mannwhitneyu(old, new, alternative="two-sided").pvalue)


def compare_point(old: Samples, new: Samples, alpha: float = ALPHA) -> dict[str, Any]:
    a, b = interval(old), interval(new)
    p = mann_whitney(old.values, new.values)
    delta = (b.estimate - a.estimate) / abs(a.estimate) * 100 if a.estimate else math.nan
    kind = old.kind if old.kind == new.kind else f"{old.kind} / {new.kind}"
    return {
        "old": a.estimate,
        "old_lo": a.low,
        "old_hi": a.high,
        "old_n": a.n,
        "new": b.estimate,
        "new_lo": b.low,
        "new_hi": b.high,
        "new_n": b.n,
        "delta_pct": delta,
        "p_value": p,
        "significant": p is not None and p < alpha,
        "samples": kind,
    }


def metric_columns(df: pl.DataFrame, keys: Sequence[str]) -> list[str]:
    out = []
    for c, dtype in df.schema.items():
        if c in NOT_METRICS or c in keys or c.endswith(SUFFIXES) or not dtype.is_numeric():
            continue
        out.append(c)
    return out


def compare_frames(
    experiment: str,
    old: pl.DataFrame,
    new: pl.DataFrame,
    params: Sequence[str],
    metrics: Sequence[str] | None = None,
    alpha: float = ALPHA,
    folders: tuple[Path | None, Path | None] = (None, None),
) -> list[dict[str, Any]]:
    """Rows of the comparison of one experiment: per baseline, point (its parameters) and metric
    present on both sides."""
    keys = ["baseline", *[p for p in params if p in old.columns and p in new.columns]]
    both = [m for m in (metrics or metric_columns(old, keys)) if m in old.columns and m in new.columns]
    out = []
    groups_old = old.partition_by(keys, as_dict=True, maintain_order=True)
    groups_new = new.partition_by(keys, as_dict=True, maintain_order=True)
    for key, rows_old in groups_old.items():
        rows_new = groups_new.get(key)
        if rows_new is None:
            continue
        point = " ".join(f"{k}={v}" for k, v in zip(keys[1:], key[1:], strict=True)) or "-"
        for m in both:
            so, sn = samples(rows_old, m, folders[0]), samples(rows_new, m, folders[1])
            if not so.values or not sn.values:
                continue
            out.append(
                {
                    "experiment": experiment,
                    "baseline": key[0],
                    "point": point,
                    "metric": m,
                    **compare_point(so, sn, alpha),
                }
            )
    return out


def _num(v: float, lo: float, hi: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{v:.4g}"
    return f"{v:.4g} [{lo:.4g}, {hi:.4g}]"


def format_table(rows: Sequence[dict[str, Any]], old_name: str, new_name: str, notes: Sequence[str] = ()) -> str:
    """benchstat's layout: per experiment and metric, a line per point: old, new, delta, p."""
    tail = "".join(f"note: {n}\n" for n in notes)
    if not rows:
        return f"compare: no point measured in both {old_name} and {new_name}\n" + tail
    lines = [
        f"old: {old_name}",
        f"new: {new_name}",
        "median [95% interval]; delta and p (Mann-Whitney U) when significant, ~ when not",
        "",
    ]
    df = pl.DataFrame(rows, infer_schema_length=None)
    for (exp, metric), part in df.group_by(["experiment", "metric"], maintain_order=True):
        table = [("point", "old", "new", "delta", "samples")]
        for r in part.iter_rows(named=True):
            p = r["p_value"]
            if p is None:
                delta = f"{r['delta_pct']:+.1f}% (n={min(r['old_n'], r['new_n'])}: no test)"
            elif r["significant"]:
                delta = f"{r['delta_pct']:+.1f}% (p={p:.3g} n={r['old_n']}+{r['new_n']})"
            else:
                delta = f"~ (p={p:.3g} n={r['old_n']}+{r['new_n']})"
            table.append(
                (
                    f"{r['baseline']} {r['point']}",
                    _num(r["old"], r["old_lo"], r["old_hi"]),
                    _num(r["new"], r["new_lo"], r["new_hi"]),
                    delta,
                    r["samples"],
                )
            )
        widths = [max(len(t[i]) for t in table) for i in range(5)]
        lines.append(f"{exp}: {metric}")
        lines.extend("  " + "  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip() for t in table)
        lines.append("")
    return "\n".join(lines) + tail


def summaries(results: Path) -> dict[str, Path]:
    """The experiments a results folder has a summary of."""
    return {p.parent.name: p for p in sorted(Path(results).glob("*/summary.parquet"))}


def compare_dirs(
    old: Path,
    new: Path,
    params: dict[str, list[str]],
    metrics: dict[str, list[str]] | None = None,
    alpha: float = ALPHA,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every experiment summarized in both folders (a local run against an ssh or aws run too):
    the rows, and a note per experiment whose runs share no point (a scaled local sweep against
    the paper's, say)."""
    a, b = summaries(old), summaries(new)
    rows: list[dict[str, Any]] = []
    notes = []
    for name in sorted(set(a) & set(b)):
        da, db = pl.read_parquet(a[name]), pl.read_parquet(b[name])
        got = compare_frames(name, da, db, params.get(name, []), (metrics or {}).get(name), alpha, (old, new))
        if not got:
            sweep = [p for p in params.get(name, []) if p in da.columns and p in db.columns]
            shown = "; ".join(
                f"{p}: {sorted(set(map(str, da[p].to_list())))} vs {sorted(set(map(str, db[p].to_list())))}"
                for p in sweep
            )
            notes.append(
                f"{name}: no point in common ({shown or 'no sweep parameter in both'}); a local run is scaled "
                "(config scale): measure both with the same scale, e.g. --config 'scale={paper: true}'"
            )
        rows.extend(got)
    only = sorted(set(a) ^ set(b))
    if only:
        notes.append(f"summarized in one folder only (not compared): {', '.join(only)}")
    return rows, notes


def overlay(old: pl.DataFrame, new: pl.DataFrame, old_tag: str, new_tag: str) -> pl.DataFrame:
    """Both runs in one table, each series labelled with its run, for a figure drawing both."""
    tagged = [
        df.with_columns((pl.col("label") + f" · {tag}").alias("label")) for df, tag in ((old, old_tag), (new, new_tag))
    ]
    return pl.concat(tagged, how="diagonal_relaxed")


def write(rows: Sequence[dict[str, Any]], out: Path, text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    df = (
        pl.DataFrame(list(rows), infer_schema_length=None)
        if rows
        else pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    )
    df.select([c for c in COLUMNS if c in df.columns]).write_csv(out / "compare.csv")
    (out / "compare.txt").write_text(text)


def relabel(fig: dict[str, Any], old_tag: str, new_tag: str) -> dict[str, Any]:
    order = fig.get("series_order", [])
    return {**fig, "series_order": [f"{s} · {t}" for s in order for t in (old_tag, new_tag)]}
