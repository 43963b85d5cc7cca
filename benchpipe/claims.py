"""The papers' claims as data (an experiment file's `claims:`), checked and judged with intervals.

A claim compares cells: the values of one metric for one series (a baseline, named by its label or
its name) at one x (a sweep parameter's value), among the rows of the summaries a figure draws.
Each cell gets a median with a 95% interval (benchpipe.stats.intervals): the summary's own
`<m>_lo`/`<m>_hi` when it has them (repetitions), a bootstrap over the cell's rows when it has
several (repetitions as rows, or per-request rows: within-run), none for a single value.

Verdicts: reproduced (intervals separate the claimed way at every x), not reproduced (they
separate the other way at some x), inconclusive (they overlap somewhere and nowhere contradict),
not applicable locally (the local stand-in is not built to show it: `local: not-applicable`).
Without intervals (n = 1), the point estimates are compared as if they were intervals of width 0:
the same verdicts, marked as the weaker basis they are.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from benchpipe.claimspec import claims_of_figure, describe, figure_x
from benchpipe.errors import ConfigError
from benchpipe.stats.intervals import Interval, median_interval

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_APPLICABLE, NO_DATA = "not applicable locally", "no data"
CLAIM_COLUMNS = (
    "figure",
    "claim",
    "kind",
    "verdict",
    "basis",
    "text",
    "metric",
    "detail",
    "flagged",
    "source",
    "local",
)


@dataclass(frozen=True)
class Cell:
    """One series at one x: the interval of its metric, and its points flagged unstable."""

    series: str
    x: Any
    interval: Interval
    flagged: tuple[str, ...] = ()

    @property
    def bounds(self) -> tuple[float, float]:
        iv = self.interval
        return (iv.low, iv.high) if iv.has_bounds else (iv.estimate, iv.estimate)

    def text(self) -> str:
        iv = self.interval
        if math.isnan(iv.estimate):
            return f"{self.series}: no value"
        if iv.has_bounds:
            return f"{self.series} {iv.estimate:.4g} [{iv.low:.4g}, {iv.high:.4g}] (n={iv.n}, {iv.kind})"
        return f"{self.series} {iv.estimate:.4g} (n={iv.n}, no interval)"


# ---------------------------------------------------------------------------------------------
# Cells: a metric's interval for one series at one x.


def _series_rows(df: pl.DataFrame, series: str) -> pl.DataFrame:
    return df.filter((pl.col("baseline") == series) | (pl.col("label") == series))


def _eq(col: str, value: Any) -> pl.Expr:
    if isinstance(value, bool):
        return pl.col(col) == value
    # Parameters come back from parquet as numbers or strings; the file may say 100 or "100".
    return pl.col(col).cast(pl.String) == (
        str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    )


def cell_interval(rows: pl.DataFrame, metric: str, seed: int = 0) -> Interval:
    """The median of `metric` over `rows` with its 95% interval (see the module's docstring)."""
    if metric not in rows.columns:
        return Interval(math.nan, math.nan, math.nan, 0, "none")
    rows = rows.filter(pl.col(metric).is_not_null())
    if rows.height == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "none")
    if rows.height == 1:
        row = rows.row(0, named=True)
        lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
        n = int(row.get(f"{metric}_n") or 1)
        if lo is not None and hi is not None:
            return Interval(float(row[metric]), float(lo), float(hi), n, row.get("ci_kind") or "repetitions")
        reps = row.get(f"{metric}_reps")
        if reps is not None and len(reps) >= 2:
            return median_interval([float(v) for v in reps], seed=seed, kind="repetitions")
        return Interval(float(row[metric]), math.nan, math.nan, n, "none")
    # Several rows: repetitions (one row per point) or one run's per-request rows.
    per_point = "point" not in rows.columns or rows["point"].n_unique() == rows.height
    return median_interval(
        rows[metric].cast(pl.Float64).to_list(), seed=seed, kind="repetitions" if per_point else "within-run"
    )


def _flagged(rows: pl.DataFrame) -> tuple[str, ...]:
    if "flags" not in rows.columns:
        return ()
    out = []
    for r in rows.filter(pl.col("flags").is_not_null() & (pl.col("flags") != "")).iter_rows(named=True):
        out.append(f"{r.get('baseline')}/{r.get('point')}: {r['flags']}")
    return tuple(dict.fromkeys(out))


def cells(df: pl.DataFrame, series: str, metric: str, x: str | None, at: Sequence[Any] | None) -> list[Cell]:
    rows = _series_rows(df, series)
    if x is None:
        return [Cell(series, None, cell_interval(rows, metric), _flagged(rows))]
    if at is None:
        at = sorted(rows[x].unique().drop_nulls().to_list()) if x in rows.columns else []
    out = []
    for v in at:
        sub = rows.filter(_eq(x, v)) if x in rows.columns else rows.clear()
        out.append(Cell(series, v, cell_interval(sub, metric), _flagged(sub)))
    return out


# ---------------------------------------------------------------------------------------------
# Judging.


def _below(a: Cell, b: Cell) -> str:
    (alo, ahi), (blo, bhi) = a.bounds, b.bounds
    if any(math.isnan(v) for v in (alo, ahi, blo, bhi)):
        return NO_DATA
    if ahi < blo:
        return REPRODUCED
    if alo > bhi:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _inside(c: Cell, lo: float, hi: float) -> str:
    clo, chi = c.bounds
    if math.isnan(clo):
        return NO_DATA
    if lo <= clo and chi <= hi:
        return REPRODUCED
    if chi < lo or clo > hi:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _ratio(a: Cell, b: Cell, lo: float, hi: float) -> tuple[str, str]:
    (alo, ahi), (blo, bhi) = a.bounds, b.bounds
    if any(math.isnan(v) for v in (alo, ahi, blo, bhi)):
        return NO_DATA, "no value"
    if blo <= 0 or alo < 0:
        return INCONCLUSIVE, "the denominator's interval reaches 0"
    rlo, rhi = alo / bhi, ahi / blo
    est = a.interval.estimate / b.interval.estimate if b.interval.estimate else math.inf
    verdict = REPRODUCED if lo <= rlo and rhi <= hi else NOT_REPRODUCED if rhi < lo or rlo > hi else INCONCLUSIVE
    return verdict, f"ratio {est:.3g} [{rlo:.3g}, {rhi:.3g}]"


def combine(verdicts: Sequence[str]) -> str:
    """A claim over several x: refuted by one x, reproduced only by all."""
    if not verdicts or all(v == NO_DATA for v in verdicts):
        return NO_DATA
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return INCONCLUSIVE


def basis(all_cells: Sequence[Cell]) -> str:
    kinds = sorted({c.interval.kind for c in all_cells if c.interval.n > 0})
    if not kinds:
        return "no data"
    if kinds == ["none"]:
        return "estimates only (n = 1, no interval: weaker)"
    with_iv = [k for k in kinds if k != "none"]
    text = f"95% intervals ({', '.join(with_iv)})"
    return text + ("; some cells estimates only (n = 1: weaker)" if "none" in kinds else "")


def _monotone(df: pl.DataFrame, claim: dict[str, Any], x: str | None) -> tuple[str, str, list[Cell]]:
    """Theil-Sen slope of the metric against x with its 95% interval (all rows' values): its sign
    decides; with two x values only, the two cells' intervals."""
    series, metric, up = claim["series"], claim["metric"], claim["direction"] == "increasing"
    cs = cells(df, series, metric, x, claim.get("at"))
    if x is None:
        raise ConfigError(f"claim {claim['id']}: monotone: expected x (a sweep parameter)")
    cs = [c for c in cs if not math.isnan(c.interval.estimate)]
    if len(cs) < 2:
        return NO_DATA, "fewer than two x values", cs
    if len(cs) == 2:
        lo_c, hi_c = cs
        v = _below(lo_c, hi_c) if up else _below(hi_c, lo_c)
        return v, "; ".join(f"{x}={c.x}: {c.text()}" for c in cs), cs
    rows = _series_rows(df, series).filter(pl.col(metric).is_not_null())
    rows = rows.filter(pl.col(x).cast(pl.String).is_in([str(c.x) for c in cs]))
    xs = rows[x].cast(pl.Float64).to_numpy()
    ys = rows[metric].cast(pl.Float64).to_numpy()
    from scipy import stats

    res = stats.theilslopes(ys, xs, alpha=0.95)
    slope, lo, hi = float(res.slope), float(res.low_slope), float(res.high_slope)
    if (lo > 0 and up) or (hi < 0 and not up):
        v = REPRODUCED
    elif (hi < 0 and up) or (lo > 0 and not up):
        v = NOT_REPRODUCED
    else:
        v = INCONCLUSIVE
    return v, f"Theil-Sen slope {slope:.4g} per unit of {x}, 95% [{lo:.4g}, {hi:.4g}] over {len(ys)} values", cs


def judge(claim: dict[str, Any], df: pl.DataFrame, x: str | None, target: str = "local") -> dict[str, Any]:
    """One row of claims.csv: the claim's verdict, its basis and the cells' numbers."""
    x = claim.get("x", x)
    metric, kind = claim["metric"], claim["kind"]
    row = {
        "figure": claim.get("figure", ""),
        "claim": claim["id"],
        "kind": kind,
        "text": describe(claim, x),
        "metric": metric,
        "source": claim["source"],
        "local": "not-applicable" if claim.get("local") == "not-applicable" else "",
        "flagged": "",
    }
    if claim.get("local") == "not-applicable" and target == "local":
        return {**row, "verdict": NOT_APPLICABLE, "basis": "not judged", "detail": claim["reason"]}
    if claim.get("experiment"):
        df = df.filter(pl.col("experiment") == claim["experiment"]) if "experiment" in df.columns else df
    for k, v in (claim.get("where") or {}).items():
        df = df.filter(_eq(k, v)) if k in df.columns else df.clear()
    names = [claim[k] for k in ("a", "b", "series") if k in claim] + list(claim.get("order", []))
    known = set(df["baseline"].to_list()) | set(df["label"].to_list()) if "label" in df.columns else set()
    missing = [s for s in names if s not in known]
    if missing:
        return {
            **row,
            "verdict": NO_DATA,
            "basis": "no data",
            "detail": f"no rows of series {', '.join(missing)} (measured: {', '.join(sorted(map(str, known))) or '-'})",
        }
    at = claim.get("at")
    used: list[Cell] = []
    parts: list[str] = []
    verdicts: list[str] = []
    if kind == "monotone":
        v, text, used = _monotone(df, claim, x)
        verdicts, parts = [v], [text]
    elif kind in ("below", "ratio", "order"):
        names = claim["order"] if kind == "order" else [claim["a"], claim["b"]]
        per = [cells(df, s, metric, x, at) for s in names]
        if at is None and x is not None:
            # Every x all the compared series were measured at.
            common = set.intersection(*[{c.x for c in cs if not math.isnan(c.interval.estimate)} for cs in per])
            per = [[c for c in cs if c.x in common] for cs in per]
        for group in zip(*per, strict=True):
            used.extend(group)
            label = f"{x}={group[0].x}: " if x else ""
            if kind == "ratio":
                v, rtext = _ratio(group[0], group[1], *claim["range"])
                parts.append(label + f"{rtext} ({group[0].text()}; {group[1].text()})")
            else:
                v = combine([_below(p, q) for p, q in itertools.pairwise(group)])
                parts.append(label + " vs ".join(c.text() for c in group) + f" -> {v}")
            verdicts.append(v)
    else:
        cs = cells(df, claim["series"], metric, x, at)
        used = cs
        if kind == "equal":
            tol = float(claim.get("tolerance", 0))
            lo, hi = float(claim["value"]) - tol, float(claim["value"]) + tol
        else:
            lo, hi = map(float, claim["range"])
        for c in cs:
            v = _inside(c, lo, hi)
            verdicts.append(v)
            parts.append((f"{x}={c.x}: " if x else "") + f"{c.text()} -> {v}")
    flagged = sorted({f for c in used for f in c.flagged})
    return {
        **row,
        "verdict": combine(verdicts),
        "basis": basis(used) if kind != "monotone" or len(used) <= 2 else "Theil-Sen slope interval (95%)",
        "detail": "; ".join(parts) or "no rows match",
        "flagged": "; ".join(flagged),
    }


def judge_figure(
    exp: Any, figure: str, df: pl.DataFrame, target: str = "local", claims: list[dict[str, Any]] | None = None
) -> pl.DataFrame:
    """claims.csv of one figure: a row per claim about it (an empty table with the columns when none)."""
    fig = next(f for f in exp.data["figures"] if f["name"] == figure)
    rows = []
    for c in claims if claims is not None else claims_of_figure(exp, figure):
        # A figure may draw several experiments (its panels'): a claim reads its own (default: the file's).
        c = {**c, "figure": figure, "experiment": c.get("experiment", exp.name)}
        rows.append(judge(c, df, figure_x(exp, fig), target))
    if not rows:
        return pl.DataFrame(schema={k: pl.String for k in CLAIM_COLUMNS})
    return pl.DataFrame(rows).select(CLAIM_COLUMNS)
