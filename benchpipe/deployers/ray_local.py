"""The local Ray deployer: a fresh Ray runtime on this machine for every point (`ray start --head
--block` in a session of its own, as the artifact's restart_ray.sh before every run), plus the
experiment's stack.process services (a server that connects to it: `{ray_address}`), and the job
kind's driver (benchpipe/generators/job.py: `RayStack.run_job`, `RayStack.restart`).

Every process of the runtime (gcs_server, raylet, the workers, the agents) inherits the head's
environment, which carries the point's folder (BENCHPIPE_STACK_DIR), and stays in the head's
session: stopping the stack kills both (SIGTERM, then SIGKILL after a short grace), so nothing of
Ray outlives its point, also after a killed job (teardown, `reap_stale`). The runtime's temporary
folder is the point's own (`--temp-dir`), never /tmp/ray, so `ray status` finds no cluster
afterwards and no two points share sockets. Ray's token authentication stays on (the head writes
~/.ray/auth_token; drivers run with RAY_AUTH_MODE=token).

settings: num_cpus (2), object_store_mb (2048), python (this Python), ready_timeout_s (from
measure.ready_timeout_s).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchpipe.deployers.base import service_argv
from benchpipe.deployers.process import (
    PID_DIR,
    WORKLOADS,
    DeployError,
    ProcessDeployer,
    ProcessStack,
    answers_200,
    marked_pids,
)
from benchpipe.generators.job import CRASH_REQUEST_ENV, RESULT_NAME, JobResult
from benchpipe.model import Cluster

HEAD = "ray-head"
READY_LINE = b"This command will now block forever"


def _ray_bin(python: str) -> str:
    cand = Path(python).parent / "ray"
    return str(cand) if cand.exists() else shutil.which("ray") or "ray"


def _temp_dir(workdir: Path) -> str:
    # Short: Ray's unix sockets live under it (a socket path has at most 107 bytes).
    return f"/tmp/bpray-{hashlib.sha256(str(workdir).encode()).hexdigest()[:10]}"


@dataclass
class RayStack(ProcessStack):
    ray_address: str = ""
    temp_dir: str = ""
    head_argv: list[str] = field(default_factory=list)
    head_env: dict[str, str] = field(default_factory=dict)

    @property
    def storage_dir(self) -> Path:
        """The point's workflow storage (durable writes land here)."""
        return self.workdir / "storage"

    def driver_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, **self.head_env, **(extra or {})}
        env.update(RAY_ADDRESS=self.ray_address, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKLOADS), os.environ.get("PYTHONPATH")]))
        return env

    def run_job(self, argv: list[str], env: dict[str, str], timeout_s: float, out_dir: Path) -> JobResult:
        """The job kind's interface (benchpipe/generators/job.py): run the driver here."""
        out_dir.mkdir(parents=True, exist_ok=True)
        stdout, stderr = out_dir / "stdout.log", out_dir / "stderr.log"
        result = out_dir / RESULT_NAME
        crash_request = Path(env[CRASH_REQUEST_ENV]) if env.get(CRASH_REQUEST_ENV) else None
        with open(stdout, "wb") as o, open(stderr, "wb") as e:
            started = time.time()
            # Its own session, like the runtime's processes: a crash kills it with them.
            proc = subprocess.Popen(argv, env=self.driver_env(env), stdout=o, stderr=e, start_new_session=True)
        self.procs["driver"] = proc
        crashed_at = None
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                if crash_request is not None and crash_request.exists():
                    crashed_at = time.time()
                    self.kill_runtime(also=[proc.pid])
                    break
                if time.monotonic() > deadline:
                    _killpg(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
            proc.wait()
        except BaseException:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            self.procs.pop("driver", None)
        ended = time.time()
        rc = proc.returncode if crashed_at is None and proc.returncode is not None and proc.returncode >= 0 else None
        return JobResult(
            returncode=rc,
            started=started,
            ended=ended,
            stdout=stdout,
            stderr=stderr,
            result=result if result.exists() else None,
            crashed_at=crashed_at,
        )

    def runtime_pids(self) -> list[int]:
        """Every live process of this stack's Ray runtime (and of its services and driver): those
        carrying the point's folder in their environment, and everything in their sessions (Ray's
        agents, whatever environment they were given)."""
        marked = marked_pids(str(self.workdir))
        sessions = {s for s in (_session(p) for p in marked) if s and s > 1}
        return sorted({*marked, *(p for p in _all_pids() if _session(p) in sessions and p != os.getpid())})

    def kill_runtime(self, also: list[int] = ()) -> None:  # type: ignore[assignment]
        """A cluster crash: every process of the runtime (and `also`) killed at once, no shutdown."""
        for pid in {*self.runtime_pids(), *also}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        head = self.procs.get(HEAD)
        if head is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(timeout=5)

    def restart(self) -> None:
        """A fresh Ray runtime for the same point (its storage kept): the artifact's restart_ray.sh."""
        self.kill_runtime()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        expected = _count_ready(self.workdir / "logs" / f"{HEAD}.log") + 1
        log = open(self.workdir / "logs" / f"{HEAD}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            self.head_argv,
            env={**os.environ, **self.head_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[HEAD] = proc
        self.pids[HEAD] = proc.pid
        _wait_head(self, 180, expected)


def _session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _all_pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _count_ready(log: Path) -> int:
    try:
        return log.read_bytes().count(READY_LINE)
    except FileNotFoundError:
        return 0


def _wait_head(stack: RayStack, timeout_s: float, expected: int = 1) -> None:
    """Until the head's log says the runtime is up for the `expected`-th time (a restart appends)."""
    log = stack.workdir / "logs" / f"{HEAD}.log"
    deadline = time.monotonic() + timeout_s
    while _count_ready(log) < expected:
        head = stack.procs.get(HEAD)
        if head is not None and head.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise DeployError(f"ray start --head exited with code {head.returncode}; its log ends:\n{tail}")
        if time.monotonic() > deadline:
            raise DeployError(f"the Ray runtime did not start within {timeout_s:g} s (log: {log})")
        time.sleep(0.1)


class RayDeployer(ProcessDeployer):
    records_calls = False  # no async_results: the job's driver reports
    # No calls to count or drain: the job kind waits for its driver.
    wait_drained = None  # type: ignore[assignment]
    completed_counter = None  # type: ignore[assignment]

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.num_cpus = settings.get("num_cpus", 2)
        self.object_store_mb = int(settings.get("object_store_mb", 2048))

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        services = deployment.get("process", [])
        if sum(1 for s in services if s.get("gateway")) > 1:
            raise DeployError("stack.process: expected at most one service with gateway: true")
        return {
            "kind": "ray",
            "services": services,
            "env": env,
            "vars": deployment.get("vars", {}),
            # May name a point parameter ("{x}": Figure 8(c)'s Ray series runs on x CPUs).
            "num_cpus": int(str(self.num_cpus).format(**deployment.get("vars", {}))),
            "object_store_mb": self.object_store_mb,
        }

    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> RayStack:
        from benchpipe.ports import free_port

        workdir = Path(remote_dir)
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "logs").mkdir(parents=True)
        (workdir / "storage").mkdir()
        port = free_port(self.host)
        temp_dir = _temp_dir(workdir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        argv = [
            _ray_bin(self.python), "start", "--head", "--block", f"--port={port}",
            f"--node-ip-address={self.host}", f"--num-cpus={rendered['num_cpus']}", "--num-gpus=0",
            f"--object-store-memory={rendered['object_store_mb'] * 1024 * 1024}",
            # No dashboard, no log monitor (drivers run with log_to_driver=False): fewer processes
            # to start per point.
            "--include-dashboard=false", "--include-log-monitor=false", "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={free_port(self.host)}",
        ]  # fmt: skip
        head_env = {
            "BENCHPIPE_STACK_DIR": str(workdir),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Ray runs its workers at nice 15 (below its daemons); on a machine shared with other
            # work at nice 0 that starves them (measured: a 4x training run 154-217 s instead of
            # 14-20 s at a load average of 17-20). The workers compete as every other benchmark does.
            "RAY_worker_niceness": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(WORKLOADS), os.environ.get("PYTHONPATH")])),
        }
        stack = RayStack(
            endpoint="", workdir=workdir, results_path=workdir / "async_results",
            ray_address=f"{self.host}:{port}", temp_dir=temp_dir, head_argv=argv, head_env=head_env,
            marker=str(workdir),
        )  # fmt: skip
        PID_DIR.mkdir(parents=True, exist_ok=True)
        stack.pid_file = PID_DIR / f"{os.getpid()}-{workdir.name}.json"
        try:
            log = open(workdir / "logs" / f"{HEAD}.log", "wb")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                argv, env={**os.environ, **head_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            stack.procs[HEAD], stack.pids[HEAD] = proc, proc.pid
            stack.cmdlines[HEAD] = " ".join(argv) + " "
            self._write_pids(stack)
            _wait_head(stack, 180)
            stack.cmdlines[HEAD] = _cmd(proc.pid) or stack.cmdlines[HEAD]
            self._start_services(stack, rendered)
        except BaseException:
            self.stop(stack)
            raise
        return stack

    def _start_services(self, stack: RayStack, rendered: dict[str, Any]) -> None:
        from benchpipe.deployers.process import _settled_cmdline
        from benchpipe.ports import free_port

        for svc in rendered["services"]:
            port = free_port(self.host)
            values = {
                **{k: str(v) for k, v in rendered["vars"].items()},
                "python": self.python, "host": self.host, "port": str(port), "ray_address": stack.ray_address,
                "storage_dir": str(stack.storage_dir), "state_dir": str(stack.workdir / "state" / svc["name"]),
            }  # fmt: skip
            argv = service_argv(svc, values)
            log = open(stack.workdir / "logs" / f"{svc['name']}.log", "wb")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                argv, env=stack.driver_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            stack.procs[svc["name"]], stack.pids[svc["name"]] = proc, proc.pid
            stack.cmdlines[svc["name"]] = _settled_cmdline(proc)
            if svc.get("gateway"):
                stack.endpoint = f"http://{self.host}:{port}"
                stack.ready_path = svc.get("ready_path", "/healthz")
            self._write_pids(stack)

    def handle(self, stack: RayStack, lease: str) -> dict[str, Any]:  # type: ignore[override]
        h = super().handle(stack, lease)
        h.update(ray_address=stack.ray_address, temp_dir=stack.temp_dir, head_argv=stack.head_argv,
                 head_env=stack.head_env)  # fmt: skip
        return h

    def attach(self, handle: dict[str, Any]) -> RayStack:  # type: ignore[override]
        base = super().attach(handle)
        return RayStack(
            **{k: getattr(base, k) for k in ("endpoint", "workdir", "results_path", "pids", "cmdlines", "pid_file",
                                             "ready_path", "packages")},
            ray_address=handle["ray_address"], temp_dir=handle["temp_dir"], head_argv=list(handle["head_argv"]),
            head_env=dict(handle["head_env"]), marker=str(base.workdir),
        )  # fmt: skip

    def wait_ready(self, stack: RayStack, timeout_s: float) -> None:  # type: ignore[override]
        _wait_head(stack, timeout_s)
        if stack.endpoint:
            url = stack.endpoint + stack.ready_path
            deadline = time.monotonic() + timeout_s
            while not answers_200(url, 2):
                self._check_alive(stack)
                if time.monotonic() > deadline:
                    raise DeployError(f"stack not ready: {url} did not answer 200 within {timeout_s:g} s")
                time.sleep(0.2)

    def check_healthy(self, stack: RayStack) -> None:  # type: ignore[override]
        # The head may have been restarted (a cluster crash) by another job: the runtime counts.
        if not [p for p in stack.runtime_pids() if "raylet" in _cmd(p)]:
            raise DeployError(f"the point's Ray runtime ({stack.ray_address}) is no longer running")

    def fetch(self, stack: RayStack, dest: Path) -> list[Path]:  # type: ignore[override]
        dest.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        for f in sorted((WORKLOADS / "exoflow").glob("*.py")):
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        import importlib.metadata

        from benchpipe.model import write_json_atomic

        images = {"workloads/exoflow": f"sha256:{digest.hexdigest()}", "ray": importlib.metadata.version("ray")}
        write_json_atomic(dest / "images.json", images)
        return [dest / "images.json"]

    def collect_logs(self, stack: RayStack, dest: Path) -> None:  # type: ignore[override]
        super().collect_logs(stack, dest)
        with contextlib.suppress(OSError):
            shutil.copytree(Path(stack.temp_dir) / "session_latest" / "logs", dest / "ray", dirs_exist_ok=True)

    def stop(self, stack: RayStack) -> None:  # type: ignore[override]
        pids = {*stack.runtime_pids(), *(p for n, p in stack.pids.items() if stack.exited(n) is None)}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        for pid in {*pids, *stack.runtime_pids()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in stack.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=2)
        if stack.pid_file is not None:
            stack.pid_file.unlink(missing_ok=True)
        shutil.rmtree(stack.temp_dir, ignore_errors=True)
        shutil.rmtree(stack.workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    from benchpipe.deployers.process import _alive as alive

    return alive(pid)


def _cmd(pid: int) -> str:
    from benchpipe.deployers.process import _cmdline

    return _cmdline(pid)
