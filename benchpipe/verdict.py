"""The end-of-run verdict per figure: points flagged unstable (with the reason) and the paper's
claims with their verdicts, read from the figure's summaries and its claims file. Printed on the
terminal after every run (the Snakefile's onsuccess) and shown in `--report` (the figure's caption).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

ORDER = ("reproduced", "not reproduced", "inconclusive", "no data", "not applicable locally")


def flagged_points(summaries: list[Path]) -> list[str]:
    """'<experiment> <baseline>/<point>: <flags> (<detail>)' for every flagged row of the summaries
    (stats-core's `flags`/`flag_detail` columns; none when a summary has no such column)."""
    out = []
    for path in summaries:
        if not path.exists():
            continue
        df = pl.read_parquet(path)
        if "flags" not in df.columns:
            continue
        cols = [c for c in ("experiment", "baseline", "point", "flags", "flag_detail") if c in df.columns]
        rows = (
            df.filter(pl.col("flags").is_not_null() & (pl.col("flags") != "")).select(cols).unique(maintain_order=True)
        )
        for r in rows.iter_rows(named=True):
            detail = f" ({r['flag_detail']})" if r.get("flag_detail") else ""
            out.append(
                f"{r.get('experiment', path.parent.name)} {r.get('baseline')}/{r.get('point')}: {r['flags']}{detail}"
            )
    return out


def read_claims(path: Path) -> list[dict[str, Any]]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    return pl.read_csv(path, infer_schema_length=0).to_dicts()


def figure_verdict(figure: str, summaries: list[Path], claims_csv: Path, width: int = 120) -> str:
    """The short verdict of one figure, a few lines."""
    flags = flagged_points(summaries)
    claims = read_claims(claims_csv)
    counts = Counter(c["verdict"] for c in claims)
    tally = ", ".join(f"{counts[v]} {v}" for v in ORDER if counts[v]) or "none written"
    lines = [f"{figure}: claims: {tally}; unstable points: {len(flags) or 'none'}"]
    for f in flags:
        lines.append(f"  unstable  {f}"[:width])
    for c in sorted(claims, key=lambda c: ORDER.index(c["verdict"]) if c["verdict"] in ORDER else 9):
        # A verdict from point estimates alone (n = 1, no interval) is the weaker kind: marked so.
        weak = " (n=1)" if c.get("basis", "").startswith("estimates only") else ""
        lines.append(f"  {c['verdict'] + weak:<23} {c['claim']}: {c['text']}"[:width])
    return "\n".join(lines)


def point_intervals(summaries: list[Path], metrics: list[str], limit: int = 80) -> list[str]:
    """'<experiment> <baseline>/<point>: <m> median [lo, hi] (n, kind)' for the drawn metrics of
    summaries that carry intervals (`<m>_lo`/`<m>_hi`)."""
    out = []
    for path in summaries:
        if not path.exists():
            continue
        df = pl.read_parquet(path)
        have = [m for m in metrics if m in df.columns and f"{m}_lo" in df.columns]
        for r in df.iter_rows(named=True):
            parts = []
            for m in have:
                if r[m] is None:
                    continue
                lo, hi = r[f"{m}_lo"], r[f"{m}_hi"]
                iv = f" [{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None else " (no interval)"
                parts.append(f"{m} {r[m]:.4g}{iv}")
            if parts:
                # ci_kind is the row's: said only beside an interval it describes.
                kind = f", {r['ci_kind']}" if r.get("ci_kind") and any("[" in p for p in parts) else ""
                n = f"n={r.get(f'{have[0]}_n')}"
                out.append(
                    f"{r.get('experiment')} {r.get('baseline')}/{r.get('point')}: {', '.join(parts)} ({n}{kind})"
                )
    return out[:limit] + (
        [f"... and {len(out) - limit} more (the summaries have them all)"] if len(out) > limit else []
    )


def report_section(figure: str, summaries: list[Path], claims_csv: Path, metrics: list[str] | None = None) -> str:
    """The same, in full (the points' intervals, the claims' cells and sources), as
    reStructuredText for the report's caption."""
    flags = flagged_points(summaries)
    claims = read_claims(claims_csv)
    out = ["", f"**Verdict** ({claims_csv.name}):", ""]
    intervals = point_intervals(summaries, metrics or [])
    if intervals:
        out += ["Medians with 95% intervals of the points drawn:", ""] + [f"- {i}" for i in intervals] + [""]
    if flags:
        out.append("Points flagged unstable:")
        out.append("")
        out.extend(f"- {f}" for f in flags)
        out.append("")
    else:
        out += ["No point flagged unstable.", ""]
    if not claims:
        out.append("No claim is written for this figure.")
    for c in claims:
        out.append(f"- **{c['verdict']}**: {c['text']} ({c['basis']}). {c['detail']}. Source: {c['source']}.")
        if c.get("flagged"):
            out.append(f"  Uses flagged points: {c['flagged']}.")
    return "\n".join(out)
