"""Repetitions: each its own point folder, measured interleaved (rep 1 of every point first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchpipe.experiment import load_experiment
from tests.test_pipeline_e2e import job_counts, make_workdir, snakemake

REPO = Path(__file__).resolve().parent.parent
HOTEL = REPO / "config" / "experiments" / "halfmoon" / "hotel.yaml"


def test_repetition_folders_keep_the_plain_name_for_the_first():
    exp = load_experiment(HOTEL, repetitions=3)
    names = [p.name for p in exp.points("unsafe", 3)]
    assert names[:3] == ["qps100", "qps100_r2", "qps100_r3"]
    assert [p.repetition for p in exp.points("unsafe", 3)][:3] == [1, 2, 3]
    assert [p.name for p in exp.points("unsafe", 1)] == ["qps100", "qps300", "qps500", "qps700"]


def test_experiment_file_sets_its_own_repetitions(tmp_path):
    suite = tmp_path / "halfmoon"
    suite.mkdir()
    (suite / "_halfmoon.yaml").write_text((HOTEL.parent / "_halfmoon.yaml").read_text())
    data = yaml.safe_load(HOTEL.read_text())
    (suite / "hotel.yaml").write_text(yaml.safe_dump({**data, "repetitions": 3}))
    exp = load_experiment(suite / "hotel.yaml", repetitions=1)
    assert exp.repetitions(1) == 3
    assert len(exp.points("unsafe", 1)) == 4 * 3
    (suite / "hotel.yaml").write_text(yaml.safe_dump({**data, "repetitions": 0}))
    with pytest.raises(Exception, match="repetitions"):
        load_experiment(suite / "hotel.yaml")


@pytest.mark.slow
def test_repetitions_are_measured_interleaved(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40), extra={"repetitions": 3})
    plan = snakemake(wd, "-n", "--until", "collect")
    assert job_counts(plan.stdout + plan.stderr)["run"] == 6
    snakemake(wd, "--until", "collect")
    starts = []
    for m in (wd / "results" / "hotel" / "unsafe").glob("*/manifest.json"):
        man = json.loads(m.read_text())
        starts.append((man["timing"]["measure_start"], man["repetition"], m.parent.name))
    assert sorted(s[2] for s in starts) == ["qps20", "qps20_r2", "qps20_r3", "qps40", "qps40_r2", "qps40_r3"]
    order = [rep for _, rep, _ in sorted(starts)]
    # Rep 1 of every point, then rep 2, then rep 3: never one point's repetitions back to back.
    assert order == [1, 1, 2, 2, 3, 3], sorted(starts)
