"""A point's stages, one Snakemake job each: provision, deploy, warmup, run, collect.

The stack lives from deploy to collect, across jobs, under the cluster's lease (benchpipe.lease):
deploy waits for the lease and records the live stack in it; warmup and run only attach to the
stack their point holds; collect stops it and frees the lease. A failed stage stops the stack; its
retry deploys a fresh one itself (and warms it up again before measuring), and only the last
attempt gives the lease up, so a retry never queues behind another point.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchpipe import progress, registry
from benchpipe.errors import HostLost
from benchpipe.lease import Lease
from benchpipe.leased import stop_recorded
from benchpipe.model import Cluster, Mix, write_json_atomic

log = logging.getLogger("benchpipe.stages")


def _now() -> float:
    return time.time()


def holder_of(spec: dict[str, Any], results_dir: str) -> str:
    """The point's folder, absolute: the name a lease gives its holder."""
    return str((Path(results_dir) / spec["experiment"] / spec["baseline"] / spec["point"]).resolve())


def _deployer(cfg: dict[str, Any]) -> Any:
    return registry.load("deployer", cfg["name"])(cfg["settings"])


# --- provision ----------------------------------------------------------------------------------
def provision(config: dict[str, Any], spec: dict[str, Any], out: Path) -> Cluster:
    """Bring the point's cluster up, or reuse it, and record it (with the point's spec) in `out`."""
    from benchpipe.clusters import ensure_cluster

    t0 = _now()
    check = getattr(_deployer(spec["deployer"]), "check", None)
    if check:
        check(spec["deployment"])  # what the stack needs from the controller, before machines cost money
    cluster = ensure_cluster(config, spec)
    write_json_atomic(out, {"spec": spec, "cluster": cluster.to_dict(), "timing": {"provision_start": t0}})
    log.info("point %s/%s/%s on cluster %s", spec["experiment"], spec["baseline"], spec["point"], cluster.name)
    return cluster


# --- deploy -------------------------------------------------------------------------------------
def render(spec: dict[str, Any]) -> dict[str, Any]:
    """The point's concrete deployment (commands or compose file), planned on the cluster's shape."""
    from benchpipe.clusters import planned_cluster

    shape = planned_cluster(f"{spec['experiment']}-{spec['baseline']}", spec["machines"])
    return {**spec, "rendered": _deployer(spec["deployer"]).render(shape, spec["deployment"], spec["env"])}


def _earlier_under_way(spec: dict[str, Any], holder: str, key: str) -> list[str]:
    """Points of an earlier repetition on the same cluster, provisioned and not yet collected."""
    rank = int(spec.get("repetition") or 1)
    if rank <= 1:
        return []
    out = []
    for prov in Path(holder).parent.parent.parent.glob("*/*/*/provision.json"):
        if (prov.parent / "manifest.json").exists():
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            rec = json.loads(prov.read_text())
            if int(rec["spec"].get("repetition") or 1) < rank and Cluster.from_dict(rec["cluster"]).lock_key == key:
                out.append(str(prov.parent.resolve()))
    return out


def _start(
    spec: dict[str, Any], cluster: Cluster, lease: Lease, holder: str, timing: dict[str, Any], log_dir: Path
) -> Any:
    """A fresh stack for the point (whatever stack the lease still names is stopped first), ready,
    its handle recorded in the lease."""
    deployer = _deployer(spec["deployer"])
    rec = lease.acquire(holder, rank=spec.get("repetition"), before=_earlier_under_way(spec, holder, lease.key))
    for old in (rec.get("previous"), {"deployer": rec.get("deployer"), "stack": rec.get("stack")}):
        if old and old.get("stack"):
            log.info("stopping the stack the lease of %s still names", lease.key)
            with contextlib.suppress(Exception):
                stop_recorded(old)
            lease.set_stack(holder, None, None)
    workdir = tempfile.mkdtemp(prefix=f"benchpipe-{spec['experiment']}-{spec['point']}-")
    remote_dir = (
        spec["deployer"]["settings"]
        .get("remote_dir_template", workdir)
        .format(run_id=cluster.run_id, experiment=spec["experiment"], baseline=spec["baseline"], point=spec["point"])
    )
    if remote_dir != workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    timing["deploy_start"] = _now()
    stack = deployer.start(cluster, spec["rendered"], remote_dir)
    try:
        lease.set_stack(holder, spec["deployer"], deployer.handle(stack, lease.key))
        deployer.wait_ready(stack, spec["measure"]["ready_timeout_s"])
        lease.set_stack(holder, spec["deployer"], deployer.handle(stack, lease.key))  # as it runs when ready
    except BaseException:
        _fail(deployer, stack, lease, holder, log_dir, final=False)
        raise
    timing["ready"] = _now()
    log.info("stack ready at %s after %.2f s", stack.endpoint, timing["ready"] - timing["deploy_start"])
    return stack


def deploy(config: dict[str, Any], provisioned: Path, out: Path, log_dir: Path, final: bool) -> None:
    """Render the point's deployment, wait for its cluster's lease, start a fresh stack, wait until
    it is ready; `out` records the deployment and the stack."""
    from benchpipe.clusters import ensure_cluster

    spec = render(_load(provisioned, "the point's provisioning record, written by the provision rule")["spec"])
    cluster = ensure_cluster(config, spec)  # the same cluster, unless it was torn down since
    holder = holder_of(spec, config["results_dir"])
    lease = Lease(cluster.lock_key)
    timing: dict[str, Any] = {}
    try:
        _start(spec, cluster, lease, holder, timing, log_dir)
    except BaseException as e:
        _give_up(lease, holder, final, e)
        if isinstance(e, Exception):
            _explain(config, cluster, e)
        raise
    handle = (lease.read() or {}).get("stack")
    write_json_atomic(
        out, {**spec, "cluster": cluster.to_dict(), "lease": lease.key, "stack": handle, "timing": timing}
    )


# --- warmup and run -----------------------------------------------------------------------------
@contextlib.contextmanager
def _held_stack(
    config: dict[str, Any], deployed: Path, log_dir: Path, final: bool, timing: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], Cluster, Any, Any, bool]]:
    """The point's live stack: the one its lease names, or (a retry, after a failure stopped it)
    a fresh one. Yields (spec, cluster, deployer, stack, fresh). On failure the stack's logs go to
    log_dir/stack and the stack is stopped."""
    spec = _load(deployed, "the point's deployment, written by the deploy rule")
    cluster = Cluster.from_dict(spec["cluster"])
    holder = holder_of(spec, config["results_dir"])
    lease = Lease(spec["lease"])
    deployer = _deployer(spec["deployer"])
    stack = None
    try:
        rec = lease.require(holder)
        fresh = rec.get("stack") is None
        if fresh:
            from benchpipe.clusters import ensure_cluster

            log.info("the point's stack was stopped by a failed attempt: deploying a fresh one")
            cluster = ensure_cluster(config, spec)  # replaced if a machine was lost (aws)
            stack = _start(spec, cluster, lease, holder, timing, log_dir)
        else:
            stack = deployer.attach(rec["stack"])
            if hasattr(deployer, "check_healthy"):
                deployer.check_healthy(stack)
        yield spec, cluster, deployer, stack, fresh
    except BaseException as e:
        if stack is not None:
            _fail(deployer, stack, lease, holder, log_dir, final)
        else:
            _give_up(lease, holder, final, e)
        if isinstance(e, Exception):
            _explain(config, cluster, e)
        raise


def warmup(config: dict[str, Any], deployed: Path, out: Path, log_dir: Path, final: bool) -> None:
    """Offer the point's load for warmup_s (and the quiet pause after it); raw files in `out`."""
    timing: dict[str, Any] = {}
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _held_stack(config, deployed, log_dir, final, timing) as (spec, _cluster, deployer, stack, _fresh):
            _warm(spec, deployer, stack, out, timing, pause=False)
        write_json_atomic(out / "timing.json", timing)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _warm(
    spec: dict[str, Any], deployer: Any, stack: Any, out: Path, timing: dict[str, Any], pause: bool = True
) -> int:
    """The warm-up, and (pause) the quiet gap after it. The warmup job leaves the gap to the run
    job, whose own start falls inside it (_pause_after_warmup)."""
    wl = spec["workload"]
    sent = 0
    if wl["warmup_s"] > 0:
        target, generator = _generator(spec, deployer, stack, timing)
        timing["warmup_start"] = _now()
        with progress.timed("warm-up", wl["warmup_s"], _counter(deployer, stack)):
            rep = generator.run(target, _mix(spec), _rate(spec), wl["warmup_s"], out, "warmup")
        timing["warmup_end"] = _now()
        sent = rep.sent
        log.info("warm-up: %s", _brief(rep))
    if pause and wl["pause_s"] > 0:
        timing["pause_start"] = _now()
        time.sleep(wl["pause_s"])  # the experiment asks for a quiet gap (the seed's sleep 10)
        timing["pause_end"] = _now()
    return sent


def _pause_after_warmup(
    spec: dict[str, Any], deployer: Any, stack: Any, warmed: dict[str, Any], timing: dict[str, Any]
) -> tuple[str, Any]:
    """The run job's side of the quiet gap after the warm-up (the seed's sleep 10): counted from
    the warm-up's end, so this job's start, its generator and the modules its checks need after the
    measurement are ready inside the gap, not after it. The gap is never shorter than pause_s;
    where getting ready took longer, the excess is the harness's (pause_end stays start + pause_s)."""
    prepared = _generator(spec, deployer, stack, timing)
    pause_s = float(spec["workload"]["pause_s"])
    if pause_s > 0:
        import benchpipe.stats.point  # noqa: F401 - the checks after the measurement need it
    timing["run_ready"] = _now()
    if pause_s > 0:
        start = float(warmed.get("warmup_end") or _now())
        timing["pause_start"] = start
        rest = start + pause_s - _now()
        if rest > 0:
            time.sleep(rest)
        timing["pause_end"] = start + pause_s
    return prepared


def run(config: dict[str, Any], deployed: Path, warmed: Path, out: Path, log_dir: Path, final: bool) -> None:
    """Measure the point on its warmed stack and wait until every call finished: the generator's
    files in `out` (the stack's own records are fetched by collect)."""
    from benchpipe.clusters import check_still_whole

    timing: dict[str, Any] = {}
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _held_stack(config, deployed, log_dir, final, timing) as (spec, cluster, deployer, stack, fresh):
            try:
                # The warm-up's effect dies with its stack: a fresh stack is warmed up again.
                if fresh:
                    warm_sent, prepared = _warm(spec, deployer, stack, out, timing), None
                else:
                    warm_sent = _warmup_sent(warmed)
                    prepared = _pause_after_warmup(spec, deployer, stack, _timing(warmed), timing)
                stall = spec["measure"].get("stall")
                _measure(spec, deployer, stack, out, timing, warm_sent, stall=stall, prepared=prepared)
                earlier = {**_load(deployed, "deployment").get("timing", {}), **_timing(warmed)}
                _rerun_unstable(config, spec, cluster, deployer, stack, out, earlier, timing, log_dir, final)
            except Exception as e:
                _explain(config, cluster, e)
                raise
            # Inside the stack's block: a machine lost during the point fails it like any error
            # (stack stopped; the retry deploys afresh, on a replacement cluster where there is one).
            check_still_whole(config, cluster)
        # The machines that measured this point, for its manifest (the cluster may be replaced later).
        cluster.save(out / "cluster.json")
        earlier = {**_load(deployed, "deployment").get("timing", {}), **_timing(warmed)}
        write_json_atomic(out / "timing.json", {**earlier, **timing})
    except BaseException:
        # Also on Ctrl-C: a failed point leaves no raw folder behind (its logs stay in log_dir).
        shutil.rmtree(out, ignore_errors=True)
        raise


def _measure(
    spec: dict[str, Any],
    deployer: Any,
    stack: Any,
    out: Path,
    timing: dict[str, Any],
    sent: int,
    stall: dict[str, Any] | None = None,
    prepared: tuple[str, Any] | None = None,
) -> None:
    wl = spec["workload"]
    target, generator = prepared or _generator(spec, deployer, stack, timing)
    timer = _stall_timer(stack, stall) if stall else None
    timing["measure_start"] = _now()
    if timer:
        timer.start()
    try:
        with progress.timed("measurement", wl["measure_s"], _counter(deployer, stack)):
            rep = generator.run(target, _mix(spec), _rate(spec), wl["measure_s"], out, "measure")
    finally:
        if timer:
            timer.join()
    timing["measure_end"] = _now()
    log.info("measurement: %s", _brief(rep))
    if hasattr(deployer, "counts_calls") and not deployer.counts_calls(stack):
        # A stack that records no call (DeathStarBench's nginx): the generator waited for its own
        # responses, and its output's count is the finished count.
        log.info("%d of %d requests finished (the load generator's own count)", rep.completed, rep.sent)
    elif getattr(deployer, "wait_drained", None):
        # Every call of the stack's lifetime (warm-up included) lands in its records.
        total = sent + rep.sent
        n = deployer.wait_drained(stack, total, timeout_s=max(10.0, wl["measure_s"]))
        timing["drained"] = _now()
        if n < total:
            timing["unfinished"] = total - n  # the stack fell behind the offered load
        log.info("%d of %d calls finished", n, total)
    if hasattr(deployer, "check_healthy"):
        deployer.check_healthy(stack)  # a service that crashed mid-point fails the point


def _stall_timer(stack: Any, stall: dict[str, Any]) -> threading.Thread:
    """The test knob measure.stall: after `after_s`, ask the local stand-in's gateway to hold its
    event loop for `for_s` (POST /_stall), a real stall of the stack under load."""
    import urllib.request

    def stall_now() -> None:
        time.sleep(float(stall["after_s"]))
        url = f"{stack.endpoint}/_stall?seconds={float(stall['for_s'])}"
        log.warning("test knob measure.stall: stalling the gateway for %s s", stall["for_s"])
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=float(stall["for_s"]) + 10)
        except OSError as e:
            log.error("test knob measure.stall: %s: %s", url, e)

    return threading.Thread(target=stall_now, name="stall-knob", daemon=True)


def _rerun_unstable(
    config: dict[str, Any],
    spec: dict[str, Any],
    cluster: Cluster,
    deployer: Any,
    stack: Any,
    out: Path,
    earlier: dict[str, Any],
    timing: dict[str, Any],
    log_dir: Path,
    final: bool,
) -> None:
    """measure.rerun_unstable: K. A measurement flagged unstable (stability.rerun_flags) is kept
    whole in out/attempts/<k>/ (the generator's files, the stack's records, its timing) and the
    point is measured again on a fresh stack, warmed up again; at most K times. The last attempt's
    files stay where collect expects them; summaries read every attempt and use the stable one."""
    from benchpipe.stats.point import announced_checks, check_point
    from benchpipe.stats.stability import rerun_reasons

    k_max, th = announced_checks()
    if not k_max:
        return
    holder = holder_of(spec, config["results_dir"])
    lease = Lease(spec["lease"]) if "lease" in spec else None
    for attempt in range(1, k_max + 1):
        staged = out / "attempts" / str(attempt)
        partial = out / f".attempt-{attempt}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for f in out.iterdir():
            if f.is_file():
                _link_or_copy(str(f), str(partial / f.name))
        write_json_atomic(partial / "timing.json", {**earlier, **timing, "attempt": attempt})
        deployer.fetch(stack, partial)
        _record_series(partial)
        reasons = rerun_reasons(check_point(partial, {}, spec["params"], th).flags, th)
        if reasons and timing.get("unfinished"):
            # Overload, like a generator that fell behind: the stack had not answered every call at
            # the end of its wait, so a trend or a stall is the backlog, and a fresh stack under the
            # same load would show it again. The flags stay in the summary.
            log.warning(
                "attempt %d flagged (%s) with %d calls unfinished (the stack fell behind): not measured again",
                attempt,
                "; ".join(str(f) for f in reasons),
                timing["unfinished"],
            )
            reasons = []
        if not reasons:
            shutil.rmtree(partial)  # a stable measurement: collect fetches its records as usual
            if attempt > 1:
                timing["attempt"] = attempt
            return
        log.warning(
            "attempt %d flagged (%s): kept in %s; measuring again on a fresh stack",
            attempt,
            "; ".join(str(f) for f in reasons),
            staged,
        )
        staged.parent.mkdir(exist_ok=True)
        partial.rename(staged)
        for f in out.iterdir():
            if f.is_file():
                f.unlink()  # kept in attempts/<k>/
        if lease is None:
            return
        deployer.stop(stack)
        lease.set_stack(holder, None, None)
        timing.clear()
        stack = _start(spec, cluster, lease, holder, timing, log_dir)
        try:
            sent = _warm(spec, deployer, stack, out, timing)
            _measure(spec, deployer, stack, out, timing, sent)
        except BaseException:
            _fail(deployer, stack, lease, holder, log_dir, final)
            raise
        earlier = {}
        timing["attempt"] = attempt + 1


def _counter(deployer: Any, stack: Any) -> Any:
    return deployer.completed_counter(stack) if getattr(deployer, "completed_counter", None) else None


def _warmup_sent(warm_dir: Path) -> int:
    try:
        return int(json.loads((warm_dir / "warmup.json").read_text()).get("sent", 0))
    except (OSError, ValueError):
        return 0


def _timing(warm_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((warm_dir / "timing.json").read_text())
    except (OSError, ValueError):
        return {}


# --- collect ------------------------------------------------------------------------------------
def collect(
    config: dict[str, Any],
    deployed: Path,
    measured: Path,
    raw: Path,
    manifest: Path,
    log_dir: Path,
    siblings: list[str],
) -> None:
    """Fetch the stack's records, stop the stack (freeing the cluster), check the point's files and
    write its manifest. `raw` = the generator's files (from run, hard-linked) + the fetched records;
    it appears whole or not at all. The cluster goes after the last point it holds."""
    from benchpipe.clusters import cluster_file, teardown_cluster
    from benchpipe.collect import write_manifest
    from benchpipe.errors import RawDataError, StackError

    spec = _load(deployed, "the point's deployment, written by the deploy rule")
    holder = holder_of(spec, config["results_dir"])
    lease = Lease(spec["lease"])
    rec = lease.read()
    if rec is None or rec["holder"] != holder or not rec.get("stack"):
        held = f"held by {rec['holder']}" if rec else "free"
        raise StackError(
            f"{deployed}: the point's stack is no longer up (its lease is {held}), so its records cannot be"
            " fetched; run the same command again to re-measure the point"
        )
    deployer = _deployer(rec["deployer"])
    stack = deployer.attach(rec["stack"])
    staged = raw.with_name(f".{raw.name}.partial")
    shutil.rmtree(staged, ignore_errors=True)
    timing: dict[str, Any] = {}
    try:
        if hasattr(deployer, "check_healthy"):
            deployer.check_healthy(stack)
        _link_tree(measured, staged)
        deployer.fetch(stack, staged)
        timing["fetched"] = _now()
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        _fail(deployer, stack, lease, holder, log_dir, final=True)
        raise
    # The stack goes first, whatever the files turn out to be: the next point's deploy waits for
    # its cluster, and what is derived from the files needs no stack.
    timing.update(stop_point_stack(config, spec))
    _record_series(staged)
    shutil.rmtree(raw, ignore_errors=True)
    staged.rename(raw)
    cpath = cluster_file(Path(config["results_dir"]), spec["experiment"], spec["baseline"])
    measured_on = raw / "cluster.json"
    cluster = Cluster.load(measured_on) if measured_on.exists() else Cluster.load(cpath) if cpath.exists() else None
    try:
        facts = write_manifest(spec, cluster, raw, manifest, _repo(), timing)
    except RawDataError as e:
        # Unusable files: kept beside the point's logs, and the point counts as not measured.
        kept = log_dir / f"rejected-raw-{time.strftime('%Y%m%dT%H%M%S')}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(raw), kept)
        raise RawDataError(
            f"{e}; the raw files were moved to {kept}; run the same command again to re-measure"
        ) from None
    if facts["fell_behind"]:
        log.warning("point %s: the load generator fell behind: %s", spec["point"], facts["generator"])
    if all(Path(s).exists() for s in siblings):
        teardown_cluster(config, cpath)


def _record_series(raw: Path) -> None:
    """The per-second series of the warm-up and the measurement (raw/series.json), where the stack
    records every call. Derived data: a failure to derive it is logged, the point is kept."""
    from benchpipe.stats.point import write_series

    try:
        write_series(raw)
    except Exception as e:  # the raw files are what counts; summaries recompute the series
        log.warning("no series.json for %s: %s", raw, e)


def _link_tree(src: Path, dest: Path) -> None:
    """`dest` as a copy of `src` made of hard links (no second copy of large files on disk)."""
    shutil.copytree(src, dest, copy_function=_link_or_copy)


def _link_or_copy(a: str, b: str) -> None:
    try:
        os.link(a, b)
    except OSError:
        shutil.copy2(a, b)


def _repo() -> Path:
    return Path(__file__).resolve().parent.parent


def stop_point_stack(config: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Stop the point's stack and free its cluster's lease; idempotent. Returns timing."""
    holder = holder_of(spec, config["results_dir"])
    lease = Lease(spec["lease"])
    rec = lease.read()
    if rec is not None and rec["holder"] == holder:
        try:
            stop_recorded(rec)
        finally:
            lease.release(holder)
    return {"stopped": _now()}


def _fail(deployer: Any, stack: Any, lease: Lease, holder: str, log_dir: Path | None, final: bool) -> None:
    """A stage failed with the stack up: its logs are kept, it is stopped, and the lease says so
    (a retry deploys afresh); the last attempt frees the lease for the cluster's other points."""
    if log_dir is not None:
        with contextlib.suppress(Exception):
            deployer.collect_logs(stack, log_dir / "stack")
            log.error("stack logs collected in %s", log_dir / "stack")
    try:
        deployer.stop(stack)
    except Exception as e:  # the stage's own error is the one to report (a lost host fails both)
        log.error("stopping the stack failed too: %s", e)
    finally:
        with contextlib.suppress(Exception):
            if final:
                lease.release(holder)
            else:
                lease.set_stack(holder, None, None)


def _explain(config: dict[str, Any], cluster: Cluster, error: Exception) -> None:
    """A machine lost during the stage is the better explanation of its failure (raised if so)."""
    from benchpipe.clusters import check_still_whole

    if not isinstance(error, HostLost):
        check_still_whole(config, cluster, error)


def _give_up(lease: Lease, holder: str, final: bool, error: BaseException) -> None:
    """A stage failed with no stack up: only the last attempt (or Ctrl-C) frees the lease."""
    if final or isinstance(error, KeyboardInterrupt):
        lease.release(holder)


def _load(path: Path, what: str) -> dict[str, Any]:
    from benchpipe.collect import load_json

    return load_json(path, what)


def _mix(spec: dict[str, Any]) -> Mix:
    return Mix.from_config(spec["workload"]["mix"], default_path=spec["workload"]["path"])


def _generator(spec: dict[str, Any], deployer: Any, stack: Any, timing: dict[str, Any]) -> tuple[str, Any]:
    gen_cfg = spec["generator"]
    generator = registry.load("generator", gen_cfg["name"])(gen_cfg["settings"])
    if hasattr(generator, "bind"):
        generator.bind(stack, spec)  # the job kind runs its driver through the stack (stack.run_job)
    if hasattr(deployer, "load_context"):
        return _remote_generator(deployer.load_context(stack), generator, gen_cfg, stack.endpoint, timing)
    timing["generator_host"] = "controller"
    return stack.endpoint, generator


def _remote_generator(
    ctx: dict[str, Any], generator: Any, gen_cfg: dict[str, Any], endpoint: str, timing: dict[str, Any]
) -> tuple[str, Any]:
    """The load runs on the cluster's client machine (the gateway's port is open only inside the
    cluster): wrk2, the switching client (closedloop), or a sequential client the deployer names.
    Where wrk2 is missing, the built-in generator runs from the controller instead (recorded in the
    point's timing as generator_host)."""
    from benchpipe import remote

    client = ctx.get("client")
    remote_sequential = gen_cfg["name"] == "sequential" and ctx.get("sequential_command")
    if not (gen_cfg["name"] in ("wrk2", "closedloop") or remote_sequential) or client is None:
        timing["generator_host"] = "controller"
        return endpoint, generator

    def runner(argv: list[str], timeout_s: float) -> str:
        return remote.run(client, " ".join(argv), timeout_s)

    if remote_sequential:
        # The experiment's own sequential client on the host (mu2sls: seq.py at the ClusterIP).
        generator.s.update(runner=runner, command=ctx["sequential_command"])
        timing["generator_host"] = client.name
        return ctx["target"], generator
    if gen_cfg["name"] == "closedloop":
        generator.s.update(runner=runner)
        timing["generator_host"] = client.name
        return ctx["target"], generator
    binary = gen_cfg["settings"].get("binary", "wrk")
    has_wrk2 = remote.run(client, f"{binary} --help 2>&1 | grep -q -- --rate && echo yes || true").strip() == "yes"
    if not has_wrk2:
        log.warning("no wrk2 on %s: the built-in generator runs from the controller instead", client.name)
        timing["generator_host"] = "controller (no wrk2 on the client)"
        return endpoint, registry.load("generator", "openloop")(gen_cfg["settings"])

    def put(path: str, text: str) -> None:
        # The point's folder is made on the stack's hosts, not on the client: the script makes its own.
        remote.run(client, f"mkdir -p {shlex.quote(str(Path(path).parent))}")
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
            f.write(text)
            f.flush()
            remote.put(client, f.name, path)

    generator.s.update(
        runner=runner,
        put=put,
        script_dir=ctx["work_dir"],
        # What the deployer's ingress needs of each request (Knative: a Host header per service).
        **ctx.get("generator_settings", {}),
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
