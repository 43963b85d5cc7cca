"""The CRIU path, for a host where CRIU works (`--profile ssh`; not this development machine, where
Debian 12's criu 3.17.1 fails its kernel check on kernel 6.18): the commands the artifact's agent
and its Table 4 measurement run, rendered for a remote shell, and Tables 4 and 5 computed from
their output as the artifact computes them.

- dump (agent-python/main.py): `criu dump -t <pid> --tcp-established --leave-running -D <dir>`
- restore (the container's start): `criu restore --restore-detached --tcp-close -d -D <dir>`
- Table 4 (cost-analysis/table_4.py, run by hand in a pod): 10 cycles of dump, kill, restore;
  mean and standard deviation of the dump and restore times (ms) and of the image size (MB).
- Table 5 (cost-analysis/table_5.py): max storage = image size x 12 (the pool capacity the script
  assumes; the experiments ran with 14, see reference/seed-pronghorn.md); max network =
  (500 / 4) x 2 x image size (500 requests, eviction every 4: each restart uploads and downloads).
"""

from __future__ import annotations

import json
import shlex
import statistics
from collections.abc import Iterable
from typing import Any

MB = 1_000_000  # the artifact's tables are in decimal megabytes (du -b / 1e6)


def dump_cmd(pid: int | str, image_dir: str) -> str:
    return f"criu dump -t {pid} --tcp-established --leave-running -D {shlex.quote(image_dir)}"


def restore_cmd(image_dir: str) -> str:
    return f"criu restore --restore-detached --tcp-close -d -D {shlex.quote(image_dir)}"


def size_cmd(image_dir: str) -> str:
    return f"du -sb {shlex.quote(image_dir)} | cut -f1"


def table4_script(start_cmd: str, ready_cmd: str, image_dir: str, cycles: int = 10) -> str:
    """A bash script for the remote host: start the function's process, make it serve once
    (`ready_cmd`), then `cycles` x (dump it, kill it, restore it, make it serve); one JSON line per
    cycle: {"cycle", "dump_ms", "restore_ms", "size_bytes"}. Run with `bash -s` over ssh."""
    d = shlex.quote(image_dir)
    return "\n".join(
        [
            "set -euo pipefail",
            "ms() { date +%s%3N; }",
            f"{start_cmd} &",
            "pid=$!",
            f"until {ready_cmd}; do sleep 0.1; done",
            f"for cycle in $(seq 1 {int(cycles)}); do",
            f"  rm -rf {d} && mkdir -p {d}",
            f"  t0=$(ms); {dump_cmd('$pid', image_dir)}; t1=$(ms)",
            f"  size=$({size_cmd(image_dir)})",
            "  kill -9 $pid; while kill -0 $pid 2>/dev/null; do sleep 0.01; done",
            f"  t2=$(ms); {restore_cmd(image_dir)}; t3=$(ms)",
            # CRIU restores the process under its old pid.
            f"  until {ready_cmd}; do sleep 0.01; done",
            '  printf \'{"cycle": %d, "dump_ms": %d, "restore_ms": %d, "size_bytes": %d}\\n\' '
            '"$cycle" "$((t1 - t0))" "$((t3 - t2))" "$size"',
            "done",
            "kill -9 $pid || true",
        ]
    )


def parse_cycles(text: str) -> list[dict[str, float]]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                rows.append({k: float(rec[k]) for k in ("dump_ms", "restore_ms", "size_bytes")})
            except (ValueError, KeyError):
                raise ValueError(f"table 4 output line {i}: expected a JSON cycle record, got {line!r}") from None
    if not rows:
        raise ValueError("table 4 output: no cycle recorded")
    return rows


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def table4_row(benchmark: str, cycles: Iterable[dict[str, float]]) -> dict[str, Any]:
    rows = list(cycles)
    dump, dump_sd = _mean_std([r["dump_ms"] for r in rows])
    restore, restore_sd = _mean_std([r["restore_ms"] for r in rows])
    size, size_sd = _mean_std([r["size_bytes"] / MB for r in rows])
    return {
        "benchmark": benchmark,
        "size_mb": round(size, 2),
        "size_mb_std": round(size_sd, 2),
        "dump_ms": round(dump, 2),
        "dump_ms_std": round(dump_sd, 2),
        "restore_ms": round(restore, 2),
        "restore_ms_std": round(restore_sd, 2),
        "cycles": len(rows),
    }


def table5_row(
    benchmark: str, size_mb: float, pool: int = 12, requests: int = 500, eviction: int = 4
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "max_storage_mb": round(size_mb * pool, 2),
        "max_network_mb": round(requests / eviction * 2 * size_mb, 2),
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m pronghorn.criu script ...` prints the Table 4 script for a remote host;
    `python -m pronghorn.criu tables NAME=FILE ...` prints Tables 4 and 5 as JSON lines."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m pronghorn.criu", description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("script")
    sc.add_argument("--start", required=True, help="the function's command, e.g. 'pypy3 index.py'")
    sc.add_argument("--ready", required=True, help="succeeds once it serves, e.g. 'curl -sf localhost:8080/'")
    sc.add_argument("--dir", default="/tmp/pronghorn-checkpoint")
    sc.add_argument("--cycles", type=int, default=10)
    tb = sub.add_parser("tables")
    tb.add_argument("outputs", nargs="+", help="BENCHMARK=FILE: the script's output for that benchmark")
    args = ap.parse_args(argv)
    if args.cmd == "script":
        print(table4_script(args.start, args.ready, args.dir, args.cycles))
        return
    for item in args.outputs:
        name, _, path = item.partition("=")
        row = table4_row(name, parse_cycles(Path(path).read_text()))
        print(json.dumps({"table": 4, **row}))
        print(json.dumps({"table": 5, **table5_row(name, row["size_mb"])}))


if __name__ == "__main__":
    main()
