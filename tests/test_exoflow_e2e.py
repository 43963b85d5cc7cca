"""A tiny ExoFlow Figure 6 (right) through the snakemake command line: a real Ray runtime per point,
the job kind, a cluster crash (the runtime killed mid-run, restarted, the driver resumed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import ray_processes
from tests.test_pipeline_e2e import REPO, job_counts, snakemake

pytestmark = pytest.mark.slow


def make_workdir(tmp_path: Path) -> Path:
    suite = tmp_path / "config" / "experiments" / "exoflow"
    suite.mkdir(parents=True)
    src = REPO / "config" / "experiments" / "exoflow"
    shutil.copy(src / "_exoflow.yaml", suite)
    fig = yaml.safe_load((src / "exoflow_fig6_right.yaml").read_text())
    fig["baselines"] = {"nockpt": fig["baselines"]["nockpt"]}
    fig["repetitions"] = 1
    fig["sweep"] = {"multiplier": [1], "failure": ["train_6.cluster_crash"]}
    fig["figures"][0]["x_order"] = ["train_6.cluster_crash"]
    fig["figures"][0].pop("overlay")
    # 8 epochs of a small data set: the crash comes after train_5's checkpoint.
    fig["workload"]["settings"]["argv"] += ["--epochs", "8", "--samples", "400"]
    (suite / "exoflow_fig6_right.yaml").write_text(yaml.safe_dump(fig, allow_unicode=True))
    config = {"suite": "exoflow", "experiments": ["exoflow_fig6_right"], "measure": {"retries": 0}}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.mark.timeout(900)  # ~1 min on a quiet 2-core machine; 5 min at a load average of 20
def test_tiny_exoflow_cluster_crash_and_resume(tmp_path):
    before = set(ray_processes())
    wd = make_workdir(tmp_path)
    out = snakemake(wd, "figures/exoflow_fig6_right.png")
    assert job_counts(out.stdout + out.stderr)["run"] == 1
    assert (wd / "figures" / "exoflow_fig6_right.png").stat().st_size > 5_000
    (point,) = [p for p in (wd / "results" / "exoflow_fig6_right" / "nockpt").iterdir() if "cluster_crash" in p.name]
    manifest = json.loads((point / "manifest.json").read_text())
    job = manifest["generator"]["job"]
    assert job["failure"] == "train_6.cluster_crash"
    assert len(job["runs"]) == 2 and job["runs"][0]["returncode"] is None and job["runs"][1]["returncode"] == 0
    assert job["runs"][0]["started"] < job["crashed_at"] < job["restarted"]["start"] < job["runs"][1]["started"]
    driver = json.loads((point / "raw" / "measure.job.json").read_text())["driver"]
    assert driver["config"]["resume"] is True
    assert [f["trigger"] for f in driver["fired"]] == ["train_6.cluster_crash"]
    # Resumed from storage: train_5's checkpoint and the committed steps were loaded, not re-run.
    assert driver["loaded"] >= 1
    # The duration counts from the crashed run's start: longer than the resumed run alone.
    assert driver["duration_s"] > driver["run_duration_s"]
    df = pl.read_parquet(wd / "results" / "exoflow_fig6_right" / "summary.parquet")
    assert df.height == 1 and df["duration_s"][0] == pytest.approx(driver["duration_s"])
    again = snakemake(wd, "figures/exoflow_fig6_right.png")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert not [p for p in ray_processes() if p not in before], "a Ray process outlived the run"
