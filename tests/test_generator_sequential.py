"""The sequential generator: M untimed warm-up requests, then N timed ones, one at a time."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchpipe import registry
from benchpipe.model import Mix

MIX = Mix.from_config(
    [
        {
            "name": "c",
            "weight": 1,
            "path": "/backend/req",
            "vars": {"req_id": {"uuid": 4}},
            "body": {"req_id": "${req_id}"},
        }
    ]
)


@pytest.fixture
def server():
    seen: list[dict] = []
    state = {"inflight": 0, "max_inflight": 0, "fail": False}
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            with lock:
                state["inflight"] += 1
                state["max_inflight"] = max(state["max_inflight"], state["inflight"])
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, **body})
            status = 500 if state["fail"] else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            with lock:
                state["inflight"] -= 1

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen, state
    srv.shutdown()
    srv.server_close()


def test_warmup_then_timed_requests_one_at_a_time(server, tmp_path: Path):
    url, seen, state = server
    gen = registry.load("generator", "sequential")({"warmup_requests": 7, "requests": 30})
    rep = gen.run(url, MIX, 0.0, 60.0, tmp_path, "measure")
    assert len(seen) == 37 and rep.sent == 37
    assert rep.completed == 30 and rep.errors == 0 and not rep.fell_behind
    assert state["max_inflight"] == 1  # closed loop, one request at a time
    assert {s["path"] for s in seen} == {"/backend/req"}
    assert len({s["req_id"] for s in seen}) == 37  # a fresh id per request
    assert rep.achieved_rate == pytest.approx(30 / rep.duration_s)
    assert 0 < rep.p50_ms <= rep.p90_ms
    assert json.loads((tmp_path / "measure.json").read_text())["completed"] == 30


def test_failures_and_the_cap_are_flagged(server, tmp_path: Path):
    url, _seen, state = server
    state["fail"] = True
    rep = registry.load("generator", "sequential")({"warmup_requests": 0, "requests": 5}).run(
        url, MIX, 0.0, 60.0, tmp_path, "measure"
    )
    assert rep.completed == 0 and rep.errors == 5 and rep.fell_behind
    assert "HTTP 500" in rep.fell_behind_reason
    state["fail"] = False
    capped = registry.load("generator", "sequential")({"warmup_requests": 0, "requests": 10_000_000}).run(
        url, MIX, 0.0, 0.3, tmp_path, "measure"
    )
    assert capped.fell_behind and "cap" in capped.fell_behind_reason
    assert 0 < capped.completed < 10_000_000
