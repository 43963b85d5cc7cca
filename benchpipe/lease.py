"""A cluster's lease: which point's stack may be up on it, from deploy to collect.

A point's stages are separate Snakemake jobs, so the stack outlives each of them. The lease is a
small JSON file per cluster key (beside the flock that guards it) naming the point that holds the
cluster and its stack's handle. Deploy waits for the lease (the deploy job takes no cores, so a
waiting deploy never keeps the holder's next stage from starting); warmup and run only check that
they hold it; collect, a teardown and a final failure release it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchpipe.errors import StackError
from benchpipe.filelock import locked

log = logging.getLogger("benchpipe.lease")


def lock_dir() -> Path:
    # Read at call time: tests (and users) point it elsewhere with the environment.
    return Path(os.environ.get("BENCHPIPE_LOCK_DIR", Path.home() / ".cache" / "benchpipe" / "locks"))


class LeaseHeld(StackError):
    """The cluster is held by another point."""


@dataclass
class Lease:
    key: str

    @property
    def path(self) -> Path:
        return lock_dir() / (re.sub(r"[^A-Za-z0-9_.-]", "_", self.key) + ".lease")

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.path)

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("lease %s is corrupt; treating it as free", self.path)
            return None

    def _write(self, rec: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    @property
    def waiting_path(self) -> Path:
        return self.path.with_suffix(".waiting")

    def _waiting(self) -> dict[str, Any]:
        try:
            return json.loads(self.waiting_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _set_waiting(self, holder: str, rank: int | None) -> None:
        """Record (rank given) or forget (None) that `holder` waits for this lease."""
        with self._locked():
            waiting = {h: w for h, w in self._waiting().items() if h != holder and _alive(int(w.get("pid", -1)))}
            if rank is not None:
                waiting[holder] = {"rank": rank, "pid": os.getpid()}
            tmp = self.waiting_path.with_suffix(".wtmp")
            tmp.write_text(json.dumps(waiting, sort_keys=True))
            os.replace(tmp, self.waiting_path)

    def try_acquire(self, holder: str, rank: int | None = None) -> dict[str, Any] | None:
        """Take the lease for `holder` (a point folder) if it is free, stale, or already its own,
        and no live waiter of a lower `rank` (an earlier repetition) waits for it. Returns the
        lease record, or None when another live point holds it or goes first."""
        with self._locked():
            rec = self.read()
            if rec is not None and rec["holder"] != holder and not stale(rec):
                return None
            if rank is not None and (rec is None or rec["holder"] != holder):
                earlier = [
                    h
                    for h, w in self._waiting().items()
                    if h != holder and w.get("rank", rank) < rank and _alive(int(w.get("pid", -1)))
                ]
                if earlier:
                    return None
            if rec is None or rec["holder"] != holder:
                if rec is not None:
                    log.warning("lease of %s: the hold of %s is stale; taking it", self.key, rec["holder"])
                old = rec if rec is not None and rec.get("stack") else None
                rec = {"key": self.key, "holder": holder, "acquired": time.time(), "stack": None, "deployer": None}
                # A stale holder's stack may still be up: the new holder stops it before deploying.
                rec["previous"] = {"deployer": old["deployer"], "stack": old["stack"]} if old else None
            # The job now working under the lease (see stale()).
            rec["pid"] = os.getpid()
            self._write(rec)
            return rec

    def acquire(
        self,
        holder: str,
        poll_s: float = 0.05,
        say_every_s: float = 30.0,
        rank: int | None = None,
        before: Sequence[str] = (),
        grace_s: float = 5.0,
    ) -> dict[str, Any]:
        """Wait until the lease is `holder`'s; give up if the scheduler that started this job is gone
        (a killed Snakemake: nobody would ever run the holder's next stage). Waiters with a `rank`
        (the point's repetition) go in rank order: repetition 1 of every waiting point before any
        repetition 2, so one point's repetitions are never measured back to back. `before`: points
        of lower rank under way (provisioned, not collected) whose deploys Snakemake may be starting
        at this moment: they get up to `grace_s` to queue (a point that failed never does)."""
        if rank is None or (self.read() or {}).get("holder") == holder:
            return self._acquire(holder, poll_s, say_every_s, None)
        self._set_waiting(holder, rank)
        try:
            self._let_earlier_queue(holder, before, grace_s, poll_s)
            return self._acquire(holder, poll_s, say_every_s, rank)
        finally:
            with contextlib.suppress(OSError):
                self._set_waiting(holder, None)

    def _let_earlier_queue(self, holder: str, before: Sequence[str], grace_s: float, poll_s: float) -> None:
        deadline = time.monotonic() + grace_s
        while before and time.monotonic() < deadline:
            rec = self.read() or {}
            queued = set(self._waiting()) | {rec.get("holder")}
            if all(h in queued or Path(h, "deploy.json").exists() or Path(h, "manifest.json").exists() for h in before):
                return
            time.sleep(poll_s)

    def _acquire(self, holder: str, poll_s: float, say_every_s: float, rank: int | None) -> dict[str, Any]:
        t0 = time.monotonic()
        said = -say_every_s
        scheduler = scheduler_pid()
        while True:
            rec = self.try_acquire(holder, rank)
            if rec is not None:
                waited = time.monotonic() - t0
                if waited > 0.5:
                    log.info("waited %.1f s for cluster %s", waited, self.key)
                return rec
            if time.monotonic() - said >= say_every_s:
                said = time.monotonic()
                other = self.read() or {}
                log.info(
                    "cluster %s is held by point %s (deployed, not yet collected); waiting while the run (pid %d) "
                    "goes on. If no run is measuring it, `snakemake teardown` in its results folder releases it",
                    self.key,
                    other.get("holder"),
                    scheduler,
                )
            if scheduler > 1 and not _alive(scheduler):
                raise LeaseHeld(
                    f"the run that started this job (pid {scheduler}) is gone; stopped waiting for {self.key}"
                )
            if scheduler > 1 and stopping_marker(scheduler).exists():
                raise LeaseHeld(
                    f"the run that started this job (pid {scheduler}) is stopping (SIGTERM); "
                    f"stopped waiting for {self.key}"
                )
            time.sleep(poll_s)

    def require(self, holder: str) -> dict[str, Any]:
        """The lease record, which must be `holder`'s: later stages never wait, they only check."""
        with self._locked():
            rec = self.read()
        if rec is None or rec["holder"] != holder:
            raise LeaseHeld(
                f"cluster {self.key} is not held by {holder} "
                f"({'free' if rec is None else 'held by ' + rec['holder']}): its stack is gone"
            )
        return rec

    def set_stack(self, holder: str, deployer: dict[str, Any] | None, stack: dict[str, Any] | None) -> None:
        with self._locked():
            rec = self.read()
            if rec is None or rec["holder"] != holder:
                raise LeaseHeld(f"cluster {self.key}: lease lost by {holder}")
            rec.update(deployer=deployer, stack=stack)
            self._write(rec)

    def release(self, holder: str | None = None) -> bool:
        """Free the lease (only `holder`'s, when given); returns whether it was held."""
        with self._locked():
            rec = self.read()
            if rec is None or (holder is not None and rec["holder"] != holder):
                return False
            self.path.unlink(missing_ok=True)
            return True


def stale(rec: dict[str, Any]) -> bool:
    """A hold protects nothing once its point is finished (manifest written) or gone: its results
    folder deleted, or no deploy record while the job that took the lease is dead."""
    point = Path(rec["holder"])
    if (point / "manifest.json").exists() or not point.parent.exists():
        return True
    return not (point / "deploy.json").exists() and not _alive(int(rec.get("pid", -1)))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def announce_scheduler() -> None:
    """Called by the Snakemake process as it parses the workflow: its jobs inherit the variable."""
    os.environ["BENCHPIPE_SCHEDULER_PID"] = str(os.getpid())
    stopping_marker(os.getpid()).unlink(missing_ok=True)  # an earlier run's, under a reused pid


def stopping_marker(pid: int) -> Path:
    return lock_dir() / f"stopping-{pid}"


def watch_for_stop() -> None:
    """Called in the scheduler once Snakemake has set its own SIGTERM handler ("exit after the
    running jobs finish"): SIGTERM also leaves a marker, so a deploy waiting for a cluster gives
    up. Otherwise it would wait for ever: the holder's next stage will never be started, and
    Snakemake waits for the waiting deploy."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            lock_dir().mkdir(parents=True, exist_ok=True)
            stopping_marker(os.getpid()).touch()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def scheduler_pid() -> int:
    """The Snakemake that started this job: it says so in the environment (rules/common.smk);
    else the process that started this job's shell."""
    if os.environ.get("BENCHPIPE_SCHEDULER_PID", "").isdigit():
        return int(os.environ["BENCHPIPE_SCHEDULER_PID"])
    try:
        return int(Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def all_leases() -> list[tuple[Lease, dict[str, Any]]]:
    """Every lease on this machine with its record."""
    d = lock_dir()
    out = []
    for p in sorted(d.glob("*.lease")) if d.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError):
            rec = json.loads(p.read_text())
            out.append((Lease(rec["key"]), rec))
    return out
