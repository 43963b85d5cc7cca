"""Captions of `snakemake --report`: what a figure, a summary or a point shows, and where from.

The parts that describe the experiment (figure, sweep, durations) are rule params, fixed when the
workflow is parsed; the parts that describe a finished measurement (profile, machines, commit) are
read from the points' manifests when the report is made, so that a report never claims a profile
or a commit the points were not measured with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchpipe.experiment import Experiment


def sweep_text(exp: Experiment) -> str:
    parts = []
    for b in exp.baselines:
        sweep = ", ".join(f"{p} = {' / '.join(str(v) for v in vals)}" for p, vals in exp.sweep(b).items())
        parts.append(f"{exp.baseline(b)['label']}: {sweep}")
    wl = exp.data["workload"]
    return f"{'; '.join(parts)}. Warm-up {wl['warmup_s']:g} s, measurement {wl['measure_s']:g} s per point."


def figure_caption(exp: Experiment, fig: dict[str, Any]) -> str:
    if fig.get("panels"):
        what = ", ".join(p.get("title", p.get("y", "")) for p in fig["panels"])
    else:
        what = fig.get("y", {}).get("title", "") if isinstance(fig.get("y"), dict) else ""
    x = fig.get("x", {}).get("title", "") if isinstance(fig.get("x"), dict) else ""
    return (
        f"{fig.get('title', fig['name'])} ({exp.suite}, experiment {exp.name}): {what}"
        + (f" against {x}" if x else "")
        + f". Sweep: {sweep_text(exp)}"
    )


def summary_caption(exp: Experiment) -> str:
    return f"Summary of experiment {exp.name} ({exp.suite}), one row per point. Sweep: {sweep_text(exp)}"


def measured_facts(results: Path, exp: Experiment, repetitions: int) -> dict[str, str]:
    """Profile, machines and commits of an experiment's finished points, from their manifests."""
    providers, deployers, generators, commits, starts = set(), set(), set(), set(), []
    n = 0
    for p in exp.all_points(repetitions):
        path = results / p.experiment / p.baseline / p.name / "manifest.json"
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        n += 1
        if m.get("cluster"):
            providers.add(m["cluster"]["provider"])
        deployers.add(m.get("deployer", "?"))
        generators.add(f"{m['generator']['name']} on {m.get('timing', {}).get('generator_host', '?')}")
        g = m.get("git", {})
        if g.get("commit"):
            commits.add(g["commit"][:10] + (" (with uncommitted changes)" if g.get("dirty") else ""))
        if m.get("start"):
            starts.append(m["start"])

    def join(s: set[str]) -> str:
        return ", ".join(sorted(s)) or "unknown"

    return {
        "points": f"{n} of {len(exp.all_points(repetitions))}",
        "profile": f"provider {join(providers)}, deployer {join(deployers)}, load from {join(generators)}",
        "commit": join(commits),
        "measured": f"{min(starts)} to {max(starts)}" if starts else "not yet",
    }
