"""Decoding the `output` field of async_results entries (base64 of the function's JSON output)."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from benchpipe.errors import RawDataError


def decode_outputs(path: Path) -> list[tuple[int, int, dict[str, Any]]]:
    """(dispatchTs, finishedTs, output) per successful entry, in file order."""
    out = []
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise RawDataError(f"{path}: missing") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if rec.get("success") is False:
                continue
            raw = rec.get("output") or ""
            output = json.loads(base64.b64decode(raw)) if raw else {}
        except (ValueError, binascii.Error):
            raise RawDataError(f"{path}: line {i}: entry or its output is not valid JSON/base64") from None
        out.append((int(rec["dispatchTs"]), int(rec["finishedTs"]), output if isinstance(output, dict) else {}))
    return out
