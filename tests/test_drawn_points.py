"""A figure needs only the points it draws: its panels' baselines and filters, its reference lines'."""

from __future__ import annotations

import functools

import yaml

from benchpipe.experiment import drawn_points, experiment_files, load_experiment
from benchpipe.plan import plan_text, stale_drawn
from tests.test_pipeline_e2e import REPO, job_counts, snakemake


@functools.cache  # loaded once: the tests only read them
def _repo_experiments():
    scale = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["scale"]
    return {n: load_experiment(p, scale, 1) for n, p in experiment_files(REPO / "config" / "experiments").items()}


def _figure(exps, name):
    for exp in exps.values():
        for fig in exp.data["figures"]:
            if fig["name"] == name:
                return exp, fig
    raise AssertionError(name)


def test_figure_10_draws_three_baselines_and_three_sequential_points():
    exps = _repo_experiments()
    owner, fig = _figure(exps, "mu2sls_fig10")
    drawn = drawn_points(fig, owner.name, exps)
    assert list(drawn) == ["mu2sls_counter", "mu2sls_seq", "mu2sls_chain", "mu2sls_tree"]
    # The counter's "no FT" series is Figure 9's: not drawn here.
    assert {p.baseline for p in drawn["mu2sls_counter"]} == {"unsafe-ft", "wo-od", "mu2sls"}
    assert len(drawn["mu2sls_counter"]) == 8 + 3 + 5
    # Reference lines: unsafe (w FT) sequential throughput of the three apps drawn, not media/hotel.
    assert sorted((p.baseline, p.params["app"]) for p in drawn["mu2sls_seq"]) == [
        ("unsafe-ft", "chain"),
        ("unsafe-ft", "counter"),
        ("unsafe-ft", "tree"),
    ]
    # Tree has only these two baselines: every point is drawn.
    assert len(drawn["mu2sls_tree"]) == len(exps["mu2sls_tree"].all_points())
    assert sum(len(v) for v in drawn.values()) == 50


def test_other_kinds_and_metric_filters_keep_every_point():
    exps = _repo_experiments()
    owner, fig = _figure(exps, "mu2sls_fig10")
    bars = {**fig, "kind": "bars"}
    assert drawn_points(bars, owner.name, exps)["mu2sls_counter"] == exps["mu2sls_counter"].all_points()
    # A filter on a summary column that no point knows (a metric) cannot exclude a point.
    by_metric = {**fig, "panels": [{**fig["panels"][0], "filter": {"p50_ms": 3.0}, "reference": None}]}
    assert len(drawn_points(by_metric, owner.name, exps)["mu2sls_counter"]) == 16
    # ... while a filter on a parameter does.
    by_rate = {**fig, "panels": [{**fig["panels"][0], "filter": {"rate": 60}, "reference": None}]}
    assert sorted(p.baseline for p in drawn_points(by_rate, owner.name, exps)["mu2sls_counter"]) == [
        "mu2sls",
        "unsafe-ft",
        "wo-od",
    ]


def test_plan_lists_only_the_drawn_points(tmp_path):
    exps = _repo_experiments()
    owner, fig = _figure(exps, "mu2sls_fig10")
    drawn = drawn_points(fig, owner.name, exps)
    only = {(p.experiment, p.baseline, p.name) for pts in drawn.values() for p in pts}
    text = plan_text([exps[n] for n in drawn], tmp_path, 1, "local", None, only)
    assert "total: 50 point(s) to run, 0 done" in text
    assert "mu2sls_counter/no-ft" not in text and "mu2sls_chain/no-ft" not in text
    assert "mu2sls_seq/unsafe-ft: 3 to run" in text
    assert "mu2sls_seq/unsafe:" not in text


def test_a_drawn_summary_missing_one_of_its_points_is_stale(tmp_path):
    exps = _repo_experiments()
    owner, fig = _figure(exps, "mu2sls_fig10")
    drawn = {"mu2sls_fig10": drawn_points(fig, owner.name, exps)}
    for p in drawn["mu2sls_fig10"]["mu2sls_seq"]:
        folder = tmp_path / p.experiment / p.baseline / p.name
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    (tmp_path / "mu2sls_seq" / "drawn-mu2sls_fig10.parquet").write_text("")
    # Points it does not draw (media, hotel) have no result: not stale.
    assert stale_drawn(drawn, tmp_path) == []
    gone = next(tmp_path.glob("mu2sls_seq/unsafe-ft/*/manifest.json"))
    gone.unlink()
    assert stale_drawn(drawn, tmp_path) == [("mu2sls_fig10", "mu2sls_seq")]


def test_dry_run_of_figure_10_plans_its_points_and_figure_summaries(tmp_path):
    out = snakemake(REPO, "-n", "figures/mu2sls_fig10.png", "--config", f"results_dir={tmp_path}/results")
    text = out.stdout + out.stderr
    counts = job_counts(text)
    assert counts["run"] == 50 and counts["collect"] == 50
    # Counter, chain and sequential: the figure's own summaries; tree: its whole summary.
    assert counts["summarize_drawn"] == 3 and counts["summarize"] == 1 and counts["plot"] == 1
    assert "total: 50 point(s) to run" in text
