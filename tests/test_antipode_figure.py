"""The consistency_window figure kind: the stacked bar's segments and the chart's layout."""

from __future__ import annotations

import polars as pl
import pytest

from benchpipe import registry
from benchpipe.plots.consistency import window_bar

FIG = {
    "name": "t",
    "kind": "consistency_window",
    "facet": "region_pair",
    "x": {"field": "achieved_rps", "title": "Throughput (req/s)"},
    "panels": [{"y": "p90_ms", "title": "Latency p90 (ms)"}, {"y": "window_p90_ms", "title": "Window (ms)"}],
    "series_order": ["Original", "Antipode"],
}


def summary(original_window: float, antipode_window: float) -> pl.DataFrame:
    rows = []
    for pair in ("us-eu", "us-sg"):
        for label, window in (("Original", original_window), ("Antipode", antipode_window)):
            for rate in (50, 100):
                for rep, p90 in ((1, 2.0), (2, 4.0), (3, 30.0)):  # median over rounds: 4.0
                    rows.append(
                        {
                            "region_pair": pair,
                            "label": label,
                            "offered_rps": float(rate),
                            "achieved_rps": rate - 1.0,
                            "repetition": rep,
                            "p90_ms": p90,
                            "window_p90_ms": window + rate,
                        }
                    )
    return pl.DataFrame(rows)


def test_bar_stacks_antipode_extra_over_original_at_the_peak_rate():
    data = summary(50.0, 58.5).filter(pl.col("region_pair") == "us-eu")
    bar = window_bar(
        data.group_by(["label", "offered_rps"]).agg(pl.col("window_p90_ms").median()),
        ["Original", "Antipode"],
        "window_p90_ms",
    )
    assert bar.to_dicts() == [
        {"label": "Original", "start": 0.0, "end": 150.0, "text": "150"},
        {"label": "Antipode", "start": 150.0, "end": 158.5, "text": "+ 8.5"},
    ]


def test_bar_floors_a_negative_extra_at_zero():
    data = summary(60.0, 55.0).filter(pl.col("region_pair") == "us-sg")
    bar = window_bar(data, ["Original", "Antipode"], "window_p90_ms")
    assert bar["end"].to_list() == [160.0, 160.0] and bar["text"][1] == "+ 0.0"


def test_chart_has_a_row_per_pair_with_symlog_lines_and_median_rounds():
    chart = registry.load("figure", "consistency_window")(summary(50.0, 58.0), FIG)
    spec = chart.to_dict()
    assert len(spec["vconcat"]) == 2
    row = spec["vconcat"][0]["hconcat"]
    assert row[0]["width"] > 3 * row[1]["width"]  # a wide lines panel beside a narrow bar
    assert '"symlog"' in chart.to_json()
    values = [v for d in spec["datasets"].values() for v in d if "p90_ms" in v]
    assert values and {v["p90_ms"] for v in values} == {4.0}


def test_chart_names_a_missing_facet():
    with pytest.raises(ValueError, match="no column 'zone'"):
        registry.load("figure", "consistency_window")(summary(1, 2), {**FIG, "facet": "zone"})
