"""The load-generator interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from benchpipe.model import GeneratorReport, Mix


class LoadGenerator(Protocol):
    def __init__(self, settings: dict[str, Any]) -> None: ...

    def run(self, target: str, mix: Mix, rate: float, duration_s: float, out_dir: Path, label: str) -> GeneratorReport:
        """Offer `rate` requests/s of `mix` to `target` for `duration_s`; raw output under out_dir/label*."""
        ...
