"""The remote process deployer: an experiment's stack.process services run as processes on the
cluster's manager host over SSH, fresh for every point (Pronghorn's function host on a CRIU host,
whose snapshots need privileges a swarm container does not get).

Per point: the workloads packages the services run (`python -m <package>`) are uploaded to
`code_dir` on the host once per version of their code, with `setup` commands run after an upload
(an idempotent install step); free ports are picked on the host; a shell script starts every
service in a session of its own (`setsid`, so its process group can be stopped as one) and writes
its pid; `stop` sends SIGTERM to each group, SIGKILL after `stop_grace_s`, and removes the point's
folder. The handle (host, pids, folder) lets later stage jobs and a teardown reach the stack.

settings: python (the host's, default python3), code_dir (default ~/.cache/benchpipe/workloads),
setup (commands; {code_dir} is filled in), env (added to every service's), bind (the address the
services listen on; default the host's address), remote_dir_template (the point's folder on the
host, e.g. /tmp/benchpipe/{run_id}/{experiment}/{baseline}/{point}), stop_grace_s.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchpipe import remote
from benchpipe.deployers.base import answers_200, service_argv, wait_for_count
from benchpipe.deployers.process import WORKLOADS, DeployError, ProcessDeployer
from benchpipe.model import Cluster, Host, write_json_atomic
from benchpipe.ports import FLOOR

DEFAULT_CODE_DIR = "~/.cache/benchpipe/workloads"
# Not uploaded: a package's own virtual environment (made on the host by its setup) and caches.
SKIP_PARTS = {".venv", "__pycache__", ".pytest_cache"}


def packages_of(services: list[dict[str, Any]]) -> list[str]:
    """The workloads/<package> folders the services run (`python -m <package>`), in order."""
    out: list[str] = []
    for svc in services:
        argv = svc["argv"]
        if "-m" in argv[:-1]:
            package = argv[argv.index("-m") + 1].split(".")[0]
            if (WORKLOADS / package).is_dir() and package not in out:
                out.append(package)
    return out


def _code_files(packages: list[str]) -> list[Path]:
    files = []
    for package in packages:
        for f in sorted((WORKLOADS / package).rglob("*")):
            if f.is_file() and not SKIP_PARTS & set(f.relative_to(WORKLOADS).parts):
                files.append(f)
    return files


def code_digest(packages: list[str]) -> str:
    """One digest of the uploaded code: a changed file means a new upload (and setup)."""
    digest = hashlib.sha256()
    for f in _code_files(packages):
        digest.update(str(f.relative_to(WORKLOADS)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def code_archive(packages: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in _code_files(packages):
            tar.add(f, arcname=str(f.relative_to(WORKLOADS)))
    return buf.getvalue()


STACK_MARK = "BENCHPIPE_STACK_DIR"


def start_script(workdir: str, services: list[dict[str, Any]], env: dict[str, str]) -> str:
    """The shell script that starts a point's services on the host: a fresh folder, each service
    in its own session with its log, and one `name pid` line per service on stdout.

    services: [{name, argv (formatted), env}]. A background job of a non-interactive shell is not
    a process group leader, so `setsid` execs in place and `$!` is the service's own pid."""
    w = shlex.quote(workdir)
    lines = [
        "set -eu",
        f"rm -rf {w}",
        f"mkdir -p {w}/logs {w}/outputs " + " ".join(f"{w}/state/{shlex.quote(s['name'])}" for s in services),
        f"cd {w}",
    ]
    # Every service carries the point's folder in its environment: stop_script signals only groups
    # whose leader has it (a recorded pid may be another process's by then: pid_max is often 32768).
    lines.append(f"export {STACK_MARK}={w}")
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in sorted(env.items())]
    for svc in services:
        name = shlex.quote(svc["name"])
        assign = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(svc.get("env", {}).items()))
        cmd = " ".join(shlex.quote(a) for a in svc["argv"])
        prefix = f"env {assign} " if assign else ""
        lines.append(f"setsid {prefix}{cmd} > logs/{name}.log 2>&1 < /dev/null &")
        lines.append(f'echo {name} "$!" | tee -a pids')
    return "\n".join(lines) + "\n"


def stop_script(workdir: str, pids: dict[str, int], grace_s: float) -> str:
    """SIGTERM to each service's process group, SIGKILL to what is left after `grace_s`; the
    point's folder removed. Idempotent: a group that is gone is skipped, and so is a recorded pid
    that now leads another process (its environment lacks the point's folder)."""
    groups = " ".join(str(int(p)) for p in pids.values())
    mark = shlex.quote(f"{STACK_MARK}={workdir}")
    steps = max(1, int(grace_s * 10))
    return (
        "\n".join(
            [
                "mine=",
                f"for g in {groups}; do",
                f"  tr '\\0' '\\n' < /proc/$g/environ 2>/dev/null | grep -qxF {mark} && mine=\"$mine $g\"",
                "done",
                "for g in $mine; do kill -TERM -- -$g 2>/dev/null || true; done",
                f"for _ in $(seq {steps}); do",
                "  alive=0",
                "  for g in $mine; do kill -0 -- -$g 2>/dev/null && alive=1; done",
                '  [ "$alive" = 0 ] && break',
                "  sleep 0.1",
                "done",
                "for g in $mine; do kill -KILL -- -$g 2>/dev/null || true; done",
                f"rm -rf {shlex.quote(workdir)}",
            ]
        )
        + "\n"
    )


@dataclass
class RemoteProcessStack:
    endpoint: str
    host: Host
    workdir: str
    results_path: str
    pids: dict[str, int] = field(default_factory=dict)
    ready_path: str = "/healthz"
    code: dict[str, str] = field(default_factory=dict)  # workloads/<package> -> digest uploaded


class RemoteProcessDeployer:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.python = self.s.get("python", "python3")
        self.code_dir = self.s.get("code_dir", DEFAULT_CODE_DIR)
        self.setup = list(self.s.get("setup", []))
        self.env = {k: str(v) for k, v in (self.s.get("env") or {}).items()}
        self.stop_grace_s = float(self.s.get("stop_grace_s", 10))

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        rendered = ProcessDeployer({}).render(cluster, deployment, env)
        packages = packages_of(rendered["services"])
        return {
            **rendered,
            "kind": "remote-process",
            "env": {**rendered["env"], **self.env},
            "packages": packages,
            "setup": [c.format(code_dir=self.code_dir) for c in self.setup],
        }

    # -- start -------------------------------------------------------------------------------------
    def _probe(self, host: Host, bind: str, n: int, mark: str) -> dict[str, Any]:
        """One SSH round trip: the code folder (~ expanded), whether this code version is there,
        and n free ports (held open together, so they differ; free again when it exits), chosen
        below the host's ephemeral range as benchpipe.ports does here: an outgoing connection
        cannot take one before its service binds it."""
        code = (
            "import json,os,random,socket\n"
            "try:\n lo=int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])\n"
            "except (OSError,ValueError):\n lo=32768\n"
            f"pool=range({FLOOR},lo) if lo-{FLOOR}>=2000 else range(1024,lo)\n"
            "ss=[]\n"
            f"for _ in range({50 * n + 200}):\n"
            f" if len(ss)=={n}:\n  break\n"
            " s=socket.socket()\n"
            f" try:\n  s.bind(({bind!r},random.choice(pool)))\n  ss.append(s)\n"
            " except OSError:\n  s.close()\n"
            f"d=os.path.expanduser({self.code_dir!r})\n"
            "print(json.dumps({'code_dir':d,'has_code':os.path.exists(os.path.join(d,"
            f"{mark!r})),'ports':[s.getsockname()[1] for s in ss]}}))"
        )
        probe = json.loads(remote.run(host, f"{self.python} -c {shlex.quote(code)}"))
        if len(probe["ports"]) < n:
            raise DeployError(f"{host.name}: found only {len(probe['ports'])} of {n} free ports on {bind}")
        return probe

    def _upload(self, host: Host, rendered: dict[str, Any], code_dir: str, mark: str) -> None:
        """The services' code on the host, then its setup commands; the mark last (a failed setup
        is run again by the next point)."""
        packages = rendered["packages"]
        q = shlex.quote(code_dir)
        with tempfile.NamedTemporaryFile(suffix=".tar.gz") as f:
            f.write(code_archive(packages))
            f.flush()
            remote.run(host, f"mkdir -p {q}")
            archive = f"{code_dir}/upload-{mark}.tar.gz"
            remote.put(host, f.name, archive)
        remote.run(
            host,
            # The old code goes, the package's virtual environment (made by its setup) stays.
            f'cd {q} && for p in {" ".join(map(shlex.quote, packages))}; do [ ! -d "$p" ]'
            f' || find "$p" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {{}} +; done'
            f" && tar xzf {shlex.quote(archive)} && rm -f {shlex.quote(archive)}",
        )
        for cmd in rendered["setup"]:
            remote.run(host, cmd.replace(self.code_dir, code_dir), timeout_s=1800)
        remote.run(host, f"rm -f {q}/.benchpipe-code-* && touch {q}/{mark}")

    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> RemoteProcessStack:
        host = cluster.manager
        bind = self.s.get("bind") or host.private_address or host.address
        services = rendered["services"]
        digest = code_digest(rendered["packages"])
        mark = f".benchpipe-code-{digest[:16]}"
        probe = self._probe(host, bind, len(services), mark)
        code_dir = probe["code_dir"]
        if rendered["packages"] and not probe["has_code"]:
            self._upload(host, rendered, code_dir, mark)
        code = {f"workloads/{p}": f"sha256:{digest}" for p in rendered["packages"]}
        ports = dict(zip([s["name"] for s in services], probe["ports"], strict=True))
        results = f"{remote_dir}/async_results"
        stack = RemoteProcessStack(endpoint="", host=host, workdir=remote_dir, results_path=results, code=code)
        started = []
        for svc in services:
            values = {
                **{k: str(v) for k, v in rendered["vars"].items()},
                **{f"port_{name}": str(p) for name, p in ports.items()},
                "python": self.python,
                "host": bind,
                "port": str(ports[svc["name"]]),
                "state_dir": f"{remote_dir}/state/{svc['name']}",
                "results_path": results,
                "outputs_dir": f"{remote_dir}/outputs",
            }
            argv = service_argv(svc, values)
            svc_env = {k: str(v).format(**values) for k, v in svc.get("env", {}).items()}
            started.append({"name": svc["name"], "argv": argv, "env": svc_env})
            if svc.get("gateway"):
                stack.endpoint = f"http://{host.address}:{ports[svc['name']]}"
                stack.ready_path = svc.get("ready_path", "/healthz")
        env = {**rendered["env"], "PYTHONPATH": code_dir}
        out = remote.run(host, f"bash -c {shlex.quote(start_script(remote_dir, started, env))}")
        for line in out.splitlines():
            name, _, pid = line.partition(" ")
            if pid.strip().isdigit():
                stack.pids[name] = int(pid)
        return stack

    # -- handle ------------------------------------------------------------------------------------
    def handle(self, stack: RemoteProcessStack, lease: str) -> dict[str, Any]:
        return {
            "endpoint": stack.endpoint,
            "host": asdict(stack.host),
            "workdir": stack.workdir,
            "results_path": stack.results_path,
            "pids": stack.pids,
            "ready_path": stack.ready_path,
            "code": stack.code,
        }

    def attach(self, handle: dict[str, Any]) -> RemoteProcessStack:
        return RemoteProcessStack(
            endpoint=handle["endpoint"],
            host=Host.from_dict(handle["host"]),
            workdir=handle["workdir"],
            results_path=handle["results_path"],
            pids={k: int(v) for k, v in handle["pids"].items()},
            ready_path=handle.get("ready_path", "/healthz"),
            code=dict(handle.get("code", {})),
        )

    # -- health ------------------------------------------------------------------------------------
    def _dead(self, stack: RemoteProcessStack) -> list[str]:
        checks = " ".join(f"kill -0 {pid} 2>/dev/null || echo {shlex.quote(n)};" for n, pid in stack.pids.items())
        return remote.run(stack.host, checks or "true").split()

    def check_healthy(self, stack: RemoteProcessStack) -> None:
        dead = self._dead(stack)
        if dead:
            tail = remote.run(stack.host, f"tail -c 2000 {shlex.quote(stack.workdir)}/logs/{dead[0]}.log || true")
            raise DeployError(
                f"stack service {dead[0]!r} on {stack.host.name} is no longer running; its log ends:\n{tail}"
            )

    def wait_ready(self, stack: RemoteProcessStack, timeout_s: float) -> None:
        url = stack.endpoint + stack.ready_path
        deadline = time.monotonic() + timeout_s
        next_check = 0.0
        while True:
            if time.monotonic() >= next_check:  # an SSH round trip: not at every poll
                self.check_healthy(stack)
                next_check = time.monotonic() + 2
            if answers_200(url, 2):
                return
            if time.monotonic() > deadline:
                raise DeployError(f"stack not ready: {url} did not answer 200 within {timeout_s:g} s")
            time.sleep(0.2)

    def _count(self, stack: RemoteProcessStack) -> int:
        out = remote.run(stack.host, f"wc -l < {shlex.quote(stack.results_path)} 2>/dev/null || echo 0")
        return int(out.split()[0])

    def wait_drained(self, stack: RemoteProcessStack, expected: int, timeout_s: float) -> int:
        return wait_for_count(lambda: self._count(stack), expected, timeout_s, 0.5)

    # -- results -----------------------------------------------------------------------------------
    def fetch(self, stack: RemoteProcessStack, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / "async_results"
        remote.get(stack.host, stack.results_path, str(out))
        fetched = [out]
        listing = remote.run(stack.host, f"cd {shlex.quote(stack.workdir)}/outputs && ls -1A")
        for name in listing.split():
            remote.get(stack.host, f"{stack.workdir}/outputs/{name}", str(dest / name))
            fetched.append(dest / name)
        write_json_atomic(dest / "images.json", stack.code or {"remote-process": "no workloads package"})
        return fetched

    def collect_logs(self, stack: RemoteProcessStack, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for name in stack.pids:
            remote.get(stack.host, f"{stack.workdir}/logs/{name}.log", str(dest / f"{name}.log"))

    def stop(self, stack: RemoteProcessStack) -> None:
        if not stack.pids:
            remote.run(stack.host, f"rm -rf {shlex.quote(stack.workdir)}")
            return
        script = stop_script(stack.workdir, stack.pids, self.stop_grace_s)
        remote.run(stack.host, f"bash -c {shlex.quote(script)}", timeout_s=self.stop_grace_s + 60)
