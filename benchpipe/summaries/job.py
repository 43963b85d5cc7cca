"""Summary of a job point (benchpipe/generators/job.py): the duration the driver reports (from the
first run's start, a resume included), the wall-clock one, what was injected and recovered, and
the driver's own series: every list of numbers under the driver JSON's `metrics` becomes
`<name>` (mean) and `<name>_std` (sample standard deviation; 0 for one value). A driver that
measures several groups (Figure 8(a): one per payload size) lists them under `groups`, each with
its own keys (size) and `metrics`: one row per group."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchpipe.errors import RawDataError


def _job(raw: Path) -> dict[str, Any]:
    path = raw / "measure.job.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RawDataError(f"{path}: missing (the job kind wrote no record)") from None
    except ValueError:
        raise RawDataError(f"{path}: not valid JSON") from None


def _series(metrics: Any, where: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, values in (metrics or {}).items():
        if not isinstance(values, list) or not values or not all(isinstance(v, int | float) for v in values):
            raise RawDataError(f"{where}.{name}: expected a non-empty list of numbers")
        row[name] = statistics.fmean(values)
        row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row[f"{name}_n"] = len(values)
    return row


def point_job(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
    job = _job(raw)
    driver = job.get("driver", {})
    row: dict[str, Any] = {
        "duration_s": float(job["duration_s"]),
        "wall_duration_s": float(job["wall_duration_s"]),
        "runs": len(job.get("runs", [])),
        "crashed": job.get("crashed_at") is not None,
        "recoveries": len(driver.get("recoveries", [])),
    }
    where = f"{raw / 'measure.job.json'}: driver"
    row.update(_series(driver.get("metrics"), f"{where}.metrics"))
    groups = driver.get("groups")
    if not groups:
        return row
    out = []
    for i, g in enumerate(groups):
        keys = {k: v for k, v in g.items() if k != "metrics"}
        out.append({**row, **keys, **_series(g.get("metrics"), f"{where}.groups[{i}].metrics")})
    return out
