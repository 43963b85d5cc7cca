"""One table per experiment: a row per point, with the metrics its summary names."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from benchpipe import registry
from benchpipe.errors import RawDataError
from benchpipe.experiment import Experiment, Point

MetricFn = Callable[[Path, dict[str, Any], dict[str, Any]], dict[str, Any] | list[dict[str, Any]]]


def _metric(name: str) -> MetricFn:
    # Imported by name so that an experiment's metric families are the only ones loaded.
    try:
        return registry.load("metric", name)
    except KeyError as e:
        raise ValueError(str(e)) from None


def summarize(exp: Experiment, results: Path, repetitions: int, points: list[Point] | None = None) -> pl.DataFrame:
    """Rows for every planned point (or only `points`: those a figure draws); a missing or bad
    point is an error naming it, never a zero."""
    summary = exp.data["summary"]
    rows: list[dict[str, Any]] = []
    missing = []
    for point in exp.all_points(repetitions) if points is None else points:
        folder = results / exp.name / point.baseline / point.name
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            missing.append(str(folder))
            continue
        manifest = json.loads(manifest_path.read_text())
        gen = manifest.get("generator") or {}
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
            "fell_behind": bool(manifest.get("fell_behind", False)),
            "fell_behind_reason": gen.get("fell_behind_reason", ""),
            "config_hash": manifest["config_hash"],
        }
        point_rows = [row]
        for metric in summary["metrics"]:
            try:
                got = _metric(metric)(folder / "raw", summary, point.params)
            except (RawDataError, ValueError) as e:
                raise RawDataError(f"point {folder}: {e}") from None
            # A metric gives one row's columns, or several rows (a time series) of this point.
            point_rows = [{**r, **g} for r in point_rows for g in (got if isinstance(got, list) else [got])]
        rows.extend(point_rows)
    if missing:
        raise RawDataError(
            f"experiment {exp.name}: {len(missing)} point(s) not measured: {', '.join(missing)}. "
            "Run the workflow again to measure them."
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def write_summary(df: pl.DataFrame, parquet: Path, csv: Path | None) -> None:
    parquet.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(parquet)
    if csv is not None:
        df.write_csv(csv)
