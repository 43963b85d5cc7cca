"""What a dry run prints before anything is spent: points to run and done, and the clusters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchpipe.experiment import Experiment, figure_experiments

Keys = set[tuple[str, str, str]]


def point_status(
    exps: list[Experiment], results: Path, repetitions: int, only: Keys | None = None
) -> dict[tuple[str, str], dict[str, list[str]]]:
    """{(experiment, baseline): {"run": [points], "done": [points]}}; done = has manifest.json.
    `only`: the (experiment, baseline, point) keys the targets need (the points figures draw)."""
    out: dict[tuple[str, str], dict[str, list[str]]] = {}
    for exp in exps:
        for b in exp.baselines:
            points = [p for p in exp.points(b, repetitions) if only is None or (exp.name, b, p.name) in only]
            if not points:
                continue
            st = out.setdefault((exp.name, b), {"run": [], "done": []})
            for p in points:
                done = (results / exp.name / b / p.name / "manifest.json").exists()
                st["done" if done else "run"].append(p.name)
    return out


def cluster_plans(exps: list[Experiment], results: Path, repetitions: int, only: Keys | None = None) -> list[Any]:
    from benchpipe.cost import ClusterPlan

    by_name = {e.name: e for e in exps}
    plans = []
    for (exp_name, b), st in point_status(exps, results, repetitions, only).items():
        exp = by_name[exp_name]
        base = exp.baseline(b)
        wl = {**exp.data["workload"], **base.get("workload", {})}
        machines = Counter(m.get("instance_type", "?") for m in exp.machines(base["cluster"]))
        plans.append(ClusterPlan(f"{exp_name}-{b}", dict(machines), len(st["run"]), wl["warmup_s"] + wl["measure_s"]))
    return plans


def plan_text(
    exps: list[Experiment],
    results: Path,
    repetitions: int,
    target: str,
    provider: dict[str, Any] | None = None,
    only: Keys | None = None,
) -> str:
    status = point_status(exps, results, repetitions, only)
    by_name = {e.name: e for e in exps}
    lines = [f"benchpipe plan ({target}): results in {results}/"]
    total_run = total_done = 0
    for (exp_name, b), st in status.items():
        exp = by_name[exp_name]
        shape = exp.baseline(b)["cluster"]
        machines = Counter(m.get("instance_type", "?") for m in exp.machines(shape))
        kinds = ", ".join(f"{n} x {t}" for t, n in sorted(machines.items()))
        cluster = "this machine" if target == "local" else f"cluster {shape}: {kinds}"
        if target == "ssh":
            # Existing hosts: named with where they are when few (each is listed below), else counted.
            owned = exp.machines(shape)
            settings = (provider or {}).get("settings", {})
            cluster = f"cluster {shape}: " + (
                "hosts " + ", ".join(_host_text(m["name"], settings) for m in owned)
                if len(owned) <= 3
                else f"{len(owned)} hosts"
            )
        own = exp.data.get("targets", {}).get(target, {}).get("deployer")
        if own:
            cluster += f"; deployer {own['name']}"
        reps = exp.repetitions(repetitions)
        each = f" ({reps} repetitions each)" if reps > 1 else ""
        lines.append(
            f"  {exp_name}/{b}: {len(st['run'])} to run, {len(st['done'])} done{each}  [{cluster}]"
            + (f"\n      to run: {' '.join(st['run'])}" if st["run"] else "")
        )
        total_run += len(st["run"])
        total_done += len(st["done"])
    lines.append(f"  total: {total_run} point(s) to run, {total_done} done")
    if target == "ssh":
        lines += ssh_hosts_lines(exps, status, provider or {})
    if target != "local":
        from benchpipe.cost import cost_text, live_spot_prices, load_prices, plan_cost

        settings = (provider or {}).get("settings", {})
        prices = load_prices()
        plans = cluster_plans(exps, results, repetitions, only)
        market = "on-demand" if settings.get("market") == "on-demand" else "spot"
        if target == "ssh":
            market = "owned"  # existing hosts: time, not money
        if settings.get("live_spot_price") and market == "spot" and target == "aws":
            prices["spot"].update(live_spot_prices(settings, sorted({t for p in plans for t in p.machines})))
        cost = plan_cost(
            plans,
            prices,
            market=market,
            quota_vcpus=settings.get("vcpu_quota"),
            max_concurrent=int(settings.get("max_concurrent_clusters", 1)),
        )
        lines.append(cost_text(cost, market))
    return "\n".join(lines)


def ssh_hosts_lines(
    exps: list[Experiment], status: dict[tuple[str, str], dict[str, list[str]]], provider: dict[str, Any]
) -> list[str]:
    """Each cluster shape the points use: its machines, the listed host each one is, its labels."""
    hosts = {h.get("name"): h for h in (provider.get("settings", {}).get("hosts") or []) if isinstance(h, dict)}
    by_name = {e.name: e for e in exps}
    lines, seen = [], set()
    for exp_name, b in status:
        exp = by_name[exp_name]
        shape = exp.baseline(b)["cluster"]
        if (exp_name, shape) in seen:
            continue
        seen.add((exp_name, shape))
        lines.append(f"  hosts of cluster {shape} ({exp_name}):")
        for m in exp.machines(shape):
            h = hosts.get(m["name"])
            where = (h.get("address") or h.get("ssh_alias")) if h else "NOT in provider.settings.hosts"
            labels = f"  [{', '.join(m.get('labels', []))}]" if m.get("labels") else ""
            lines.append(f"    {m['name']} ({m['role']}): {where}{labels}")
    return lines


def _host_text(machine: str, settings: dict[str, Any]) -> str:
    for h in settings.get("hosts") or []:
        if isinstance(h, dict) and h.get("name") == machine:
            where = h.get("ssh_alias") or h.get("address", "?")
            return f"{machine} ({h['user']}@{where})" if h.get("user") else f"{machine} ({where})"
    return f"{machine} (not in provider.settings.hosts)"


def experiments_for_targets(
    targets: Any,
    figures: dict[str, list[Experiment]],
    default: list[Experiment],
    experiments: dict[str, Experiment] | None = None,
) -> list[Experiment]:
    """The experiments a run's targets reach (a figure: those it draws; an experiment's summary
    table, <results>/<experiment>/summary.csv: that one; or rule all when no target is named)."""
    experiments = experiments or {}

    def reached(t: Any) -> list[Experiment] | None:
        path = Path(str(t))
        if path.stem in figures:
            return figures[path.stem]
        if path.name in ("summary.csv", "summary.parquet") and path.parent.name in experiments:
            return [experiments[path.parent.name]]
        return None

    if targets and not any(reached(t) is not None or str(t) == "all" for t in targets):
        return []  # rule names such as teardown or janitor: no points are involved
    chosen: list[Experiment] = []
    for t in targets or []:
        for exp in reached(t) or []:
            if exp not in chosen:
                chosen.append(exp)
    return chosen or default


def tables_only(exps: dict[str, Experiment]) -> list[str]:
    """Experiments that draw no figure and that no figure draws: their summary table is what
    they produce (Pronghorn's Tables 4-5)."""
    drawn = {n for e in exps.values() for f in e.data["figures"] for n in figure_experiments(f, e.name)}
    return [n for n, e in exps.items() if not e.data["figures"] and n not in drawn]


def invocation() -> tuple[bool, list[str], list[str]]:
    """(dry run?, targets, --until targets) of the snakemake command line parsing the workflow.

    Snakemake exposes neither while the Snakefile is parsed (snakemake#2948), so its own argument
    parser reads them from sys.argv; anything else (the API, tests) counts as no dry run.
    """
    import sys

    if "snakemake" not in " ".join(sys.argv[:1]):
        return False, [], []
    from snakemake.cli import get_argument_parser

    try:
        args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except SystemExit:
        return False, [], []
    return bool(args.dryrun), list(args.targets or []), list(args.until or [])


# Stages that leave a point's stack up when a run stops after them.
STACK_STAGES = ("deploy", "warmup", "run")


def parked_points(
    pending: list[tuple[str, str, str]],
    group: Callable[[tuple[str, str, str]], str],
    holds: Callable[[tuple[str, str, str]], bool],
) -> list[tuple[str, str, str]]:
    """For a run that stops with stacks up (--until deploy, warmup or run): the one point per
    cluster that can be taken that far, since a cluster holds one point's stack at a time. A point
    already holding its cluster comes first; else the first pending point in sweep order."""
    chosen: dict[str, tuple[str, str, str]] = {}
    for key in pending:
        g = group(key)
        if g not in chosen or (holds(key) and not holds(chosen[g])):
            chosen[g] = key
    return list(chosen.values())


def stale_experiments(exps: list[Experiment], results: Path, repetitions: int) -> list[Experiment]:
    """Experiments whose summary exists although one of their points has no result.

    Snakemake does not rebuild a deleted intermediate file (a point) while everything downstream of
    it exists, whatever the mtimes; such a summary, and the figures drawn from it, are stale.
    """
    stale = []
    for exp in exps:
        summary = results / exp.name / "summary.parquet"
        if summary.exists() and any(st["run"] for st in point_status([exp], results, repetitions).values()):
            stale.append(exp)
    return stale


def remove_stale_products(exp: Experiment, results: Path, figures: Path) -> list[Path]:
    """Delete a stale experiment's summary and figures so that Snakemake rebuilds them (and the points)."""
    paths = [results / exp.name / "summary.parquet", results / exp.name / "summary.csv"]
    paths += [figures / f"{f['name']}.{ext}" for f in exp.data["figures"] for ext in ("png", "html")]
    removed = [p for p in paths if p.exists()]
    for p in removed:
        p.unlink()
    return removed


def stale_drawn(drawn: dict[str, dict[str, list[Any]]], results: Path) -> list[tuple[str, str]]:
    """(figure, experiment) whose figure's own summary of drawn points (drawn-<figure>.parquet)
    exists although one of those points has no result (see stale_experiments)."""
    stale = []
    for figure, per_exp in drawn.items():
        for name, points in per_exp.items():
            if (results / name / f"drawn-{figure}.parquet").exists() and any(
                not (results / p.experiment / p.baseline / p.name / "manifest.json").exists() for p in points
            ):
                stale.append((figure, name))
    return stale
