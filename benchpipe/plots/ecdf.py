"""ECDF panels (Pronghorn's Figures 4 and 5): one panel per (row, column) value pair, e.g. benchmark
x eviction rate; in each, one step line per series (the label) with its own line style; log x,
clipped to [smallest value, clip_percentile of the panel's values].

The artifact clips at the 98th percentile of the last-plotted strategy only; here the panel's
union decides, so that no strategy's tail decides another's view by accident of plotting order.

figure keys: x {field, title}; rows / columns {field, order?, labels?}; series_order; dashes
{label: [dash, gap, ...]}; clip_percentile (98).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import polars as pl

from benchpipe.plots.figures import PALETTE, _series

DASHES = [[1, 0], [6, 3], [6, 3, 1, 3], [2, 2]]


def _values(df: pl.DataFrame, spec: dict[str, Any], where: str) -> list[Any]:
    if spec["field"] not in df.columns:
        raise ValueError(f"{where}.field: the summary has no column {spec['field']!r}")
    present = list(dict.fromkeys(df[spec["field"]].to_list()))
    order = [v for v in present if str(v) in {str(o) for o in spec.get("order", [])}]
    order.sort(key=lambda v: [str(o) for o in spec["order"]].index(str(v)))
    return order + sorted((v for v in present if v not in order), key=str)


def _label(spec: dict[str, Any], value: Any) -> str:
    return str(spec.get("labels", {}).get(str(value), value))


def ecdf_points(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and the fraction of values at or below each (the empirical CDF)."""
    xs = np.sort(values)
    return xs, np.arange(1, len(xs) + 1) / len(xs)


def ecdf(df: pl.DataFrame, fig: dict[str, Any]) -> alt.VConcatChart:
    where = f"figures.{fig['name']}"
    xf = fig["x"]["field"]
    if xf not in df.columns:
        raise ValueError(f"{where}.x.field: the summary has no column {xf!r}")
    data = df.filter(pl.col(xf).is_not_null() & (pl.col(xf) > 0))
    if "ok" in data.columns:
        data = data.filter(pl.col("ok"))
    rows, cols = fig["rows"], fig["columns"]
    row_vals = _values(data, rows, f"{where}.rows")
    col_vals = _values(data, cols, f"{where}.columns")
    order = _series(data, fig)
    given = fig.get("dashes", {})
    # Series without a dash of their own get the first styles no other series has.
    spare = iter([d for d in DASHES if d not in given.values()] + DASHES * len(order))
    dashes = [given[s] if s in given else next(spare) for s in order]
    color = alt.Color("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=PALETTE[: len(order)]))
    dash = alt.StrokeDash("label:N", title=None, sort=order, scale=alt.Scale(domain=order, range=dashes))
    clip = float(fig.get("clip_percentile", 98))
    grid = []
    for ri, rv in enumerate(row_vals):
        panels = []
        for ci, cv in enumerate(col_vals):
            cell = data.filter((pl.col(rows["field"]) == rv) & (pl.col(cols["field"]) == cv))
            parts = []
            for s in order:
                vals = cell.filter(pl.col("label") == s)[xf].cast(pl.Float64).to_numpy()
                if len(vals):
                    xs, ys = ecdf_points(vals)
                    parts.append(pl.DataFrame({"_x": xs, "_y": ys, "label": [s] * len(xs)}))
            title = f"{_label(rows, rv)} · {_label(cols, cv)}"
            if not parts:
                panels.append(
                    alt.Chart(pl.DataFrame({"t": ["not measured"]}))
                    .mark_text()
                    .encode(text="t:N")
                    .properties(width=220, height=120, title=title)
                )
                continue
            pts = pl.concat(parts)
            allv = cell[xf].cast(pl.Float64).to_numpy()
            lo, hi = float(allv.min()), float(np.percentile(allv, clip))
            hi = hi if hi > lo else lo * 10
            x = alt.X(
                "_x:Q",
                scale=alt.Scale(type="log", domain=[lo, hi]),
                title=fig["x"]["title"] if ri == len(row_vals) - 1 else None,
                axis=alt.Axis(tickCount=3, format="~s"),
            )
            y = alt.Y("_y:Q", scale=alt.Scale(domain=[0, 1]), title="Proportion" if ci == 0 else None)
            chart = (
                alt.Chart(pts)
                .mark_line(interpolate="step-after", clip=True)
                .encode(x=x, y=y, color=color, strokeDash=dash, tooltip=["label:N", alt.Tooltip("_x:Q", title=xf)])
                .properties(width=220, height=120, title=title)
            )
            panels.append(chart)
        grid.append(alt.hconcat(*panels).resolve_scale(x="independent"))
    chart = alt.vconcat(*grid).resolve_scale(x="independent", color="shared", strokeDash="shared")
    return chart.properties(title=fig.get("title", ""))
