"""The shell commands a markdown page shows for a profile, read from the code blocks it marks.

Convention (README.md, "Contributing"): an HTML comment `<!-- commands: local -->` on the line
before a code block (indented by four spaces, or fenced) says that every line of that block is a
command a user types on this machine, in the order shown, after the set-up command. GitHub does
not render the comment. A line that is empty or starts with `#` is not a command; a trailing
`# ...` is a comment the shell ignores; a line ending in a backslash continues on the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"^\s*<!--\s*commands:\s*(?P<profile>[\w-]+)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})")


class MarkdownError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    source: str  # file:line of the command's first line
    text: str


def _block(lines: list[str], start: int, where: str) -> tuple[list[tuple[int, str]], int]:
    """The code block that starts at or after `start` (blank lines skipped): its (line number, text)
    lines and the index after it."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines):
        raise MarkdownError(f"{where}: expected a code block after the marker, found the end of the file")
    fence = FENCE.match(lines[i])
    body: list[tuple[int, str]] = []
    if fence:
        close = fence.group("fence")
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(close):
            body.append((i + 1, lines[i]))
            i += 1
        if i == len(lines):
            raise MarkdownError(f"{where}: the fenced code block after the marker is never closed")
        return body, i + 1
    if not lines[i].startswith("    "):
        raise MarkdownError(
            f"{where}: expected a code block (indented by four spaces or fenced) after the marker, "
            f"got {lines[i].strip()[:60]!r} on line {i + 1}"
        )
    while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
        body.append((i + 1, lines[i][4:]))
        i += 1
    return body, i


def commands(path: Path, profile: str = "local", name: str | None = None) -> list[Command]:
    """Every command of the blocks marked for `profile` in the file, in order."""
    name = name or path.name
    lines = path.read_text().splitlines()
    out: list[Command] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        body, i = _block(lines, i + 1, f"{name}:{i + 1}")
        if m.group("profile") != profile:
            continue
        pending: list[str] = []
        first = 0
        for number, text in body:
            line = text.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            first = first or number
            if line.endswith("\\"):
                pending.append(line[:-1].rstrip())
                continue
            out.append(Command(f"{name}:{first}", " ".join([*pending, line])))
            pending, first = [], 0
        if pending:
            raise MarkdownError(f"{name}:{first}: the command ends with a backslash and no next line")
    return out
