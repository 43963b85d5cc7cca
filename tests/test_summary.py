"""The seed's latency rules on known input, and a missing point reported by name."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from benchpipe.errors import RawDataError
from benchpipe.experiment import load_experiment
from benchpipe.summaries.latency import point_latency
from benchpipe.summarize import summarize

REPO = Path(__file__).resolve().parent.parent
SUMMARY = {"skip_fraction": 1 / 6, "outlier_factor": 20, "metrics": ["latency"]}


def write_async_results(path: Path, latencies_ms: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = 1_700_000_000_000_000
    with open(path, "w") as f:
        for i, lat in enumerate(latencies_ms):
            rec = {
                "callId": f"{i:x}",
                "recvTs": t + i * 1000,
                "dispatchTs": t + i * 1000 + 50,
                "finishedTs": t + i * 1000 + 50 + int(lat * 1000),
                "success": True,
                "output": base64.b64encode(b"{}").decode(),
            }
            f.write(json.dumps(rec) + "\n")


def known_latencies(seed: int = 1) -> list[float]:
    # 100 warm-up entries (1/6 of 602 rounds down to 100) that the rule skips, then 1..500 ms in a
    # shuffled order and two stragglers at 100 s, at or above 20 x the median (251.5 ms).
    body = [float(v) for v in range(1, 501)] + [100_000.0, 100_000.0]
    random.Random(seed).shuffle(body)
    return [9_999.0] * 100 + body


def test_seed_rules_on_known_input(tmp_path):
    write_async_results(tmp_path / "async_results", known_latencies())
    stats = point_latency(tmp_path, SUMMARY, {})
    assert stats["n"] == 500
    assert stats["n_dropped"] == 102
    assert stats["p50_ms"] == pytest.approx(250.5)
    assert stats["p99_ms"] == pytest.approx(495.01)  # linear interpolation between 495 and 496
    assert stats["mean_ms"] == pytest.approx(250.5)


def test_sleep_is_subtracted(tmp_path):
    write_async_results(tmp_path / "async_results", [0.0] * 6 + [55.0] * 30)
    stats = point_latency(tmp_path, {**SUMMARY, "sleep_ms_per_op": 5, "ops_param": "ops"}, {"ops": 10})
    assert stats["p50_ms"] == pytest.approx(5.0)


def test_corrupt_file_is_named(tmp_path):
    raw = tmp_path / "async_results"
    raw.write_text('{"recvTs": 1, "dispatchTs": 2, "finishedTs": 3}\n{"recvTs": 1, "disp')
    with pytest.raises(RawDataError, match="async_results"):
        point_latency(tmp_path, SUMMARY, {})


def test_missing_point_is_an_error_naming_it(tmp_path):
    exp = load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml", {"duration": 0.1, "rate": 0.5})
    for p in exp.all_points():
        folder = tmp_path / exp.name / p.baseline / p.name
        if (p.baseline, p.name) == ("boki", "qps150"):
            continue
        write_async_results(folder / "raw" / "async_results", [10.0] * 60)
        (folder / "manifest.json").write_text(
            json.dumps({"config_hash": "x", "generator": {"target_rate": 1, "achieved_rate": 1}})
        )
    with pytest.raises(RawDataError) as e:
        summarize(exp, tmp_path, 1)
    assert "hotel/boki/qps150" in str(e.value)
    assert "1 point(s) not measured" in str(e.value)
