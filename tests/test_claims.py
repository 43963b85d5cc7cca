"""Claims as data: each kind judged on synthetic summaries with a known answer, the file checks'
messages, and the end-of-run verdict text."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from benchpipe.claims import judge, judge_figure
from benchpipe.cli import main
from benchpipe.errors import ConfigError
from benchpipe.experiment import load_experiment
from benchpipe.verdict import figure_verdict

REPO = Path(__file__).resolve().parent.parent


def reps(series: dict[str, dict[int, float]], n: int = 8, noise: float = 0.02, seed: int = 1) -> pl.DataFrame:
    """A summary with n repetitions per (series, qps): one row per repetition, values = mean * (1 + noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, by_x in series.items():
        for qps, mean in by_x.items():
            for r in range(1, n + 1):
                rows.append(
                    {
                        "experiment": "e",
                        "baseline": label.lower(),
                        "label": label,
                        "point": f"qps{qps}_r{r}",
                        "qps": qps,
                        "p50_ms": float(mean * (1 + noise * rng.standard_normal())),
                    }
                )
    return pl.DataFrame(rows)


def claim(**kw):
    return {"id": "c", "metric": "p50_ms", "source": "test", **kw}


@pytest.mark.parametrize(
    ("a_mean", "b_mean", "expected"),
    [(10.0, 20.0, "reproduced"), (20.0, 10.0, "not reproduced"), (10.0, 10.0, "inconclusive")],
)
def test_below_known_answers(a_mean, b_mean, expected):
    df = reps({"A": {100: a_mean, 300: a_mean}, "B": {100: b_mean, 300: b_mean}})
    row = judge(claim(kind="below", a="A", b="B"), df, "qps")
    assert row["verdict"] == expected, row
    assert row["basis"] == "95% intervals (repetitions)"
    assert "qps=100" in row["detail"] and "qps=300" in row["detail"]


def test_below_refuted_at_one_x_is_not_reproduced_and_at_restricts():
    df = reps({"A": {100: 10.0, 300: 30.0}, "B": {100: 20.0, 300: 20.0}})
    assert judge(claim(kind="below", a="A", b="B"), df, "qps")["verdict"] == "not reproduced"
    assert judge(claim(kind="below", a="A", b="B", at=[100]), df, "qps")["verdict"] == "reproduced"


def test_single_value_is_judged_on_estimates_and_says_so():
    df = reps({"A": {100: 10.0}, "B": {100: 20.0}}, n=1)
    row = judge(claim(kind="below", a="A", b="B"), df, "qps")
    assert row["verdict"] == "reproduced"
    assert row["basis"].startswith("estimates only (n = 1")


def test_summary_interval_columns_are_used():
    # stats-core's contract: <m> median, <m>_lo/<m>_hi the interval, <m>_n, ci_kind.
    df = pl.DataFrame(
        {
            "experiment": ["e", "e"],
            "baseline": ["a", "b"],
            "label": ["A", "B"],
            "point": ["qps100", "qps100"],
            "qps": [100, 100],
            "p50_ms": [10.0, 12.0],
            "p50_ms_lo": [9.0, 11.5],
            "p50_ms_hi": [11.8, 12.5],
            "p50_ms_n": [3, 3],
            "ci_kind": ["repetitions", "within-run"],
            "flags": ["", "drift"],
        }
    )
    row = judge(claim(kind="below", a="A", b="B"), df, "qps")
    assert row["verdict"] == "inconclusive"  # 11.8 > 11.5: the intervals overlap
    assert "within-run" in row["basis"] and "b/qps100: drift" in row["flagged"]
    df2 = df.with_columns(pl.Series("p50_ms_hi", [11.0, 12.5]))
    assert judge(claim(kind="below", a="A", b="B"), df2, "qps")["verdict"] == "reproduced"


def test_equal_range_ratio_order():
    zero = reps({"A": {100: 0.0}}, noise=0.0)
    assert judge(claim(kind="equal", series="A", value=0), zero, "qps")["verdict"] == "reproduced"
    five = reps({"A": {100: 5.0}})
    assert judge(claim(kind="equal", series="A", value=0, tolerance=1), five, "qps")["verdict"] == "not reproduced"
    assert judge(claim(kind="equal", series="A", value=5, tolerance=0.5), five, "qps")["verdict"] == "reproduced"
    assert judge(claim(kind="range", series="A", range=[4.99, 5.01]), five, "qps")["verdict"] == "inconclusive"
    df = reps({"A": {100: 7.0}, "B": {100: 10.0}, "C": {100: 13.0}})
    assert judge(claim(kind="ratio", a="A", b="B", range=[0.6, 0.8]), df, "qps")["verdict"] == "reproduced"
    assert judge(claim(kind="ratio", a="A", b="B", range=[0.9, 1.1]), df, "qps")["verdict"] == "not reproduced"
    assert judge(claim(kind="order", order=["A", "B", "C"]), df, "qps")["verdict"] == "reproduced"
    assert judge(claim(kind="order", order=["A", "C", "B"]), df, "qps")["verdict"] == "not reproduced"


@pytest.mark.parametrize(
    ("slope", "direction", "expected"),
    [(1.0, "increasing", "reproduced"), (-1.0, "increasing", "not reproduced"), (0.0, "increasing", "inconclusive")],
)
def test_monotone_known_answers(slope, direction, expected):
    df = reps({"A": {x: 20.0 + slope * x / 10 for x in (10, 20, 30, 40, 50)}}, n=3, noise=0.05)
    row = judge(claim(kind="monotone", series="A", direction=direction), df, "qps")
    assert row["verdict"] == expected, row
    assert "Theil-Sen" in row["detail"]


def test_per_request_rows_give_within_run_intervals_and_where_filters():
    rng = np.random.default_rng(3)
    rows = []
    for label, mean in (("Fast", 10_000), ("Slow", 20_000)):
        for ev in (1, 4):
            for i in range(100):
                rows.append(
                    {
                        "baseline": label.lower(),
                        "label": label,
                        "point": f"bfs_E{ev}",
                        "benchmark": "bfs",
                        "eviction": ev,
                        "ok": i % 10 != 0,
                        "client_us": float(rng.normal(mean if ev == 1 else 15_000, 1000)),
                    }
                )
    df = pl.DataFrame(rows)
    c = claim(kind="below", a="Fast", b="Slow", metric="client_us", x="benchmark", where={"eviction": 1, "ok": True})
    row = judge(c, df, None)
    assert row["verdict"] == "reproduced" and "within-run" in row["basis"] and "n=90" in row["detail"]
    c4 = {**c, "where": {"eviction": 4, "ok": True}}
    assert judge(c4, df, None)["verdict"] == "inconclusive"


def test_not_applicable_locally_is_listed_not_judged_and_judged_remotely():
    df = reps({"A": {100: 10.0}, "B": {100: 20.0}})
    c = claim(kind="below", a="A", b="B", local="not-applicable", reason="needs CRIU")
    local = judge(c, df, "qps", "local")
    assert local["verdict"] == "not applicable locally" and local["detail"] == "needs CRIU"
    assert judge(c, df, "qps", "ssh")["verdict"] == "reproduced"


def test_missing_series_gives_no_data_naming_it():
    # A series the run lacks (baselines narrowed for a quick run, or a typo) is said, not an error.
    df = reps({"A": {100: 10.0}, "C": {100: 5.0}})
    row = judge(claim(kind="below", a="A", b="B"), df, "qps")
    assert row["verdict"] == "no data" and row["detail"].startswith("no rows of series B (measured: A, C, a, c)")


# --- the experiment file's claims: schema and checks name the file and the key ---------------


def write_hotel(tmp_path: Path, claims) -> Path:
    src = REPO / "config" / "experiments" / "halfmoon"
    suite = tmp_path / "halfmoon"
    suite.mkdir()
    (suite / "_halfmoon.yaml").write_text((src / "_halfmoon.yaml").read_text())
    hotel = yaml.safe_load((src / "hotel.yaml").read_text())
    hotel["claims"] = claims
    (suite / "hotel.yaml").write_text(yaml.safe_dump(hotel, allow_unicode=True))
    return suite / "hotel.yaml"


GOOD = {"id": "x", "kind": "below", "a": "Halfmoon-read", "b": "boki", "metric": "p50_ms", "source": "paper"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kind": "faster"},
            "claims[0].kind: expected one of below, equal, range, ratio, order, monotone, got 'faster'",
        ),
        ({"b": None}, "claims[0].b: is missing (required for a claim of kind below)"),
        ({"source": None}, "claims[0]: 'source' is missing (required)"),
        ({"local": "not-applicable"}, "claims[0].reason: expected why the local stand-in cannot show this claim"),
        ({"figure": "movie"}, "claims[0].figure: expected one of this file's figures (hotel), got 'movie'"),
        ({"range": [2, 1], "kind": "ratio"}, "claims[0].range: expected [low, high] with low <= high"),
        ({"colour": "red"}, "claims[0]: unknown key 'colour'"),
    ],
)
def test_claim_errors_name_file_and_key(tmp_path, change, message):
    c = copy.deepcopy(GOOD)
    for k, v in change.items():
        if v is None:
            c.pop(k)
        else:
            c[k] = v
    path = write_hotel(tmp_path, [c])
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert str(path) in str(e.value) and message in str(e.value), str(e.value)


def test_duplicate_ids_and_the_shipped_claims_load(tmp_path):
    path = write_hotel(tmp_path, [GOOD, GOOD])
    with pytest.raises(ConfigError, match=r"claims\[1\].id: expected an id unique in the file"):
        load_experiment(path)
    exp = load_experiment(REPO / "config" / "experiments" / "halfmoon" / "hotel.yaml")
    assert {c["id"] for c in exp.data["claims"]} >= {"hm-read-below-boki-p50"}


def test_judge_figure_and_verdict_text(tmp_path, capsys):
    exp = load_experiment(write_hotel(tmp_path, [GOOD, {**GOOD, "id": "y", "a": "Boki", "b": "Halfmoon-read"}]))
    df = reps({"Halfmoon-read": {100: 10.0}, "Boki": {100: 20.0}}).with_columns(
        pl.col("label").replace({"Halfmoon-read": "Halfmoon-read", "Boki": "Boki"}),
        pl.col("baseline").replace({"boki": "boki", "halfmoon-read": "halfmoon-read"}),
        pl.lit("").alias("flags"),
    )
    df = df.with_columns(
        pl.when(pl.col("point") == "qps100_r1").then(pl.lit("stall")).otherwise(pl.col("flags")).alias("flags")
    )
    table = judge_figure(exp, "hotel", df)
    assert table["verdict"].to_list() == ["no data", "no data"]  # the rows are of experiment "e"
    df = df.with_columns(pl.lit("hotel").alias("experiment"))
    # Another experiment's rows beside (a panel's): not mixed into this file's claims.
    other = df.with_columns(pl.lit("movie").alias("experiment"), pl.col("p50_ms") * 100)
    table = judge_figure(exp, "hotel", pl.concat([df, other]))
    assert table["verdict"].to_list() == ["reproduced", "not reproduced"]
    (tmp_path / "results" / "hotel").mkdir(parents=True)
    csv, summary = (
        tmp_path / "results" / "hotel" / "claims-hotel.csv",
        tmp_path / "results" / "hotel" / "summary.parquet",
    )
    table.write_csv(csv)
    df.write_parquet(summary)
    text = figure_verdict("hotel", [summary], csv)
    assert text.splitlines()[0] == "hotel: claims: 1 reproduced, 1 not reproduced; unstable points: 2"
    assert "unstable  hotel boki/qps100_r1: stall" in text
    assert "  reproduced              x: Halfmoon-read's p50_ms below boki's at every qps" in text
    # The same again from the results folder (a run with nothing to do prints no verdict).
    assert main(["verdict", "--results", str(tmp_path / "results")]) == 0
    assert capsys.readouterr().out.strip() == text


def test_report_section_shows_intervals_flags_and_claims(tmp_path):
    from benchpipe.verdict import report_section

    row = {"experiment": "hotel", "baseline": "boki", "point": "qps20", "p50_ms": 17.8, "p50_ms_lo": 17.0}
    row |= {"p50_ms_hi": 18.5, "p50_ms_n": 1, "ci_kind": "within-run", "flags": "drift", "flag_detail": "+40%"}
    pl.DataFrame([row]).write_parquet(tmp_path / "summary.parquet")
    claims = pl.DataFrame(
        [
            {
                "claim": "x",
                "verdict": "inconclusive",
                "text": "A below B",
                "basis": "95% intervals (within-run)",
                "detail": "qps=20: A 1 [0.5, 2] vs B 1.5 [1, 3] -> inconclusive",
                "source": "paper",
                "flagged": "boki/qps20: drift",
            }
        ]
    )
    claims.write_csv(tmp_path / "claims-hotel.csv")
    text = report_section("hotel", [tmp_path / "summary.parquet"], tmp_path / "claims-hotel.csv", ["p50_ms"])
    assert "- hotel boki/qps20: p50_ms 17.8 [17, 18.5] (n=1, within-run)" in text
    assert "- hotel boki/qps20: drift (+40%)" in text
    assert "- **inconclusive**: A below B (95% intervals (within-run)). qps=20: A 1 [0.5, 2]" in text
    assert "Uses flagged points: boki/qps20: drift." in text
