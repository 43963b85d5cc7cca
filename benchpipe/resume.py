"""What an earlier run left between a point's stages, and whether it still holds.

A point stopped between stages (`--until deploy`, an error elsewhere, Ctrl-C) keeps its stage
files. They are worth continuing from only while what they describe is still there: a deploy
record while the point still holds its cluster's lease (its stack up), a provisioning record while
its cluster is up. Otherwise they are void, and removing them makes Snakemake redo those stages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchpipe.lease import Lease

# The stage files after deploy, in order: void with the stack.
STACK_FILES = ("deploy.json", "warmup", "measured", ".raw.partial", "raw")


def void_stage_files(point: Path, cluster_file: Path) -> list[Path]:
    """The stage files of an unfinished point that no longer describe anything live."""
    if (point / "manifest.json").exists():
        return []
    void: list[Path] = []
    prov = point / "provision.json"
    if prov.exists() and not cluster_file.exists():
        void.append(prov)
    deploy = point / "deploy.json"
    if deploy.exists():
        try:
            key = json.loads(deploy.read_text())["lease"]
            rec = Lease(key).read()
            held = rec is not None and rec["holder"] == str(point.resolve())
        except (OSError, ValueError, KeyError, TypeError):
            held = False
        if not held or void:
            void += [point / f for f in STACK_FILES if (point / f).exists()]
    return void


def remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def pending(point: Path) -> bool:
    """Provisioned (or further) and not collected: its cluster must stay up."""
    return (point / "provision.json").exists() and not (point / "manifest.json").exists()
