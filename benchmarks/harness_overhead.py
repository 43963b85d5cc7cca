"""Harness overhead per point of the default local sweep: (wall - warm-up - pause - measurement - drain) / points.

Runs `snakemake figures/hotel.png` (the README's main job) into a scratch results folder, reads
every point's timing from its manifest (and from the attempts a flag had re-measured, kept under
raw/attempts/: measurement time, counted apart), prints the overhead against the 2 s target, and
per rule its jobs' durations as Snakemake recorded them (.snakemake/metadata: job start to output).

    python benchmarks/harness_overhead.py [--figure hotel] [--repetitions N] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
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
    t0, started = time.monotonic(), time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return 1
    busy = redone = drain = 0.0
    manifests = sorted(results.glob("*/*/*/manifest.json"))
    reruns = 0
    spans: list[tuple[float, float]] = []
    for m in manifests:
        t = json.loads(m.read_text())["timing"]
        busy += _busy(t)
        drain += _drain(t)
        spans += _busy_spans(t)
        for attempt in sorted(m.parent.glob("raw/attempts/*/timing.json")):
            a = json.loads(attempt.read_text())
            redone += _busy(a)
            drain += _drain(a)
            spans += _busy_spans(a)
            reruns += 1
    n = len(manifests)
    overhead = (wall - busy - redone) / n
    print(f"points: {n}")
    print(
        f"wall time: {wall:.1f} s; warm-up + pause + measurement + drain: {busy:.1f} s"
        f" (+ {redone:.1f} s in {reruns} attempt(s) flagged and measured again; drains {drain:.1f} s in all)"
    )
    print(f"harness overhead per point: {overhead:.2f} s (target < {TARGET_S:.1f} s; ratio {overhead / TARGET_S:.2f})")
    print(f"  counting the stacks' drains as the harness's instead: {overhead + drain / n:.2f} s per point")
    jobs = _jobs(scratch)
    _job_times(jobs, started)
    _where_overhead_went(jobs, spans, started, started + wall, n)
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"kept {scratch}")
    return 0 if overhead < TARGET_S else 1


def _busy(t: dict) -> float:
    """The experiment's own time: warm-up, the quiet pause it asks for (sleep 10 upstream),
    measurement, and the stack finishing the calls sent during it (_drain)."""
    busy = t.get("warmup_end", 0) - t.get("warmup_start", 0) + t["measure_end"] - t["measure_start"]
    return busy + t.get("pause_end", 0) - t.get("pause_start", 0) + _drain(t)


def _drain(t: dict) -> float:
    """From the generator's end until the stack has finished every call it was sent: an overloaded
    stack (Boki at the top rates) works off its queue here. Its length is the system under test's,
    not the harness's; the seed waits it out with a fixed `sleep 10` after each measurement."""
    return max(0.0, t.get("drained", t["measure_end"]) - t["measure_end"])


def _busy_spans(t: dict) -> list[tuple[float, float]]:
    pairs = [("warmup_start", "warmup_end"), ("pause_start", "pause_end"), ("measure_start", "measure_end")]
    pairs += [("measure_end", "drained")]
    return [(t[a], t[b]) for a, b in pairs if a in t and b in t]


def _jobs(scratch: Path) -> dict[tuple[str, str], tuple[float, float]]:
    """Every job of the run: (rule, log) -> (start, end), from Snakemake's metadata."""
    jobs: dict[tuple[str, str], tuple[float, float]] = {}
    for f in (REPO / ".snakemake" / "metadata").iterdir():
        try:
            key = base64.urlsafe_b64decode(f.name).decode()
        except ValueError:
            continue
        if not key.startswith(str(scratch)):
            continue
        rec = json.loads(f.read_text())
        if rec.get("starttime") and rec.get("endtime"):
            # One job per rule and log file (a job with several outputs has a record per output).
            job = (rec["rule"], json.dumps(rec.get("log")))
            start, end = jobs.get(job, (rec["starttime"], rec["endtime"]))
            jobs[job] = (min(start, rec["starttime"]), max(end, rec["endtime"]))
    return jobs


def _job_times(jobs: dict[tuple[str, str], tuple[float, float]], started: float) -> None:
    """Per rule: its jobs' durations (Snakemake's metadata: the job's start, its output's mtime)."""
    if not jobs:
        return
    by_rule: dict[str, list[float]] = {}
    for (rule, _log), (start, end) in jobs.items():
        by_rule.setdefault(rule, []).append(end - start)
    first = min(start for start, _ in jobs.values())
    print(f"jobs (Snakemake's record; a deploy includes its wait for the machine): first at {first - started:.1f} s")
    for rule, d in by_rule.items():
        med, top, total = statistics.median(d), max(d), sum(d)
        print(f"  {rule:12s} {len(d):3d} jobs, median {med:6.2f} s, max {top:6.2f} s, total {total:7.1f} s")


# A stage's place in a point's life: where two jobs overlap a second of overhead, the later stage has it.
STAGE_ORDER = ["provision", "deploy", "warmup", "run", "collect", "summarize", "claims", "plot"]


def _where_overhead_went(
    jobs: dict[tuple[str, str], tuple[float, float]], busy: list[tuple[float, float]], t0: float, t1: float, n: int
) -> None:
    """The wall time outside every warm-up, pause and measurement, second by second (10 ms steps)
    attributed to the latest-stage job running then, or to no job (Snakemake's start, its gaps)."""
    if not jobs or not n:
        return
    step = 0.01
    by: dict[str, float] = {}
    busy = sorted(busy)
    spans = sorted(((s, e, r) for (r, _), (s, e) in jobs.items()), key=lambda x: x[0])
    t = t0
    while t < t1:
        if not any(a <= t < b for a, b in busy):
            running = [r for s, e, r in spans if s <= t < e]
            rank = {r: i for i, r in enumerate(STAGE_ORDER)}
            who = max(running, key=lambda r: rank.get(r, -1)) if running else "(no job running)"
            by[who] = by.get(who, 0.0) + step
        t += step
    total = sum(by.values())
    print(f"overhead by what ran then ({total:.1f} s, {total / n:.2f} s per point):")
    for who, sec in sorted(by.items(), key=lambda kv: -kv[1]):
        print(f"  {who:18s} {sec:7.1f} s  {sec / n:5.2f} s per point")


if __name__ == "__main__":
    sys.exit(main())
