"""The "job" kind of measurement: run a driver to completion (or to an injected failure and a
resume) and record its duration and the driver's own JSON; no offered load.

The interface it needs from the point's stack (the deployer's handle), so that the local Ray
deployer (benchpipe/deployers/ray_local.py) and a Ray cluster (`ray exec`) both serve it:

    stack.run_job(argv: list[str], env: dict[str, str], timeout_s: float, out_dir: Path) -> JobResult

runs `argv` as the stack's driver (on the stack's own machine, connected to its cluster), with
`env` added to the driver's environment, and returns when the driver exits or `timeout_s` passed
(then it is killed: returncode None). The driver's stdout and stderr end up in out_dir
(JobResult.stdout / .stderr); the driver writes its JSON to out_dir/driver.json (the job kind puts
that path in the argv as `{result}`), which run_job brings home as JobResult.result (None if the
driver wrote none).

A cluster crash (the paper's `*.cluster_crash` failures): `env` holds BENCHPIPE_CRASH_REQUEST, a
path the driver writes when the crash is due. The stack watches it (on its machine) and, once it
appears, stops the whole cluster, the driver with it (SIGKILL, no clean shutdown), and returns
with JobResult.crashed_at set. The job kind then calls

    stack.restart() -> None

(a fresh Ray runtime on the same machines, as the artifact's restart_ray.sh) and runs the resume
argv (the same argv plus `resume_args`) against the same storage; the point's duration counts from
the crashed run's start (the artifact's rule). Every run, the crash and the restart are recorded in
<label>.json (the point's manifest carries it as `generator.job`).

settings: argv (list; placeholders {python}, {system} (the baseline's), {endpoint} (the stack's
gateway), {result}, {storage_dir}, {workflow_id}, {out_dir} and
the point's parameters), resume_args (["--resume"]), timeout_s (900), failure_param ("failure": the
point parameter naming the injected failure; "none" or absent = none), result_duration_key
("duration_s": the driver JSON's duration, what the summary reads).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from benchpipe.errors import RawDataError
from benchpipe.model import GeneratorReport, Mix, write_json_atomic

CRASH_REQUEST_ENV = "BENCHPIPE_CRASH_REQUEST"
RESULT_NAME = "driver.json"  # in run_job's out_dir


@dataclass
class JobResult:
    returncode: int | None  # None: killed (timeout or cluster crash)
    started: float  # wall clock (time.time()) when the driver started
    ended: float  # when it exited or was killed
    stdout: Path
    stderr: Path
    result: Path | None  # the driver's JSON, if it wrote one
    crashed_at: float | None = None  # when the stack stopped the cluster on the driver's request

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


class JobStack(Protocol):
    def run_job(self, argv: list[str], env: dict[str, str], timeout_s: float, out_dir: Path) -> JobResult: ...

    def restart(self) -> None: ...


class JobGenerator:
    """Runs the point's driver on its stack; see the module docstring."""

    name = "job"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.stack: JobStack | None = None
        self.spec: dict[str, Any] = {}

    def bind(self, stack: Any, spec: dict[str, Any]) -> None:
        """The point's stack (which runs the driver) and spec (its parameters)."""
        if not hasattr(stack, "run_job"):
            raise TypeError(f"the job kind needs a stack with run_job (a Ray deployer), got {type(stack).__name__}")
        self.stack, self.spec = stack, spec

    def _argv(self, out_dir: Path, run_dir: Path, extra: list[str], endpoint: str = "") -> list[str]:
        argv = self.s.get("argv")
        if not argv:
            raise ValueError("workload.settings.argv: the job kind needs the driver's command line")
        params = {k: str(v) for k, v in self.spec.get("params", {}).items()}
        values = {
            **params,
            "python": sys.executable,
            "system": str(self.spec.get("system", "")),
            "result": str(run_dir / RESULT_NAME),
            "out_dir": str(out_dir),
            "endpoint": endpoint,  # the stack's gateway (a server the driver talks to), if any
            "storage_dir": str(self.stack.storage_dir),  # type: ignore[union-attr]
            "workflow_id": f"{self.spec.get('point', 'job')}-{self.spec.get('config_hash', '')[:8]}",
        }
        try:
            return [str(a).format(**values) for a in argv] + extra
        except KeyError as e:
            raise ValueError(
                f"workload.settings.argv: unknown placeholder {e}; expected one of {', '.join(sorted(values))}"
            ) from None

    def run(self, target: str, mix: Mix, rate: float, duration_s: float, out_dir: Path, label: str) -> GeneratorReport:
        if self.stack is None:
            raise RuntimeError("the job kind runs only on a bound stack (benchpipe.stages binds it)")
        out_dir.mkdir(parents=True, exist_ok=True)
        timeout_s = float(self.s.get("timeout_s", 900))
        failure = str(self.spec.get("params", {}).get(self.s.get("failure_param", "failure"), "none"))
        crash_request = out_dir / f"{label}.crash_request.json"
        crash_request.unlink(missing_ok=True)
        env = {CRASH_REQUEST_ENV: str(crash_request)}
        runs: list[dict[str, Any]] = []
        record: dict[str, Any] = {"failure": failure, "runs": runs}
        first = out_dir / f"{label}.run1"
        res = self.stack.run_job(self._argv(out_dir, first, [], target), env, timeout_s, first)
        runs.append(res.to_dict())
        last = res
        if res.crashed_at is not None:
            record["crash"] = json.loads(crash_request.read_text()) if crash_request.exists() else {}
            record["crashed_at"] = res.crashed_at
            crash_request.unlink(missing_ok=True)  # answered: the resumed run must not crash on it
            t0 = time.time()
            self.stack.restart()
            record["restarted"] = {"start": t0, "end": time.time()}
            second = out_dir / f"{label}.run2"
            extra = list(self.s.get("resume_args", ["--resume"]))
            last = self.stack.run_job(self._argv(out_dir, second, extra, target), env, timeout_s, second)
            runs.append(last.to_dict())
        if last.returncode != 0 or last.result is None:
            why = (
                "was killed for a second cluster crash"
                if last.crashed_at is not None
                else "timed out or was killed"
                if last.returncode is None
                else f"exited with {last.returncode}"
            )
            tail = last.stderr.read_text(errors="replace")[-3000:] if last.stderr.exists() else ""
            raise RawDataError(f"the job's driver {why} (its stderr: {last.stderr}); it ends:\n{tail}")
        driver = json.loads(last.result.read_text())
        key = self.s.get("result_duration_key", "duration_s")
        if key not in driver:
            raise RawDataError(f"{last.result}: the driver's JSON has no {key!r}")
        record.update(
            driver=driver,
            wall_duration_s=last.ended - res.started,  # from the first run's start, as the artifact counts
            duration_s=float(driver[key]),
        )
        write_json_atomic(out_dir / f"{label}.job.json", record)
        report = GeneratorReport(
            generator="job",
            target_rate=0.0,
            duration_s=float(driver[key]),
            sent=len(runs),
            completed=1,
            errors=0,
            timeouts=0,
            achieved_rate=0.0,
            max_send_lag_ms=0.0,
            p50_ms=0.0,
            p90_ms=0.0,
            p99_ms=0.0,
            p999_ms=0.0,
            max_ms=0.0,
            mean_ms=0.0,
        )
        d = report.to_dict()
        d["job"] = {k: v for k, v in record.items() if k != "driver"}
        write_json_atomic(out_dir / f"{label}.json", d)
        return report
