"""Harness overhead per point of the default local sweep: (wall time - warm-up - pause - measurement) / points.

Runs `snakemake figures/hotel.png` (the README's main job) into a scratch results folder, reads
every point's timing from its manifest, and prints the overhead against the 2 s target.

    python benchmarks/harness_overhead.py [--figure hotel] [--repetitions N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figure", default="hotel")
    ap.add_argument("--keep", action="store_true", help="keep the scratch results folder")
    ap.add_argument("--repetitions", type=int, default=1, help="--config repetitions=N (each point N times)")
    ap.add_argument("--config", nargs="*", default=[], help="more KEY=VALUE for snakemake --config")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="benchpipe-overhead-"))
    results, figures = scratch / "results", scratch / "figures"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        f"{figures}/{args.figure}.png",
        "--quiet",
        "rules",
        "--config",
        f"results_dir={results}",
        f"figures_dir={figures}",
        f"repetitions={args.repetitions}",
        *args.config,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return 1
    busy = 0.0
    manifests = sorted(results.glob("*/*/*/manifest.json"))
    for m in manifests:
        t = json.loads(m.read_text())["timing"]
        # The experiment's own time: warm-up, the quiet pause it asks for (sleep 10 upstream), measurement.
        busy += t.get("warmup_end", 0) - t.get("warmup_start", 0) + t["measure_end"] - t["measure_start"]
        busy += t.get("pause_end", 0) - t.get("pause_start", 0)
    n = len(manifests)
    overhead = (wall - busy) / n
    print(f"points: {n}")
    print(f"wall time: {wall:.1f} s; warm-up + pause + measurement: {busy:.1f} s")
    print(f"harness overhead per point: {overhead:.2f} s (target < {TARGET_S:.1f} s; ratio {overhead / TARGET_S:.2f})")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"kept {scratch}")
    return 0 if overhead < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
