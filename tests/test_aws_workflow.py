"""The workflow under the aws provider against a moto server: plan, run, Ctrl-C, no leaks, no secrets.

The machines are moto's (nothing to SSH into), so the stack runs as local processes: what is under
test here is the cluster lifetime driven by the DAG and its hooks, counted through the EC2 API.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchpipe.cloud.session import client
from benchpipe.secrets_scan import scan
from tests.aws_fixtures import NOTHING_LEFT, count_live
from tests.conftest import stack_processes
from tests.test_faults import assert_resumes, checksums, start, wait_for_stack
from tests.test_pipeline_e2e import job_counts, make_workdir

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.aws, pytest.mark.slow]


def aws_config(settings: dict, wd: Path) -> dict:
    ami = client(settings, "ec2").describe_images()["Images"][0]["ImageId"]
    s = {k: v for k, v in settings.items() if k != "results_dir"}
    s.update({"ami": ami, "key_path": str(wd / "ssh" / "benchpipe.pem"), "vcpu_quota": 256})
    return {"target": "aws", "provider": {"name": "aws", "settings": s}}


def aws_workdir(tmp_path: Path, aws: dict, rates=(20, 40), **measure) -> tuple[Path, dict]:
    """A tiny hotel sweep (baseline unsafe) under the aws provider on moto, after `snakemake setup`."""
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=rates)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg.update(aws_config(aws, wd))
    cfg["measure"].update(measure)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run(wd, "setup")
    return wd, cfg


def run(wd: Path, *args: str, check: bool = True, env_extra: dict | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(wd), "-c2", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_dry_run_prices_the_paper_evaluation_without_contacting_aws(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    # An endpoint nobody listens on: any AWS call would fail the run.
    profile = tmp_path / "aws"
    shutil.copytree(REPO / "profiles" / "aws", profile)
    conf = yaml.safe_load((profile / "aws.yaml").read_text())
    conf["provider"]["settings"]["endpoint_url"] = "http://127.0.0.1:9"
    (profile / "aws.yaml").write_text(yaml.safe_dump(conf))
    out = run(tmp_path, "-n", "--profile", str(profile))
    text = out.stdout + out.stderr
    assert job_counts(text)["run"] == 59
    assert "total: 59 point(s) to run, 0 done" in text
    assert "instance-hours" in text and "$" in text and "vCPU" in text
    # The movie points need the artifact's data file, which the aws profile leaves to the user: the
    # plan still counts them and says (once) where a run would stop.
    assert text.count("plan: a run would stop here: config: data_files.halfmoon_movie_data") == 1
    assert not (tmp_path / "results-aws").exists()


def test_run_tears_down_and_ctrl_c_leaves_nothing(tmp_path, aws):
    wd = make_workdir(tmp_path, baselines=("unsafe", "boki"), rates=(20,))
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg.update(aws_config(aws, wd))
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run(wd, "setup")
    assert oct((wd / "ssh" / "benchpipe.pem").stat().st_mode & 0o777) == "0o600"
    run(wd, "figures/hotel.png")
    assert (wd / "figures" / "hotel.png").exists()
    assert count_live(aws)["instances"] == 0, "a cluster outlived its last point"
    assert not list((wd / "results" / ".clusters").glob("*/*.json"))
    m = json.loads(next((wd / "results" / "hotel").glob("*/*/manifest.json")).read_text())
    assert m["cluster"]["provider"] == "aws" and len(m["cluster"]["machines"]) in (10, 16)

    # Ctrl-C in the middle of a point: the onerror hook takes the cluster down.
    shutil.rmtree(wd / "results" / "hotel" / "boki")
    before = checksums(wd / "results")
    proc = start(wd)
    wait_for_stack(120)
    assert count_live(aws)["instances"] == 16, "the point's cluster is up while it measures"
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    live = count_live(aws)
    assert live["instances"] == 0 and live["spot_requests"] == 0, live
    assert not stack_processes(mine_only=True)
    assert not (wd / "results/hotel/boki/qps20/raw").exists()
    # Resume: the same command measures only boki's point, on a new cluster it then takes down.
    assert_resumes(wd, before, 1, run=run)
    assert count_live(aws) == NOTHING_LEFT
    findings = scan([wd / "results", wd / ".snakemake" / "log", wd / "figures"])
    assert not findings, findings


def test_bad_profile_stops_in_preflight_before_anything_launches(tmp_path, aws):
    wd, base = aws_workdir(tmp_path, aws, rates=(20,))
    cases = {
        "region": ("eu-middle-7", "provider.settings.region: 'eu-middle-7' is not an EC2 region"),
        "ami": ("ami-0123456789abcdef0", "provider.settings.ami"),
        "key_path": (str(wd / "ssh" / "nowhere.pem"), "nowhere.pem missing"),
    }
    for key, (value, expected) in cases.items():
        cfg = json.loads(json.dumps(base))
        cfg["provider"]["settings"][key] = value
        (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
        proc = run(wd, "figures/hotel.png", check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "preflight: nothing was launched" in text and expected in text, (
            key,
            text[-2000:],
        )
        assert "Traceback" not in text
        assert count_live(aws) == NOTHING_LEFT
        assert not list((wd / "results").glob("hotel/*/*/raw"))
