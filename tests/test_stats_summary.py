"""Summary rows with intervals, flags and attempts, from synthetic point folders (seeded)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import polars as pl

from benchpipe.experiment import load_experiment
from benchpipe.stats.stability import row_flags
from benchpipe.summarize import summarize, write_summary

REPO = Path(__file__).resolve().parent.parent
HOTEL = REPO / "config" / "experiments" / "halfmoon" / "hotel.yaml"
T0 = 1_700_000_000.0
OUTPUT = base64.b64encode(b"{}").decode()


def write_attempt(
    raw: Path, rng: np.random.Generator, base_ms: float, stall: tuple[float, float] | None = None
) -> None:
    """10 s of measurement at 100 calls/s (after 2 s of warm-up), latency ~ base_ms; no call
    finishes inside `stall`. The generator's report says what the client saw."""
    raw.mkdir(parents=True, exist_ok=True)
    start = np.sort(rng.uniform(T0 - 2.0, T0 + 10.0, 1200))
    lat = base_ms * rng.lognormal(0, 0.1, start.size)
    done = start + lat / 1e3
    if stall:
        done = np.where((done >= T0 + stall[0]) & (done < T0 + stall[1]), T0 + stall[1] + 0.01, done)
    with open(raw / "async_results", "w") as f:
        for i, (s, d) in enumerate(zip(start, done, strict=True)):
            rec = {"callId": f"{i:x}", "recvTs": int(s * 1e6), "dispatchTs": int(s * 1e6), "finishedTs": int(d * 1e6)}
            f.write(json.dumps({**rec, "success": True, "output": OUTPUT}) + "\n")
    client_p99 = 2000.0 if stall else base_ms * 3
    report = {
        "generator": "openloop",
        "target_rate": 100.0,
        "achieved_rate": 100.0,
        "sent": 1000,
        "completed": 1000,
        "errors": 0,
        "timeouts": 0,
        "max_send_lag_ms": 1.0,
        "p50_ms": base_ms * 1.5,
        "p99_ms": client_p99,
        "fell_behind": False,
    }
    (raw / "measure.json").write_text(json.dumps(report))
    timing = {"warmup_start": T0 - 2.0, "warmup_end": T0, "measure_start": T0, "measure_end": T0 + 10.0}
    (raw / "timing.json").write_text(json.dumps(timing))


def make_points(results: Path, exp, reps: int, base_ms: dict[str, float], seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    points = exp.points("unsafe", reps)
    for p in points:
        folder = results / exp.name / p.baseline / p.name
        write_attempt(folder / "raw", rng, base_ms.get(p.name, 10.0))
        (folder / "manifest.json").write_text(json.dumps({"config_hash": "h", "fell_behind": False}))
    return points


def test_repetitions_reduce_to_median_interval_n_and_values(tmp_path):
    exp = load_experiment(HOTEL, repetitions=3)
    # qps300's third repetition is three times slower than its others: outside median +- 3 MAD.
    points = make_points(tmp_path, exp, 3, {"qps300_r3": 30.0})
    df = summarize(exp, tmp_path, 3, points)
    assert df.height == 4 and (df["repetitions"] == 3).all() and set(df["ci_kind"]) == {"repetitions"}
    assert list(df["point"]) == ["qps100", "qps300", "qps500", "qps700"]
    for row in df.iter_rows(named=True):
        reps = row["p50_ms_reps"]
        assert len(reps) == 3 and row["p50_ms_n"] == 3
        assert row["p50_ms"] == float(np.median(reps))
        assert row["p50_ms_lo"] <= row["p50_ms"] <= row["p50_ms_hi"]
        assert row["client_p99_ms_n"] == 3 and row["attempt"] == 1
    slow = df.filter(pl.col("qps") == 300).row(0, named=True)
    assert "outlier_rep" in slow["flags"].split(";")
    assert any(n == "outlier_rep" and "rep 3" in why for n, why in row_flags(slow))
    assert df.filter(pl.col("qps") == 100)["flags"][0] == ""
    write_summary(df, tmp_path / "s.parquet", tmp_path / "s.csv")
    csv = pl.read_csv(tmp_path / "s.csv")
    assert csv["p50_ms_reps"][0].count(";") == 2


def test_single_repetition_gets_a_within_run_interval_and_keeps_its_value(tmp_path):
    exp = load_experiment(HOTEL)
    points = make_points(tmp_path, exp, 1, {})
    df = summarize(exp, tmp_path, 1, points)
    row = df.row(0, named=True)
    assert row["ci_kind"] == "within-run" and row["p50_ms_n"] == 1 and row["p50_ms_reps"] == [row["p50_ms"]]
    assert row["p50_ms_lo"] < row["p50_ms"] < row["p50_ms_hi"] and row["p99_ms_lo"] is not None
    assert row["client_p99_ms"] == 30.0 and row["dropped_share"] == 0.0
    assert row["client_p99_ms_lo"] is None  # the generator's histogram has no windows


def test_a_stalled_attempt_is_kept_and_the_stable_one_used(tmp_path):
    exp = load_experiment(HOTEL)
    points = make_points(tmp_path, exp, 1, {})
    raw = tmp_path / "hotel" / "unsafe" / "qps100" / "raw"
    write_attempt(raw / "attempts" / "1", np.random.default_rng(9), 10.0, stall=(3.0, 5.0))
    df = summarize(exp, tmp_path, 1, points)
    row = df.filter(pl.col("qps") == 100).row(0, named=True)
    assert row["attempt"] == 2 and row["attempt_note"] == "attempt 2 used (stable); attempt 1: stall"
    assert row["flags"] == "" and row["client_p99_ms"] == 30.0
    # Only the stalled attempt left (the last one): used, and flagged with its numbers.
    (raw / "attempts" / "1").rename(tmp_path / "stalled")
    write_attempt(raw, np.random.default_rng(9), 10.0, stall=(3.0, 5.0))
    row = summarize(exp, tmp_path, 1, points).filter(pl.col("qps") == 100).row(0, named=True)
    flags = dict(row_flags(row))
    assert row["attempt"] == 1 and "stall" in flags and "no completion in 2 of 10" in flags["stall"]
    assert "views_disagree" in flags and "2000.0 ms" in flags["views_disagree"]


def test_series_file_records_warmup_and_measurement_windows(tmp_path):
    from benchpipe.stats.point import write_series

    raw = tmp_path / "raw"
    write_attempt(raw, np.random.default_rng(5), 10.0, stall=(3.0, 5.0))
    (raw / "measure.json").write_text(
        json.dumps({**json.loads((raw / "measure.json").read_text()), "duration_s": 10.0})
    )
    assert write_series(raw)
    series = json.loads((raw / "series.json").read_text())
    assert len(series["measure"]["count"]) == 10 and series["measure"]["count"][3:5] == [0, 0]
    assert series["warmup"]["window_s"] == 0.25 and len(series["warmup"]["p50_ms"]) == 8
    (raw / "async_results").unlink()
    assert not write_series(tmp_path / "nothing")
