"""Stacks held under cluster leases: stop the one a lease record names, or every one a results
folder's points hold (teardown). Below both the point stages and the clusters' teardown."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from benchpipe import registry
from benchpipe.lease import all_leases

log = logging.getLogger("benchpipe.leased")


def stop_recorded(rec: dict[str, Any]) -> None:
    """Stop the stack a lease record names (its deployer and handle), if it names one."""
    if rec.get("stack"):
        cfg = rec["deployer"]
        d = registry.load("deployer", cfg["name"])(cfg["settings"])
        d.stop(d.attach(rec["stack"]))


def stop_leased_stacks(results_dir: str) -> list[str]:
    """Every stack a point of this results folder holds: stopped, its lease freed (teardown)."""
    root = str(Path(results_dir).resolve()) + "/"
    done = []
    for lease, rec in all_leases():
        if not rec.get("holder", "").startswith(root):
            continue
        try:
            stop_recorded(rec)
            done.append(rec["holder"])
        except Exception as e:  # keep going: one failed stop must not leave the others up
            log.error("stopping the stack of %s failed: %s", rec["holder"], e)
        finally:
            lease.release(rec["holder"])
    return done
