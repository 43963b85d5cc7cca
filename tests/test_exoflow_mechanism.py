"""The local ExoFlow mechanism (workloads/exoflow/engine.py) on a real Ray runtime: what each
checkpoint mode guarantees, from the steps' own timestamps and execution counts."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from exoflow import engine  # noqa: E402

from tests.conftest import ray_processes  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def no_stray_stack():
    """The module's one Ray runtime outlives each test (its workers come and go); `runtime` checks
    that nothing of it outlives the module."""
    yield


@pytest.fixture(scope="module")
def runtime():
    before = set(ray_processes())
    temp_dir = f"/tmp/bptest-{os.getpid()}"  # short: Ray's socket paths live under it
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=1 << 30, _temp_dir=temp_dir, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
    deadline = time.monotonic() + 15
    while (left := [p for p in ray_processes() if p not in before]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes outlived the module: {left}"


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def produce(n_bytes: int, log: str) -> np.ndarray:
    with open(log, "a") as f:
        f.write("run\n")
    return np.ones(n_bytes, dtype=np.uint8)


def consume(x: np.ndarray, log: str, fail_first: str = "") -> int:
    with open(log, "a") as f:
        f.write("run\n")
    if fail_first and not os.path.exists(fail_first):
        Path(fail_first).write_text("x")
        raise RuntimeError("the consumer's first run fails")
    return int(x.sum())


def _events(ex: engine.Executor, name: str, event: str) -> list[dict]:
    return [e for e in ex.events if e["step"] == name and e["event"] == event]


def test_sync_downstream_starts_after_the_checkpoint_is_on_disk(runtime, tmp_path):
    ex = engine.Executor(tmp_path, "wf")
    a = engine.step(produce, 32 << 20, str(tmp_path / "a.log"), name="a", checkpoint="sync")
    b = engine.step(consume, a, str(tmp_path / "b.log"), name="b", checkpoint="none")
    assert ex.run(b) == 32 << 20
    write = ex.wait_committed(["a"])["a"]
    b_start = _events(ex, "b", "done")[0]["start"]
    assert ex.storage.output("a").exists()
    assert write["end"] <= b_start, (write, b_start)
    ex.close()


def test_async_downstream_overlaps_the_write_and_the_commit_wait_blocks(runtime, tmp_path):
    ex = engine.Executor(tmp_path, "wf")
    a = engine.step(produce, 64 << 20, str(tmp_path / "a.log"), name="a", checkpoint="async")
    b = engine.step(consume, a, str(tmp_path / "b.log"), name="b", checkpoint="none")
    assert ex.run(b, wait_committed=False) == 64 << 20
    b_start = _events(ex, "b", "done")[0]["start"]
    write = ex.wait_committed(["a"])["a"]  # returns only once the write ended
    assert b_start < write["end"], (b_start, write)
    assert ex.storage.output("a").exists()
    with open(ex.storage.output("a"), "rb") as f:
        assert len(f.read()) >= 64 << 20
    ex.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_crash_after_commit_resumes_without_rerunning_the_committed_step(runtime, tmp_path, mode):
    logs = {n: str(tmp_path / f"{n}.log") for n in "ab"}

    def dag():
        a = engine.step(produce, 1 << 20, logs["a"], name="a", checkpoint=mode)
        return engine.step(consume, a, logs["b"], str(tmp_path / "b.failed"), name="b", checkpoint="none")

    ex = engine.Executor(tmp_path, "wf", max_recoveries=0)
    with pytest.raises(engine.StepFailed):
        ex.run(dag())
    ex.wait_committed(["a"])
    ex.close()
    resumed = engine.Executor(tmp_path, "wf")
    assert resumed.run(dag()) == 1 << 20
    assert _count(Path(logs["a"])) == 1  # committed: loaded, not run again
    assert _count(Path(logs["b"])) == 2
    assert _events(resumed, "a", "load")
    resumed.close()


def test_crash_before_commit_reruns_the_step(runtime, tmp_path):
    logs = {n: str(tmp_path / f"{n}.log") for n in "ab"}

    def dag():
        a = engine.step(produce, 1 << 20, logs["a"], name="a", checkpoint="async")
        return engine.step(consume, a, logs["b"], name="b", checkpoint="none")

    # The persister is killed (SIGKILL) while it writes a's output: a is never committed.
    ex = engine.Executor(tmp_path, "wf", failure="a.persist_crash")
    assert ex.run(dag(), wait_committed=False) == 1 << 20
    with pytest.raises(engine.StepFailed):
        ex.wait_committed(["a"])
    ex.close()
    assert not engine.Storage(tmp_path, "wf").committed("a")
    resumed = engine.Executor(tmp_path, "wf", failure="a.persist_crash")  # fired once: not again
    assert resumed.run(dag()) == 1 << 20
    assert _count(Path(logs["a"])) == 2
    assert json.loads((tmp_path / "wf" / "failures" / "a.persist_crash.fired").read_text())["trigger"]
    resumed.close()


def chain(x: int, log: str) -> int:
    with open(log, "a") as f:
        f.write("run\n")
    return x + 1


@pytest.mark.parametrize(("mode", "reruns"), [("none", 2), ("sync", 1)])
def test_task_crash_recovery_reruns_what_is_not_committed_upstream(runtime, tmp_path, mode, reruns):
    """c's worker is killed (SIGKILL) after its work; recovery re-runs c and, with NoCkpt, a and b."""
    logs = {n: tmp_path / f"{n}.log" for n in "abc"}
    a = engine.step(chain, 0, str(logs["a"]), name="a", checkpoint=mode)
    b = engine.step(chain, a, str(logs["b"]), name="b", checkpoint=mode)
    c = engine.step(chain, b, str(logs["c"]), name="c", checkpoint="none")
    ex = engine.Executor(tmp_path, "wf", failure="c.task_crash")
    assert ex.run(c) == 3
    assert _count(logs["c"]) == 2
    assert _count(logs["a"]) == _count(logs["b"]) == reruns
    assert _events(ex, "c", "recover")
    ex.close()
