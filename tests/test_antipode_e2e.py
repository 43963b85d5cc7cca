"""A tiny Antipode DeathStarBench figure through the snakemake command line: both region pairs,
Original and Antipode, a fresh primary, replica, queue, WAN relays, writer and reader per point."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from tests.test_pipeline_e2e import REPO, TINY, job_counts, snakemake

pytestmark = [pytest.mark.slow]


def make_workdir(tmp_path, pairs=("us-eu", "us-sg"), rates=(30,)):
    src = REPO / "config" / "experiments" / "antipode"
    suite = tmp_path / "config" / "experiments" / "antipode"
    suite.mkdir(parents=True)
    exp = yaml.safe_load((src / "antipode_dsb.yaml").read_text())
    exp["sweep"] = {"region_pair": list(pairs), "rate": list(rates)}
    exp["workload"]["measure_s"] = 2
    (suite / "antipode_dsb.yaml").write_text(yaml.safe_dump(exp))
    config = {**TINY, "suite": "antipode", "experiments": ["antipode_dsb"]}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_tiny_antipode_figure_end_to_end(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path)
    plan = snakemake(wd, "-n", "figures/antipode_dsb.png")
    assert job_counts(plan.stdout + plan.stderr)["run"] == 4  # 2 pairs x 2 variants

    snakemake(wd, "figures/antipode_dsb.png")
    png, html = wd / "figures" / "antipode_dsb.png", wd / "figures" / "antipode_dsb.html"
    assert png.stat().st_size > 10_000
    text = html.read_text()
    for label in ("us-eu", "us-sg", "Original", "Antipode", "symlog"):
        assert label in text, label

    df = pl.read_parquet(wd / "results" / "antipode_dsb" / "summary.parquet")
    assert df.height == 4 and (df["errors"] == 0).all() and (df["p90_ms"] > 0).all()
    # Every request's notification reached the reader, which read the post once.
    assert (df["traces"] + df["traces_skipped"] == df["completed"]).all()
    assert (df["traces_skipped"] == 0).all()
    antipode = df.filter(pl.col("baseline") == "antipode")
    assert (antipode["per_inconsistencies"] == 0).all()
    # The window is at least the link's one-way delay (50 ms us-eu, 90 ms us-sg).
    for pair, delay in (("us-eu", 50), ("us-sg", 90)):
        assert (df.filter(pl.col("region_pair") == pair)["window_p50_ms"] >= delay).all()
    for manifest in (wd / "results").glob("antipode_dsb/*/*/manifest.json"):
        m = json.loads(manifest.read_text())
        assert "traces.jsonl" in m["files"]
        assert m["images"]["workloads/antipode"].startswith("sha256:")
        assert m["async_results_entries"] == m["generator"]["sent"]

    again = snakemake(wd, "figures/antipode_dsb.png")
    assert "Nothing to be done" in again.stdout + again.stderr
