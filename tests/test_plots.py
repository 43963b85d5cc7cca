"""Figures in the paper's layout: panels, axis titles, series, and points flagged as fallen behind."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import vl_convert

from benchpipe.experiment import load_experiment
from benchpipe.plots.figures import lines, render

REPO = Path(__file__).resolve().parent.parent
LABELS = ["Unsafe", "Boki", "Halfmoon-read", "Halfmoon-write"]


def summary() -> pl.DataFrame:
    rows = []
    for i, label in enumerate(LABELS):
        for q in (50, 150, 250, 350):
            rows.append(
                {
                    "label": label,
                    "qps": q,
                    "p50_ms": 1.0 + i + q / 100,
                    "p99_ms": 5.0 + i + q / 50,
                    "achieved_rps": q * 0.99,
                    "fell_behind": q == 350 and label == "Boki",
                }
            )
    return pl.DataFrame(rows)


def hotel_figure() -> dict:
    return load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml").data["figures"][0]


def test_hotel_layout_matches_figure_11():
    spec = lines(summary(), hotel_figure()).to_dict()
    panels = spec["vconcat"]
    assert len(panels) == 2
    titles = [p["layer"][0]["encoding"]["y"]["title"] for p in panels]
    assert titles == ["Median latency (ms)", "99% latency (ms)"]
    assert all(p["layer"][0]["encoding"]["x"]["title"] == "Throughput (requests/s)" for p in panels)
    assert panels[0]["layer"][0]["encoding"]["color"]["scale"]["domain"] == LABELS


def test_png_and_html_written(tmp_path):
    png, html = tmp_path / "hotel.png", tmp_path / "hotel.html"
    render(summary(), hotel_figure(), png, html)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = html.read_text()
    for label in LABELS:
        assert json.dumps(label) in text


def vega_legends(node: object) -> list[dict]:
    """Every legend of a compiled Vega spec, at any depth (concatenated panels nest them)."""
    if isinstance(node, dict):
        return list(node.get("legends", [])) + [lg for v in node.values() for lg in vega_legends(v)]
    if isinstance(node, list):
        return [lg for v in node for lg in vega_legends(v)]
    return []


@pytest.mark.parametrize("fell_behind_column", [True, False])
def test_legend_symbols_have_each_series_marker_shape_and_colour(fell_behind_column):
    df = summary() if fell_behind_column else summary().drop("fell_behind")
    spec = lines(df, hotel_figure()).to_dict()
    for panel in spec["vconcat"]:
        marked = [layer["encoding"] for layer in panel["layer"] if "shape" in layer["encoding"]]
        assert marked, "no layer draws the series' markers"
        for enc in marked:
            shape, color = enc["shape"], enc["color"]
            # Shown in the legend, for the same field, title, order and domain as the colour, so that
            # Vega-Lite merges the two into one legend whose symbols are the markers.
            assert shape.get("legend", {}) is not None, "the markers' shapes are left out of the legend"
            assert (shape["field"], shape.get("title"), shape.get("sort")) == (
                color["field"],
                color.get("title"),
                color.get("sort"),
            )
            assert shape["scale"]["domain"] == color["scale"]["domain"] == LABELS
    # As rendered: a single legend whose symbols take their shape and their colour from the
    # scales the points use (not a default circle).
    vega = vl_convert.vegalite_to_vega(spec)
    legends = vega_legends(vega)
    assert len(legends) == 1, legends
    scales = {s["name"]: s for s in vega["scales"]}
    legend = legends[0]
    assert scales[legend.get("shape", "")]["domain"] == LABELS, legend
    assert legend.get("stroke") in scales or legend.get("fill") in scales, legend
    for channel in ("stroke", "fill"):
        if channel in legend:
            assert scales[legend[channel]]["range"] == scales["color"]["range"]
