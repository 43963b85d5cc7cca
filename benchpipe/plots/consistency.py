"""Antipode's DeathStarBench figure (plot key throughput_latency_with_consistency_window): one row
per region pair; on the left (wide) p90 latency against throughput on a symlog y axis, a marker
per offered rate; on the right (narrow) the consistency window at the peak offered rate as a
stacked bar: the first series' window, then the others' extra over it (floored at 0), labelled
"+ x". Repetitions (the artifact's rounds) are reduced to their median, as its plot does.

panels[0] is the left panel's y (and title), panels[1] the bar's; `facet` names the row parameter.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from benchpipe.plots.figures import PALETTE, _series

RATE = "offered_rps"


def _medians(df: pl.DataFrame, facet: str, x: str, ys: list[str]) -> pl.DataFrame:
    return (
        df.group_by([facet, "label", RATE], maintain_order=True)
        .agg([pl.col(c).median() for c in dict.fromkeys([x, *ys])])
        .sort([facet, "label", RATE])
    )


def window_bar(data: pl.DataFrame, order: list[str], y: str) -> pl.DataFrame:
    """The stacked bar's segments at the peak offered rate: the first series present in full, each
    other one as its extra over it, floored at 0 (the artifact's "+ x")."""
    peak = data.filter(pl.col(RATE) == data[RATE].max())
    values = {r["label"]: r[y] for r in peak.iter_rows(named=True) if r[y] is not None}
    present = [s for s in order if s in values]
    if not present:
        return pl.DataFrame(schema={"label": pl.Utf8, "start": pl.Float64, "end": pl.Float64, "text": pl.Utf8})
    base = float(values[present[0]])
    rows = [{"label": present[0], "start": 0.0, "end": base, "text": f"{base:.0f}"}]
    top = base
    for s in present[1:]:
        extra = max(0.0, float(values[s]) - base)
        rows.append({"label": s, "start": top, "end": top + extra, "text": f"+ {extra:.1f}"})
        top += extra
    return pl.DataFrame(rows)


def consistency_window(df: pl.DataFrame, fig: dict[str, Any]) -> alt.VConcatChart:
    facet = fig.get("facet", "region_pair")
    if facet not in df.columns:
        raise ValueError(f"figures.{fig['name']}.facet: the summary has no column {facet!r}")
    if len(fig["panels"]) != 2:
        raise ValueError(f"figures.{fig['name']}.panels: expected 2 (the latency lines, then the window bar)")
    left, right = fig["panels"]
    xf = fig["x"]["field"]
    data = _medians(df, facet, xf, [left["y"], right["y"]])
    order = _series(data, fig)
    color = alt.Color("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=PALETTE[: len(order)]))
    shape = alt.Shape("label:N", title=None, sort=order, scale=alt.Scale(domain=order))
    rows = []
    for value in sorted(data[facet].unique().to_list()):
        part = data.filter(pl.col(facet) == value)
        base = alt.Chart(part).encode(
            x=alt.X(f"{xf}:Q", title=fig["x"]["title"], scale=alt.Scale(zero=True)),
            y=alt.Y(f"{left['y']}:Q", title=left["title"], scale=alt.Scale(type="symlog")),
            color=color,
            order=alt.Order(f"{RATE}:Q"),
        )
        tooltip = ["label:N", f"{RATE}:Q", f"{xf}:Q", alt.Tooltip(f"{left['y']}:Q", format=".2f")]
        lines = base.mark_line() + base.mark_point(size=60, filled=True).encode(shape=shape, tooltip=tooltip)
        bar_data = window_bar(part, order, right["y"])
        bar = alt.Chart(bar_data).encode(
            x=alt.X("_bar:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("start:Q", title=right["title"]),
            y2="end:Q",
            color=color,
        )
        bars = bar.transform_calculate(_bar="'peak'").mark_bar(size=28) + (
            bar.transform_calculate(_bar="'peak'", mid="(datum.start + datum.end) / 2")
            .mark_text(dx=22, align="left", fontSize=10, color="black")
            .encode(y="mid:Q", text="text:N")
        )
        rows.append(
            alt.hconcat(
                lines.properties(width=400, height=200, title=f"{value}"),
                bars.properties(width=100, height=200, title="at the peak rate"),
            )
        )
    return alt.vconcat(*rows).resolve_scale(color="shared").properties(title=fig.get("title", ""))
