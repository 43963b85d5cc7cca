"""The built-in open-loop generator: rate, coordinated-omission-free latency, mix, errors, falling behind."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from benchpipe.generators.openloop import OpenLoopGenerator
from benchpipe.model import Mix
from benchpipe.ports import free_port

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow  # real load for seconds each


@pytest.fixture
def server():
    port = free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, str(HERE / "http_fixture.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def mix(path: str, **weights: float) -> Mix:
    kinds = weights or {"only": 1.0}
    return Mix.from_config([{"name": k, "weight": w, "path": path, "body": {"k": k}} for k, w in kinds.items()])


def test_rate_within_two_percent(server, tmp_path):
    rep = OpenLoopGenerator({}).run(server, mix("/ok"), 200, 5.0, tmp_path, "measure")
    assert rep.sent == 1000
    assert abs(rep.achieved_rate - 200) / 200 < 0.02
    assert not rep.fell_behind, rep.fell_behind_reason
    assert (tmp_path / "measure.json").exists() and "Percentile" in (tmp_path / "measure.hgrm").read_text()


def test_stall_shows_in_the_tail(server, tmp_path):
    rep = OpenLoopGenerator({}).run(server, mix("/stall"), 200, 4.0, tmp_path, "measure")
    # ~200 of 800 requests were due during the 1 s stall: measured from their due time, they wait
    # up to a second; a closed-loop or send-time measurement would hide most of that.
    assert rep.p99_ms > 800, rep
    assert rep.max_ms > 900
    assert rep.p50_ms < 100


def test_mix_weights_respected(server, tmp_path):
    rep = OpenLoopGenerator({"seed": 3}).run(server, mix("/ok", a=0.9, b=0.09, c=0.01), 500, 4.0, tmp_path, "m")
    n = rep.sent
    for kind, w in {"a": 0.9, "b": 0.09, "c": 0.01}.items():
        expected = n * w
        sd = (n * w * (1 - w)) ** 0.5
        assert abs(rep.per_kind[kind] - expected) < 4 * sd, (kind, rep.per_kind)


def test_errors_and_timeouts_counted(server, tmp_path):
    rep = OpenLoopGenerator({}).run(server, mix("/err"), 50, 1.0, tmp_path, "e")
    assert rep.errors == 50 and rep.completed == 0
    assert rep.fell_behind and "HTTP 500" in rep.fell_behind_reason
    rep = OpenLoopGenerator({"timeout_s": 0.5}).run(server, mix("/slow"), 20, 1.0, tmp_path, "t")
    assert rep.timeouts == 20 and rep.completed == 0


def test_fell_behind_when_target_unreachable(server, tmp_path):
    # One connection to a server that takes 3 s per answer cannot carry 100 requests/s.
    rep = OpenLoopGenerator({"max_connections": 1, "timeout_s": 4}).run(server, mix("/slow"), 100, 1.0, tmp_path, "x")
    assert rep.fell_behind
    assert "achieved" in rep.fell_behind_reason


def test_processes_merge_histograms(server, tmp_path):
    rep = OpenLoopGenerator({"processes": 2}).run(server, mix("/stall", a=0.5, b=0.5), 300, 3.0, tmp_path, "p")
    assert rep.sent == 900 and rep.completed == 900
    assert abs(rep.achieved_rate - 300) / 300 < 0.02
    assert sum(rep.per_kind.values()) == 900 and set(rep.per_kind) == {"a", "b"}
    merged = HdrHistogram.decode(rep.histogram)
    assert merged.get_total_count() == 900
    # The stall hit the one server both processes talk to: the merged tail holds both shares'
    # stalled requests (each process alone would offer ~150 of the ~300 due during the second).
    assert rep.p99_ms > 800
    assert rep.max_ms == merged.get_max_value() / 1e3


def test_waiting_for_a_connection_counts_as_send_lag(server, tmp_path):
    # Four connections, all held by the 1 s stall: the requests due meanwhile wait for one, so they
    # leave up to a second late, and the generator says it fell behind its schedule.
    rep = OpenLoopGenerator({"max_connections": 4}).run(server, mix("/stall"), 100, 3.0, tmp_path, "w")
    assert rep.completed == 300
    assert rep.max_send_lag_ms > 500 and rep.connections <= 4
    assert rep.fell_behind and "send lag" in rep.fell_behind_reason


def test_connection_refused_is_an_error(tmp_path):
    port = free_port("127.0.0.1")  # nothing listens there
    rep = OpenLoopGenerator({}).run(f"http://127.0.0.1:{port}", mix("/ok"), 20, 1.0, tmp_path, "r")
    assert rep.sent == 20 and rep.errors == 20 and rep.completed == 0
    assert rep.fell_behind and "ConnectionRefusedError" in rep.fell_behind_reason
    rep = OpenLoopGenerator({}).run("http://no-such-host.invalid:80", mix("/ok"), 10, 1.0, tmp_path, "r")
    assert rep.errors == 10 and rep.completed == 0 and "gaierror" in rep.fell_behind_reason


def test_server_closing_connections(server, tmp_path):
    # Every answer says Connection: close: each request needs a new connection, none is lost.
    rep = OpenLoopGenerator({}).run(server, mix("/close"), 100, 2.0, tmp_path, "c")
    assert rep.completed == 200 and rep.errors == 0 and not rep.fell_behind, rep.fell_behind_reason
