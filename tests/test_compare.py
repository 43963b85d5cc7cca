"""Run comparison (benchstat's model): seeded known answers and the table's format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchpipe.cli import main
from benchpipe.stats.compare import Samples, compare_dirs, compare_point, format_table

REPO = Path(__file__).resolve().parent.parent


def draws(shift: float, seed: int, n: int = 20) -> tuple[Samples, Samples]:
    rng = np.random.default_rng(seed)
    old = rng.normal(100.0, 3.0, n)
    new = rng.normal(100.0 * (1 + shift), 3.0, n)
    return Samples(old.tolist(), "repetitions"), Samples(new.tolist(), "repetitions")


def test_ten_percent_shift_is_significant_and_zero_is_not():
    hits = sum(compare_point(*draws(0.10, seed))["significant"] for seed in range(20))
    assert hits == 20
    r = compare_point(*draws(0.10, 0))
    assert 7 < r["delta_pct"] < 13 and r["p_value"] < 1e-4 and r["old_n"] == r["new_n"] == 20
    assert r["old_lo"] < r["old"] < r["old_hi"]
    # A 0% shift: not significant at 0.05 in (about) 95% of seeds; never when the samples are equal.
    false = sum(compare_point(*draws(0.0, seed))["significant"] for seed in range(100))
    assert false <= 10
    same = compare_point(*draws(0.0, 7))
    assert not same["significant"]


def test_table_format_tilde_delta_and_no_test():
    rows = []
    for point, shift in (("qps=100", 0.10), ("qps=300", 0.0)):
        rows.append(
            {
                "experiment": "hotel",
                "baseline": "boki",
                "point": point,
                "metric": "p50_ms",
                **compare_point(*draws(shift, 7)),
            }
        )
    one = compare_point(Samples([5.0], "single value"), Samples([6.0], "single value"))
    rows.append({"experiment": "hotel", "baseline": "unsafe", "point": "qps=100", "metric": "p50_ms", **one})
    text = format_table(rows, "results", "results-ssh")
    lines = text.splitlines()
    assert lines[0] == "old: results" and lines[1] == "new: results-ssh"
    assert "hotel: p50_ms" in lines
    q100 = next(line for line in lines if "boki qps=100" in line)
    q300 = next(line for line in lines if "boki qps=300" in line)
    assert "+1" in q100 and "(p=" in q100 and "n=20+20" in q100 and "repetitions" in q100
    assert " ~ (p=" in q300
    assert "+20.0% (n=1: no test)" in next(line for line in lines if "unsafe qps=100" in line)


def summary(folder: Path, exp: str, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "experiment": exp,
            "baseline": b,
            "label": b.title(),
            "point": f"qps{q}_r{r}",
            "repetition": r,
            "qps": q,
            "p50_ms": float(rng.normal(10 * (1 + shift), 0.2)),
            "p99_ms": float(rng.normal(30, 1)),
            "config_hash": "x",
        }
        for b in ("boki", "unsafe")
        for q in (20, 40)
        for r in range(1, 11)
    ]
    (folder / exp).mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(folder / exp / "summary.parquet")


def test_compare_folders_and_command(tmp_path, capsys):
    old, new = tmp_path / "results", tmp_path / "results-ssh"
    summary(old, "hotel", 0.0, 1)
    summary(new, "hotel", 0.10, 2)
    summary(old, "movie", 0.0, 3)  # only in one folder: not compared
    rows, notes = compare_dirs(old, new, {"hotel": ["qps"]}, {"hotel": ["p50_ms", "p99_ms"]})
    assert notes == ["summarized in one folder only (not compared): movie"]
    assert {(r["baseline"], r["point"], r["metric"]) for r in rows} == {
        (b, f"qps={q}", m) for b in ("boki", "unsafe") for q in (20, 40) for m in ("p50_ms", "p99_ms")
    }
    assert all(r["significant"] for r in rows if r["metric"] == "p50_ms")
    out = tmp_path / "cmp"
    assert main(["compare", str(old), str(new), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hotel: p50_ms" in printed and "hotel: p99_ms" in printed and "movie: " not in printed
    table = pl.read_csv(out / "compare.csv")
    assert table.height == 8 and set(table["samples"]) == {"repetitions"}
    assert (out / "hotel.png").stat().st_size > 5000  # both runs overlaid on the hotel figure
    assert main(["compare", str(old), str(tmp_path / "nowhere")]) == 2
    # A scaled local sweep against the paper's: no common point, and the table says why.
    scaled = tmp_path / "results-local"
    summary(scaled, "hotel", 0.0, 4)
    df = pl.read_parquet(scaled / "hotel" / "summary.parquet").with_columns(pl.col("qps") * 5)
    df.write_parquet(scaled / "hotel" / "summary.parquet")
    rows, notes = compare_dirs(scaled, new, {"hotel": ["qps"]})
    assert rows == [] and notes[0].startswith("hotel: no point in common (qps: ['100', '200'] vs ['20', '40'])")


def point_with_calls(results: Path, shift: float, seed: int) -> None:
    """One repetition of hotel/boki/qps20 with the stack's record of every call over a 10 s
    measurement (100 calls a second, latency ~ 10 ms * (1 + shift))."""
    rng = np.random.default_rng(seed)
    raw = results / "hotel" / "boki" / "qps20" / "raw"
    raw.mkdir(parents=True)
    t0 = 1_700_000_000.0
    lines = []
    for i in range(1000):
        dispatch = t0 + i / 100
        lat_s = max(rng.normal(0.010 * (1 + shift), 0.001), 0.001)
        us = [int(dispatch * 1e6), int(dispatch * 1e6), int((dispatch + lat_s) * 1e6)]
        lines.append(f'{{"recvTs": {us[0]}, "dispatchTs": {us[1]}, "finishedTs": {us[2]}}}')
    (raw / "async_results").write_text("\n".join(lines) + "\n")
    (raw / "timing.json").write_text(f'{{"measure_start": {t0}, "measure_end": {t0 + 10}}}')
    row = {"experiment": "hotel", "baseline": "boki", "label": "Boki", "point": "qps20", "qps": 20}
    row |= {"p50_ms": 10.0 * (1 + shift), "p50_ms_lo": 9.9 * (1 + shift), "p50_ms_hi": 10.1 * (1 + shift)}
    pl.DataFrame([row]).write_parquet(results / "hotel" / "summary.parquet")


def test_one_repetition_is_tested_on_per_second_windows(tmp_path):
    old, new, same = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    point_with_calls(old, 0.0, 1)
    point_with_calls(new, 0.10, 2)
    point_with_calls(same, 0.0, 3)
    rows, _ = compare_dirs(old, new, {"hotel": ["qps"]}, {"hotel": ["p50_ms"]})
    (r,) = rows
    assert r["samples"] == "per-second windows" and r["old_n"] == 1 and r["significant"]
    # The summary's own value and within-run interval are what is shown.
    assert (r["old"], r["old_lo"], r["new_hi"]) == (10.0, 9.9, pytest.approx(11.11))
    (r0,) = compare_dirs(old, same, {"hotel": ["qps"]}, {"hotel": ["p50_ms"]})[0]
    assert not r0["significant"] and "~ (p=" in format_table([r0], "a", "c")
