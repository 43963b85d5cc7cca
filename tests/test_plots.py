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


def mu2sls_figure(name: str) -> dict:
    exp = "mu2sls_media" if name == "mu2sls_fig11" else "mu2sls_counter"
    data = load_experiment(REPO / f"config/experiments/mu2sls/{exp}.yaml").data
    return next(f for f in data["figures"] if f["name"] == name)


def mu2sls_summary() -> pl.DataFrame:
    """Summaries of three experiments in one table, as `benchpipe plot` concatenates them."""
    rows = []
    labels = {"mu2sls": "μ2sls", "no-ft": "no FT", "wo-od": "μ2sls (w/o OD)", "unsafe-ft": "unsafe (w FT)"}
    for exp in ("mu2sls_counter", "mu2sls_chain", "mu2sls_tree"):
        for b, label in labels.items():
            for r in (20, 60, 100):
                p50 = 5.0 + r / 10 + (500 if b == "wo-od" and r == 100 else 0)
                rows.append(
                    {
                        "experiment": exp,
                        "baseline": b,
                        "label": label,
                        "rate": r,
                        "achieved_rps": r * 0.98,
                        "p50_ms": p50,
                        "p90_ms": p50 * 2,
                        "fell_behind": False,
                    }
                )
    for app, rps in (("counter", 111.0), ("chain", 55.0), ("tree", 33.0)):
        for b, label in (("unsafe-ft", "unsafe (w FT)"), ("unsafe", "unsafe")):
            rows.append(
                {
                    "experiment": "mu2sls_seq",
                    "baseline": b,
                    "label": label,
                    "app": app,
                    "achieved_rps": rps if b == "unsafe-ft" else rps * 2,
                    "p50_ms": 1.0,
                    "p90_ms": 2.0,
                    "fell_behind": False,
                }
            )
    return pl.DataFrame(rows)


def _layers(panel: dict) -> list[dict]:
    return panel["layer"]


def test_mu2sls_fig10_row_of_panels_with_error_bars_reference_lines_and_y_limit():
    fig = mu2sls_figure("mu2sls_fig10")
    fig = {**fig, "panels": [{"experiment": "mu2sls_counter", **p} for p in fig["panels"]]}
    spec = lines(mu2sls_summary(), fig).to_dict()
    panels = spec["hconcat"]
    assert [p["title"] for p in panels] == ["Stateful Counter", "Chain Counter", "Cross Service Txn"]
    datasets = spec["datasets"]
    for panel, exp, seq in zip(
        panels, ("mu2sls_counter", "mu2sls_chain", "mu2sls_tree"), (111.0, 55.0, 33.0), strict=True
    ):
        layers = _layers(panel)
        line = layers[0]
        assert line["encoding"]["y"]["scale"]["domain"] == [0, 400] and line["mark"]["clip"] is True
        rows = datasets[panel["data"]["name"]]  # the panel's layers share its data
        # Only this panel's experiment and the figure's three series.
        assert {r["experiment"] for r in rows} == {exp}
        assert {r["label"] for r in rows} == {"unsafe (w FT)", "μ2sls (w/o OD)", "μ2sls"}
        error = next(layer for layer in layers if layer["mark"]["type"] == "rule" and "y2" in layer["encoding"])
        assert error["encoding"]["y2"]["field"] == "_err"
        assert all(r["_err"] == 2 * r["_y"] for r in rows)  # the bar reaches p90
        ref = next(layer for layer in layers if layer["mark"].get("strokeDash") == [6, 4])
        assert datasets[ref["data"]["name"]] == [{"_x": seq, "reference": "unsafe (w FT) (seq)"}]
    assert panels[0]["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["unsafe (w FT)", "μ2sls (w/o OD)", "μ2sls"]


def test_reference_without_rows_is_a_clear_error():
    fig = mu2sls_figure("mu2sls_fig11")  # media/hotel seq rows are not in the table
    fig = {**fig, "panels": [{"experiment": "mu2sls_media", **p} for p in fig["panels"]]}
    with pytest.raises(ValueError, match=r"figures.mu2sls_fig11.panels\[0\].reference: no rows of mu2sls_seq"):
        lines(mu2sls_summary(), fig)


def test_mu2sls_png_written(tmp_path):
    fig = mu2sls_figure("mu2sls_fig9")
    fig = {**fig, "panels": [{"experiment": "mu2sls_counter", **p} for p in fig["panels"]]}
    render(mu2sls_summary(), fig, tmp_path / "f9.png", tmp_path / "f9.html")
    assert (tmp_path / "f9.png").stat().st_size > 10_000
    assert json.dumps("no FT") in (tmp_path / "f9.html").read_text()
