"""The papers' claims as data: the checks of an experiment file's `claims:` beyond the schema,
and what a claim says (judging is benchpipe/claims.py, which needs the statistics libraries)."""

from __future__ import annotations

from typing import Any

from benchpipe.errors import ConfigError

KINDS = ("below", "equal", "range", "ratio", "order", "monotone")
# Keys each kind needs beside id, kind, metric, source (the schema checks their types).
NEEDS = {
    "below": ("a", "b"),
    "equal": ("series", "value"),
    "range": ("series", "range"),
    "ratio": ("a", "b", "range"),
    "order": ("order",),
    "monotone": ("series", "direction"),
}


def figure_x(exp: Any, fig: dict[str, Any]) -> str | None:
    """The parameter a claim's `at` and "every x" range over, by default: the figure's x field when
    it is a sweep parameter, else the experiment's rate parameter (mu2sls draws achieved req/s,
    which differs per series, so series are compared at the same offered rate), else none."""
    field = (fig.get("x") or {}).get("field")
    if field and field in exp.data["sweep"]:
        return field
    return exp.rate_param


def check_claims(exp: Any, experiments: dict[str, Any] | None = None) -> None:
    """Every claim names a figure of this file (and an experiment that exists) and has the keys its kind needs."""
    src, data = exp.source, exp.data
    figures = [f["name"] for f in data["figures"]]
    ids: set[str] = set()
    for i, c in enumerate(data.get("claims", [])):
        where = f"{src}: claims[{i}]"
        if c["id"] in ids:
            raise ConfigError(f"{where}.id: expected an id unique in the file, got {c['id']!r} twice")
        ids.add(c["id"])
        fig = c.get("figure")
        if fig is None:
            if len(figures) != 1:
                raise ConfigError(
                    f"{where}.figure: expected the figure the claim is about (one of {', '.join(figures) or 'none'})"
                )
        elif fig not in figures:
            raise ConfigError(
                f"{where}.figure: expected one of this file's figures ({', '.join(figures)}), got {fig!r}"
            )
        for key in NEEDS[c["kind"]]:
            if key not in c:
                raise ConfigError(f"{where}.{key}: is missing (required for a claim of kind {c['kind']})")
        if c.get("local") == "not-applicable" and not c.get("reason"):
            raise ConfigError(f"{where}.reason: expected why the local stand-in cannot show this claim")
        for key in ("range",):
            if key in c and not c[key][0] <= c[key][1]:
                raise ConfigError(f"{where}.{key}: expected [low, high] with low <= high, got {c[key]}")
        if c.get("experiment") and experiments is not None and c["experiment"] not in experiments:
            raise ConfigError(
                f"{where}.experiment: expected the name of an experiment ({', '.join(sorted(experiments))}), "
                f"got {c['experiment']!r}"
            )
        # A series the experiment does not run (its baselines narrowed for a quick run) is not an
        # error: the claim's verdict says "no data" and names the series it lacks.


def claims_of_figure(exp: Any, figure: str) -> list[dict[str, Any]]:
    figures = [f["name"] for f in exp.data["figures"]]
    return [
        c for c in exp.data.get("claims", []) if c.get("figure", figures[0] if len(figures) == 1 else None) == figure
    ]


def describe(claim: dict[str, Any], x: str | None) -> str:
    """The claim in words, from its data (a `text` in the file wins)."""
    if claim.get("text"):
        return str(claim["text"])
    m, kind = claim["metric"], claim["kind"]
    at = claim.get("at")
    where = f" at {x} = {', '.join(map(str, at))}" if at else (f" at every {x}" if x else "")
    if kind == "below":
        return f"{claim['a']}'s {m} below {claim['b']}'s{where}"
    if kind == "equal":
        return f"{claim['series']}'s {m} = {claim['value']} ± {claim.get('tolerance', 0)}{where}"
    if kind == "range":
        return f"{claim['series']}'s {m} in [{claim['range'][0]}, {claim['range'][1]}]{where}"
    if kind == "ratio":
        return f"{claim['a']}'s {m} / {claim['b']}'s in [{claim['range'][0]}, {claim['range'][1]}]{where}"
    if kind == "order":
        return f"{m}: {' < '.join(claim['order'])}{where}"
    return f"{claim['series']}'s {m} {claim['direction']} in {x}"
