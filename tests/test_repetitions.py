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
def test_repetitions_interleave_and_a_stalled_point_is_remeasured(tmp_path, no_stray_stack):
    """Two points x two repetitions; the stand-in's gateway stalls 2 s in qps40's first
    measurement (test knob): that point is flagged, re-measured on a fresh stack, both attempts'
    files kept, the summary uses the stable attempt; the order is rep 1 of every point, then rep 2."""
    extra = {
        "repetitions": 2,
        "measure": {
            "exclusive": True,
            "ready_timeout_s": 30,
            "retries": 0,
            "rerun_unstable": 1,
            "stall": {"point": "hotel/unsafe/qps40", "after_s": 0.5, "for_s": 2.0},
        },
    }
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20, 40), extra=extra)
    hotel = wd / "config" / "experiments" / "halfmoon" / "hotel.yaml"
    data = yaml.safe_load(hotel.read_text())
    data["workload"]["measure_s"] = 4.0  # four one-second windows: a 2 s stall leaves some empty
    hotel.write_text(yaml.safe_dump(data))
    plan = snakemake(wd, "-n", "figures/hotel.png")
    assert job_counts(plan.stdout + plan.stderr)["run"] == 4
    snakemake(wd, "figures/hotel.png")

    point = wd / "results" / "hotel" / "unsafe"
    starts = []
    for m in point.glob("*/manifest.json"):
        man = json.loads(m.read_text())
        starts.append((man["timing"]["measure_start"], man["repetition"], m.parent.name))
    assert sorted(s[2] for s in starts) == ["qps20", "qps20_r2", "qps40", "qps40_r2"]
    # Rep 1 of every point, then rep 2: never one point's repetitions back to back.
    assert [rep for _, rep, _ in sorted(starts)] == [1, 1, 2, 2], sorted(starts)

    # Both attempts' files kept: the stalled one under raw/attempts/1/, the stable one in raw/.
    first, last = point / "qps40" / "raw" / "attempts" / "1", point / "qps40" / "raw"
    for f in ("measure.json", "async_results", "timing.json", "series.json"):
        assert (first / f).stat().st_size > 0 and (last / f).stat().st_size > 0, f
    assert json.loads((last / "timing.json").read_text())["attempt"] == 2
    assert not (point / "qps20" / "raw" / "attempts").exists()
    assert not (point / "qps40_r2" / "raw" / "attempts").exists()  # the knob stalls one measurement

    import polars as pl

    df = pl.read_parquet(wd / "results" / "hotel" / "summary.parquet")
    assert df.height == 2 and set(df["ci_kind"]) == {"repetitions"}
    row = df.filter(pl.col("qps") == 40).row(0, named=True)
    assert row["attempt"] == 2 and "attempt 1: stall" in row["attempt_note"], row["attempt_note"]
    assert "stall" not in row["flags"].split(";")
    assert row["p50_ms_n"] == 2 and len(row["p50_ms_reps"]) == 2
    assert row["p50_ms_lo"] <= row["p50_ms"] <= row["p50_ms_hi"]
    assert row["client_p99_ms"] < 1000  # the stable attempt's client view, not the stall's
    csv = (wd / "results" / "hotel" / "summary.csv").read_text()
    assert "p50_ms_reps" in csv.splitlines()[0]

    again = snakemake(wd, "figures/hotel.png")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_the_plan_counts_repetitions_in_points_hours_and_dollars(tmp_path):
    import re

    from benchpipe.plan import plan_text

    exp = load_experiment(HOTEL)
    provider = {"name": "aws", "settings": {"region": "us-east-2"}}
    one, three = (plan_text([exp], tmp_path, r, "aws", provider) for r in (1, 3))
    assert "total: 16 point(s) to run" in one and "total: 48 point(s) to run" in three
    assert "(3 repetitions each)" in three and "qps100_r3" in three
    hours = [float(re.search(r"total: ([\d.]+) instance-hours, about \$([\d.]+)", t).group(1)) for t in (one, three)]
    dollars = [float(re.search(r"about \$([\d.]+)", t).group(1)) for t in (one, three)]
    assert 2.0 < hours[1] / hours[0] <= 3.0 and 2.0 < dollars[1] / dollars[0] <= 3.0
