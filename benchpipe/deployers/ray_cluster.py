"""The ray-cluster deployer: each point's "stack" is the Ray cluster restarted afresh (the
artifact's restart_ray.sh before every run), and its job is the artifact's driver run on the head
through `ray exec`, its files brought back with `ray rsync-down`.

Settings (targets.aws.deployer.settings): workdir (the experiment's folder of the checkout on the
nodes, where the driver runs), append_files (result files the driver appends one line to, e.g.
result/results.txt: the run's new lines are kept), remote_dir_template, ray_exec_timeout_s.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchpipe.cloud import ray_yaml
from benchpipe.errors import StackError
from benchpipe.generators.job import RESULT_NAME, JobResult
from benchpipe.model import Cluster


@dataclass
class RayStack:
    endpoint: str  # ray://<head>:10001 (for the record; jobs run on the head itself)
    yaml: str
    ray_cli: str
    storage: str
    workers: int
    workdir: str
    remote_dir: str
    log: str
    append_files: tuple[str, ...] = ()
    ray: dict[str, Any] = field(default_factory=dict)  # how Ray starts on the nodes (restart)

    @property
    def storage_dir(self) -> str:
        """The point's workflow storage: the run's bucket (the job kind's {storage_dir})."""
        return self.storage

    def _run(self, argv: list[str], timeout_s: float, what: str) -> str:
        with open(self.log, "a") as out:
            out.write(f"$ {shlex.join(argv)}\n")
            out.flush()
            try:
                proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=out, text=True, timeout=timeout_s)
            except FileNotFoundError:
                raise StackError(f"{what}: `{argv[0]}` not found (the Ray cluster launcher)") from None
            except subprocess.TimeoutExpired:
                raise StackError(f"{what}: no answer within {timeout_s:g} s; see {self.log}") from None
            out.write(proc.stdout)
        if proc.returncode != 0:
            raise StackError(f"{what}: `{shlex.join(argv[:3])} ...` exited {proc.returncode}; see {self.log}")
        return proc.stdout

    def exec(self, command: str, timeout_s: float = 600, what: str = "ray exec") -> str:
        return self._run(ray_yaml.exec_argv(self.ray_cli, self.yaml, command), timeout_s, what)

    def put_text(self, text: str, remote_path: str) -> None:
        """A file on the head (`ray rsync-up`), its folder made first."""
        self.exec(f"mkdir -p {shlex.quote(str(Path(remote_path).parent))}", 120, "mkdir on the head")
        with tempfile.NamedTemporaryFile("w", suffix=Path(remote_path).suffix or ".txt", delete=False) as f:
            f.write(text)
        try:
            argv = [*shlex.split(self.ray_cli), "rsync-up", self.yaml, f.name, remote_path]
            self._run(argv, 300, f"upload {remote_path}")
        finally:
            Path(f.name).unlink(missing_ok=True)

    def get_dir(self, remote: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        argv = ray_yaml.rsync_down_argv(self.ray_cli, self.yaml, remote.rstrip("/") + "/", str(dest) + "/")
        self._run(argv, 1800, f"fetch {remote}")

    def restart(self, timeout_s: int = 600) -> None:
        """Ray stopped and started on every node (restart_ray.sh), back on all nodes before it returns."""
        script = f"{self.remote_dir}/restart_ray.sh"
        self.put_text(ray_yaml.restart_script(self.ray, self.storage, self.workers, timeout_s), script)
        self.exec(f"bash {shlex.quote(script)}", timeout_s + 120, "restart Ray")

    def ray_is_up(self) -> bool:
        try:
            self.exec("ray status", 180, "ray status")
            return True
        except StackError:
            return False

    def run_job(self, argv: list[str], env: dict[str, str], timeout_s: float, out_dir: Path) -> JobResult:
        """The job kind's interface (benchpipe/generators/job.py), on the head: the driver runs in
        `workdir` with `env`, at most `timeout_s`; its stdout, stderr, exit code, start and end (the
        head's clock), the lines it appended to the result files and the files it wrote under
        result/ come back into `out_dir`. The artifact's cluster-crash failures stop Ray from inside
        the driver (`ray stop --force`): a driver that failed with Ray down counts as crashed."""
        job = f"{self.remote_dir}/job-{out_dir.name}"
        self.put_text(job_script(argv, env, timeout_s, self.workdir, job, tuple(self.append_files)), f"{job}/run.sh")
        self.exec(f"bash {shlex.quote(job + '/run.sh')}", timeout_s + 300, f"job {shlex.join(argv)[:60]}")
        self.get_dir(job, out_dir)
        res = job_result(out_dir)
        if res.returncode != 0 and not self.ray_is_up():
            res.crashed_at = res.ended
            res.returncode = None
        return res


def job_script(
    argv: list[str], env: dict[str, str], timeout_s: float, workdir: str, job_dir: str, append_files: tuple[str, ...]
) -> str:
    """The head's side of one job (bash): a fresh job folder, the driver under `timeout` in its
    own session (a stop kills the group), exit code and wall-clock stamps written beside it."""
    q = shlex.quote
    exports = "".join(f"export {k}={q(str(v))}\n" for k, v in sorted(env.items()))
    lines = [
        "set -u",
        f"JOB={q(job_dir)}",
        'mkdir -p "$JOB/result"',
        f"cd {workdir}",
        'touch "$JOB/.start"',
    ]
    for i, f in enumerate(append_files):
        lines.append(f"N{i}=$(cat {q(f)} 2>/dev/null | wc -l)")
    lines += [
        exports.rstrip("\n"),
        'date +%s.%N > "$JOB/started"',
        f"setsid timeout --signal=TERM --kill-after=30 {int(timeout_s)} {shlex.join(argv)}"
        ' > "$JOB/stdout" 2> "$JOB/stderr" &',
        'echo $! > "$JOB/pid"',
        'wait $!; echo $? > "$JOB/returncode"',
        'date +%s.%N > "$JOB/ended"',
    ]
    for i, f in enumerate(append_files):
        lines.append(f'tail -n +$((N{i} + 1)) {q(f)} > "$JOB/result/{Path(f).name}.new" 2>/dev/null || true')
    lines.append('find result -type f -newer "$JOB/.start" -exec cp --parents {} "$JOB" \\; 2>/dev/null || true')
    lines.append("exit 0")
    return "\n".join(line for line in lines if line) + "\n"


# The artifact's result lines (run.py): `duration = 123.4s | config = {...} | <datetime> | version=<git>`.
RESULT_LINE = re.compile(
    r"^duration = (?P<d>[0-9.]+)s \| config = (?P<config>\{.*\}) \| (?P<when>[^|]*)(\| (?P<v>.*))?$"
)


def parse_result_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        m = RESULT_LINE.match(line.strip())
        if m:
            out.append(
                {
                    "duration_s": float(m["d"]),
                    "config": json.loads(m["config"]),
                    "datetime": m["when"].strip(),
                    "version": (m["v"] or "").strip().removeprefix("version="),
                }
            )
    return out


def job_result(out_dir: Path) -> JobResult:
    """The job's record from its fetched folder. The driver's JSON (driver.json): its result line
    (the artifact's run.py prints one per run) as {duration_s, config, datetime, version}; for
    drivers that write other files (the microbenchmarks' JSON lists, the server's CSVs), the
    driver's wall-clock duration and the list of those files, which stay in the folder."""

    def read(name: str, default: str = "") -> str:
        p = out_dir / name
        return p.read_text().strip() if p.exists() else default

    rc, started = read("returncode"), read("started")
    if not rc or not started:
        raise StackError(f"{out_dir}: the job left no returncode/started stamp on the head (did it start?)")
    ended = float(read("ended") or time.time())
    runs = [r for p in sorted((out_dir / "result").glob("*.new")) for r in parse_result_lines(p.read_text())]
    files = sorted(str(p.relative_to(out_dir)) for p in (out_dir / "result").rglob("*") if p.is_file())
    driver = out_dir / RESULT_NAME
    if runs:
        driver.write_text(json.dumps({**runs[-1], "source": "result line"}, indent=1))
    elif int(rc) == 0:
        body = {"duration_s": ended - float(started), "source": "wall clock", "files": files}
        driver.write_text(json.dumps(body, indent=1))
    code = int(rc)
    return JobResult(
        returncode=None if code == 124 else code,  # timeout(1): killed at the time limit
        started=float(started),
        ended=ended,
        stdout=out_dir / "stdout",
        stderr=out_dir / "stderr",
        result=driver if driver.exists() else None,
    )


class RayClusterDeployer:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """The job's folder on the head (None: the cluster's experiment folder) and the result
        files whose new lines are the run's."""
        return {"workdir": self.s.get("workdir"), "append_files": list(self.s.get("append_files", [])), "env": env}

    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> RayStack:
        if cluster.provider != "ray-cluster":
            raise StackError(f"cluster {cluster.name}: the ray-cluster deployer needs the ray-cluster provider")
        x = cluster.extra
        ray = x.get("ray") or {}
        workdir = rendered.get("workdir") or ray.get("experiment_dir", "")
        stack = RayStack(
            endpoint=f"ray://{cluster.manager.address}:10001",
            yaml=x["yaml"],
            ray_cli=x.get("ray_cli", "ray"),
            storage=x["storage"],
            workers=int(x.get("workers", 0)),
            workdir=f"{ray_yaml.CHECKOUT}/{workdir}",
            remote_dir=remote_dir,
            log=x.get("log", f"{x['yaml']}.log"),
            append_files=tuple(rendered["append_files"]),
            ray=ray,
        )
        stack.exec(f"rm -rf {shlex.quote(remote_dir)} && mkdir -p {shlex.quote(remote_dir)}", 120, "point folder")
        stack.restart()
        return stack

    def wait_ready(self, stack: RayStack, timeout_s: float) -> None:
        stack.exec("ray status", min(timeout_s, 300), "ray status")

    def handle(self, stack: RayStack, lease_key: str) -> dict[str, Any]:
        return {**asdict(stack), "append_files": list(stack.append_files)}  # JSON: no tuples

    def attach(self, handle: dict[str, Any]) -> RayStack:
        return RayStack(**{**handle, "append_files": tuple(handle.get("append_files", ()))})

    def fetch(self, stack: RayStack, dest: Path) -> list[Path]:
        stack.get_dir(stack.remote_dir, dest / "head")
        return sorted(p for p in (dest / "head").rglob("*") if p.is_file())

    def collect_logs(self, stack: RayStack, dest: Path) -> None:
        with contextlib.suppress(StackError):
            stack.get_dir("/tmp/ray/session_latest/logs", dest / "ray-logs")

    def stop(self, stack: RayStack) -> None:
        """The point's driver, if it still runs, is killed with its session (the cluster stays)."""
        pid = f"{stack.remote_dir}/job/pid"
        with contextlib.suppress(StackError):
            stack.exec(f"test -f {pid} && kill -TERM -- -$(cat {pid}) 2>/dev/null; true", 120, "stop the job")
