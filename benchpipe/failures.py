"""Why a point has no result, in one line from its stage logs, for the end-of-run message: the
user (and a CI log) sees the cause without opening five files."""

from __future__ import annotations

import re
from pathlib import Path

STAGES = ("provision", "deploy", "warmup", "run", "collect")
# A logged error ("... ERROR message") or the last line of a traceback ("pkg.SomeError: message").
_ERROR = re.compile(r"\sERROR\s|^[\w.]*(Error|Exception|Interrupt)\b")


def why_failed(log_dir: Path, width: int = 300) -> str | None:
    """The last error line of the latest stage whose log has one, as "<stage>: <line>"."""
    found = None
    for stage in STAGES:
        try:
            lines = (log_dir / f"{stage}.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [ln.strip() for ln in lines if _ERROR.search(ln)]
        if errors:
            found = f"{stage}: {errors[-1][:width]}"
    return found
