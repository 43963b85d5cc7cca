"""kubectl's JSONPath templates, as far as the deployer uses them: {.a.b}, [*] and [n], {range
...}{end}, quoted literals ({"\n"}) and text between; anything else is an error as kubectl's."""

from __future__ import annotations

import json
import re
from typing import Any

TOKEN = re.compile(r"\{([^{}]*)\}")


class JsonPathError(ValueError):
    pass


def _select(values: list[Any], path: str) -> list[Any]:
    if not path.startswith("."):
        raise JsonPathError(f"unrecognized identifier {path}")
    for part in re.findall(r"\.([A-Za-z0-9_-]+)|\[(\*|\d+)\]", path):
        name, index = part
        nxt: list[Any] = []
        for v in values:
            if name:
                if isinstance(v, dict) and name in v:
                    nxt.append(v[name])
            elif isinstance(v, list):
                nxt += v if index == "*" else v[int(index) : int(index) + 1]
        values = nxt
    return values


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def render(template: str, doc: Any) -> str:
    parts: list[tuple[str, str]] = []  # (kind, value): text | expr
    pos = 0
    for m in TOKEN.finditer(template):
        if m.start() > pos:
            parts.append(("text", template[pos : m.start()]))
        parts.append(("expr", m.group(1).strip()))
        pos = m.end()
    if pos < len(template):
        parts.append(("text", template[pos:]))
    out, _ = _run(parts, 0, [doc])
    return out


def _run(parts: list[tuple[str, str]], i: int, scope: list[Any]) -> tuple[str, int]:
    out = []
    while i < len(parts):
        kind, value = parts[i]
        i += 1
        if kind == "text":
            out.append(value)
        elif value == "end":
            return "".join(out), i
        elif value.startswith("range "):
            items = _select(scope, value[6:].strip())
            body_start = i
            end = body_start
            for item in items:
                text, end = _run(parts, body_start, [item])
                out.append(text)
            if not items:  # skip the body to its {end}
                _, end = _run(parts, body_start, [])
            i = end
        elif value.startswith('"') and value.endswith('"'):
            out.append(json.loads(value))
        else:
            out.append(" ".join(_text(v) for v in _select(scope, value)))
    return "".join(out), i
