"""Free space on the results disk: checked before a run, and named when a run ends short of it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

# The errors a full disk (or a full quota) shows up as.
FULL = {errno.ENOSPC, errno.EDQUOT}


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_mb(path: str | Path) -> float:
    st = os.statvfs(_existing(Path(path)))
    return st.f_bavail * st.f_frsize / 2**20


def shortage(path: str | Path, min_free_mb: float) -> str | None:
    """A sentence naming the folder, what is free and what is needed; None if there is enough."""
    free = free_mb(path)
    if free >= min_free_mb:
        return None
    return (
        f"the disk of {path} has {free:.1f} MB free, less than results_min_free_mb ({min_free_mb:g} MB): "
        "free space there (or point results_dir elsewhere), then run the same command again; "
        "the finished points are kept"
    )
