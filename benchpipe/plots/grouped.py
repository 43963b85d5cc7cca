"""Bars grouped by x, one bar per series, mean ± std over the rows of each (series, x): the
repetitions of a point (or, for a point measured once, the driver's own `<y>_std`). ExoFlow's
Figures 6 and 8(a); `mean_lines` draws the same aggregates as lines (Figure 8(c))."""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import polars as pl

from benchpipe.plots.figures import PALETTE, _series

OVERLAY_GREY = "#bbbbbb"


def aggregate(df: pl.DataFrame, x: str, y: str, where: str = "") -> pl.DataFrame:
    """label, x, mean, std, n over the repetitions of each (label, x): a summary row's per-repetition
    values (`<y>_reps`), or its rows. One value: the driver's own spread (`<y>_std`) if it has one."""
    if y not in df.columns or x not in df.columns:
        raise ValueError(f"{where}: the summary has no column {y if y not in df.columns else x!r}")
    inner = f"{y}_std"
    cols = [pl.col("label"), pl.col(x)]
    if inner in df.columns:
        cols.append(pl.col(inner).alias("_inner"))
    if f"{y}_reps" in df.columns:
        vals = df.select(*cols, pl.col(f"{y}_reps").alias("_v")).explode("_v")
    else:
        vals = df.select(*cols, pl.col(y).alias("_v"))
    aggs = [pl.col("_v").mean().alias("mean"), pl.col("_v").std().alias("_std_reps"), pl.len().alias("n")]
    if inner in df.columns:
        aggs.append(pl.col("_inner").mean().alias("_std_inner"))
    out = vals.group_by(["label", x], maintain_order=True).agg(aggs)
    std = pl.when(pl.col("n") > 1).then(pl.col("_std_reps"))
    std = std.otherwise(pl.col("_std_inner") if inner in df.columns else pl.lit(0.0))
    return out.with_columns(std.fill_null(0.0).alias("std")).select(["label", x, "mean", "std", "n"])


def _x_text(df: pl.DataFrame, x: str, fig: dict[str, Any]) -> tuple[pl.DataFrame, list[str]]:
    labels = {str(k): v for k, v in (fig.get("x_labels") or {}).items()}
    df = df.with_columns(pl.col(x).cast(pl.Utf8).replace(labels).alias("_x"))
    order = [labels.get(str(v), str(v)) for v in fig.get("x_order", [])]
    if fig.get("extra_x"):
        order = [fig["extra_x"]["label"], *order]
    present = [v for v in df["_x"].unique(maintain_order=True).to_list() if v not in order]
    return df, [o for o in order if o in df["_x"].to_list()] + present


def grouped_bars(df: pl.DataFrame, fig: dict[str, Any]) -> alt.HConcatChart:
    """panels[i].y per x and series; panels[i].filter narrows the rows; fig.overlay draws, behind
    each bar, the same series' mean over the rows matching its filter (grey); fig.log_y."""
    x = fig["x"]["field"]
    order = _series(df, fig)
    color = alt.Color("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=PALETTE[: len(order)]))
    panels = []
    for i, panel in enumerate(fig["panels"]):
        data = df
        for k, v in panel.get("filter", {}).items():
            data = data.filter(pl.col(k) == v)
        where = f"figures.{fig['name']}.panels[{i}]"
        agg = aggregate(data, x, panel["y"], where).with_columns(pl.col(x).cast(pl.Utf8))
        extra = fig.get("extra_x")
        if extra:  # another metric as a group of its own before the x values (8(a)'s "Trigger")
            rows = df
            for k, v in extra.get("filter", {}).items():
                rows = rows.filter(pl.col(k) == v)
            more = aggregate(rows.with_columns(pl.lit(extra["label"]).alias(x)), x, extra["y"], f"{where}.extra_x")
            agg = pl.concat([more.with_columns(pl.col(x).cast(pl.Utf8)), agg], how="vertical_relaxed")
        scale = panel.get("unit_scale", 1)
        agg = agg.with_columns((pl.col("mean") * scale).alias("mean"), (pl.col("std") * scale).alias("std"))
        if fig.get("overlay"):
            base = df
            for k, v in fig["overlay"]["filter"].items():
                base = base.filter(pl.col(k) == v)
            ref = None
            if not base.is_empty():  # one group per series (x is a constant here)
                ref = aggregate(base.with_columns(pl.lit("").alias("_all")), "_all", panel["y"], where + ".overlay")
            if ref is not None:
                ref = ref.select(pl.col("label"), (pl.col("mean") * scale).alias("overlay"))
                agg = agg.join(ref, on="label", how="left")
            agg = agg.filter(pl.col(x).cast(pl.Utf8) != str(next(iter(fig["overlay"]["filter"].values()))))
        agg = agg.with_columns(
            (pl.col("mean") - pl.col("std")).clip(lower_bound=1e-9 if fig.get("log_y") else None).alias("lo"),
            (pl.col("mean") + pl.col("std")).alias("hi"),
        )
        agg, x_order = _x_text(agg, x, fig)
        floor = None
        if fig.get("log_y"):
            # Bars on a log axis start at a floor below the smallest value (zero has no logarithm).
            low = agg.select(pl.min_horizontal(pl.col("mean"), pl.col("lo")).min()).item()
            floor = 10 ** math.floor(math.log10(max(low or 1e-6, 1e-9)))
            agg = agg.with_columns(pl.lit(floor).alias("_floor"), pl.col("lo").clip(lower_bound=floor))
        y_scale = alt.Scale(type="log", domainMin=floor) if floor else alt.Scale(zero=True)
        enc_x = alt.X("_x:N", title=fig["x"]["title"], sort=x_order, axis=alt.Axis(labelAngle=0))
        offset = alt.XOffset("label:N", sort=order)
        base = alt.Chart(agg).encode(x=enc_x, xOffset=offset)
        tooltip = ["label:N", "_x:N", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("std:Q", format=".3g"), "n:Q"]
        layers = []
        if "overlay" in agg.columns:
            layers.append(
                base.mark_bar(color=OVERLAY_GREY, opacity=0.6).encode(
                    y=alt.Y("overlay:Q", scale=y_scale), tooltip=["label:N", alt.Tooltip("overlay:Q", format=".4g")]
                )
                if not floor
                else base.mark_bar(color=OVERLAY_GREY, opacity=0.6).encode(
                    y=alt.Y("overlay:Q", scale=y_scale), y2="_floor:Q"
                )
            )
        bar = base.mark_bar().encode(
            y=alt.Y("mean:Q", title=panel["title"], scale=y_scale), color=color, tooltip=tooltip
        )
        layers.append(bar.encode(y2="_floor:Q") if floor else bar)
        layers.append(base.mark_rule().encode(y="lo:Q", y2="hi:Q"))
        chart = alt.layer(*layers).properties(width=max(260, 70 * len(x_order)), height=240)
        if panel.get("name"):
            chart = chart.properties(title=panel["name"])
        panels.append(chart)
    title: dict[str, Any] = {"text": fig.get("title", "")}
    if fig.get("overlay"):
        title["subtitle"] = f"grey: {fig['overlay']['label']}; bars: mean ± std over the repetitions"
    else:
        title["subtitle"] = "bars: mean ± std over the repetitions"
    return alt.hconcat(*panels).properties(title=title)


def mean_lines(df: pl.DataFrame, fig: dict[str, Any]) -> alt.HConcatChart:
    """panels[i].y against x (numeric), a line per series through the means, error bars ± std."""
    x = fig["x"]["field"]
    order = _series(df, fig)
    color = alt.Color("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=PALETTE[: len(order)]))
    panels = []
    for i, panel in enumerate(fig["panels"]):
        agg = aggregate(df, x, panel["y"], f"figures.{fig['name']}.panels[{i}]")
        agg = agg.with_columns(
            (pl.col("mean") - pl.col("std")).alias("lo"), (pl.col("mean") + pl.col("std")).alias("hi")
        )
        base = alt.Chart(agg).encode(x=alt.X(f"{x}:Q", title=fig["x"]["title"]), color=color)
        y = alt.Y("mean:Q", title=panel["title"], scale=alt.Scale(type="log") if fig.get("log_y") else alt.Scale())
        tooltip = ["label:N", f"{x}:Q", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("std:Q", format=".3g")]
        chart = base.mark_line(point=True).encode(y=y, tooltip=tooltip) + base.mark_rule().encode(y="lo:Q", y2="hi:Q")
        panels.append(chart.properties(width=420, height=240))
    return alt.hconcat(*panels).properties(
        title={"text": fig.get("title", ""), "subtitle": "mean ± std over the repetitions"}
    )
