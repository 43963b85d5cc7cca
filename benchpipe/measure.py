"""One point's critical section on its cluster: fresh stack, readiness, warm-up, measurement, fetch.

It runs as one job because a deployed stack cannot outlive a Snakemake job safely: between two
jobs another point of the same cluster could be scheduled and reset the stack under it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchpipe import registry
from benchpipe.model import Cluster, Mix, write_json_atomic

log = logging.getLogger("benchpipe.measure")
LOCK_DIR = Path(os.environ.get("BENCHPIPE_LOCK_DIR", Path.home() / ".cache" / "benchpipe" / "locks"))


@contextlib.contextmanager
def cluster_lock(key: str) -> Iterator[None]:
    """Points holding the same cluster key never overlap, whatever the scheduler does."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    path = LOCK_DIR / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")
    with open(path, "w") as f:
        t0 = time.monotonic()
        fcntl.flock(f, fcntl.LOCK_EX)
        waited = time.monotonic() - t0
        if waited > 0.5:
            log.info("waited %.1f s for cluster %s", waited, key)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _now() -> float:
    return time.time()


def measure_point(spec: dict[str, Any], cluster: Cluster, out_dir: Path, log_dir: Path) -> dict[str, Any]:
    """Measure one point into out_dir (raw files + timing.json); stack logs to log_dir on failure."""
    deployer = registry.load("deployer", spec["deployer"]["name"])(spec["deployer"]["settings"])
    gen_cfg = spec["generator"]
    generator = registry.load("generator", gen_cfg["name"])(gen_cfg["settings"])
    wl = spec["workload"]
    mix = Mix.from_config(wl["mix"], default_path=wl["path"])
    rendered = spec["rendered"]
    out_dir.mkdir(parents=True, exist_ok=True)
    timing: dict[str, Any] = {}
    with cluster_lock(cluster.lock_key):
        workdir = Path(tempfile.mkdtemp(prefix=f"benchpipe-{spec['experiment']}-{spec['point']}-"))
        remote_dir = (
            spec["deployer"]["settings"]
            .get("remote_dir_template", str(workdir))
            .format(
                run_id=cluster.run_id, experiment=spec["experiment"], baseline=spec["baseline"], point=spec["point"]
            )
        )
        stack = None
        ok = False
        try:
            timing["deploy_start"] = _now()
            stack = deployer.start(cluster, rendered, remote_dir)
            deployer.wait_ready(stack, spec["measure"]["ready_timeout_s"])
            timing["ready"] = _now()
            log.info("stack ready at %s after %.2f s", stack.endpoint, timing["ready"] - timing["deploy_start"])
            target = stack.endpoint
            if hasattr(deployer, "load_context"):
                target, generator = _remote_generator(deployer.load_context(stack), generator, gen_cfg, target, timing)
            sent = 0
            if wl["warmup_s"] > 0:
                timing["warmup_start"] = _now()
                rep = generator.run(target, mix, _rate(spec), wl["warmup_s"], out_dir, "warmup")
                timing["warmup_end"] = _now()
                sent += rep.sent
                log.info("warm-up: %s", _brief(rep))
            if wl["pause_s"] > 0:
                time.sleep(wl["pause_s"])  # the experiment asks for a quiet gap (the seed's sleep 10)
            timing["measure_start"] = _now()
            rep = generator.run(target, mix, _rate(spec), wl["measure_s"], out_dir, "measure")
            timing["measure_end"] = _now()
            sent += rep.sent
            log.info("measurement: %s", _brief(rep))
            if hasattr(deployer, "wait_drained"):
                n = deployer.wait_drained(stack, sent, timeout_s=max(10.0, wl["measure_s"]))
                timing["drained"] = _now()
                log.info("%d of %d calls finished", n, sent)
            if hasattr(deployer, "check_healthy"):
                deployer.check_healthy(stack)  # a service that crashed mid-point fails the point
            deployer.fetch(stack, out_dir)
            ok = True
        except BaseException:
            if stack is not None:
                with contextlib.suppress(Exception):
                    deployer.collect_logs(stack, log_dir / "stack")
                    log.error("stack logs collected in %s", log_dir / "stack")
            raise
        finally:
            if stack is not None:
                deployer.stop(stack)
            timing["stopped"] = _now()
            shutil.rmtree(workdir, ignore_errors=True)
    if ok:
        write_json_atomic(out_dir / "timing.json", timing)
    return timing


def _remote_generator(
    ctx: dict[str, Any], generator: Any, gen_cfg: dict[str, Any], endpoint: str, timing: dict[str, Any]
) -> tuple[str, Any]:
    """wrk2 runs on the cluster's client machine; where it is missing, the built-in generator runs
    from the controller instead (recorded in the point's timing as generator_host)."""
    from benchpipe import remote

    client = ctx.get("client")
    if gen_cfg["name"] != "wrk2" or client is None:
        timing["generator_host"] = "controller"
        return endpoint, generator
    binary = gen_cfg["settings"].get("binary", "wrk")
    has_wrk2 = remote.run(client, f"{binary} --help 2>&1 | grep -q -- --rate && echo yes || true").strip() == "yes"
    if not has_wrk2:
        log.warning("no wrk2 on %s: the built-in generator runs from the controller instead", client.name)
        timing["generator_host"] = "controller (no wrk2 on the client)"
        return endpoint, registry.load("generator", "openloop")(gen_cfg["settings"])

    def put(path: str, text: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
            f.write(text)
            f.flush()
            remote.put(client, f.name, path)

    generator.s.update(
        runner=lambda argv, timeout_s: remote.run(client, " ".join(argv), timeout_s),
        put=put,
        script_dir=ctx["work_dir"],
    )
    timing["generator_host"] = client.name
    return ctx["target"], generator


def _rate(spec: dict[str, Any]) -> float:
    rate = spec["workload"]["rate"]
    return float(rate) if rate is not None else 0.0


def _brief(rep: Any) -> str:
    d = rep.to_dict() if hasattr(rep, "to_dict") else dict(rep)
    d.pop("histogram", None)
    return json.dumps({k: d[k] for k in ("target_rate", "achieved_rate", "sent", "errors", "fell_behind") if k in d})
