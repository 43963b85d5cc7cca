"""Pronghorn's stand-in, side by side in one run: the first request of a cold instance (a new PyPy
process, and a fork of the request-0 image) against the first request of instances restored from
snapshots taken after k requests, per benchmark; and what a restore costs (ms, MiB copied).

    python benchmarks/pronghorn_snapshots.py [--benchmarks bfs dfs ...] [--after 1 20 100] [--samples 3]

Prints one line per benchmark: median ms of each, and the restored/cold ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from argparse import Namespace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workloads"))

from pronghorn.host import DEFAULT_PYPY, Host  # noqa: E402


def first_ms(host: Host) -> float:
    assert host.instance is not None
    reply = host.instance.call({"op": "invoke", "mutability": 1})
    return float(reply["server_us"]) / 1e3


def run(benchmark: str, after: list[int], samples: int) -> str:
    state = Path(tempfile.mkdtemp(prefix="pronghorn-bench-"))
    args = Namespace(
        benchmark=benchmark,
        strategy="cold",
        eviction=10**6,
        state_dir=state,
        results_path=state / "results",
        pool_capacity=14,
        max_requests=100,
        cold_start="zygote",
        pypy=str(DEFAULT_PYPY),
        seed=1,
        gc_nursery="4MB",
        share_pages=False,
    )
    host = Host(args)
    threading.Thread(target=host.control.serve, daemon=True).start()
    out: dict[str, float] = {}
    try:
        for mode in ("exec", "zygote"):
            host.args.cold_start = mode
            got = []
            for _ in range(samples):
                host.start_instance()
                got.append(first_ms(host))
                host.instance.kill()
            out[f"cold-{mode}"] = statistics.median(got)
        host.args.cold_start = "zygote"
        host.start_instance()
        served, restore_ms, copied = 0, [], []
        for k in sorted(after):
            while served < k:
                first_ms(host)
                served += 1
            snap = host._fork_from(host.instance, "snapshot")
            got = []
            for _ in range(samples):
                t0 = time.perf_counter()
                inst = host._fork_from(snap, "restore")
                restore_ms.append((time.perf_counter() - t0) * 1e3)
                copied.append(float(inst.hello.get("copied_mib", 0)))
                keep, host.instance = host.instance, inst
                got.append(first_ms(host))
                inst.kill()
                host.instance = keep
            snap.kill()
            out[f"after-{k}"] = statistics.median(got)
    finally:
        host.shutdown()
    cold = out["cold-exec"]
    parts = [f"{name} {ms:.1f} ms" for name, ms in out.items()]
    ratios = [f"after-{k}/cold {out[f'after-{k}'] / cold:.2f}" for k in sorted(after)]
    restore = f"restore {statistics.median(restore_ms):.0f} ms, {statistics.median(copied):.0f} MiB copied"
    return f"{benchmark}: " + ", ".join(parts) + " | " + ", ".join(ratios) + f" | {restore}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", nargs="+", default=["bfs", "dfs", "mst", "dynamic-html", "compress"])
    ap.add_argument("--after", nargs="+", type=int, default=[1, 20, 100])
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    if not DEFAULT_PYPY.exists():
        print(f"no PyPy venv at {DEFAULT_PYPY}: run workloads/pronghorn/install.sh", file=sys.stderr)
        return 1
    for b in args.benchmarks:
        print(run(b, args.after, args.samples), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
