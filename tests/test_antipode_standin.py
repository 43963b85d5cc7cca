"""The Antipode stand-in's mechanism, on its real parts: a Redis primary and replica replicating
across one delay relay, the notification crossing another. When replication is slower than the
notification, Original's reader misses posts and Antipode's barrier waits them out; counted from
the reader's trace file. Also the relay itself and the summary of a trace."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from benchpipe.deployers.process import DeployError, ProcessDeployer
from benchpipe.errors import RawDataError
from benchpipe.summaries.consistency import point_consistency

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "config" / "experiments" / "antipode" / "antipode_dsb.yaml"
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


def services(repl_ms: int, notif_ms: int) -> list[dict]:
    """The experiment's own stack, each link given its own delay and no jitter."""
    procs = yaml.safe_load(EXPERIMENT.read_text())["stack"]["process"]
    delays = {"wan-replication": repl_ms, "wan-notification": notif_ms}
    for svc in procs:
        if svc["name"] in delays:
            argv = svc["argv"]
            argv[argv.index("--delay-ms") + 1] = str(delays[svc["name"]])
            argv[argv.index("--jitter-ms") + 1] = "0"
    return procs


def run_stack(tmp_path: Path, antipode: str, repl_ms: int, notif_ms: int, n: int = 30) -> list[dict]:
    d = ProcessDeployer({})
    rendered = d.render(
        None, {"process": services(repl_ms, notif_ms), "vars": {"region_pair": "us-eu"}}, {"ANTIPODE": antipode}
    )
    stack = d.start(None, rendered, str(tmp_path / f"stack-{antipode}"))
    try:
        d.wait_ready(stack, 30)
        for i in range(n):
            body = json.dumps({"username": f"username_{i}", "user_id": str(i), "text": "t" * 256}).encode()
            req = urllib.request.Request(
                stack.endpoint + "/wrk2-api/post/compose", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 200
        trace = stack.workdir / "outputs" / "traces.jsonl"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not trace.exists() or len(trace.read_text().splitlines()) < n):
            time.sleep(0.05)
        raw = tmp_path / f"raw-{antipode}"
        d.fetch(stack, raw)
    finally:
        d.stop(stack)
    return [json.loads(line) for line in (raw / "traces.jsonl").read_text().splitlines()]


@needs_redis
def test_original_reads_miss_posts_antipode_waits_for_them(tmp_path, no_stray_stack):
    # Replication 300 ms across the WAN, the notification 20 ms: it beats the post to the replica
    # (a margin that a loaded machine's stalls do not eat).
    original = run_stack(tmp_path, "0", repl_ms=300, notif_ms=20)
    antipode = run_stack(tmp_path, "1", repl_ms=300, notif_ms=20)
    assert len(original) == len(antipode) == 30
    assert sum(not t["consistent"] for t in original) == 30
    assert all(t["consistent"] for t in antipode)
    # The barrier waited for replication: the window covers the replication link's delay (less
    # the moments between the post's bytes entering the link and the writer's timestamp, taken
    # when the primary's reply arrives).
    assert min(t["read_notification_ts"] - t["post_written_ts"] for t in antipode) >= 250_000
    assert max(t["read_notification_ts"] - t["post_written_ts"] for t in original) < 300_000
    assert min(t["antipode_wait_us"] for t in antipode) >= 200_000


@needs_redis
def test_replication_ahead_of_the_notification_is_consistent_without_antipode(tmp_path, no_stray_stack):
    # The notification is held 500 ms, replication not at all: the replica is ahead by construction,
    # not by a margin a loaded machine can eat (60 ms once lost the race to a stalled relay).
    original = run_stack(tmp_path, "0", repl_ms=0, notif_ms=500, n=15)
    assert len(original) == 15 and all(t["consistent"] for t in original)
    # The read waited for the notification link, not for a barrier.
    assert min(t["read_notification_ts"] - t["post_written_ts"] for t in original) >= 500_000
    assert all(t["antipode_wait_us"] == 0 for t in original)


def test_relay_forwards_bytes_after_the_delay(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "workloads"))
    from antipode.wan import Link

    async def main() -> tuple[bytes, float]:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(await r.readexactly(5))
            await w.drain()
            w.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def relay(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", port)
            rng = random.Random(1)
            await asyncio.gather(Link(0.08, 0, rng).pump(cr, uw), Link(0.08, 0, rng).pump(ur, cw))

        front = await asyncio.start_server(relay, "127.0.0.1", 0)
        r, w = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
        t0 = time.monotonic()
        w.write(b"hello")
        got = await r.readexactly(5)
        elapsed = time.monotonic() - t0
        w.close()
        server.close()
        front.close()
        return got, elapsed

    got, elapsed = asyncio.run(main())
    assert got == b"hello"
    assert 0.16 <= elapsed < 0.5  # one-way each way


def test_summary_counts_inconsistent_traces_and_the_window(tmp_path):
    traces = [
        {"post_written_ts": 0, "read_notification_ts": 50_000, "consistent": True, "antipode_wait_us": 0},
        {"post_written_ts": 0, "read_notification_ts": 60_000, "consistent": False, "antipode_wait_us": 0},
        {"post_written_ts": 0, "read_notification_ts": 70_000, "consistent": True, "antipode_wait_us": 0},
        {"post_written_ts": 0, "read_notification_ts": 80_000, "consistent": False, "antipode_wait_us": 0},
    ]
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    ok = {"recvTs": 1, "dispatchTs": 1, "finishedTs": 2, "success": True}
    (tmp_path / "async_results").write_text("".join(json.dumps(ok) + "\n" for _ in range(5)))
    got = point_consistency(tmp_path, {}, {})
    assert got["per_inconsistencies"] == 50.0 and got["traces"] == 4 and got["traces_skipped"] == 1
    assert got["window_p50_ms"] == 65.0 and got["window_p90_ms"] == pytest.approx(77.0)


def test_summary_rejects_a_missing_or_truncated_trace(tmp_path):
    with pytest.raises(RawDataError, match=r"traces\.jsonl: missing"):
        point_consistency(tmp_path, {}, {})
    (tmp_path / "traces.jsonl").write_text('{"post_written_ts": 0, "read_notif')
    with pytest.raises(RawDataError, match="line 1 is not JSON"):
        point_consistency(tmp_path, {}, {})


@needs_redis
def test_a_dead_replication_link_ends_the_reader_naming_it(tmp_path, no_stray_stack):
    # With the link down the replica serves stale data: Original would count misses and Antipode's
    # barrier would wait forever; the reader exits instead, and the deployer names what is down.
    d = ProcessDeployer({})
    rendered = d.render(None, {"process": services(0, 0), "vars": {"region_pair": "us-eu"}}, {"ANTIPODE": "1"})
    stack = d.start(None, rendered, str(tmp_path / "stack"))
    try:
        d.wait_ready(stack, 30)
        d.check_healthy(stack)
        os.kill(stack.pids["wan-replication"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while stack.exited("reader") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(DeployError) as e:
            d.check_healthy(stack)
    finally:
        d.stop(stack)
    assert "stack service 'wan-replication'" in str(e.value)
    assert "antipode.reader: lost the replica" in str(e.value) and "replication link" in str(e.value)
