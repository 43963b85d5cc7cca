"""One table per experiment: a row per point, with the metrics its summary names."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from benchpipe import registry
from benchpipe.errors import RawDataError
from benchpipe.experiment import Experiment, Point
from benchpipe.stats.intervals import median_interval
from benchpipe.stats.point import PointCheck, attempts, check_point
from benchpipe.stats.stability import Flag, Thresholds, check_outlier_reps, join, rerun_reasons

MetricFn = Callable[[Path, dict[str, Any], dict[str, Any]], dict[str, Any] | list[dict[str, Any]]]


def _metric(name: str) -> MetricFn:
    # Imported by name so that an experiment's metric families are the only ones loaded.
    try:
        return registry.load("metric", name)
    except KeyError as e:
        raise ValueError(str(e)) from None


IDENTITY = ("experiment", "baseline", "label", "point", "repetition", "config_hash")


def summarize(
    exp: Experiment,
    results: Path,
    repetitions: int,
    points: list[Point] | None = None,
    thresholds: Thresholds | None = None,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """A row per point (its repetitions reduced: per metric the median, its interval, n and the
    per-repetition values; docs/statistics.md), for every planned point or only `points` (those a
    figure draws); a missing or bad point is an error naming it, never a zero."""
    th = thresholds or Thresholds()
    planned = exp.all_points(repetitions) if points is None else points
    groups: dict[tuple[str, str], list[Point]] = {}
    for point in planned:
        groups.setdefault((point.baseline, json.dumps(point.params, sort_keys=True, default=str)), []).append(point)
    rows: list[dict[str, Any]] = []
    missing = []
    for reps in groups.values():
        measured = []
        for point in sorted(reps, key=lambda p: p.repetition):
            folder = results / exp.name / point.baseline / point.name
            if not (folder / "manifest.json").exists():
                missing.append(str(folder))
                continue
            measured.append((point, _measured(exp, point, folder, th, confidence, within=len(reps) == 1)))
        if measured and len(measured) == len(reps):
            rows.extend(_reduce(exp, measured, th, confidence))
    if missing:
        raise RawDataError(
            f"experiment {exp.name}: {len(missing)} point(s) not measured: {', '.join(missing)}. "
            "Run the workflow again to measure them."
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def _measured(
    exp: Experiment, point: Point, folder: Path, th: Thresholds, confidence: float, within: bool
) -> tuple[list[dict[str, Any]], PointCheck, int, str]:
    """One repetition: its rows (metric families on the attempt used), its check, which attempt
    and why. The attempt used is the first one with no flag that re-measures; else the last."""
    summary = exp.data["summary"]
    manifest = json.loads((folder / "manifest.json").read_text())
    tried = []
    for number, raw in attempts(folder / "raw"):
        point_rows = _metric_rows(exp, point, folder, raw, manifest)
        paper = point_rows[0] if len(point_rows) == 1 and "p99_ms" in point_rows[0] else None
        check = check_point(raw, summary, point.params, th, paper, seed=point.repetition, within=within)
        tried.append((number, point_rows, check))
        if not rerun_reasons(check.flags, th):
            break
    number, point_rows, check = tried[-1]
    note = ""
    if len(tried) > 1 or number > 1:
        earlier = "; ".join(
            f"attempt {n}: {', '.join(f.name for f in rerun_reasons(c.flags, th))}" for n, _, c in tried[:-1]
        )
        stable = not rerun_reasons(check.flags, th)
        note = f"attempt {number} used ({'stable' if stable else 'every attempt flagged; the last one'}); {earlier}"
    return point_rows, check, number, note


def _metric_rows(
    exp: Experiment, point: Point, folder: Path, raw: Path, manifest: dict[str, Any]
) -> list[dict[str, Any]]:
    summary = exp.data["summary"]
    gen = manifest.get("generator") or {}
    if raw != folder / "raw" and (raw / "measure.json").exists():
        gen = json.loads((raw / "measure.json").read_text())  # an earlier attempt's own report
    row: dict[str, Any] = {
        "experiment": exp.name,
        "baseline": point.baseline,
        "label": exp.baseline(point.baseline)["label"],
        "point": point.name,
        "repetition": point.repetition,
        **point.params,
        "offered_rps": gen.get("target_rate"),
        "achieved_rps": gen.get("achieved_rate"),
        "send_lag_ms": gen.get("max_send_lag_ms"),
        "gen_errors": gen.get("errors"),
        "fell_behind": bool(gen.get("fell_behind", manifest.get("fell_behind", False))),
        "fell_behind_reason": gen.get("fell_behind_reason", ""),
        "config_hash": manifest["config_hash"],
    }
    point_rows = [row]
    for metric in summary["metrics"]:
        try:
            got = _metric(metric)(raw, summary, point.params)
        except (RawDataError, ValueError) as e:
            raise RawDataError(f"point {folder}: {e}") from None
        # A metric gives one row's columns, or several rows (a time series) of this point.
        point_rows = [{**r, **g} for r in point_rows for g in (got if isinstance(got, list) else [got])]
    return point_rows


def _is_metric(name: str, value: Any, params: dict[str, Any]) -> bool:
    return (
        name not in IDENTITY and name not in params and isinstance(value, (int, float)) and not isinstance(value, bool)
    )


def _reduce(
    exp: Experiment,
    measured: list[tuple[Point, tuple[list[dict[str, Any]], PointCheck, int, str]]],
    th: Thresholds,
    confidence: float,
) -> list[dict[str, Any]]:
    """The repetitions of one point as one row (per metric: median, interval, n, values). A
    metric family that gives several rows per point (a time series) keeps a row per repetition."""
    params = measured[0][0].params
    if any(len(rows) != 1 for _, (rows, *_rest) in measured):
        out = []
        for point, (rows, check, number, note) in measured:
            flags, detail = join(check.flags)
            extra = {"ci_kind": "none", "flags": flags, "flag_detail": detail, "attempt": number, "attempt_note": note}
            out.extend({**r, **extra, "point": point.name, "repetition": point.repetition} for r in rows)
        return out
    reps = [rows[0] for _, (rows, *_rest) in measured]
    checks = [m[1][1] for m in measured]
    for r, c in zip(reps, checks, strict=True):
        r.update(c.client)
    n = len(reps)
    row: dict[str, Any] = {k: v for k, v in reps[0].items() if not _is_metric(k, v, params)}
    row.pop("repetition", None)
    row["repetitions"] = n
    row["fell_behind"] = any(r.get("fell_behind") for r in reps)
    row["fell_behind_reason"] = "; ".join(
        dict.fromkeys(r["fell_behind_reason"] for r in reps if r.get("fell_behind_reason"))
    )
    metrics = list(
        dict.fromkeys(k for r in reps for k, v in r.items() if _is_metric(k, v, params) or k.startswith("client_"))
    )
    flags: list[Flag] = []
    for i, c in enumerate(checks):
        flags += [Flag(f.name, f"rep {i + 1}: {f.detail}") if n > 1 else f for f in c.flags]
    within_any = False
    for m in metrics:
        values = [r.get(m) for r in reps]
        if n > 1:
            iv = median_interval([v for v in values if v is not None], confidence, kind="repetitions")
            estimate: Any = iv.estimate if iv.n else None
            if m in FAMILY_FLOATS_FOR_OUTLIERS or m.endswith("_ms") or m.endswith("_rps"):
                flag = check_outlier_reps(m, [math.nan if v is None else v for v in values], th)
                if flag:
                    flags.append(flag)
        else:
            iv = checks[0].within.get(m) or median_interval([], confidence)
            estimate = values[0]  # the single value, its type kept (existing figures unchanged)
            within_any = within_any or iv.kind == "within-run"
        row[m] = estimate
        row[f"{m}_lo"] = iv.low if iv.has_bounds else None
        row[f"{m}_hi"] = iv.high if iv.has_bounds else None
        row[f"{m}_n"] = sum(v is not None for v in values)
        row[f"{m}_reps"] = [None if v is None else float(v) for v in values]
    row["ci_kind"] = "repetitions" if n > 1 else "within-run" if within_any else "none"
    row["flags"], row["flag_detail"] = join(flags)
    row["attempt"] = max(m[1][2] for m in measured)
    row["attempt_note"] = "; ".join(
        f"rep {m[0].repetition}: {m[1][3]}" if n > 1 else m[1][3] for m in measured if m[1][3]
    )
    return [row]


# Columns whose repetitions are compared (outlier_rep) besides latencies (_ms) and rates (_rps).
FAMILY_FLOATS_FOR_OUTLIERS = ("throughput",)


def write_summary(df: pl.DataFrame, parquet: Path, csv: Path | None) -> None:
    parquet.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(parquet)
    if csv is not None:
        # CSV has no lists: per-repetition values ';'-joined.
        lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
        flat = df.with_columns(pl.col(c).cast(pl.List(pl.Utf8)).list.join(";").alias(c) for c in lists)
        flat.write_csv(csv)
