"""The pipeline parts Pronghorn added: the sequential generator's think time, 503 retries and
per-request rows; the per-request metric; the ECDF figure kind; request-count scaling."""

from __future__ import annotations

import copy
import csv
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchpipe import registry
from benchpipe.errors import ConfigError, RawDataError
from benchpipe.experiment import apply_scale, load_experiment
from benchpipe.model import Mix
from benchpipe.plots.ecdf import ecdf_points
from benchpipe.plots.figures import render

REPO = Path(__file__).resolve().parent.parent
MIX = Mix.from_config([{"name": "invoke", "weight": 1, "path": "/function/f?mutability=1"}])


@pytest.fixture
def restarting_server():
    """Every third request meets a restarting container once (503), then succeeds."""
    state = {"calls": 0, "served": 0}

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state["calls"] += 1
            unavailable = state["served"] % 3 == 2 and state.get("retried") != state["served"]
            if unavailable:
                state["retried"] = state["served"]
            else:
                state["served"] += 1
            self.send_response(503 if unavailable else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", state
    srv.shutdown()
    srv.server_close()


def test_sequential_think_time_retries_and_request_rows(restarting_server, tmp_path):
    url, state = restarting_server
    settings = {
        "warmup_requests": 0,
        "requests": 9,
        "gap_s": 0.03,
        "unavailable_retries": 3,
        "retry_delay_s": 0.01,
        "record_requests": True,
    }
    t0 = time.perf_counter()
    rep = registry.load("generator", "sequential")(settings).run(url, MIX, 0.0, 60.0, tmp_path, "measure")
    assert time.perf_counter() - t0 >= 9 * 0.03  # a think time after every successful request
    assert rep.completed == 9 and rep.errors == 0 and state["calls"] == 12
    with open(tmp_path / "measure.requests.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["request"]) for r in rows] == list(range(1, 10))
    assert [int(r["retries"]) for r in rows] == [0, 0, 1] * 3  # tried again, not recorded twice
    assert all(r["ok"] == "1" and r["status"] == "200" and int(r["client_us"]) > 0 for r in rows)


def test_requests_metric_joins_client_and_server_rows_in_order(tmp_path):
    with open(tmp_path / "measure.requests.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request", "client_us", "ok", "status", "retries"])
        w.writerows([[1, 900, 1, 200, 0], [2, 50, 0, 500, 0], [3, 300, 1, 200, 1]])
    served = [
        {
            "request": i,
            "server_us": s,
            "request_number": i,
            "restored_from": 0,
            "pool": [],
            "recvTs": 1,
            "dispatchTs": 2,
            "finishedTs": 3,
        }
        for i, s in ((1, 800.0), (2, 250.0))
    ]
    (tmp_path / "async_results").write_text("".join(json.dumps(x) + "\n" for x in served))
    rows = registry.load("metric", "requests")(tmp_path, {}, {"eviction": 1})
    assert [(r["client_us"], r.get("server_us")) for r in rows] == [(900, 800.0), (50, None), (300, 250.0)]
    assert "pool" not in rows[0] and "recvTs" not in rows[0]
    conv = registry.load("metric", "convergence")(tmp_path, {}, {"eviction": 1})
    assert conv["median_after_eviction_us"] == 300.0 and conv["requests_ok"] == 2
    (tmp_path / "async_results").write_text(json.dumps(served[0]) + "\n")
    with pytest.raises(RawDataError, match="1 served requests for 2 successful"):
        registry.load("metric", "requests")(tmp_path, {}, {})


def test_ecdf_points_and_figure(tmp_path):
    xs, ys = ecdf_points(np.array([30.0, 10.0, 20.0, 20.0]))
    assert list(xs) == [10.0, 20.0, 20.0, 30.0] and list(ys) == [0.25, 0.5, 0.75, 1.0]
    rng = np.random.default_rng(1)
    rows = [
        {"benchmark": b, "eviction": e, "label": s, "client_us": float(v), "ok": True}
        for b in ("bfs", "dfs")
        for e in (1, 4)
        for s, mu in (("Cold", 60e3), ("Request-centric", 20e3))
        for v in rng.lognormal(np.log(mu), 0.3, 50)
    ]
    fig = {
        "name": "f",
        "kind": "ecdf",
        "x": {"field": "client_us", "title": "Latency (µs)"},
        "rows": {"field": "benchmark", "order": ["dfs", "bfs"], "labels": {"bfs": "BFS"}},
        "columns": {"field": "eviction", "labels": {"1": "1 Request"}},
        "series_order": ["Cold", "Request-centric"],
        "dashes": {"Cold": [6, 3]},
    }
    render(pl.DataFrame(rows), fig, tmp_path / "f.png", tmp_path / "f.html")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    spec = json.dumps(registry.load("figure", "ecdf")(pl.DataFrame(rows), fig).to_dict(), ensure_ascii=False)
    # dfs first (order), headings from labels, log x, both dashes
    assert spec.index("dfs · 1 Request") < spec.index("BFS · 1 Request") and "BFS · 4" in spec
    assert '"type": "log"' in spec and "[6, 3]" in spec and "[1, 0]" in spec
    with pytest.raises(ValueError, match=r"figures.f.rows.field: the summary has no column 'app'"):
        registry.load("figure", "ecdf")(pl.DataFrame(rows), {**fig, "rows": {"field": "app"}})


def test_scale_counts_requests_and_pauses(caplog):
    exp = load_experiment(REPO / "config/experiments/pronghorn/pronghorn_fig4.yaml")
    assert exp.data["workload"]["settings"]["requests"] == 500  # the paper's values in the file
    local = apply_scale(exp.data, {"duration": 0.4, "requests": 0.24})["workload"]["settings"]
    assert local["requests"] == 120 and local["gap_s"] == 0.08 and local["retry_delay_s"] == 0.4
    # Settings no factor expresses are given as local values, after the factors.
    scale = {"duration": 0.4, "experiments": {"pronghorn_fig4": {"settings": {"gap_s": 0, "retry_delay_s": 0.01}}}}
    local = apply_scale(exp.data, scale)["workload"]["settings"]
    assert (local["requests"], local["gap_s"], local["retry_delay_s"]) == (500, 0, 0.01)
    # Some points' own local values (requests by benchmark), after the factors, by their parameters.
    own = [{"when": {"benchmark": "bfs"}, "settings": {"requests": 60}}]
    scale = {"requests": 0.08, "experiments": {"pronghorn_fig4": {"settings_when": own}}}
    scaled = load_experiment(REPO / "config/experiments/pronghorn/pronghorn_fig4.yaml", scale)
    counts = {p.name: scaled.settings(p.params)["requests"] for p in scaled.points("cold")}
    assert counts["bfs_E1"] == counts["bfs_E20"] == 60 and counts["video_E1"] == counts["dfs_E4"] == 40
    # A `when` that names no sweep parameter is an error naming the key; values no point has (a
    # narrowed sweep, or a typo) are said as a warning naming the key, and the entry applies nowhere.
    bad = {
        "experiments": {"pronghorn_fig4": {"settings_when": [*own, {"when": {"benchmarks": "bfs"}, "settings": {}}]}}
    }
    with pytest.raises(
        ConfigError, match=r"scale.experiments.pronghorn_fig4.settings_when\[1\].when: .*got 'benchmarks'"
    ):
        apply_scale(exp.data, bad)
    typo = {
        "experiments": {
            "pronghorn_fig4": {"settings_when": [*own, {"when": {"benchmark": "vidoe"}, "settings": {"requests": 7}}]}
        }
    }
    with caplog.at_level(logging.WARNING, logger="benchpipe.experiment"):
        data = apply_scale(copy.deepcopy(exp.data), typo)
    assert (
        "scale.experiments.pronghorn_fig4.settings_when[1].when" in caplog.text and "which no point has" in caplog.text
    )
    assert [e["settings"] for e in data["workload"]["settings_when"]] == [{"requests": 60}]
    # Without a requests factor, request counts stay (mu2sls's 20 + 200 sequential requests).
    seq = load_experiment(REPO / "config/experiments/mu2sls/mu2sls_seq.yaml", {"duration": 0.05})
    assert seq.data["workload"]["settings"]["requests"] == 200
