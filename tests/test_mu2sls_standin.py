"""The mu2sls stand-in's mechanisms, each counted or timed on the real store (workloads/mu2sls)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workloads"))

from mu2sls.apps import APPS, Backend, CallerTxn, TxnBackend  # noqa: E402
from mu2sls.runtime import BUCKETS, Flags, Request, Runtime, TxnConflict, djb2  # noqa: E402
from mu2sls.store import Store  # noqa: E402


def services(tmp_path: Path, flags: Flags, classes: dict[str, type]) -> dict[str, Any]:
    """Services in one process sharing one store, calling each other directly (no HTTP)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "store.sqlite")
    rts: dict[str, Runtime] = {}
    out: dict[str, Any] = {}

    def invoke(service: str, method: str, args: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        rt = rts[service]
        if method in ("_commit", "_abort"):
            rt.finish_local(body["txn"], commit=method == "_commit")
            return {"result": None}
        return rt.handle(getattr(out[service], method), {**body, "args": args})

    for name, cls in classes.items():
        rts[name] = Runtime(name, store, flags, invoke)
        out[name] = cls(rts[name])
    return out


def counter(tmp_path: Path, flags: Flags) -> tuple[Runtime, Backend]:
    backend = services(tmp_path, flags, {"backend": Backend})["backend"]
    return backend.rt, backend


def log_records(rt: Runtime) -> int:
    return rt.store.count("log/")


@pytest.mark.parametrize("od", [False, True])
def test_logging_adds_one_durable_record_per_store_operation(tmp_path, od):
    for logging in (False, True):
        rt, backend = counter(tmp_path / str(logging), Flags(logging=logging, txn=True, od=od))
        for i in range(5):
            rt.handle(backend.req, {"args": [i % 2], "req_id": f"r{i}"})
        # Each call: one read and one write of val[v]; with logging, a record per operation plus
        # the request's result.
        assert rt.stats.store_ops == 10
        assert log_records(rt) == (10 + 5 if logging else 0)
        # Durable: another connection (another process would do the same) reads them from the file.
        assert Store(rt.store.path).count("log/") == log_records(rt)
    rt, backend = counter(tmp_path / "values", Flags(logging=True, txn=False, od=od))
    assert [rt.handle(backend.req, {"args": [7], "req_id": f"q{i}"})["result"] for i in range(3)] == [1, 2, 3]


def test_repeated_req_id_returns_the_logged_result_without_running_again(tmp_path):
    rt, backend = counter(tmp_path, Flags(logging=True, txn=True, od=True))
    first = rt.handle(backend.req, {"args": [3], "req_id": "same"})
    records, ops = log_records(rt), rt.stats.store_ops
    again = rt.handle(backend.req, {"args": [3], "req_id": "same"})
    assert again == first == {"result": 1}
    assert rt.stats.executions == 1 and rt.stats.replays == 1
    assert rt.stats.store_ops == ops and log_records(rt) == records  # nothing ran, nothing appended
    assert rt.handle(backend.req, {"args": [3], "req_id": "other"}) == {"result": 2}
    # Without logging there is no log to answer from: the same req_id runs again.
    rt2, backend2 = counter(tmp_path / "nolog", Flags(logging=False, txn=True, od=True))
    assert [rt2.handle(backend2.req, {"args": [3], "req_id": "same"})["result"] for _ in range(2)] == [1, 2]


def test_a_step_logged_before_a_crash_is_not_redone(tmp_path):
    rt, _backend = counter(tmp_path, Flags(logging=True, txn=False, od=True))
    rq = Request("crashed")
    rt.get(rq, "val", "5")
    rt.put(rq, "val", "5", 41)  # then the service "crashed" before logging its result
    replay = Request("crashed")
    assert rt.get(replay, "val", "5") is None  # the logged read, not the current 41
    rt.put(replay, "val", "5", 41)  # the logged write: not applied twice
    assert rt.stats.store_ops == 4 and log_records(rt) == 2


def _keys_in_different_buckets() -> tuple[str, str]:
    assert djb2("1") % BUCKETS != djb2("2") % BUCKETS
    return "1", "2"


@pytest.mark.parametrize("od", [False, True])
def test_without_od_calls_on_different_keys_share_one_lock(tmp_path, od):
    rt, _backend = counter(tmp_path, Flags(logging=False, txn=True, od=od))
    a, b = _keys_in_different_buckets()
    holder = Request("holder", txn="holder~0")
    rt.get(holder, "val", a)  # holder locks what key a lives in
    other = Request("other", txn="other~0")
    if od:
        assert rt.get(other, "val", b) is None  # its own bucket: no conflict
    else:
        with pytest.raises(TxnConflict):
            rt.get(other, "val", b)  # the whole dict is one locked value
        assert rt.stats.conflicts == 1


@pytest.mark.parametrize("od", [False, True])
def test_without_od_a_concurrent_call_waits_for_the_lock_holder(tmp_path, od):
    """A transaction on key a holds its lock until released; a call on key b finishes at once with
    OD and only after the release without (it retries, busy, meanwhile)."""
    rt, backend = counter(tmp_path, Flags(logging=True, txn=True, od=od))
    a, b = _keys_in_different_buckets()
    locked, release = threading.Event(), threading.Event()

    def slow_body(rq: Request) -> None:
        rt.put(rq, "val", a, 100)
        locked.set()
        release.wait(5)

    holder = threading.Thread(target=lambda: rt.transaction(Request("holder"), slow_body))
    holder.start()
    assert locked.wait(5)
    done: dict[str, Any] = {}
    other = threading.Thread(target=lambda: done.update(rt.handle(backend.req, {"args": [b], "req_id": "o"})))
    other.start()
    other.join(0.5)
    finished_while_held = not other.is_alive()
    release.set()
    holder.join(5)
    other.join(5)
    assert done == {"result": 1}
    assert finished_while_held is od
    assert (rt.stats.retries > 0) is not od
    with rt.store.read() as tx:
        assert not tx.scan("lock/") and not tx.scan("local/")  # every lock released, nothing staged


def test_cross_service_transaction_commits_both_or_retries_both(tmp_path):
    svcs = services(
        tmp_path,
        Flags(logging=True, txn=True, od=False),
        {"callertxn": CallerTxn, "backend1": TxnBackend, "backend2": TxnBackend},
    )
    rts = {name: svc.rt for name, svc in svcs.items()}
    # backend2's dict is locked by someone else: the caller's first attempt aborts, backend1's
    # staged write is discarded, and the retry commits both once the lock is gone.
    intruder = Request("intruder", txn="intruder~0")
    rts["backend2"].get(intruder, "val", "9")
    t = threading.Timer(0.2, lambda: rts["backend2"].finish_local("intruder~0", commit=False))
    t.start()
    answer = rts["callertxn"].handle(svcs["callertxn"].req, {"args": [9], "req_id": "t1"})
    t.join()
    assert answer == {"result": [1, 1]}
    assert rts["callertxn"].stats.retries > 0
    with rts["backend1"].store.read() as tx:
        assert json.loads(tx.get("data/backend1/val")) == {"9": 1}
        assert json.loads(tx.get("data/backend2/val")) == {"9": 1}
        assert not tx.scan("lock/") and not tx.scan("local/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict[str, Any], host: str | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    if host:
        req.add_header("Host", host)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_ingress_routes_by_host_and_path_and_logs_external_calls(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "workloads"), "ENABLE_CUSTOM_DICT": "True"}
    results = tmp_path / "async_results"
    argv = [sys.executable, "-m", "mu2sls", "--app", "chain", "--port", str(port)]
    argv += ["--state-dir", str(tmp_path / "state" / "ingress"), "--results-path", str(results)]
    proc = subprocess.Popen(argv, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "ingress not ready"
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        assert _post(f"{base}/caller1/req", {"args": [5], "req_id": "a"}) == {"result": 1}
        assert _post(f"{base}/req", {"args": [5], "req_id": "b"}, host="caller1.default.example.com") == {"result": 2}
        assert _post(f"{base}/caller1/req", {"args": [5], "req_id": "a"}) == {"result": 1}  # logged
        lines = [json.loads(x) for x in results.read_text().splitlines()]
        # Three external calls; the six internal hops (caller1 -> caller2 -> backend) are not logged.
        assert [x["function"] for x in lines] == ["caller1/req"] * 3
        assert all(x["finishedTs"] >= x["recvTs"] and x["success"] for x in lines)
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_every_app_names_its_entry_service():
    for app, (entry, services) in APPS.items():
        assert entry in services, app
        assert all(cls.methods() for cls in services.values()), app
