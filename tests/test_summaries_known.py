"""Issue 3's summaries on known input: singleop, log size, switching (and its trace parser), the storage unit."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import polars as pl
import pytest

from benchpipe.errors import RawDataError
from benchpipe.experiment import load_experiment
from benchpipe.generators.closedloop import parse_trace
from benchpipe.plots.figures import lines
from benchpipe.summaries.logsize import point_logsize, time_average, write_bytes_average
from benchpipe.summaries.singleop import point_singleop
from benchpipe.summaries.switching import point_switching

REPO = Path(__file__).resolve().parent.parent
SUMMARY = {"skip_fraction": 1 / 6, "outlier_factor": 20}


def write_outputs(path: Path, outputs: list[dict], t0: int = 1_700_000_000_000_000, step_us: int = 1_000_000) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "async_results", "w") as f:
        for i, out in enumerate(outputs):
            rec = {
                "recvTs": t0 + i * step_us,
                "dispatchTs": t0 + i * step_us,
                "finishedTs": t0 + i * step_us + 10,
                "success": True,
                "output": base64.b64encode(json.dumps(out).encode()).decode(),
            }
            f.write(json.dumps(rec) + "\n")


def test_singleop_per_operation(tmp_path):
    # The real format: microseconds nested under Output. 12 warm-up entries skipped (1/6 of 72),
    # then reads 1..60 ms, writes 2x, invoke constant, one read outlier.
    outs = [{"Output": {"Read": 999_000, "Write": 999_000, "Invoke": 999_000}}] * 12
    outs += [{"Output": {"Read": 1000 * i, "Write": 2000 * i, "Invoke": 500}} for i in range(1, 61)]
    outs[-1] = {"Output": {**outs[-1]["Output"], "Read": 10_000_000}}  # at or above 30 x the median: dropped
    write_outputs(tmp_path, outs)
    row = point_singleop(tmp_path, SUMMARY, {})
    assert row["read_n"] == 59 and row["read_p50_ms"] == pytest.approx(30.0)
    assert row["write_p50_ms"] == pytest.approx(61.0)  # 2 x 30.5: median of 2..120 step 2
    assert row["invoke_p99_ms"] == pytest.approx(0.5)


def test_singleop_reads_a_real_output_line_and_refuses_the_old_top_level_form(tmp_path):
    # One async_results line as the real gateway writes it for a singleop call (output: base64 JSON).
    out = base64.b64encode(b'{"Output":{"Read":4120,"Write":6830,"Invoke":2210}}').decode()
    line = (
        '{"callId":"1a2b","recvTs":1700000000000000,"dispatchTs":1700000000000100,'
        f'"finishedTs":1700000000013500,"success":true,"output":"{out}"}}\n'
    )
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "async_results").write_text(line * 6)
    row = point_singleop(tmp_path, SUMMARY, {})
    assert row["read_p50_ms"] == pytest.approx(4.12) and row["write_p50_ms"] == pytest.approx(6.83)
    assert row["invoke_p50_ms"] == pytest.approx(2.21)
    write_outputs(tmp_path, [{"Read": 4.1, "Write": 6.8, "Invoke": 2.2}] * 6)  # top-level ms: not what runs
    with pytest.raises(RawDataError, match="Output"):
        point_singleop(tmp_path, SUMMARY, {})


def test_time_average_and_write_lifetime():
    assert time_average([(0, 100.0), (1, 300.0), (3, 0.0)]) == pytest.approx((100 * 1 + 300 * 2) / 3)
    assert write_bytes_average(writes=100, seconds=10, value_size=256, gc_interval_ms=10_000) == pytest.approx(25_600)


def test_logsize_in_kb(tmp_path):
    outs = [{"LogSize": 0, "Writes": 0}] * 2 + [{"LogSize": 2048, "Writes": 5}] * 10
    write_outputs(tmp_path, outs)
    row = point_logsize(tmp_path, {**SUMMARY, "gc_interval_ms": 10_000}, {"value_size": 256, "gc": 10_000})
    assert row["log_kb"] == pytest.approx(2.0)
    # 50 writes in 9 s (10 samples, 1 s apart), each 256 B alive for 10 s.
    assert row["write_kb"] == pytest.approx(50 / 9 * 256 * 10 / 1024)
    assert row["total_kb"] == pytest.approx(row["log_kb"] + row["write_kb"])


def test_storage_figure_is_in_the_unit_its_axis_names():
    exp = load_experiment(REPO / "config/experiments/halfmoon/overhead.yaml")
    fig = next(f for f in exp.data["figures"] if f["name"].startswith("storage"))
    df = pl.DataFrame({"label": ["Boki"], "read_ratio": [0.5], "total_kb": [2048.0]})
    spec = lines(df, fig).to_dict()
    panel = spec["vconcat"][0]
    assert panel["layer"][0]["encoding"]["y"]["title"] == "Storage (MB)"
    values = next(iter(spec["datasets"].values()))
    assert values[0]["_y"] == pytest.approx(2.0)  # 2048 KB drawn as 2 MB (the seed drew 2048 on an MB axis)


TRACE = """1000000: 10.5ms read
1100000: 11.0ms read
1200000: BEGIN TRANSITION
1250000: END TRANSITION
1300000: 20.0ms write
"""


def test_trace_parser_and_switching_rows(tmp_path):
    (tmp_path / "trace.txt").write_text(TRACE)
    requests, transitions = parse_trace(tmp_path / "trace.txt")
    assert [r["latency_ms"] for r in requests] == [10.5, 11.0, 20.0]
    assert transitions == [{"begin_us": 1_200_000, "end_us": 1_250_000, "duration_ms": 50.0}]
    rows = point_switching(tmp_path, SUMMARY, {"concurrency": 16})
    assert [r["kind"] for r in rows].count("transition") == 1
    assert next(r for r in rows if r["kind"] == "transition")["time_s"] == pytest.approx(0.2)


def test_a_transition_continued_by_later_cycles_or_still_open_at_the_end(tmp_path):
    # The client prints BEGIN at every cycle change that finds calls still transitional.
    (tmp_path / "trace.txt").write_text(
        "500000: BEGIN TRANSITION\n1000000: BEGIN TRANSITION\n1200000: END TRANSITION\n"
        "1500000: BEGIN TRANSITION\n10: 1.00ms READLOG\n600000: 2.00ms TRANSITIONAL\n"
    )
    requests, transitions = parse_trace(tmp_path / "trace.txt")
    assert [r["mode"] for r in requests] == ["READLOG", "TRANSITIONAL"]
    assert transitions == [
        {"begin_us": 500_000, "end_us": 1_200_000, "duration_ms": 700.0},
        {"begin_us": 1_500_000, "end_us": None, "duration_ms": None},
    ]
    rows = point_switching(tmp_path, SUMMARY, {"concurrency": 16})
    df = pl.DataFrame([{**r, "concurrency": 16} for r in rows if r["kind"] == "request" or r["duration_ms"] is None])
    from benchpipe.plots.timeline import timeline

    assert timeline(df, {"title": "t"}).to_dict()  # no transition ended: still drawn


def test_bad_trace_line_is_named(tmp_path):
    (tmp_path / "trace.txt").write_text("1000: 5ms read\n1001: garbage\n")
    with pytest.raises(RawDataError, match=r"trace.txt: line 2"):
        point_switching(tmp_path, SUMMARY, {})
