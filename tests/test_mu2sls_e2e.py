"""A tiny mu2sls Figure 10 through the snakemake command line: three apps' panels, the sequential
reference from another experiment, a fresh stand-in stack per point."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
import yaml

from tests.test_pipeline_e2e import REPO, TINY, job_counts, snakemake

pytestmark = [pytest.mark.slow]


def make_workdir(tmp_path):
    src = REPO / "config" / "experiments" / "mu2sls"
    suite = tmp_path / "config" / "experiments" / "mu2sls"
    suite.mkdir(parents=True)
    shutil.copy(src / "_mu2sls.yaml", suite)
    keep = {"mu2sls_counter": "wo-od", "mu2sls_chain": "mu2sls", "mu2sls_tree": "unsafe-ft"}
    for name, baseline in keep.items():
        exp = yaml.safe_load((src / f"{name}.yaml").read_text())
        exp["sweep"] = {"rate": [30]}
        exp["baselines"] = {b: None for b in ("mu2sls", "no-ft", "wo-od", "unsafe-ft", "unsafe") if b != baseline}
        exp["baselines"][baseline] = {"sweep": {"rate": [30]}}
        exp.setdefault("workload", {})["measure_s"] = 1.5
        if name == "mu2sls_counter":
            exp["figures"] = [f for f in exp["figures"] if f["name"] == "mu2sls_fig10"]
            # A claim names its figure; the dropped figure's claims go with it.
            exp["claims"] = [c for c in exp.get("claims", []) if c.get("figure", "mu2sls_fig10") == "mu2sls_fig10"]
        (suite / f"{name}.yaml").write_text(yaml.safe_dump(exp, allow_unicode=True))
    seq = yaml.safe_load((src / "mu2sls_seq.yaml").read_text())
    seq["sweep"] = {"app": ["counter", "chain", "tree"]}
    seq["baselines"] = {"unsafe": None, "mu2sls": None, "no-ft": None, "wo-od": None, "unsafe-ft": {}}
    seq["workload"]["settings"] = {"warmup_requests": 2, "requests": 20}
    (suite / "mu2sls_seq.yaml").write_text(yaml.safe_dump(seq, allow_unicode=True))
    config = {**TINY, "suite": "mu2sls", "experiments": list(keep)}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_tiny_figure_10_end_to_end(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path)
    plan = snakemake(wd, "-n", "figures/mu2sls_fig10.png")
    assert job_counts(plan.stdout + plan.stderr)["run"] == 6  # 3 apps x 1 point + 3 sequential points

    snakemake(wd, "figures/mu2sls_fig10.png")
    png, html = wd / "figures" / "mu2sls_fig10.png", wd / "figures" / "mu2sls_fig10.html"
    assert png.stat().st_size > 10_000
    text = html.read_text()
    for label in ("Stateful Counter", "Chain Counter", "Cross Service Txn", "unsafe (w FT) (seq)"):
        assert json.dumps(label) in text, label

    seq = pl.read_parquet(wd / "results" / "mu2sls_seq" / "summary.parquet")
    assert sorted(seq["app"]) == ["chain", "counter", "tree"]
    assert (seq["completed"] == 20).all() and (seq["achieved_rps"] > 0).all()
    for name in ("mu2sls_counter", "mu2sls_chain", "mu2sls_tree"):
        df = pl.read_parquet(wd / "results" / name / "summary.parquet")
        assert df.height == 1 and df["errors"][0] == 0
        assert 0 < df["p50_ms"][0] <= df["p90_ms"][0]
        manifest = next((wd / "results" / name).glob("*/*/manifest.json"))
        assert json.loads(manifest.read_text())["images"]["workloads/mu2sls"].startswith("sha256:")
    # Every external request of a point reached the ingress once (its async_results count).
    for manifest in (wd / "results").glob("mu2sls_*/*/*/manifest.json"):
        m = json.loads(manifest.read_text())
        assert m["async_results_entries"] == m["generator"]["sent"]

    again = snakemake(wd, "figures/mu2sls_fig10.png")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_until_deploy_of_a_figure_takes_a_point_it_draws_not_another_suites(tmp_path, no_stray_stack):
    """With another suite's experiment ahead in the sweep order (halfmoon < mu2sls), --until deploy
    of Figure 10 leaves one of Figure 10's points deployed; teardown stops it."""
    wd = make_workdir(tmp_path)
    halfmoon = wd / "config" / "experiments" / "halfmoon"
    halfmoon.mkdir()
    for name in ("_halfmoon.yaml", "hotel.yaml"):
        shutil.copy(REPO / "config" / "experiments" / "halfmoon" / name, halfmoon)
    snakemake(wd, "figures/mu2sls_fig10.png", "--until", "deploy")
    deployed = list((wd / "results").glob("*/*/*/deploy.json"))
    assert len(deployed) == 1 and deployed[0].parts[-4].startswith("mu2sls_"), deployed
    snakemake(wd, "teardown")
