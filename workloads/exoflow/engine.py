"""A workflow executor over Ray's tasks and actors with ExoFlow's per-task checkpoint modes.

The local stand-in of ExoFlow's mechanism (README.md beside this file says what it leaves out):

- a workflow is a DAG of Steps ("Workflow Tasks"), each a Ray task run with max_retries=0, so that a
  failed step is recovered by this executor from the workflow's storage, not by Ray's lineage;
- checkpoint modes per step, with the paper's meaning:
  - "sync": the output is written durably (pickled to a file, fsync'd, renamed, the folder fsync'd)
    before any downstream step starts: downstream tasks take the write's result as an argument, so
    Ray's scheduler holds them until it exists;
  - "async": downstream steps start from the in-memory object while a persister actor writes it in
    the background; `Executor.wait_committed` (and the end of `run`) is the commit wait;
  - "none": no write; a recovery or a resume re-runs the step (and what it needs);
- ephemeral tasks: plain Ray tasks and actors a step's function starts itself (Ray retries them; no
  storage), versus the same work split into Workflow Tasks (each a step of its own);
- resume: running a workflow id again loads every committed output from storage and re-runs only
  what was not durably committed and is needed by the outputs; the same rule recovers a step that
  failed (a killed worker or actor) within a run;
- failure injection: `<name>.task_crash` kills the worker (SIGKILL) of the step or task that calls
  `failure_point(name)`; `<name>.cluster_crash` asks the job runner (EXOFLOW_CRASH_REQUEST) to stop
  the whole Ray cluster and waits for it; `<name>.persist_crash` kills the persister while it writes
  the step's output (a crash before commit). Each fires once per workflow (a marker in storage).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

MODES = ("sync", "async", "none")
FAILURE_ENV = "EXOFLOW_FAILURE"  # e.g. "train_12.cluster_crash"
FAILURE_DIR_ENV = "EXOFLOW_FAILURE_DIR"  # where a fired failure leaves its marker
CRASH_REQUEST_ENV = "BENCHPIPE_CRASH_REQUEST"  # the file a cluster crash writes for the job runner


def checkpoint_mode(value: Any) -> str:
    """The artifact's --checkpoint values (true/false/async) or the mode names, as a mode name."""
    v = str(value).strip().lower()
    if v in ("true", "sync"):
        return "sync"
    if v == "async":
        return "async"
    if v in ("false", "none", "no"):
        return "none"
    raise ValueError(f"checkpoint mode: expected one of sync (true), async, none (false), got {value!r}")


# --- durable storage ----------------------------------------------------------------------------
def write_durable(path: Path, data: bytes | memoryview, crash_before_commit: bool = False) -> None:
    """`data` in `path`, on disk before this returns: a temporary file fsync'd, renamed over the
    name, the folder fsync'd. A reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if crash_before_commit:
            os.kill(os.getpid(), signal.SIGKILL)  # the write dies before its rename: nothing committed
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Storage:
    """A workflow's folder: steps/<name>.pkl (committed outputs), events.jsonl, failures/."""

    def __init__(self, root: str | Path, workflow_id: str) -> None:
        self.dir = Path(root) / workflow_id
        self.dir.mkdir(parents=True, exist_ok=True)

    def output(self, name: str) -> Path:
        return self.dir / "steps" / f"{name}.pkl"

    def committed(self, name: str) -> bool:
        return self.output(name).exists()


def _arm(trigger: str, failure: str | None = None, marker_dir: str | None = None) -> bool:
    """Is `trigger` the injected failure (`failure`, default $EXOFLOW_FAILURE), not fired yet? If so
    it is marked fired (durably: a resumed run must not fire it again) and the caller carries it out."""
    failure = os.environ.get(FAILURE_ENV) if failure is None else failure
    marker_dir = os.environ.get(FAILURE_DIR_ENV) if marker_dir is None else marker_dir
    if failure != trigger or not marker_dir:
        return False
    marker = Path(marker_dir) / f"{trigger}.fired"
    if marker.exists():
        return False
    write_durable(marker, json.dumps({"trigger": trigger, "t": time.time(), "pid": os.getpid()}).encode())
    return True


def failure_point(name: str, failure: str | None = None, marker_dir: str | None = None) -> None:
    """Where `name` may fail: a task crash kills this process; a cluster crash asks the job runner to
    stop Ray (and waits to be killed with it). The failure defaults to the environment's
    (EXOFLOW_FAILURE, EXOFLOW_FAILURE_DIR: the driver's runtime_env gives every worker both)."""
    if _arm(f"{name}.task_crash", failure, marker_dir):
        os.kill(os.getpid(), signal.SIGKILL)
    if _arm(f"{name}.cluster_crash", failure, marker_dir):
        request = os.environ.get(CRASH_REQUEST_ENV)
        if not request:
            raise RuntimeError(f"{name}.cluster_crash: no job runner to stop the cluster ({CRASH_REQUEST_ENV} unset)")
        write_durable(Path(request), json.dumps({"trigger": f"{name}.cluster_crash", "t": time.time()}).encode())
        deadline = time.time() + 600
        while time.time() < deadline:  # the runner kills Ray (and this worker with it)
            time.sleep(0.05)
        raise RuntimeError(f"{name}.cluster_crash: the cluster was not stopped within 600 s")


# --- the pieces that run on Ray -----------------------------------------------------------------
@ray.remote(num_cpus=0, max_concurrency=8, max_restarts=-1, max_task_retries=0)
class Persister:
    """Writes and reads committed outputs (a thread pool: writes overlap the steps that go on)."""

    def persist(self, path: str, value: Any, crash: bool = False) -> dict[str, float]:
        t0 = time.time()
        data = pickle.dumps(value, protocol=5)
        write_durable(Path(path), data, crash_before_commit=crash)
        return {"start": t0, "end": time.time(), "bytes": len(data)}

    def load(self, path: str) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    def ping(self) -> bool:
        return True


@ray.remote
def _run_step(
    fn: Callable[..., Any], name: str, failure: tuple[str, str], n_gates: int, *args: Any, **kwargs: Any
) -> tuple[Any, dict]:
    # args[:n_gates] are the writes (sync inputs) and steps (ordering) this step waits for.
    start = time.time()
    out = fn(*args[n_gates:], **kwargs)
    failure_point(name, *failure)  # after the work: a crash loses it
    return out, {"start": start, "end": time.time(), "pid": os.getpid()}


# --- the DAG ------------------------------------------------------------------------------------
@dataclass(eq=False)
class Step:
    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    checkpoint: str
    after: list[Step] = field(default_factory=list)
    num_cpus: float = 1

    def inputs(self) -> list[Step]:
        return [a for a in (*self.args, *self.kwargs.values()) if isinstance(a, Step)]


def step(
    fn: Callable[..., Any],
    *args: Any,
    name: str,
    checkpoint: Any = "sync",
    after: Iterable[Step] = (),
    num_cpus: float = 1,
    **kwargs: Any,
) -> Step:
    """A Workflow Task: `fn(*args, **kwargs)`, where Step arguments are replaced by their outputs."""
    return Step(name, fn, args, kwargs, checkpoint_mode(checkpoint), list(after), num_cpus)


class StepFailed(RuntimeError):
    pass


_SYSTEM = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.RayActorError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
    ray.exceptions.NodeDiedError,
)


def system_failure(e: BaseException) -> bool:
    """A killed worker, actor or lost object (recovered), not an error of the step's own code."""
    if isinstance(e, _SYSTEM):
        return True
    cause = getattr(e, "cause", None)
    return isinstance(e, ray.exceptions.RayTaskError) and isinstance(cause, _SYSTEM)


@dataclass
class _State:
    out: Any = None  # ObjectRef of the output
    info: Any = None  # ObjectRef of {start, end, pid}; None when loaded from storage
    persist: Any = None  # ObjectRef of the write's {start, end, bytes}
    loaded: bool = False
    seq: int = 0  # submission order: an input submitted after this step is a newer execution


class Executor:
    """A workflow controller: runs a DAG of Steps for one workflow id on the connected Ray cluster.

    run(outputs) returns their values. Steps already committed in storage are loaded, not run
    (resume); a step that fails is recovered (up to `max_recoveries` times) by running it again
    with its committed inputs loaded and its uncommitted ones re-run. Every execution, load,
    write and recovery is an event (self.events, and storage's events.jsonl)."""

    def __init__(
        self,
        storage_root: str | Path,
        workflow_id: str,
        max_recoveries: int = 3,
        failure: str | None = None,
        persister: Any = None,
        events_file: bool = True,
    ) -> None:
        self.storage = Storage(storage_root, workflow_id)
        # The injected failure (default $EXOFLOW_FAILURE) and where its fired marker goes.
        self.failure = (
            os.environ.get(FAILURE_ENV, "") if failure is None else failure,
            str(self.storage.dir / "failures"),
        )
        self.workflow_id = workflow_id
        self.max_recoveries = max_recoveries
        # One persister per controller; a server running many workflows passes its own.
        self.persister = persister if persister is not None else Persister.remote()
        self.states: dict[str, _State] = {}
        self.events: list[dict[str, Any]] = []
        self._log = open(self.storage.dir / "events.jsonl", "a") if events_file else None  # noqa: SIM115
        self._lock = threading.Lock()
        self._done: set[str] = set()  # steps whose current execution finished
        self._seq = 0

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def _event(self, name: str, event: str, **extra: Any) -> None:
        rec = {"step": name, "event": event, "t": time.time(), **extra}
        with self._lock:
            self.events.append(rec)
            if self._log is not None:
                self._log.write(json.dumps(rec) + "\n")
                self._log.flush()

    # A persist_crash trigger is the persister's to carry out; the controller decides when it is due.
    def _persist_crash_due(self, name: str) -> bool:
        return _arm(f"{name}.persist_crash", *self.failure)

    def _submit(self, s: Step, steps: dict[str, Step]) -> _State:
        if s.name in self.states:
            return self.states[s.name]
        st = _State()
        if s.checkpoint != "none" and self.storage.committed(s.name):
            st.out = self.persister.load.remote(str(self.storage.output(s.name)))
            st.loaded = True
            self._event(s.name, "load")
            self._seq += 1
            st.seq = self._seq
            self.states[s.name] = st
            return st
        gates = []
        for dep in s.after:
            # An ordering dependency (the artifact's `>>`) orders steps of this run; a step that is
            # not running (loaded, or not needed since a resume) is not run only to honour it.
            d = self.states.get(dep.name)
            if d is not None and d.info is not None:
                gates.append(d.info)
        resolved: dict[int, Any] = {}
        for up in s.inputs():
            u = self._submit(up, steps)
            if up.checkpoint == "sync" and u.persist is not None:
                gates.append(u.persist)  # the downstream waits for the write, not only the value
            resolved[id(up)] = u.out
        args = [resolved[id(a)] if isinstance(a, Step) else a for a in s.args]
        kwargs = {k: resolved[id(v)] if isinstance(v, Step) else v for k, v in s.kwargs.items()}
        st.out, st.info = _run_step.options(num_returns=2, max_retries=0, num_cpus=s.num_cpus, name=s.name).remote(
            s.fn, s.name, self.failure, len(gates), *gates, *args, **kwargs
        )
        self._event(s.name, "submit", checkpoint=s.checkpoint)
        if s.checkpoint != "none":
            st.persist = self.persister.persist.remote(
                str(self.storage.output(s.name)), st.out, self._persist_crash_due(s.name)
            )
        self._seq += 1
        st.seq = self._seq  # after its inputs: a larger seq on an input means it was re-run later
        self.states[s.name] = st
        return st

    def _ancestors(self, s: Step) -> list[Step]:
        seen: dict[str, Step] = {}
        todo = list(s.inputs())
        while todo:
            a = todo.pop()
            if a.name not in seen:
                seen[a.name] = a
                todo.extend(a.inputs())
        return list(seen.values())

    def _recover(self, failed: Step, steps: dict[str, Step], error: BaseException) -> None:
        """Forget `failed` and every ancestor whose output is not committed; submit `failed` again
        (committed ancestors are loaded from storage, the others re-run)."""
        self._event(failed.name, "failed", error=f"{type(error).__name__}: {str(error)[:300]}")
        mine = self.states[failed.name].seq
        if any(d.name in self.states and self.states[d.name].seq > mine for d in [*failed.inputs(), *failed.after]):
            # It failed on an input that has been recovered since (the error reached it through the
            # object): run it again on the new input, without forgetting anything else.
            del self.states[failed.name]
            self._event(failed.name, "resubmit")
            self._submit(failed, steps)
            return
        ancestors = self._ancestors(failed)
        pending = [
            self.states[a.name].persist for a in ancestors if a.name in self.states and self.states[a.name].persist
        ]
        if pending:  # a write still in flight commits (or dies) before we decide what is committed
            ray.wait(pending, num_returns=len(pending), timeout=None)
        for a in [failed, *ancestors]:
            st = self.states.get(a.name)
            if st is None or st.loaded:
                continue
            if a is not failed and a.checkpoint != "none" and self.storage.committed(a.name):
                continue
            del self.states[a.name]
            self._done.discard(a.name)
        self._event(failed.name, "recover")
        self._submit(failed, steps)

    def run(self, outputs: Step | list[Step], wait_committed: bool = True) -> Any:
        single = isinstance(outputs, Step)
        outs = [outputs] if single else list(outputs)
        steps: dict[str, Step] = {}
        todo = list(outs)
        while todo:
            s = todo.pop()
            other = steps.get(s.name)
            if other is not None and other is not s:
                raise ValueError(f"workflow {self.workflow_id}: two steps are named {s.name!r}")
            if other is None:
                steps[s.name] = s
                todo.extend(s.inputs())
        for s in outs:
            self._submit(s, steps)
        recoveries: dict[str, int] = {}
        while True:
            running = {st.info: n for n, st in self.states.items() if st.info is not None and n not in self._done}
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            name = running[ready[0]]
            try:
                info = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                recoveries[name] = recoveries.get(name, 0) + 1
                if not system_failure(e) or recoveries[name] > self.max_recoveries:
                    raise StepFailed(f"step {name} failed {recoveries[name]} times; last: {e}") from e
                self._recover(steps[name], steps, e)
                continue
            self._done.add(name)
            self._event(name, "done", start=info["start"], end=info["end"], pid=info["pid"])
        values = ray.get([self.states[s.name].out for s in outs])
        if wait_committed:
            self.wait_committed()
        return values[0] if single else values

    def wait_committed(self, names: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """The commit wait: block until the writes of `names` (default: every step's) are on disk;
        returns each write's {start, end, bytes}. A write that died raises StepFailed."""
        chosen = list(names) if names is not None else list(self.states)
        out = {}
        for n in chosen:
            st = self.states.get(n)
            if st is None or st.persist is None:
                continue
            try:
                out[n] = ray.get(st.persist)
            except ray.exceptions.RayError as e:
                raise StepFailed(f"the checkpoint of step {n} was not committed: {e}") from e
            self._event(n, "committed", start=out[n]["start"], end=out[n]["end"], bytes=out[n]["bytes"])
        return out

    def step_info(self, name: str) -> dict[str, float] | None:
        st = self.states.get(name)
        if st is None or st.info is None:
            return None
        with contextlib.suppress(ray.exceptions.RayError):
            return ray.get(st.info)
        return None
