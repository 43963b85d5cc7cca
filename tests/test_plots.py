"""Figures in the paper's layout: panels, axis titles, series, and points flagged as fallen behind."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

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
