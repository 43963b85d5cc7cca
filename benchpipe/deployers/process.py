"""The process deployer: the stand-in stack as local processes on 127.0.0.1, fresh for every point.

A point's stages are separate jobs, so its stack outlives the deploy job: the processes run in a
session of their own, their pids (with command lines, against pid reuse) are in the stack's handle
and in a pid file under the cluster's lease; collect stops them, and so do a teardown (onerror,
`snakemake teardown`) and `reap_stale` once no lease names them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchpipe.deployers.base import DeployError, answers_200, service_argv, wait_for_count
from benchpipe.model import Cluster, write_json_atomic
from benchpipe.ports import reserve

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO / "workloads"
PID_DIR = Path(os.environ.get("BENCHPIPE_PID_DIR", Path.home() / ".cache" / "benchpipe" / "stacks"))


@dataclass
class ProcessStack:
    endpoint: str
    workdir: Path
    results_path: Path
    pids: dict[str, int] = field(default_factory=dict)
    cmdlines: dict[str, str] = field(default_factory=dict)
    pid_file: Path | None = None
    ready_path: str = "/healthz"
    packages: list[str] = field(default_factory=list)  # workloads/<package> the services run
    marker: str = ""  # BENCHPIPE_STACK_DIR of processes the stack's own start (reap_stale kills them too)
    # Only in the job that started the stack: its children, for their exit codes.
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def exited(self, name: str) -> str | None:
        """Why service `name` is not running, or None while it runs."""
        proc = self.procs.get(name)
        if proc is not None:
            return None if proc.poll() is None else f"exited with code {proc.returncode}"
        pid = self.pids[name]
        if _alive(pid) and _cmdline(pid) == self.cmdlines.get(name, _cmdline(pid)):
            return None
        return "is no longer running"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _settled_cmdline(proc: subprocess.Popen[bytes], timeout_s: float = 2.0) -> str:
    """The child's command line once exec has replaced the forked copy's (empty until then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        cmd = _cmdline(proc.pid)
        if cmd or proc.poll() is not None or time.monotonic() > deadline:
            return cmd
        time.sleep(0.005)


def _terminate(pids: list[int], grace_s: float = 5.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; reaped by its parent's wait().
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def marked_pids(stack_dir: str) -> list[int]:
    """Live processes whose environment carries BENCHPIPE_STACK_DIR=`stack_dir`: a stack's processes
    and everything they started (a Ray runtime's raylet and workers), wherever they were reparented."""
    needle = f"BENCHPIPE_STACK_DIR={stack_dir}".encode()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and _alive(int(d.name)):
            out.append(int(d.name))
    return out


def reap_stale(pid_dir: Path | None = None) -> list[int]:
    """Kill stack processes whose job died without stopping them; returns the pids killed."""
    pid_dir = pid_dir or PID_DIR
    killed: list[int] = []
    if not pid_dir.is_dir():
        return killed
    for f in pid_dir.glob("*.json"):
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if _alive(rec.get("owner", -1)):
            continue  # its job is still running and will stop it
        if rec.get("lease") and _leased(rec["lease"], str(f)):
            continue  # a point holds it between its stages; collect or a teardown stops it
        stale = [p["pid"] for p in rec.get("procs", []) if _alive(p["pid"]) and _cmdline(p["pid"]) == p["cmdline"]]
        if rec.get("marker"):  # what the stack's processes started (a Ray runtime) dies with them
            stale += [p for p in marked_pids(rec["marker"]) if p not in stale]
        _terminate(stale)
        killed += stale
        f.unlink(missing_ok=True)
    return killed


def _leased(key: str, pid_file: str) -> bool:
    from benchpipe.lease import Lease

    rec = Lease(key).read()
    return bool(rec and rec.get("stack") and rec["stack"].get("pid_file") == pid_file)


class ProcessDeployer:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.host = settings.get("host", "127.0.0.1")
        self.python = settings.get("python", sys.executable)
        self.stop_grace_s = float(settings.get("stop_grace_s", 10))

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        services = deployment.get("process", [])
        if not services:
            raise DeployError("the experiment has no stack.process services for the process deployer")
        if sum(1 for s in services if s.get("gateway")) != 1:
            raise DeployError("stack.process: expected exactly one service with gateway: true")
        return {"kind": "process", "services": services, "env": env, "vars": deployment.get("vars", {})}

    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> ProcessStack:
        workdir = Path(remote_dir)
        shutil.rmtree(workdir, ignore_errors=True)  # fresh state for every point
        (workdir / "logs").mkdir(parents=True)
        results = workdir / "async_results"
        env = {**os.environ, **{k: str(v) for k, v in rendered["env"].items()}}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKLOADS), env.get("PYTHONPATH")]))
        stack = ProcessStack(endpoint="", workdir=workdir, results_path=results)
        PID_DIR.mkdir(parents=True, exist_ok=True)
        stack.pid_file = PID_DIR / f"{os.getpid()}-{workdir.name}.json"
        # Every service's port is known before any starts: {port_<name>} lets one service reach
        # another (a replica its primary, a relay its target).
        names = [svc["name"] for svc in rendered["services"]]
        ports = dict(zip(names, reserve(self.host, len(names)), strict=True))
        outputs = workdir / "outputs"
        outputs.mkdir()
        try:
            for svc in rendered["services"]:
                port = ports[svc["name"]]
                state_dir = workdir / "state" / svc["name"]
                state_dir.mkdir(parents=True, exist_ok=True)
                values = {
                    **{k: str(v) for k, v in rendered["vars"].items()},
                    **{f"port_{name}": str(p) for name, p in ports.items()},
                    "python": self.python,
                    "host": self.host,
                    "port": str(port),
                    "state_dir": str(state_dir),
                    "results_path": str(results),
                    "outputs_dir": str(outputs),
                }
                argv = service_argv(svc, values)
                if "-m" in argv[:-1]:
                    package = argv[argv.index("-m") + 1].split(".")[0]
                    if (WORKLOADS / package).is_dir() and package not in stack.packages:
                        stack.packages.append(package)
                svc_env = {**env, **{k: str(v).format(**values) for k, v in svc.get("env", {}).items()}}
                log = open(workdir / "logs" / f"{svc['name']}.log", "wb")  # noqa: SIM115 - owned by the child
                # A session of its own: the stack outlives this job and the terminal's Ctrl-C
                # (the run's onerror teardown stops it).
                proc = subprocess.Popen(argv, env=svc_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                log.close()
                stack.procs[svc["name"]] = proc
                stack.pids[svc["name"]] = proc.pid
                stack.cmdlines[svc["name"]] = _settled_cmdline(proc)
                if svc.get("gateway"):
                    stack.endpoint = f"http://{self.host}:{port}"
                    stack.ready_path = svc.get("ready_path", "/healthz")
                self._write_pids(stack)
        except BaseException:
            self.stop(stack)
            raise
        return stack

    def _write_pids(self, stack: ProcessStack, owner: int | None = None, lease: str | None = None) -> None:
        assert stack.pid_file is not None
        procs = [{"name": n, "pid": pid, "cmdline": stack.cmdlines[n]} for n, pid in stack.pids.items()]
        rec = {"owner": os.getpid() if owner is None else owner, "lease": lease, "procs": procs}
        if stack.marker:
            rec["marker"] = stack.marker
        stack.pid_file.write_text(json.dumps(rec))

    def handle(self, stack: ProcessStack, lease: str) -> dict[str, Any]:
        """What another job needs to reach, check and stop this stack; from now on the lease, not
        this job, keeps it (the pid file says so, for reap_stale)."""
        # As they run now: a wrapper (sh -c '...; exec ...') has become the service by readiness.
        for name, pid in stack.pids.items():
            if stack.exited(name) is None:
                stack.cmdlines[name] = _cmdline(pid) or stack.cmdlines[name]
        self._write_pids(stack, owner=-1, lease=lease)
        return {
            "endpoint": stack.endpoint,
            "workdir": str(stack.workdir),
            "results_path": str(stack.results_path),
            "pids": stack.pids,
            "cmdlines": stack.cmdlines,
            "pid_file": str(stack.pid_file),
            "ready_path": stack.ready_path,
            "packages": stack.packages,
        }

    def attach(self, handle: dict[str, Any]) -> ProcessStack:
        return ProcessStack(
            endpoint=handle["endpoint"],
            workdir=Path(handle["workdir"]),
            results_path=Path(handle["results_path"]),
            pids={k: int(v) for k, v in handle["pids"].items()},
            cmdlines=dict(handle["cmdlines"]),
            pid_file=Path(handle["pid_file"]),
            ready_path=handle["ready_path"],
            packages=list(handle.get("packages", [])),
        )

    def _check_alive(self, stack: ProcessStack) -> None:
        # Every service that is down, not only the first: one that died takes others with it (a
        # reader exits when its store dies), and the error must name the one that died first too.
        down = []
        for name in stack.pids:
            why = stack.exited(name)
            if why is not None:
                tail = (stack.workdir / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                down.append(f"stack service {name!r} {why}; its log ends:\n{tail}")
        if down:
            raise DeployError("\n".join(down))

    def check_healthy(self, stack: ProcessStack) -> None:
        self._check_alive(stack)

    def completed_counter(self, stack: ProcessStack) -> Callable[[], int]:
        """Calls completed so far (lines of async_results), read incrementally: for progress."""
        state = {"offset": 0, "n": 0}

        def count() -> int:
            try:
                with open(stack.results_path, "rb") as f:
                    f.seek(state["offset"])
                    chunk = f.read()
            except FileNotFoundError:
                return state["n"]
            end = chunk.rfind(b"\n") + 1  # whole lines only
            state["offset"] += end
            state["n"] += chunk.count(b"\n", 0, end)
            return state["n"]

        return count

    def wait_ready(self, stack: ProcessStack, timeout_s: float) -> None:
        url = stack.endpoint + stack.ready_path
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            self._check_alive(stack)
            if answers_200(url, 2):
                return
            if time.monotonic() > deadline:
                raise DeployError(f"stack not ready: {url} did not answer 200 within {timeout_s:g} s")
            time.sleep(delay)
            # A local HTTP poll is cheap; a longer step only adds its overshoot to every point
            # (Pronghorn's hosts are ready in 0.5-1 s: up to 0.35 s late with a 0.5 s cap).
            delay = min(delay * 1.5, 0.1)

    def wait_drained(self, stack: ProcessStack, expected: int, timeout_s: float) -> int:
        """Wait until `expected` calls are in async_results (or it stops growing); returns the count."""

        completed = self.completed_counter(stack)  # reads only what was appended since the last poll

        def count() -> int:
            self._check_alive(stack)
            return completed()

        return wait_for_count(count, expected, timeout_s, 0.05)

    def fetch(self, stack: ProcessStack, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / "async_results"
        if not stack.results_path.exists():
            raise DeployError(f"the stack wrote no {stack.results_path}")
        shutil.copyfile(stack.results_path, out)
        fetched = [out]
        # Raw files the services leave in {outputs_dir} (a reader's trace) go with async_results.
        for f in sorted((stack.workdir / "outputs").glob("*")):
            if f.is_file():
                shutil.copyfile(f, dest / f.name)
                fetched.append(dest / f.name)
        # Provenance: the stand-in's code as it ran (the local counterpart of an image id).
        images = {}
        for package in stack.packages or ["standin"]:
            digest = hashlib.sha256()
            for f in sorted((WORKLOADS / package).glob("*.py")):
                digest.update(f.name.encode() + b"\0" + f.read_bytes())
            images[f"workloads/{package}"] = f"sha256:{digest.hexdigest()}"
        write_json_atomic(dest / "images.json", images)
        return fetched

    def collect_logs(self, stack: ProcessStack, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for log in (stack.workdir / "logs").glob("*.log"):
            shutil.copyfile(log, dest / log.name)

    def stop(self, stack: ProcessStack) -> None:
        running = [pid for name, pid in stack.pids.items() if stack.exited(name) is None]
        _terminate(running, self.stop_grace_s)
        for p in stack.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=1)
        if stack.pid_file is not None:
            stack.pid_file.unlink(missing_ok=True)
        shutil.rmtree(stack.workdir, ignore_errors=True)
