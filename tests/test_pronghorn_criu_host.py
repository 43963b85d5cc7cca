"""Pronghorn's function host in CRIU mode (`--snapshot criu`, how it runs on a CRIU host under
--profile ssh): the artifact's criu commands per strategy, as the host runs them, with the dump
time, image size and restore time recorded. CRIU fails on this machine's kernel, so `criu` is
tests/fake_criu.py (it restarts the dumped command instead of restoring it; see its docstring):
these tests check the host's commands and bookkeeping, not a real image's warm state."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fake_criu import nspids
from tests.test_pronghorn_standin import PYPY

REPO = Path(__file__).resolve().parent.parent
FAKE_CRIU = f"{sys.executable} {REPO / 'tests' / 'fake_criu.py'}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout_s: float = 30) -> dict:
    """One function request as the artifact's client makes it: a 503 (restarting) is tried again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                raise
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def start_host(tmp_path: Path, benchmark: str, strategy: str, eviction: int, env_extra=None, **extra: str):
    """The host in CRIU mode with the fake criu; (process, base url, state dir, results, criu log)."""
    state, results, log = tmp_path / "state", tmp_path / "async_results", tmp_path / "criu.log"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "workloads"),
        "PRONGHORN_SNAPSHOT": "criu",
        "PRONGHORN_CRIU": FAKE_CRIU,
        "FAKE_CRIU_LOG": str(log),
        "PRONGHORN_PYPY": PYPY,
        **(env_extra or {}),
    }
    argv = [sys.executable, "-m", "pronghorn", "--benchmark", benchmark, "--strategy", strategy]
    argv += ["--eviction", str(eviction), "--port", str(port), "--state-dir", str(state)]
    argv += ["--results-path", str(results)]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}", v]
    host = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return host, f"http://127.0.0.1:{port}", state, results, log


def run_host(tmp_path: Path, benchmark: str, strategy: str, eviction: int, requests: int, **extra: str):
    """Start the host with the fake criu, send `requests` requests, each once /healthz says the
    host is idle; returns (records, criu log lines, state dir, the instance pid /stats gave before
    each request, the last /stats, with `nspids`: each of those instances' NSpid line, read then)."""
    host, base, state, results, log = start_host(tmp_path, benchmark, strategy, eviction, **extra)
    pids, ns = [], []
    try:
        for _ in range(requests):
            get(base + "/healthz")
            pids.append(get(base + "/stats")["instance_pid"])
            ns.append(nspids(pids[-1]))
            get(base + "/function/f?mutability=1")
        # The last request's snapshot and eviction run after its response: wait until the
        # restart it leads to are done.
        deadline = time.monotonic() + 30
        while True:
            stats = get(base + "/stats")
            restarts = stats["cold_starts"] + stats["restores"]
            done = stats["evictions"] == requests // eviction and restarts == stats["evictions"] + 1
            if (done and stats["instance_pid"]) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        host.terminate()
        out = host.communicate(timeout=20)[0].decode(errors="replace")
    assert host.returncode in (0, -15), out
    records = [json.loads(line) for line in results.read_text().splitlines()]
    lines = log.read_text().splitlines() if log.exists() else []
    return records, lines, state, pids, {**stats, "nspids": ns}


needs_pypy = pytest.mark.skipif(not Path(PYPY).exists(), reason=f"no PyPy venv at {PYPY}: run install.sh")


def dump_line(pid: int, state: Path, k: int) -> str:
    return f"criu dump -t {pid} --tcp-established --leave-running -D {state}/images/after-{k}"


def restore_line(state: Path, k: int) -> str:
    images = state / "images"
    return f"criu restore --restore-detached --tcp-close -d -D {images}/after-{k} --pidfile {images}/restored.pid"


@needs_pypy
def test_cold_never_runs_criu(tmp_path):
    records, lines, _state, _pids, stats = run_host(tmp_path, "dynamic-html", "cold", 2, 4)
    assert lines == []
    assert stats["cold_starts"] == 3 and stats["restores"] == 0
    assert not any("dump_ms" in r or "instance_restore_ms" in r for r in records)


@needs_pypy
def test_checkpoint_after_first_dumps_once_and_restores_that_image(tmp_path):
    records, lines, state, pids, stats = run_host(tmp_path, "dynamic-html", "fixed1", 2, 6)
    # The artifact's agent: dump the runtime after request 1 (it keeps running); every restart
    # restores that image.
    assert lines == [dump_line(pids[0], state, 1)] + [restore_line(state, 1)] * 3
    assert records[0]["snapshot"] and records[0]["dump_ms"] > 0 and records[0]["image_bytes"] > 1_000_000
    restored = [r for r in records if "instance_restore_ms" in r]
    assert [r["request"] for r in restored] == [3, 5]
    assert all(r["restored_from"] == 1 and r["request_number"] == 2 for r in restored)
    assert stats["restores"] == 3 and stats["cold_starts"] == 1


@needs_pypy
def test_cycle_dumps_after_every_request_and_keeps_the_newest_image(tmp_path):
    records, lines, state, pids, stats = run_host(tmp_path, "dynamic-html", "cycle", 1, 4)
    # Table 4's cycles: dump, kill, restore that image, one request, and again.
    dump_pids = [int(line.split()[3]) for line in lines[::2]]
    cycles = [(dump_line(pid, state, k), restore_line(state, k)) for k, pid in enumerate(dump_pids, 1)]
    assert lines == [line for cycle in cycles for line in cycle]
    # Each cycle dumps the process the previous restore brought back, not the first one again.
    assert dump_pids[0] == pids[0] and len(set(dump_pids)) == 4
    assert [r.get("dump_ms", 0) > 0 for r in records] == [True] * 4
    assert [r["request_number"] for r in records] == [1, 2, 3, 4]
    assert stats["pool"] == [4] and stats["pruned"] == 3
    # The host's shutdown removes its images.
    assert list((state / "images").iterdir()) == []


@needs_pypy
def test_request_centric_restores_only_images_it_dumped(tmp_path):
    records, lines, state, _pids, _stats = run_host(tmp_path, "dynamic-html", "request-centric", 4, 12)
    dumped = set()
    for line in lines:
        m = re.fullmatch(r"criu (dump|restore) .* -D (\S+)/images/after-(\d+)( --pidfile \S+)?", line)
        assert m and m.group(2) == str(state), line
        if m.group(1) == "dump":
            dumped.add(int(m.group(3)))
        else:
            assert int(m.group(3)) in dumped, f"restored an image never dumped: {line}"
    assert dumped == {r["request_number"] for r in records if r.get("snapshot")}
    assert all(r["image_bytes"] > 0 for r in records if r.get("snapshot"))


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK (install.sh --jvm installs one)")
def test_jvm_runtime_under_criu_cycles(tmp_path):
    classes = tmp_path / "classes"
    subprocess.run(
        ["javac", "-d", str(classes), str(REPO / "workloads" / "pronghorn" / "jvm" / "PronghornRuntime.java")],
        check=True,
    )
    records, lines, state, pids, _stats = run_host(
        tmp_path, "matrix-multiplication", "cycle", 1, 3, jvm_classes=str(classes)
    )
    assert lines[:2] == [dump_line(pids[0], state, 1), restore_line(state, 1)]
    assert len(records) == 3 and all(r["success"] and r["server_us"] > 0 for r in records)
    assert [r["request_number"] for r in records] == [1, 2, 3]


def test_a_jvm_benchmark_is_refused_fork_snapshots():
    argv = [sys.executable, "-m", "pronghorn", "--benchmark", "word-count", "--strategy", "fixed1", "--eviction", "4"]
    argv += ["--port", "1", "--state-dir", "/nonexistent", "--results-path", "/nonexistent/r", "--snapshot", "fork"]
    out = subprocess.run(
        argv,
        env={**os.environ, "PYTHONPATH": str(REPO / "workloads")},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "a JVM cannot be snapshotted by fork" in out.stderr and "--snapshot criu" in out.stderr


# Instances as inits of pid namespaces of their own (unshare --pid; root here, `sudo -n unshare` on a
# CRIU host). The namespaces, pids, kills and restores' reparenting are real; criu is the fake.
CAN_UNSHARE = subprocess.run(["unshare", "--pid", "--fork", "--", "true"], capture_output=True).returncode == 0
needs_pidns = pytest.mark.skipif(not CAN_UNSHARE, reason="unshare --pid is not allowed here (needs root)")


def gone(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


@needs_pidns
def test_a_restore_collides_with_a_live_pid_unless_the_image_is_a_pid_namespace(tmp_path, monkeypatch):
    """CRIU restores a process under its dumped pid and fails while another process holds it;
    an image of a namespace's init is restored into a new namespace, next to the live original."""
    from pronghorn.criu import CriuImages, ns_init_pid, pidns_argv

    monkeypatch.setenv("FAKE_CRIU_LOG", str(tmp_path / "criu.log"))
    images = CriuImages(tmp_path / "images", FAKE_CRIU)
    waiter = [sys.executable, "-c", "import signal; signal.pause()"]
    started = []
    try:
        plain = subprocess.Popen(waiter, start_new_session=True)
        started.append(plain.pid)
        images.dump(plain.pid, 1)
        with pytest.raises(RuntimeError, match=f"Can't fork for {plain.pid}: File exists"):
            images.restore(1, plain.pid, own_pidns=False, free_wait_s=0)

        launcher = subprocess.Popen(pidns_argv(waiter, "unshare"), start_new_session=True)
        started.append(launcher.pid)
        deadline = time.monotonic() + 10
        while True:
            try:
                init = ns_init_pid(launcher.pid)
                if nspids(init)[-1] == "1" and b"signal.pause" in Path(f"/proc/{init}/cmdline").read_bytes():
                    break
            except (RuntimeError, OSError):
                pass
            assert time.monotonic() < deadline, "unshare started no namespace init"
            time.sleep(0.02)
        started.append(init)
        images.dump(init, 2)
        _ms, restored = images.restore(2, init)  # the original still runs
        started.append(restored)
        assert restored != init and Path(f"/proc/{init}").exists() and Path(f"/proc/{restored}").exists()
        assert nspids(restored) == [str(restored), "1"]
        ns = [os.stat(f"/proc/{p}/ns/pid").st_ino for p in ("self", init, restored)]
        assert len(set(ns)) == 3, "the restored process must live in a namespace of its own"
    finally:
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert all(gone(pid) for pid in started[1:])


@needs_pypy
@needs_pidns
def test_each_instance_is_a_pid_namespace_init_known_by_its_host_pid(tmp_path):
    records, lines, state, pids, stats = run_host(tmp_path, "dynamic-html", "fixed1", 1, 4)
    # Every instance (the cold one, then three restored from the image after request 1) was the
    # init of a namespace of its own, with a host pid of its own that /stats reported.
    assert len(set(pids)) == 4
    assert [ns[-1] for ns in stats["nspids"]] == ["1"] * 4
    assert [ns[0] for ns in stats["nspids"]] == [str(p) for p in pids]
    assert lines == [dump_line(pids[0], state, 1)] + [restore_line(state, 1)] * 4
    assert all(r["success"] for r in records) and [r["request_number"] for r in records] == [1, 2, 2, 2]
    # The host killed each evicted instance and the last one by their host pids.
    assert all(gone(pid) for pid in pids)


@needs_pypy
def test_healthz_waits_until_the_snapshot_in_flight_is_done(tmp_path):
    """Readiness means an idle orchestrator: while the dump after a request runs, /healthz is 503
    and names it, and a function request meets a busy host (503, tried again by the client)."""
    gate = tmp_path / "dump-may-finish"
    host, base, _state, results, _log = start_host(
        tmp_path, "dynamic-html", "fixed1", 100, env_extra={"FAKE_CRIU_DUMP_GATE": str(gate)}
    )
    try:
        get(base + "/healthz")
        get(base + "/function/f?mutability=1")  # fixed1: the dump after request 1 starts now
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=10).read()
                status, body = 200, {}
            except urllib.error.HTTPError as e:
                status, body = e.code, json.loads(e.read())
            # The request's own bookkeeping may still be in flight just before the (gated) dump.
            if (status == 503 and body.get("in_flight") == "snapshot") or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert (status, body) == (503, {"ready": False, "in_flight": "snapshot"})
        with pytest.raises(urllib.error.HTTPError) as busy:
            urllib.request.urlopen(base + "/function/f?mutability=1", timeout=10)
        assert busy.value.code == 503 and "busy (snapshot)" in json.loads(busy.value.read())["error"]
        gate.touch()
        assert get(base + "/healthz") == {"ready": True}
        assert get(base + "/function/f?mutability=1")["request"] == 2
    finally:
        host.terminate()
        out = host.communicate(timeout=20)[0].decode(errors="replace")
    assert host.returncode in (0, -15), out
    first = json.loads(results.read_text().splitlines()[0])
    assert first["snapshot"] and first["dump_ms"] > 0
