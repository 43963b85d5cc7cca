"""Tables 4 and 5 of Pronghorn from one point's server records: what its snapshots cost.

The function host in CRIU mode (workloads/pronghorn) writes, on the record of a request after
which it dumped the instance, `dump_ms` and `image_bytes`, and on the first record of an instance
restored from an image, `instance_restore_ms`. Table 4 (cost-analysis/table_4.py): mean and
standard deviation of the image size (decimal MB, as `du -b` / 1e6), the dump and the restore time
(ms). Table 5 (cost-analysis/table_5.py): maximum storage = size x 12 (the pool capacity the script
assumes; the experiments ran with 14, given here too) and maximum network = (500 / 4) x 2 x size
(500 requests, a restart every 4, each uploading and downloading an image).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchpipe.errors import RawDataError
from benchpipe.summaries.requests import read_server_records

MB = 1_000_000
TABLE5 = {"pool": 12, "pool_ran": 14, "requests": 500, "eviction": 4}


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def table4_row(dump_ms: list[float], restore_ms: list[float], image_bytes: list[float]) -> dict[str, Any]:
    dump, dump_sd = _mean_std(dump_ms)
    size, size_sd = _mean_std([b / MB for b in image_bytes])
    row = {
        "size_mb": round(size, 2),
        "size_mb_std": round(size_sd, 2),
        "dump_ms": round(dump, 2),
        "dump_ms_std": round(dump_sd, 2),
        "dumps": len(dump_ms),
        "restores": len(restore_ms),
    }
    if restore_ms:
        restore, restore_sd = _mean_std(restore_ms)
        row |= {"restore_ms": round(restore, 2), "restore_ms_std": round(restore_sd, 2)}
    return row


def table5_row(size_mb: float) -> dict[str, Any]:
    return {
        "max_storage_mb": round(size_mb * TABLE5["pool"], 2),
        "max_storage_mb_pool14": round(size_mb * TABLE5["pool_ran"], 2),
        "max_network_mb": round(TABLE5["requests"] / TABLE5["eviction"] * 2 * size_mb, 2),
    }


def point_snapshot_costs(raw: Path, summary: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    records = read_server_records(raw / "async_results")
    dumps = [r for r in records if "dump_ms" in r]
    if not dumps:
        raise RawDataError(
            f"{raw / 'async_results'}: no snapshot was dumped (records with dump_ms come from the "
            "function host in CRIU mode: PRONGHORN_SNAPSHOT=criu)"
        )
    restores = [float(r["instance_restore_ms"]) for r in records if "instance_restore_ms" in r]
    row = table4_row([float(r["dump_ms"]) for r in dumps], restores, [float(r["image_bytes"]) for r in dumps])
    return row | table5_row(row["size_mb"])
