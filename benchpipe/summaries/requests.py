"""Per-request rows of a sequential run (Pronghorn's per-request CSV): the client's latency of
each timed request (raw/measure.requests.csv, in order), joined in order with the server's
record of the same request where the stack wrote one per served request (raw/async_results:
any field beside the timestamps, e.g. server_us, request_number, restored_from)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from benchpipe.errors import RawDataError
from benchpipe.generators.sequential import REQUEST_COLUMNS

SKIP_FIELDS = {"recvTs", "dispatchTs", "finishedTs", "request", "success", "pool", "output"}


def read_requests(path: Path) -> list[dict[str, int]]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != REQUEST_COLUMNS:
                raise RawDataError(f"{path}: expected columns {', '.join(REQUEST_COLUMNS)}, got {reader.fieldnames}")
            return [{k: int(v) for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise RawDataError(
            f"{path}: missing (the sequential generator writes it with settings.record_requests: true)"
        ) from None
    except ValueError:
        raise RawDataError(f"{path}: a value is not an integer (truncated or corrupt file)") from None


def read_server_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    raise RawDataError(f"{path}: line {i} is not JSON") from None
    return out


def point_requests(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = read_requests(raw / "measure.requests.csv")
    if not rows:
        raise RawDataError(f"{raw / 'measure.requests.csv'}: no request recorded")
    served = read_server_records(raw / "async_results")
    ok = [r for r in rows if r["ok"]]
    if served:
        # Warm-up requests come first in the server's file: the last len(ok) records are the timed ones.
        if len(served) < len(ok):
            raise RawDataError(
                f"{raw / 'async_results'}: {len(served)} served requests for {len(ok)} successful timed ones"
            )
        served = served[len(served) - len(ok) :]
    it = iter(served)
    out = []
    for r in rows:
        row: dict[str, Any] = {**r, "ok": bool(r["ok"])}
        if r["ok"] and served:
            rec = next(it)
            row.update({k: v for k, v in rec.items() if k not in SKIP_FIELDS and not isinstance(v, (list, dict))})
        out.append(row)
    return out
