"""The stand-in's protocols log exactly what their definition says, per request type."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from benchpipe.ports import free_port

REPO = Path(__file__).resolve().parent.parent

# Reads and writes each hotel request type performs (workloads/README.md).
HOTEL_OPS = {"search": (11, 0), "recommend": (6, 0), "user": (1, 0), "reserve": (3, 2)}
# The real load's bodies (reference/halfmoon-real-services.md section 5.2), one of each kind.
HOTEL_INPUT = {
    "search": {"Lat": 38.0175, "Lon": -122.127, "InDate": "2015-04-09", "OutDate": "2015-04-17"},
    "recommend": {"Require": "rate", "Lat": 37.9, "Lon": -122.0},
    "user": {"Username": "Cornell_42", "Password": "42" * 10},
    "reserve": {"userId": "user1", "hotelId": "7", "flightId": "93"},
}


def real(function: str | None, inner: dict | None, async_: bool = True) -> dict:
    body = {"InstanceId": "", "CallerName": "", "Async": async_, "Input": {}}
    if function is not None:
        body["Input"] = {"Function": function, "Input": inner or {}}
    return body


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

    def status(self, path: str, body: dict) -> int:
        try:
            self.post(path, body)
            return 200
        except urllib.error.HTTPError as e:
            return e.code

    def results_when(self, n: int) -> list[dict]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            not self.results.exists() or len(self.results.read_text().splitlines()) < n
        ):
            time.sleep(0.05)
        return [json.loads(line) for line in self.results.read_text().splitlines()]

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
                s.post("/function/gateway", real(kind, HOTEL_INPUT[kind], async_=False))
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
        ids = [s.post("/asyncFunction/gateway", real("search", HOTEL_INPUT["search"]))["callId"] for _ in range(20)]
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
    s = Standin(tmp_path, "rw", "boki", None, "--num-keys", "50", "--num-ops", "4", "--gc-interval-ms", "300")
    try:
        sizes = [s.post("/function/rw", real(None, None, async_=False))["LogSize"] for _ in range(3)]
        assert sizes[0] > 0 and sizes[2] > sizes[0]
        time.sleep(1.0)  # more than two GC ticks with no new appends
        assert s.stats()["log_bytes"] == 0
    finally:
        assert s.stop() == 0


def switching_body(mode: str, read_ratio: float) -> dict:
    # The artifact's switching client: synchronous, the mode in every request.
    return {
        "InstanceId": "",
        "CallerName": "",
        "Async": False,
        "Input": {"mode": mode, "readRatio": read_ratio, "nOps": 10},
    }


def test_switching_logs_what_each_request_names(tmp_path):
    s = Standin(tmp_path, "switching", "halfmoon", "read", "--num-keys", "50")
    try:
        out = s.post("/function/rw", switching_body("READLOG", 0.2))
        assert out == {"Mode": "READLOG", "Reads": 2, "Writes": 8}
        assert s.stats()["appends"]["rw"] == 2  # READLOG: the 2 reads
        s.post("/function/rw", switching_body("WRITELOG", 0.8))
        assert s.stats()["appends"]["rw"] == 2 + 2  # WRITELOG: the 2 writes
        s.post("/function/rw", switching_body("TRANSITIONAL", 0.8))
        assert s.stats()["appends"]["rw"] == 4 + 10  # TRANSITIONAL: every operation
        bad = switching_body("READLOG", 0.2)
        del bad["Input"]["nOps"]
        assert s.status("/function/rw", bad) == 500  # the real rw panics on a missing field
        assert s.status("/switchMode", {"mode": "write"}) == 404  # no such endpoint in the real system
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize(
    ("app", "path", "good", "wrong"),
    [
        ("movie", "/asyncFunction/Frontend", "Compose", "compose"),
        ("retwis", "/asyncFunction/login", "Login", "login"),
        ("hotel", "/asyncFunction/gateway", "search", "Search"),
    ],
)
def test_real_function_names_run_and_others_fail_as_recorded_calls(tmp_path, app, path, good, wrong):
    inner = {
        "Compose": {"Username": "username_3", "Password": "password_3", "Title": "T", "Rating": 7, "Text": "x" * 256},
        "Login": {"Username": "user12", "Password": "pwd12"},
        "search": HOTEL_INPUT["search"],
    }[good]
    s = Standin(tmp_path, app, "unsafe", None, "--num-users", "100")
    try:
        s.post(path, real(good, inner))
        s.post(path, real(wrong, inner))  # accepted by the gateway, failed by the handler
        assert s.status("/asyncFunction/nosuchfunction", real(good, inner)) == 404
        recs = sorted(s.results_when(2), key=lambda r: r["recvTs"])
    finally:
        assert s.stop() == 0
    assert [r["success"] for r in recs] == [True, False]
    assert wrong in base64.b64decode(recs[1]["output"]).decode()


def test_retwis_functions_have_their_own_paths_and_singleop_reports_us_under_output(tmp_path):
    s = Standin(tmp_path, "retwis", "unsafe", None, "--num-users", "100")
    try:
        for fn, name, inner in [
            ("login", "Login", {"Username": "user5", "Password": "pwd5"}),
            ("profile", "Profile", {"Username": "user5"}),
            ("timeline", "Timeline", {"Username": "user5"}),
            ("post", "Post", {"Username": "user5", "Content": ""}),
        ]:
            assert s.post(f"/function/{fn}", real(name, inner, async_=False))
        assert s.post("/function/login", real("Login", {"Username": "user5", "Password": "pwd5"}, False))["ok"]
        assert s.status("/function/gateway", real("Login", {"Username": "user5", "Password": "pwd5"}, False)) == 404
    finally:
        assert s.stop() == 0
    s = Standin(tmp_path / "s", "singleop", "unsafe", None, "--num-keys", "100")
    try:
        out = s.post("/function/singleop", real(None, None, async_=False))
    finally:
        assert s.stop() == 0
    assert set(out) == {"Output"} and set(out["Output"]) == {"Read", "Write", "Invoke"}
    assert all(isinstance(v, int) and v >= 0 for v in out["Output"].values())  # whole microseconds


def test_sigterm_leaves_no_process(tmp_path):
    s = Standin(tmp_path, "hotel", "unsafe", None)
    pid = s.proc.pid
    assert s.stop() == 0
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
