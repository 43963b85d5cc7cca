"""Pronghorn's function host (workloads/pronghorn): the JIT warmth a fork snapshot carries, and the
host's snapshots, restores and evictions over HTTP. Needs the PyPy venv of
workloads/pronghorn/install.sh (scripts/install.sh runs it)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workloads"))

from pronghorn.host import DEFAULT_PYPY, Host  # noqa: E402

PYPY = os.environ.get("PRONGHORN_PYPY", str(DEFAULT_PYPY))
pytestmark = pytest.mark.skipif(
    not Path(PYPY).exists(), reason=f"no PyPy venv at {PYPY}: run workloads/pronghorn/install.sh"
)


def make_host(tmp_path: Path, strategy: str = "cold", eviction: int = 1000, **kw) -> Host:
    args = argparse.Namespace(
        benchmark=kw.get("benchmark", "bfs"),
        strategy=strategy,
        eviction=eviction,
        state_dir=tmp_path / "state",
        results_path=tmp_path / "async_results",
        pool_capacity=14,
        max_requests=100,
        cold_start=kw.get("cold_start", "zygote"),
        pypy=PYPY,
        seed=1,
        gc_nursery="4MB",
        share_pages=kw.get("share_pages", False),
    )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    host = Host(args)
    threading.Thread(target=host.control.serve, daemon=True).start()
    return host


def first_request_us(host: Host) -> float:
    assert host.instance is not None
    reply = host.instance.call({"op": "invoke", "mutability": 1})
    assert reply["ok"], reply
    return float(reply["server_us"])


def test_a_snapshot_after_warm_requests_starts_faster_than_cold(tmp_path):
    """The JIT effect is real: the first request of an instance restored from a snapshot taken
    after 30 requests is faster than the first request of a cold instance (same host, same run)."""
    host = make_host(tmp_path)
    try:
        cold, warm = [], []
        for _ in range(3):
            host.start_instance()  # cold: a fork of the request-0 image
            cold.append(first_request_us(host))
            host.instance.kill()
        host.start_instance()
        for _ in range(30):
            first_request_us(host)
        snap = host._fork_from(host.instance, "snapshot")
        assert snap.served == 30
        for _ in range(3):
            inst = host._fork_from(snap, "restore")
            assert inst.role == "instance" and inst.served == 30
            host.instance = inst
            warm.append(first_request_us(host))
            inst.kill()
        snap.kill()
        # A fresh PyPy process's first request is as cold as the zygote's forks.
        host.args.cold_start = "exec"
        host.start_instance()
        exec_cold = first_request_us(host)
        host.instance.kill()
    finally:
        host.shutdown()
    ratio = statistics.median(warm) / statistics.median(cold)
    assert ratio < 0.7, f"restored first requests {warm} µs vs cold {cold} µs: ratio {ratio:.2f}"
    assert statistics.median(warm) < exec_cold, f"restored {warm} µs vs a new process's first {exec_cold} µs"


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def host_proc(tmp_path):
    procs = []

    def start(strategy: str, eviction: int, benchmark: str = "dfs") -> tuple[str, Path, subprocess.Popen]:
        port = 20000 + os.getpid() % 20000 // 2 * 2 + len(procs)
        results = tmp_path / f"results-{len(procs)}"
        argv = [sys.executable, "-m", "pronghorn", "--benchmark", benchmark, "--strategy", strategy]
        argv += ["--eviction", str(eviction), "--port", str(port), "--state-dir", str(tmp_path / "s")]
        argv += ["--results-path", str(results), "--pypy", PYPY]
        env = {**os.environ, "PYTHONPATH": str(REPO / "workloads")}
        p = subprocess.Popen(argv, env=env)
        procs.append(p)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert p.poll() is None and time.monotonic() < deadline, "host did not get ready"
            time.sleep(0.1)
        return url, results, p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=15)


def serve(url: str, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        status, body = get(url + "/function/dfs?mutability=1")
        if status == 503:  # an instance restarting: the artifact's client tries again
            time.sleep(0.05)
            continue
        assert status == 200, body
        out.append(body)
    return out


def recorded(results: Path, n: int, timeout_s: float = 10) -> list[dict]:
    """The host's records, once n are written: a request's line follows its reply (the snapshot or
    eviction after it is recorded too), so the last one can still be on its way."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [json.loads(x) for x in results.read_text().splitlines()]
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def runtime_pids() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines()[1:] if "pronghorn.runtime" in line}


def test_host_evicts_after_n_requests_and_restores_the_snapshot(host_proc):
    before = runtime_pids()
    url, results, proc = host_proc("fixed1", 3)
    got = serve(url, 10)
    assert [g["request_number"] for g in got] == [1, 2, 3, 2, 3, 4, 2, 3, 4, 2]
    assert [g["restored_from"] for g in got] == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert [g["instance"] for g in got] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    stats = get(url + "/stats")[1]
    assert stats["snapshots"] == 1 and stats["evictions"] == 3 and stats["restores"] == 3 and stats["pool"] == [1]
    lines = recorded(results, 10)
    assert len(lines) == 10 and lines[0]["snapshot"] and not any(x["snapshot"] for x in lines[1:])
    assert [x["evicted"] for x in lines[:4]] == [False, False, True, False]
    assert all(x["finishedTs"] >= x["dispatchTs"] >= x["recvTs"] for x in lines)
    # Stopping the host leaves no function process behind (snapshots included).
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    deadline = time.monotonic() + 5
    while runtime_pids() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not runtime_pids() - before


def test_replies_on_a_kept_alive_connection_carry_no_delayed_ack_stall(host_proc):
    """The client keeps its connection (as the sequential generator does); each reply's headers
    and body are two writes, and with Nagle on the body waited for the client's delayed ACK:
    ~40 ms on every reply after a connection's first few, more than a warm request's own time."""
    import http.client

    url, _results, _ = host_proc("cold", 1000)
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    extra_ms = []
    while len(extra_ms) < 15:
        t0 = time.perf_counter()
        conn.request("POST", "/function/dfs?mutability=1", body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        client_ms = (time.perf_counter() - t0) * 1e3
        if resp.status == 503:  # the last request's bookkeeping still runs: tried again, as the client does
            time.sleep(0.01)
            continue
        assert resp.status == 200, body
        extra_ms.append(client_ms - (body["finishedTs"] - body["recvTs"]) / 1e3)
    conn.close()
    # Loopback and HTTP parsing: ~1 ms (40-45 ms with the stall).
    assert statistics.median(extra_ms[5:]) < 20, extra_ms


def test_cold_host_never_restores(host_proc):
    url, _results, _ = host_proc("cold", 1)
    got = serve(url, 5)
    assert [g["request_number"] for g in got] == [1] * 5
    stats = get(url + "/stats")[1]
    assert stats["snapshots"] == 0 and stats["restores"] == 0 and stats["cold_starts"] == 5


def test_an_instance_that_dies_under_the_host_fails_its_requests_with_the_reason(host_proc):
    url, _results, _ = host_proc("cold", 100)
    serve(url, 2)
    pid = get(url + "/stats")[1]["instance_pid"]
    os.kill(pid, signal.SIGKILL)  # not an eviction: the instance crashed
    status, body = get(url + "/function/dfs?mutability=1")
    assert status == 502 and f"instance {pid} failed" in body["error"]
    status, body = get(url + "/function/dfs?mutability=1")
    assert status == 503 and f"instance {pid} failed" in body["error"]


def test_media_benchmarks_do_the_artifacts_work(host_proc, tmp_path):
    """upload, thumbnail and video as the artifact's handlers: a download of the drawn file over
    HTTP (from the host's origin route), a Pillow thumbnail that fits 200 x 200, an ffmpeg
    watermark pass; each stored in its bucket folder and removed again."""
    from pronghorn.host import DEFAULT_INPUTS

    inputs = Path(os.environ.get("PRONGHORN_INPUTS", DEFAULT_INPUTS))
    bucket = tmp_path / "s" / "bucket"
    url, _results, _p = host_proc("cold", 1000, "upload")
    got = [b["result"] for b in serve(url, 8)]
    # floor(Gaussian(2, 0.1)): the 230 kB and the 2.4 MB JPEG, about half each (seeded: both here)
    assert {r["file"] for r in got} == {"800px-Jammlich_crop.jpg", "The_ExTrA_telescopes_at_La_Silla.jpg"}
    assert all(r["bytes"] == (inputs / r["file"]).stat().st_size for r in got)
    assert 200_000 < (inputs / "800px-Jammlich_crop.jpg").stat().st_size < 260_000
    assert 2_200_000 < (inputs / "The_ExTrA_telescopes_at_La_Silla.jpg").stat().st_size < 2_600_000
    url, _results, _p = host_proc("cold", 1000, "thumbnail")
    got = [b["result"] for b in serve(url, 4)]
    # int(Gaussian(3, 0.2)) passes; a 1920 x 1280 photo fits 200 x 200 as 200 x 133
    assert all(r["reps"] in (2, 3) and r["thumbnail_size"] == [200, 133] and r["thumbnail_bytes"] > 1000 for r in got)
    url, _results, _p = host_proc("cold", 1000, "video")
    bodies = serve(url, 2)
    assert all(b["result"]["reps"] in (1, 2) and b["result"]["output_bytes"] > 10_000 for b in bodies)
    assert all(b["server_us"] > 10_000 for b in bodies)  # an ffmpeg decode and encode per pass
    for name in ("120.uploader", "210.thumbnailer-in", "210.thumbnailer-out", "220.video-in", "220.video-out"):
        assert list((bucket / name).iterdir()) == [], name
