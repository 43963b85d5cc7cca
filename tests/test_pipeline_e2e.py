"""The whole local pipeline on a tiny sweep, through the snakemake command line as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow]

TINY = {
    "suite": "halfmoon",
    "experiments": ["hotel"],
    "scale": {"duration": 1.0, "rate": 1.0},
    "generator": {"name": "openloop", "settings": {"processes": 1}},
    "measure": {"exclusive": True, "ready_timeout_s": 30, "retries": 0},
}


def make_workdir(tmp_path: Path, baselines=("unsafe", "boki"), rates=(20, 40), extra=None) -> Path:
    """A working folder with the real Halfmoon files, cut down to a sweep that runs in seconds."""
    suite = tmp_path / "config" / "experiments" / "halfmoon"
    suite.mkdir(parents=True)
    src = REPO / "config" / "experiments" / "halfmoon"
    shutil.copy(src / "_halfmoon.yaml", suite)
    hotel = yaml.safe_load((src / "hotel.yaml").read_text())
    hotel["sweep"] = {"qps": list(rates)}
    hotel["workload"].update({"warmup_s": 0.4, "measure_s": 2.0, "pause_s": 0})
    common = yaml.safe_load((suite / "_halfmoon.yaml").read_text())
    hotel["baselines"] = {b: common["baselines"][b] for b in baselines}
    (suite / "_halfmoon.yaml").write_text(yaml.safe_dump({k: v for k, v in common.items() if k != "baselines"}))
    (suite / "hotel.yaml").write_text(yaml.safe_dump(hotel))
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump({**TINY, **(extra or {})}))
    return tmp_path


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-c2", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table as {rule: count}."""
    counts: dict[str, int] = {}
    m = re.search(r"Job stats:\n(.*?)\ntotal\s+(\d+)", output, re.S)
    if not m:
        return counts
    for line in m.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_tiny_sweep_end_to_end_and_rerun_semantics(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path)
    # Plan: 4 points, nothing done yet; a dry run runs nothing.
    plan = snakemake(wd, "-n", "figures/hotel.png")
    assert job_counts(plan.stdout + plan.stderr)["run"] == 4
    assert not (wd / "results").exists()

    # --until collect measures and stops.
    snakemake(wd, "--until", "collect")
    manifests = sorted((wd / "results" / "hotel").glob("*/*/manifest.json"))
    assert len(manifests) == 4
    assert not (wd / "results" / "hotel" / "summary.parquet").exists()
    assert not list((wd / "results" / ".clusters").glob("*/*.json")), "cluster left after --until collect"
    m = json.loads(manifests[0].read_text())
    for key in ("parameters", "config_hash", "git", "packages", "start", "end", "generator"):
        assert key in m, key
    assert m["git"]["commit"] and m["git"]["dirty"] in (True, False)
    assert m["images"]["workloads/standin"].startswith("sha256:")

    # A later figure run only summarizes and plots.
    out = snakemake(wd, "figures/hotel.png")
    counts = job_counts(out.stdout + out.stderr)
    assert counts.get("run", 0) == 0 and counts["summarize"] == 1 and counts["plot"] == 1
    assert (wd / "figures" / "hotel.png").stat().st_size > 10_000
    assert (wd / "figures" / "hotel.html").exists()
    import polars as pl

    df = pl.read_parquet(wd / "results" / "hotel" / "summary.parquet")
    assert df.height == 4 and set(df["label"]) == {"Unsafe", "Boki"}
    assert (df["p50_ms"] > 0).all() and (df["p99_ms"] >= df["p50_ms"]).all()

    # Second run: nothing to do.
    again = snakemake(wd, "figures/hotel.png")
    assert "Nothing to be done" in again.stdout + again.stderr

    # The report: the figure, its caption (what, sweep, profile, commit) and the stage runtimes.
    snakemake(wd, "--report", "report.html", "figures/hotel.png")
    html = (wd / "report.html").read_text()
    assert "hotel.png" in html and "data:image/png" in html
    assert "Hotel reservation (halfmoon, experiment hotel)" in html and "qps = 20 / 40" in html
    assert "provider local, deployer process, load from openloop on controller" in html
    commit = json.loads(manifests[0].read_text())["git"]["commit"]
    assert commit[:10] in html
    for stage in ("provision", "deploy", "warmup", "run", "collect"):
        assert f'"{stage}"' in html, f"no runtime of {stage} in the report"

    # Delete one point: exactly that point's jobs run again (+ summary and figure).
    victim = wd / "results" / "hotel" / "boki" / "qps40"
    before = {p: p.stat().st_mtime for p in manifests if not str(p).startswith(str(victim))}
    shutil.rmtree(victim)
    plan = snakemake(wd, "-n", "figures/hotel.png")
    counts = job_counts(plan.stdout + plan.stderr)
    stages = ("provision", "deploy", "warmup", "run", "collect", "summarize", "plot", "claims")
    assert counts == dict.fromkeys(stages, 1)
    snakemake(wd, "figures/hotel.png")
    assert (victim / "manifest.json").exists()
    assert {p: p.stat().st_mtime for p in before} == before, "a finished point was redone"

    # Clean: outputs go, nothing keeps running.
    snakemake(wd, "--delete-all-output", "figures/hotel.png")
    assert not (wd / "figures" / "hotel.png").exists()
    assert not list((wd / "results" / "hotel").glob("*/*/manifest.json"))


def test_failed_point_leaves_no_complete_folder(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40))
    # The stack dies at start for one rate (a crashing service): that point fails, the other completes.
    common = wd / "config" / "experiments" / "halfmoon" / "_halfmoon.yaml"
    data = yaml.safe_load(common.read_text())
    argv = " ".join(data["stack"]["process"][0]["argv"])
    data["stack"]["process"][0]["argv"] = [
        "sh",
        "-c",
        f"[ {{qps}} -ne 40 ] || exec sh -c 'echo boom >&2; exit 3'; exec {argv}",
    ]
    common.write_text(yaml.safe_dump(data))
    proc = snakemake(wd, "figures/hotel.png", check=False)
    assert proc.returncode != 0
    ok, bad = wd / "results/hotel/unsafe/qps20", wd / "results/hotel/unsafe/qps40"
    assert (ok / "manifest.json").exists()
    assert not (bad / "manifest.json").exists() and not (bad / "raw").exists() and not (bad / "measured").exists()
    assert "results/hotel/unsafe/qps40" in proc.stdout + proc.stderr
    # The end-of-run message says why, from the point's logs: the service's exit.
    why = (proc.stdout + proc.stderr).split("have no result", 1)[1]
    assert "results/hotel/unsafe/qps40\n      deploy: " in why and "exited with code 3" in why, why
    assert list((wd / "results/logs/hotel/unsafe/qps40/stack").glob("*.log")), "stack logs of the failure"
    assert not list((wd / "results" / ".clusters").glob("*/*.json"))
