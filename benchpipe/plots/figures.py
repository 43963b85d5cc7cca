"""Figures from an experiment's summary table, in the paper's layouts, as PNG and interactive HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _series(df: pl.DataFrame, fig: dict[str, Any]) -> list[str]:
    present = list(dict.fromkeys(df["label"].to_list()))
    order = [s for s in fig.get("series_order", []) if s in present]
    return order + [s for s in present if s not in order]


def lines(df: pl.DataFrame, fig: dict[str, Any]) -> alt.VConcatChart:
    """One panel per metric (Figures 11-13): y against x, a line per series; points where the
    generator fell behind are drawn hollow and say so in the tooltip."""
    order = _series(df, fig)
    color = alt.Color("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=PALETTE[: len(order)]))
    panels = []
    for panel in fig["panels"]:
        data = df
        for k, v in panel.get("filter", {}).items():
            data = data.filter(pl.col(k) == v)
        data = data.with_columns((pl.col(panel["y"]) * panel.get("unit_scale", 1)).alias("_y"))
        base = alt.Chart(data).encode(
            x=alt.X(f"{fig['x']['field']}:Q", title=fig["x"]["title"]),
            y=alt.Y("_y:Q", title=panel["title"]),
            color=color,
        )
        tooltip = ["label:N", f"{fig['x']['field']}:Q", alt.Tooltip("_y:Q", title=panel["title"], format=".2f")]
        if "fell_behind" in data.columns:
            tooltip += ["achieved_rps:Q", "fell_behind:N"]
        # Same field, title, order and domain as the colour: Vega-Lite merges them into one legend
        # whose symbols are the series' markers (shape and colour), not default circles.
        shape = alt.Shape("label:N", title=None, sort=order, scale=alt.Scale(domain=order))
        pts = base.mark_point(size=70, filled=True, strokeWidth=2).encode(shape=shape, tooltip=tooltip, stroke=color)
        if "fell_behind" in data.columns:
            pts = pts.encode(fill=alt.condition("datum.fell_behind", alt.value("white"), color))
        panels.append((base.mark_line() + pts).properties(width=420, height=220))
    chart = alt.vconcat(*panels).resolve_scale(color="shared")
    title: dict[str, Any] = {"text": fig.get("title", "")}
    if "fell_behind" in df.columns and df["fell_behind"].any():
        title["subtitle"] = "hollow markers: the load generator fell behind its target rate there"
    return chart.properties(title=title)


def bars(df: pl.DataFrame, fig: dict[str, Any]) -> alt.HConcatChart:
    """Figure 10: a bar panel per operation, bar = p50, error bar up to p99."""
    order = _series(df, fig)
    panels = []
    for panel in fig["panels"]:
        data = df.with_columns(
            (pl.col(panel["y"]) * panel.get("unit_scale", 1)).alias("_y"),
            (pl.col(panel["error"]) * panel.get("unit_scale", 1)).alias("_err") if "error" in panel else pl.lit(None),
        )
        x = alt.X("label:N", title=None, sort=order, axis=alt.Axis(labelAngle=0))
        bar = alt.Chart(data).mark_bar().encode(x=x, y=alt.Y("_y:Q", title="Latency (ms)"), color=alt.value(PALETTE[0]))
        layers = bar
        if "error" in panel:
            layers = bar + alt.Chart(data).mark_rule().encode(x=x, y="_y:Q", y2="_err:Q")
        panels.append(layers.properties(width=260, height=220, title=panel["title"]))
    return alt.hconcat(*panels).properties(title=fig.get("title", ""))


def render(df: pl.DataFrame, fig: dict[str, Any], png: Path, html: Path) -> None:
    from benchpipe import registry

    chart = registry.load("figure", fig["kind"])(df, fig)
    png.parent.mkdir(parents=True, exist_ok=True)
    chart.save(str(png), scale_factor=2)
    chart.save(str(html))
