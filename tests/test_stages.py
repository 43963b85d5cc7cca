"""The seven stage rules: `--until <stage>` for each per-point stage, continued by the plain command
without redoing a stage; and a point's stack exclusive on its cluster across its stage jobs."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import urllib.request
from collections import Counter

import pytest

from benchpipe.lease import Lease
from tests.test_pipeline_e2e import job_counts, make_workdir, snakemake

pytestmark = [pytest.mark.slow]

POINT_STAGES = ["provision", "deploy", "warmup", "run", "collect"]


def test_list_rules_shows_the_seven_stages(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20,))
    rules = set(snakemake(wd, "--list-rules").stdout.split())
    assert {"provision", "deploy", "warmup", "run", "collect", "summarize", "plot"} <= rules
    plan = snakemake(wd, "-n", "figures/hotel.png")
    counts = job_counts(plan.stdout + plan.stderr)
    assert all(counts[s] == 1 for s in POINT_STAGES), counts


@pytest.mark.parametrize("stage", POINT_STAGES)
def test_until_a_stage_then_the_plain_command_runs_each_stage_once(tmp_path, stage, no_stray_stack):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40))
    first = ran(snakemake(wd, "--until", stage, "figures/hotel.png"))
    done = POINT_STAGES[: POINT_STAGES.index(stage) + 1]
    # A stage that leaves a stack up takes one point per cluster that far (a cluster holds one
    # stack at a time; here both points share this machine); the other waits for the next run.
    far = 1 if stage in ("deploy", "warmup", "run") else 2
    expected = {s: far if s in done else 0 for s in POINT_STAGES}
    assert {s: first.get(s, 0) for s in POINT_STAGES} == expected
    if stage in ("deploy", "warmup", "run"):
        # Stopped between stages: the stack is up and answers, for the user (and the next run).
        deployed = list((wd / "results/hotel/unsafe").glob("*/deploy.json"))
        assert len(deployed) == 1
        rec = json.loads(deployed[0].read_text())
        lease = Lease(rec["lease"]).read()
        assert lease is not None and lease["holder"] == str(deployed[0].parent.resolve())
        with urllib.request.urlopen(lease["stack"]["endpoint"] + "/healthz", timeout=5) as r:
            assert r.status == 200
    second = ran(snakemake(wd, "figures/hotel.png"))
    # Together the two commands ran every stage exactly once per point.
    assert {s: first.get(s, 0) + second.get(s, 0) for s in POINT_STAGES} == dict.fromkeys(POINT_STAGES, 2)
    assert (wd / "figures/hotel.png").exists()
    m = json.loads((wd / "results/hotel/unsafe/qps20/manifest.json").read_text())
    t = m["timing"]
    assert t["deploy_start"] <= t["ready"] <= t["warmup_start"] <= t["measure_start"] <= t["stopped"]


def test_until_deploy_then_teardown_redoes_the_stack(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20,))
    snakemake(wd, "--until", "deploy", "figures/hotel.png")
    snakemake(wd, "teardown")
    # The stack is gone, so its deploy record is void: the next run deploys again (and says why).
    again = snakemake(wd, "figures/hotel.png")
    counts = ran(again)
    assert counts["provision"] == 1 and counts["deploy"] == 1  # teardown took the cluster down too
    assert "stack or cluster is gone" in _out(again)


def test_collect_fetches_from_the_live_stack_and_a_dead_stack_fails_only_that_point(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40))
    snakemake(wd, "--until", "run", "figures/hotel.png")
    measured = list((wd / "results/hotel/unsafe").glob("*/measured"))
    assert len(measured) == 1
    point = measured[0].parent
    # run leaves the stack's records on the stack: only collect fetches them.
    assert not (measured[0] / "async_results").exists() and not (point / "raw").exists()
    stack = json.loads((point / "deploy.json").read_text())["stack"]
    for pid in stack["pids"].values():
        os.kill(pid, signal.SIGKILL)  # the stack dies after the measurement, before collect
    failed = snakemake(wd, "figures/hotel.png", check=False)
    assert failed.returncode != 0
    log = (wd / "results/logs/hotel/unsafe" / point.name / "collect.log").read_text()
    assert "no longer running" in log, log
    assert not (point / "manifest.json").exists() and not (point / "raw").exists()
    assert not list(point.parent.glob("*/.raw.partial"))
    other = next(p for p in point.parent.iterdir() if p.name != point.name)
    assert (other / "manifest.json").exists()
    # The same command again re-measures only that point, on a fresh stack.
    again = ran(snakemake(wd, "figures/hotel.png"))
    assert {s: again.get(s, 0) for s in ("deploy", "run", "collect")} == {"deploy": 1, "run": 1, "collect": 1}
    raw = point / "raw"
    assert (raw / "async_results").stat().st_size > 0 and (raw / "measure.json").exists()
    # raw/ holds the generator's files as hard links to measured/, not second copies.
    assert (raw / "measure.json").stat().st_ino == (point / "measured" / "measure.json").stat().st_ino


def test_many_points_on_one_cluster_never_starve_the_holder(tmp_path, no_stray_stack):
    # 9 points on one machine with -c1: Snakemake has 1 + 5 workers; waiting deploys beyond the
    # profile's idle_waits would take them all and the holder's warm-up would never start.
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=tuple(range(10, 100, 10)))
    proc = snakemake(wd, "figures/hotel.png", "-c1")
    assert ran(proc)["collect"] == 9


def test_two_baselines_never_have_stacks_up_at_once(tmp_path, no_stray_stack):
    # Two cores and measuring jobs of one core: Snakemake would happily overlap the points.
    measure = {"exclusive": False, "ready_timeout_s": 30, "retries": 0}
    wd = make_workdir(tmp_path, baselines=("unsafe", "boki"), rates=(20, 40), extra={"measure": measure})
    events = tmp_path / "lifecycle.log"
    os.environ["STANDIN_LIFECYCLE_LOG"] = str(events)
    try:
        proc = snakemake(wd, "figures/hotel.png")
    finally:
        del os.environ["STANDIN_LIFECYCLE_LOG"]
    assert proc.returncode == 0
    up: dict[str, float] = {}
    intervals = []
    for line in events.read_text().splitlines():
        event, t, pid, name, _port = line.split()
        if event == "up":
            up[pid] = float(t)
        else:
            intervals.append((up.pop(pid), float(t), name))
    assert not up, f"stacks never stopped: {up}"
    assert len(intervals) == 4, intervals
    intervals.sort()
    for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(intervals):
        assert e1 <= s2, f"{n1} was up until {e1:.3f} but {n2} started at {s2:.3f}"
    # And Snakemake did schedule point jobs side by side: deploys waited for the lease.
    logs = list((wd / "results/logs/hotel").glob("*/*/deploy.log"))
    assert any("waiting" in p.read_text() for p in logs)


def _out(proc) -> str:
    return proc.stdout + proc.stderr


def ran(proc) -> dict[str, int]:
    """Jobs that finished, by rule (with --until, Snakemake's 'Job stats' lists the whole DAG)."""
    return dict(Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", _out(proc))))


def test_the_quiet_gap_after_the_warm_up_holds_the_run_jobs_start(tmp_path, no_stray_stack):
    """workload.pause_s (the seed's sleep 10) is counted from the warm-up's end: the warmup job ends
    with its warm-up, and the run job's start (process, generator, the checks' modules) falls inside
    the gap instead of after it; the measurement still starts no sooner than pause_s after the warm-up."""
    import yaml

    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20,))
    hotel_file = wd / "config/experiments/halfmoon/hotel.yaml"
    hotel = yaml.safe_load(hotel_file.read_text())
    hotel["workload"].update({"warmup_s": 0.4, "measure_s": 1.0, "pause_s": 3.0})
    hotel_file.write_text(yaml.safe_dump(hotel))
    snakemake(wd, "figures/hotel.png")
    point = wd / "results/hotel/unsafe/qps20"
    warm = json.loads((point / "warmup/timing.json").read_text())
    assert "warmup_end" in warm and "pause_start" not in warm  # the warmup job did not sleep
    t = json.loads((point / "manifest.json").read_text())["timing"]
    assert t["pause_start"] == warm["warmup_end"]
    assert t["pause_end"] == pytest.approx(warm["warmup_end"] + 3.0)
    assert warm["warmup_end"] < t["run_ready"] < t["pause_end"] <= t["measure_start"]
