"""The stand-in's protocols log exactly what their definition says, per request type."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from benchpipe.deployers.process import free_port

REPO = Path(__file__).resolve().parent.parent

# Reads and writes each hotel request type performs (workloads/README.md).
HOTEL_OPS = {"search": (11, 0), "recommend": (6, 0), "user": (1, 0), "reserve": (2, 1)}
# Which operations each baseline appends to the durable log.
PROTOCOLS = {
    ("unsafe", None): (False, False),
    ("boki", None): (True, True),
    ("halfmoon", "write"): (False, True),  # Halfmoon-read: reads log-free
    ("halfmoon", "read"): (True, False),  # Halfmoon-write: writes log-free
}


class Standin:
    def __init__(self, tmp: Path, app: str, system: str, mode: str | None, *extra: str) -> None:
        self.port = free_port("127.0.0.1")
        self.results = tmp / "async_results"
        argv = [
            sys.executable,
            "-m",
            "standin",
            "--app",
            app,
            "--system",
            system,
            "--port",
            str(self.port),
            "--state-dir",
            str(tmp / "state"),
            "--results-path",
            str(self.results),
            *extra,
        ]
        if mode:
            argv += ["--logging-mode", mode]
        env = {**os.environ, "PYTHONPATH": str(REPO / "workloads")}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz") == "ok":
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("stand-in never became ready")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url(path), timeout=5) as r:
            return r.read().decode()

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.url(path), data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stats(self) -> dict:
        return json.loads(self.get("/stats"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.mark.parametrize(("system", "mode"), list(PROTOCOLS))
def test_hotel_appends_match_protocol(tmp_path, system, mode):
    s = Standin(tmp_path, "hotel", system, mode)
    try:
        for kind in HOTEL_OPS:
            for _ in range(3):
                s.post(f"/function/{kind}", {"Input": {"Function": kind}})
        st = s.stats()
    finally:
        assert s.stop() == 0
    log_reads, log_writes = PROTOCOLS[(system, mode)]
    for kind, (reads, writes) in HOTEL_OPS.items():
        assert st["reads"].get(kind, 0) == 3 * reads, kind
        assert st["writes"].get(kind, 0) == 3 * writes, kind
        expected = 3 * (reads * log_reads + writes * log_writes)
        assert st["appends"].get(kind, 0) == expected, (kind, st["appends"])


def test_async_results_fields_and_order(tmp_path):
    s = Standin(tmp_path, "hotel", "boki", None)
    try:
        ids = [
            s.post("/asyncFunction/gateway", {"Async": True, "Input": {"Function": "search"}})["callId"]
            for _ in range(20)
        ]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not s.results.exists() or len(s.results.read_text().splitlines()) < 20):
            time.sleep(0.05)
    finally:
        assert s.stop() == 0
    recs = [json.loads(line) for line in s.results.read_text().splitlines()]
    assert sorted(r["callId"] for r in recs) == sorted(ids)
    for r in recs:
        assert r["success"] and r["finishedTs"] >= r["dispatchTs"] >= r["recvTs"] > 1.6e15


def test_log_grows_and_gc_shrinks_it(tmp_path):
    s = Standin(tmp_path, "rw", "boki", None, "--num-keys", "50", "--gc-interval-ms", "300")
    try:
        sizes = [
            s.post("/function/rw", {"Input": {"Function": "rw", "NumOps": 4, "ReadRatio": 0.5}})["LogSize"]
            for _ in range(3)
        ]
        assert sizes[0] > 0 and sizes[2] > sizes[0]
        time.sleep(1.0)  # more than two GC ticks with no new appends
        assert s.stats()["log_bytes"] == 0
    finally:
        assert s.stop() == 0


def test_switching_changes_what_is_logged(tmp_path):
    s = Standin(tmp_path, "switching", "halfmoon", "read", "--num-keys", "50")
    try:
        body = {"Input": {"Function": "rw", "NumOps": 4, "ReadRatio": 0.5}}
        s.post("/function/rw", body)
        first = s.stats()["appends"]["rw"]
        t = s.post("/switchMode", {"mode": "write"})
        assert t["end"] >= t["begin"]
        s.post("/function/rw", body)
        st = s.stats()
    finally:
        assert s.stop() == 0
    assert first == 2  # reads logged under LoggingMode=read
    assert st["appends"]["rw"] == 4  # then writes under LoggingMode=write
    assert st["mode"] == "write" and len(st["transitions"]) == 1


def test_sigterm_leaves_no_process(tmp_path):
    s = Standin(tmp_path, "hotel", "unsafe", None)
    pid = s.proc.pid
    assert s.stop() == 0
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
