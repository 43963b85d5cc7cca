"""The Antipode suite's row of the fault matrix: the replica or the queue (the writer region's Redis,
which holds the notification stream) killed mid-point fails that point with its log, and the plain
rerun of the same command measures only the failed points."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from benchpipe.lease import all_leases
from tests.test_antipode_e2e import make_workdir
from tests.test_faults import assert_resumes, checksums, start, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]
EXP = "antipode_dsb"


def measuring_stacks() -> dict[str, dict]:
    """Point folder -> stack handle, for points whose requests are being answered."""
    out = {}
    for _lease, rec in all_leases():
        stack = rec.get("stack")
        if not stack:
            continue
        results = Path(stack["results_path"])
        if results.exists() and results.read_bytes().count(b"\n") >= 10:
            out[rec["holder"]] = stack
    return out


def kill(stack: dict, service: str) -> None:
    pid = stack["pids"][service]
    # The recorded command line guards against a reused pid.
    assert Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() == stack["cmdlines"][service]
    os.kill(pid, signal.SIGKILL)


def test_replica_or_queue_killed_mid_point_fails_that_point_and_the_rerun_measures_only_it(tmp_path):
    wd = make_workdir(tmp_path, pairs=("us-eu",), rates=(30, 40))  # 4 points: 2 rates x Original/Antipode
    proc = start(wd, target=f"figures/{EXP}.png")
    victims = ["replica", "primary"]  # the replica in the first point measuring, the queue in the next
    killed: dict[str, str] = {}

    def kill_next() -> bool:
        for holder, stack in measuring_stacks().items():
            if holder not in killed and victims:
                killed[holder] = victims.pop(0)
                kill(stack, killed[holder])
        return not victims or proc.poll() is not None

    wait_for(kill_next, 120, "two points to measure")
    proc.wait(timeout=120)
    assert proc.returncode != 0 and len(killed) == 2, proc.stdout.read().decode()[-3000:]

    results = wd / "results" / EXP
    measured = sorted(str(p.parent) for p in results.glob("*/*/manifest.json"))
    assert len(measured) == 2 and not set(measured) & set(killed), "the other points are measured"
    for holder, service in killed.items():
        point = Path(holder)
        # Nothing that looks measured: no manifest, no raw folder.
        assert not (point / "manifest.json").exists() and not (point / "raw").exists()
        logs = wd / "results" / "logs" / point.relative_to(wd / "results")
        # The run's log names the part that died; the stack's logs are kept beside it.
        assert f"stack service {service!r} is no longer running" in (logs / "run.log").read_text()
        reader = (logs / "stack" / "reader.log").read_text()
        # The reader noticed too, instead of writing traces of a race that no longer happens.
        assert "antipode.reader: lost the" in reader, reader[-2000:]
        if service == "primary":
            assert "antipode.writer: lost the primary" in (logs / "stack" / "writer.log").read_text()
    assert not [rec for _lease, rec in all_leases() if rec.get("stack")], "no stack left up"

    assert_resumes(wd, checksums(wd / "results", EXP), 2, exp=EXP)
    assert len(list(results.glob("*/*/manifest.json"))) == 4
