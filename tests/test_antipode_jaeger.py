"""Antipode on DeathStarBench under --profile ssh, without docker: Jaeger in the rendered stack and
where collect asks it, collect's paged and retried query against the contract Jaeger's query
service (workloads/antipode-contract, a real HTTP server here), and the finished-request count from
wrk2's own output (nginx writes no async_results)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from benchpipe.jaeger import JaegerQuery, collect_records, records
from tests.test_antipode_swarm import EXP, rendered

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workloads" / "antipode-contract"))
from dsbcontract import jaeger as contract  # noqa: E402
from dsbcontract.common import _tag  # noqa: E402

FIELDS = EXP.data["stack"]["swarm"]["traces"]["fields"]


def test_jaeger_in_the_rendered_stack_as_upstream_and_collect_knows_where_it_answers():
    from benchpipe.deployers.swarm import SwarmDeployer
    from benchpipe.model import Cluster, Host

    spec, r = rendered("antipode", "us-sg")
    jaeger = yaml.safe_load(r["compose"])["services"]["jaeger"]
    # DeathStarBench socialNetwork/docker-compose.yml (antipode branch): all-in-one, the query UI's
    # port, the Zipkin collector port, on the admin node (node25 upstream).
    assert jaeger["image"] == "jaegertracing/all-in-one:latest"
    assert jaeger["ports"] == ["16686:16686"] and jaeger["environment"] == {"COLLECTOR_ZIPKIN_HTTP_PORT": "9411"}
    assert jaeger["deploy"]["placement"]["constraints"] == ["node.hostname == admin-tracing"]
    # What collect asks: compose-post-service's traces (upstream's gather), and nginx records nothing.
    assert r["finished_from"] == "generator"
    assert r["traces"]["jaeger"] == {"service": "jaeger", "port": 16686}
    assert r["traces"]["query"]["service"] == "compose-post-service"
    assert r["traces"]["fields"]["consistent"] == {
        "span": "FanoutHomeTimelines",
        "service": "write-home-timeline-service-us",  # the reader region's read
        "tag": "consistency_bool",
    }
    hosts = [
        Host(name=m["name"], address=f"10.0.0.{i}", role=m["role"], labels=m.get("labels", []))
        for i, m in enumerate(spec["machines"], 1)
    ]
    cluster = Cluster("dsb", "ssh", "r", "antipode_dsb", "antipode", hosts, "k")
    admin = next(h for h in hosts if h.name == "admin-tracing")
    assert SwarmDeployer._traces_url(cluster, r) == f"http://{admin.address}:16686"


def span(trace: str, sid: str, op: str, start: int, service: str, **tags) -> dict:
    return {
        "traceID": trace,
        "spanID": sid,
        "operationName": op,
        "references": [],
        "startTime": start,
        "duration": 10,
        "tags": [_tag(k, v) for k, v in tags.items()],
        "process": {"serviceName": service, "tags": []},
    }


def one_request(store: contract.Store, i: int, t0_us: int, complete: bool = True) -> None:
    """The spans one compose-post leaves, as the contract services emit them (tags in ms, as strings)."""
    trace = f"{i + 1:016x}"
    ms = t0_us // 1000
    store.add(span(trace, "a", "/wrk2-api/post/compose", t0_us, "nginx-web-server"))
    store.add(span(trace, "b", "_ComposeAndUpload", t0_us + 50, "compose-post-service", composepost_id=str(1000 + i)))
    store.add(
        span(trace, "c", "StorePost", t0_us + 90, "post-storage-service-eu", poststorage_post_written_ts=str(ms + 1))
    )
    store.add(
        span(
            trace, "d", "_UploadHomeTimelineHelper", t0_us + 100, "compose-post-service", wht_start_queue_ts=str(ms + 1)
        )
    )
    if complete:
        store.add(
            span(
                trace, "e", "FanoutHomeTimelines", t0_us + 30_000, "write-home-timeline-service-us",
                wht_start_worker_ts=str(ms + 21), poststorage_read_notification_ts=str(ms + 23 + i % 3),
                wht_antipode_duration="2.5", consistency_mongoread_duration="0.4", consistency_bool=i % 4 != 0,
            )
        )  # fmt: skip


class Flaky:
    """The contract Jaeger's query handler, answering 503 to the first `fail` requests and garbage
    to the next one: what a Jaeger under load or restarting answers."""

    def __init__(self, store: contract.Store, fail: int) -> None:
        base = contract.make_handler(store)
        state = {"n": 0, "urls": []}
        self.state = state

        class H(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:
                state["n"] += 1
                state["urls"].append(self.path)
                if state["n"] <= fail:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif state["n"] == fail + 1:
                    body = b"<html>upstream connect error</html>"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    super().do_GET()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"


def test_collect_pages_the_window_and_retries_errors_against_the_contract_jaeger():
    store = contract.Store()
    t0 = 1_700_000_000_000_000
    for i in range(30):  # 30 requests, 20 ms apart, in the point's window
        one_request(store, i, t0 + i * 20_000)
    one_request(store, 30, t0 + 30 * 20_000, complete=False)  # its notification not consumed yet
    one_request(store, 99, t0 - 5_000_000)  # the warm-up's, before the window
    server = Flaky(store, fail=2)
    try:
        q = JaegerQuery(server.url, "compose-post-service", limit=7, retries=4, backoff_s=0.01)
        recs, skipped, queried = collect_records(q, t0, t0 + 31 * 20_000, FIELDS, expected=30, settle_s=0.2)
    finally:
        server.srv.shutdown()
    assert queried == 31 and len(recs) == 30 and skipped == 1
    assert q.stats.retries == 3 and q.stats.splits >= 4  # 2 x 503, 1 x not JSON; windows of > 7 split
    assert [r["post_id"] for r in sorted(recs, key=lambda r: r["request_ts"])] == [1000 + i for i in range(30)]
    r0 = next(r for r in recs if r["post_id"] == 1001)
    assert r0["post_written_ts"] == (t0 + 20_000) // 1000 * 1000 + 1000  # ms -> µs
    assert r0["read_notification_ts"] - r0["post_written_ts"] == 23_000  # 22 ms + i % 3
    assert r0["consistent"] is True and r0["antipode_wait_us"] == 2500
    assert sum(not r["consistent"] for r in recs) == 8  # i % 4 == 0
    # Jaeger's own parameters, start/end in µs, as its HTTP API takes them
    first = server.state["urls"][0]
    assert "service=compose-post-service" in first and f"start={t0}" in first and "limit=7" in first
    assert "lookback=1h" in first


def test_collect_gives_up_naming_the_url_when_jaeger_keeps_failing():
    from benchpipe.errors import StackError

    server = Flaky(contract.Store(), fail=100)
    try:
        q = JaegerQuery(server.url, "compose-post-service", retries=2, backoff_s=0.01)
        with pytest.raises(
            StackError,
            match=r"Jaeger query http://127\.0\.0\.1:\d+/api/traces\?service=.* failed 3 times; last: HTTP 503",
        ):
            q.traces(0, 10)
    finally:
        server.srv.shutdown()
    assert server.state["n"] == 3


def test_a_trace_missing_a_tag_is_skipped_and_only_the_reader_regions_fanout_counts():
    store = contract.Store()
    one_request(store, 1, 1_000_000)
    one_request(store, 2, 2_000_000, complete=False)
    # The writer region's own fan-out in the same traces (earlier, its read always finds the post).
    for i in (1, 2):
        store.add(
            span(f"{i + 1:016x}", "f", "FanoutHomeTimelines", i * 1_000_000 + 10, "write-home-timeline-service-eu",
                 wht_start_worker_ts="1", poststorage_read_notification_ts="1", wht_antipode_duration="0",
                 consistency_mongoread_duration="0", consistency_bool=False)
        )  # fmt: skip
    traces = store.find("compose-post-service", 0, 10**7, 10)
    recs, skipped = records(traces, FIELDS)
    assert len(recs) == 1 and skipped == 1  # request 2's reader-region read is missing: skipped
    assert recs[0]["consistent"] is True and recs[0]["read_notification_ts"] == (1_000_000 // 1000 + 24) * 1000


def test_the_finished_count_is_wrk2s_own_when_nginx_writes_no_async_results(tmp_path):
    """DeathStarBench's nginx writes no async_results: a point's raw folder is complete without
    them, and the consistency summary's finished count is wrk2's (its 'N requests in' line, less
    non-2xx), so skipped = finished requests whose trace Jaeger did not hold complete."""
    from benchpipe.collect import check_raw
    from benchpipe.generators.wrk2 import parse
    from benchpipe.summaries.consistency import point_consistency
    from tests.test_antipode_swarm import WRK2_OUTPUT

    spec, _ = rendered("antipode", "us-eu")
    raw = tmp_path / "raw"
    raw.mkdir()
    rep = parse(WRK2_OUTPUT.replace("30000 requests", "40 requests"), 100, 300)
    (raw / "measure.json").write_text(json.dumps(rep.to_dict()))
    (raw / "timing.json").write_text(json.dumps({"measure_start": 1.0}))
    lines = [
        {"post_written_ts": 1000 * i, "read_notification_ts": 1000 * i + 30_000, "consistent": i % 2 == 0}
        for i in range(37)
    ]
    (raw / "traces.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    facts = check_raw(spec, raw)  # no async_results asked for
    assert "async_results_entries" not in facts
    row = point_consistency(raw, {}, spec["params"])
    assert row["traces"] == 37 and row["traces_skipped"] == 3
    assert row["window_p50_ms"] == 30.0 and row["inconsistent"] == 18
