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


def panel_data(df: pl.DataFrame, panel: dict[str, Any]) -> pl.DataFrame:
    """The rows a panel draws: its experiment (in a table of several), baselines and filter; y (and
    the error bar's end) scaled into _y and _err."""
    data = df
    if panel.get("experiment") and "experiment" in data.columns:
        data = data.filter(pl.col("experiment") == panel["experiment"])
    if panel.get("baselines") and "baseline" in data.columns:
        data = data.filter(pl.col("baseline").is_in(panel["baselines"]))
    for k, v in panel.get("filter", {}).items():
        data = data.filter(pl.col(k) == v)
    scale = panel.get("unit_scale", 1)
    data = data.with_columns((pl.col(panel["y"]) * scale).alias("_y"))
    lo, hi = f"{panel['y']}_lo", f"{panel['y']}_hi"
    if lo in data.columns and hi in data.columns and "error" not in panel:
        # The 95% interval of the value (over repetitions, or within one run), where there is one.
        data = data.with_columns((pl.col(lo) * scale).alias("_lo"), (pl.col(hi) * scale).alias("_hi"))
    if "flags" in data.columns:
        data = data.with_columns((pl.col("flags").fill_null("") != "").alias("_flagged"))
    elif "fell_behind" in data.columns:
        data = data.with_columns(pl.col("fell_behind").alias("_flagged"), pl.lit("fell_behind").alias("flags"))
    if "error" in panel:
        data = data.with_columns((pl.col(panel["error"]) * scale).alias("_err"))
    return data


def reference_value(df: pl.DataFrame, ref: dict[str, Any], where: str) -> float:
    """The mean of ref.field over another experiment's rows matching ref.filter."""
    data = df.filter(pl.col("experiment") == ref["experiment"]) if "experiment" in df.columns else df
    for k, v in ref.get("filter", {}).items():
        if k not in data.columns:
            raise ValueError(f"{where}.reference.filter: {ref['experiment']} has no column {k!r}")
        data = data.filter(pl.col(k) == v)
    if data.is_empty() or ref["field"] not in data.columns:
        raise ValueError(
            f"{where}.reference: no rows of {ref['experiment']} with {ref.get('filter', {})} and a {ref['field']!r}"
        )
    return float(data[ref["field"]].mean())  # type: ignore[arg-type]


def lines(df: pl.DataFrame, fig: dict[str, Any]) -> alt.VConcatChart | alt.HConcatChart:
    """One panel per metric or per experiment: y against x, a line per series; points where the
    generator fell behind are drawn hollow and say so in the tooltip. Optional: an upward error bar
    to panel.error, a dashed vertical reference line, a y limit (points above fall off), panels in
    a row (layout: row) with their own headings."""
    datas = [panel_data(df, p) for p in fig["panels"]]
    present = pl.concat([d.select("label") for d in datas]) if datas else df.select("label")
    order = _series(present, fig)
    color = alt.Color("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=PALETTE[: len(order)]))
    panels = []
    for i, (panel, data) in enumerate(zip(fig["panels"], datas, strict=True)):
        y_max = panel.get("y_max", fig.get("y_max"))
        y_scale = alt.Scale(domain=[0, y_max]) if y_max else alt.Undefined
        x = alt.X(f"{fig['x']['field']}:Q", title=fig["x"]["title"], scale=alt.Scale(zero=True))
        base = alt.Chart(data).encode(x=x, y=alt.Y("_y:Q", title=panel["title"], scale=y_scale), color=color)
        if "offered_rps" in data.columns and fig["x"]["field"] != "offered_rps":
            # Points joined in sweep order, as the paper's plots: a saturated point whose achieved
            # throughput dropped sends the line back to the left.
            base = base.encode(order=alt.Order("offered_rps:Q"))
        tooltip = ["label:N", f"{fig['x']['field']}:Q", alt.Tooltip("_y:Q", title=panel["title"], format=".2f")]
        if "_lo" in data.columns:
            tooltip += [
                alt.Tooltip("_lo:Q", title="95% low", format=".2f"),
                alt.Tooltip("_hi:Q", title="95% high", format=".2f"),
            ]
        if "fell_behind" in data.columns:
            tooltip += ["achieved_rps:Q", "fell_behind:N"]
        if "_flagged" in data.columns:
            tooltip += ["flags:N"]
        clip = y_max is not None  # as the paper's plots: saturated points fall off the y limit
        # Same field, title, order and domain as the colour: Vega-Lite merges them into one legend
        # whose symbols are the series' markers (shape and colour), not default circles.
        shape = alt.Shape("label:N", title=None, sort=order, scale=alt.Scale(domain=order))
        pts = base.mark_point(size=70, filled=True, strokeWidth=2, clip=clip).encode(
            shape=shape, tooltip=tooltip, stroke=color
        )
        if "_flagged" in data.columns:
            pts = pts.encode(fill=alt.condition("datum._flagged", alt.value("white"), color))
        layer = base.mark_line(clip=clip) + pts
        if "error" in panel:
            layer += base.mark_rule(clip=clip).encode(y2="_err:Q")
        elif has_interval(data):
            layer += base.mark_errorbar(clip=clip, ticks=True).encode(
                y=alt.Y("_lo:Q", title=panel["title"], scale=y_scale), y2="_hi:Q"
            )
        ref = panel.get("reference")
        if ref:
            value = reference_value(df, ref, f"figures.{fig['name']}.panels[{i}]")
            line = pl.DataFrame({"_x": [value], "reference": [ref["label"]]})
            layer += (
                alt.Chart(line)
                .mark_rule(strokeDash=[6, 4], color="black")
                .encode(
                    x=alt.X("_x:Q"),
                    strokeDash=alt.StrokeDash(
                        "reference:N", title=None, scale=alt.Scale(range=[[6, 4]]), legend=alt.Legend(orient="bottom")
                    ),
                    tooltip=["reference:N", alt.Tooltip("_x:Q", title=fig["x"]["title"], format=".1f")],
                )
            )
        props: dict[str, Any] = {"width": 420, "height": 220}
        if fig.get("layout") == "row":
            props = {"width": 260, "height": 200}
        if panel.get("name"):
            props["title"] = panel["name"]
        panels.append(layer.properties(**props))
    if fig.get("layout") == "row":
        chart: alt.VConcatChart | alt.HConcatChart = alt.hconcat(*panels)
    else:
        chart = alt.vconcat(*panels)
    chart = chart.resolve_scale(color="shared", strokeDash="independent")
    title: dict[str, Any] = {"text": fig.get("title", "")}
    notes = []
    kinds = {k for d in datas if has_interval(d) and "ci_kind" in d.columns for k in d["ci_kind"].to_list()}
    if kinds - {"none"}:
        over = " / ".join(
            {"repetitions": "over repetitions", "within-run": "within one run (one-second windows)"}[k]
            for k in ("repetitions", "within-run")
            if k in kinds
        )
        notes.append(f"error bars: 95% interval of the median {over}")
    flagged = [d for d in datas if "_flagged" in d.columns and d["_flagged"].any()]
    if flagged:
        names = sorted(
            {n for d in flagged for f in d.filter(pl.col("_flagged"))["flags"].to_list() for n in f.split(";") if n}
        )
        if names == ["fell_behind"]:
            notes.append("hollow markers: the load generator fell behind its target rate there")
        else:
            notes.append(f"hollow markers: points flagged unstable ({', '.join(names)}; see the summary's flags)")
    if notes:
        title["subtitle"] = notes
    return chart.properties(title=title)


def has_interval(data: pl.DataFrame) -> bool:
    """Does the panel have intervals to draw (n > 1, or within-run)? None at n = 1 without them."""
    return "_lo" in data.columns and data["_lo"].is_not_null().any()


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
