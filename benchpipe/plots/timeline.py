"""Figure 15: latency against time, one panel per concurrency, transitions marked with their durations.

Expects the switching summary's long table: rows of kind "request" (time_s, latency_ms) and of kind
"transition" (time_s at its begin, duration_ms). As the seed's plot does, requests at or above
5 x the panel's median are left out of the scatter (they stay in the table).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

MAX_POINTS = 20_000  # vl-convert renders a scatter of this many points in a few seconds
OUTLIER_FACTOR = 5.0


def timeline(df: pl.DataFrame, fig: dict[str, Any]) -> alt.VConcatChart:
    facet = fig.get("facet", "concurrency")
    panels = []
    for value in sorted(df[facet].unique().to_list()):
        part = df.filter(pl.col(facet) == value)
        req = part.filter(pl.col("kind") == "request")
        median = float(req["latency_ms"].median() or 0.0)
        if median > 0:
            req = req.filter(pl.col("latency_ms") < median * OUTLIER_FACTOR)
        if req.height > MAX_POINTS:
            req = req.gather_every(req.height // MAX_POINTS + 1)
        duration = pl.col("duration_ms").cast(pl.Float64)  # all null when no transition ended
        trans = part.filter(pl.col("kind") == "transition").with_columns(
            pl.when(duration.is_null())
            .then(pl.lit("not over at the end"))
            .otherwise(pl.format("{} ms", duration.round(1)))
            .alias("text")
        )
        x = alt.X("time_s:Q", title="Time (s)")
        dots = (
            alt.Chart(req)
            .mark_circle(size=8, opacity=0.5)
            .encode(x=x, y=alt.Y("latency_ms:Q", title="Latency (ms)"), color=alt.Color("mode:N", title="logging mode"))
        )
        rules = alt.Chart(trans).mark_rule(color="black", strokeDash=[4, 3]).encode(x=x)
        labels = (
            alt.Chart(trans)
            .mark_text(align="left", dx=3, dy=-4, fontSize=10, baseline="top")
            .encode(x=x, y=alt.value(0), text="text:N")
        )
        panels.append((dots + rules + labels).properties(width=520, height=180, title=f"{facet} = {value}"))
    return alt.vconcat(*panels).properties(title=fig.get("title", ""))
