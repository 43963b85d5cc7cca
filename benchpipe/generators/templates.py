"""Request body templates: each request of a mix entry gets its own body.

A mix entry may declare `vars:` (ordered name -> distribution) and use `${name}` in the strings of
its body. A string that is exactly `${name}` becomes the value itself (a number stays a number);
`${name}` inside a longer string is replaced by the value's text. Distributions:

    {int: [lo, hi]}                    uniform integer, both ends included; `string: true` quotes it
    {choice: [a, b, ...], weights: [..]}  one of the values (weights optional)
    {choice_file: path}                one line of a file (relative to the repository)
    {chars: N, alphabet: "..."}        N characters drawn from the alphabet (default: letters+digits)
    {uuid: 4}                          a fresh random UUID, never from the seeded generator: a run
                                       repeated with the same seed must not repeat request ids

The built-in generator renders bodies in Python (`MixTemplates`), wrk2 in Lua (`lua_source`): the
same parts and the same distributions, each language with its own random generator.

An entry with `encoding: form` sends its body's fields as a form (`a=1&b=x+y`, the values' text
urlencoded), which is what a frontend reading POST arguments (DeathStarBench's nginx) expects.
"""

from __future__ import annotations

import json
import random
import re
import string
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchpipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ALPHABET = string.ascii_letters + string.digits
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
KINDS = ("int", "choice", "choice_file", "chars", "uuid")


@dataclass(frozen=True)
class Var:
    name: str
    kind: str
    values: tuple[Any, ...] = ()  # choice / choice_file
    weights: tuple[float, ...] = ()
    lo: int = 0
    hi: int = 0
    as_string: bool = False
    n: int = 0
    alphabet: str = ALPHABET

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "int":
            v = rng.randint(self.lo, self.hi)
            return str(v) if self.as_string else v
        if self.kind in ("choice", "choice_file"):
            if self.weights:
                return rng.choices(self.values, weights=self.weights)[0]
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "chars":
            return "".join(rng.choice(self.alphabet) for _ in range(self.n))
        return str(uuid.uuid4())


def parse_var(name: str, spec: Any, where: str, base_dir: Path = REPO) -> Var:
    """A Var from its config; a clear error naming `where` (file and key) for a bad one."""
    if not isinstance(spec, dict) or len(set(spec) & set(KINDS)) != 1:
        raise ConfigError(
            f"{where}.vars.{name}: expected a mapping with exactly one of {', '.join(KINDS)}, got {spec!r}"
        )
    kind = next(k for k in KINDS if k in spec)
    arg = spec[kind]
    if kind == "int":
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(x, int) for x in arg) and arg[0] <= arg[1]):
            raise ConfigError(f"{where}.vars.{name}.int: expected [lo, hi] integers with lo <= hi, got {arg!r}")
        return Var(name, kind, lo=arg[0], hi=arg[1], as_string=bool(spec.get("string", False)))
    if kind in ("choice", "choice_file"):
        if kind == "choice_file":
            path = base_dir / str(arg)
            try:
                values = [line for line in path.read_text().splitlines() if line.strip()]
            except OSError:
                raise ConfigError(f"{where}.vars.{name}.choice_file: expected a readable file, got {path}") from None
        else:
            values = arg if isinstance(arg, list) else []
        if not values:
            raise ConfigError(f"{where}.vars.{name}.{kind}: expected at least one value")
        weights = spec.get("weights", [])
        if weights and (len(weights) != len(values) or any(not isinstance(w, int | float) or w < 0 for w in weights)):
            raise ConfigError(f"{where}.vars.{name}.weights: expected {len(values)} numbers >= 0, got {weights!r}")
        return Var(name, kind, values=tuple(values), weights=tuple(float(w) for w in weights))
    if kind == "chars":
        alphabet = str(spec.get("alphabet", ALPHABET))
        if not isinstance(arg, int) or arg < 0 or not alphabet:
            raise ConfigError(f"{where}.vars.{name}.chars: expected a length >= 0 and a non-empty alphabet")
        return Var(name, kind, n=arg, alphabet=alphabet)
    if arg != 4:
        raise ConfigError(f"{where}.vars.{name}.uuid: expected 4 (a random UUID), got {arg!r}")
    return Var(name, kind)


# A body is a list of parts: literal JSON text, or (var name, whole) where `whole` means the var
# replaces a whole JSON string (its JSON value goes in) rather than text inside one; in a form body
# (var name, FORM): the value's text, urlencoded.
FORM = "form"
Part = str | tuple[str, bool | str]


def body_parts(body: Any, names: set[str], where: str) -> list[Part]:
    text = json.dumps(body, separators=(",", ":"))
    parts: list[Part] = []
    pos = 0
    for m in PLACEHOLDER.finditer(text):
        name = m.group(1)
        if name not in names:
            raise ConfigError(f"{where}.body: ${{{name}}} is not one of the entry's vars ({', '.join(sorted(names))})")
        whole = text[m.start() - 1 : m.start()] == '"' and text[m.end() : m.end() + 1] == '"'
        start, end = (m.start() - 1, m.end() + 1) if whole else (m.start(), m.end())
        parts.append(text[pos:start])
        parts.append((name, whole))
        pos = end
    parts.append(text[pos:])
    return [p for p in parts if p != ""]


def form_parts(body: Any, names: set[str], where: str) -> list[Part]:
    """A form body: `key=value` pairs joined by `&`, keys and literal text urlencoded now, vars when drawn."""
    if not isinstance(body, dict):
        raise ConfigError(f"{where}.body: a form body is a mapping of field -> value, got {type(body).__name__}")
    parts: list[Part] = []
    for i, (key, value) in enumerate(body.items()):
        parts.append(("&" if i else "") + urllib.parse.quote_plus(str(key)) + "=")
        text = value if isinstance(value, str) else json.dumps(value)
        pos = 0
        for m in PLACEHOLDER.finditer(text):
            if m.group(1) not in names:
                raise ConfigError(
                    f"{where}.body: ${{{m.group(1)}}} is not one of the entry's vars ({', '.join(sorted(names))})"
                )
            parts += [urllib.parse.quote_plus(text[pos : m.start()]), (m.group(1), FORM)]
            pos = m.end()
        parts.append(urllib.parse.quote_plus(text[pos:]))
    merged: list[Part] = []  # adjacent literal text in one part
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif p != "":
            merged.append(p)
    return merged


def render_value(value: Any, whole: bool | str) -> str:
    if whole == FORM:
        return urllib.parse.quote_plus(value if isinstance(value, str) else json.dumps(value))
    encoded = json.dumps(value)
    if whole or not isinstance(value, str):
        return encoded
    return encoded[1:-1]  # inside a JSON string: the escaped text without its quotes


@dataclass
class BodyTemplate:
    parts: list[Part]
    vars: list[Var]

    @property
    def static(self) -> bytes | None:
        return "".join(p for p in self.parts if isinstance(p, str)).encode() if not self.vars else None

    def render(self, rng: random.Random) -> bytes:
        # Every var is drawn once per request, in declaration order (the same order in Lua).
        values = {v.name: v.draw(rng) for v in self.vars}
        return "".join(p if isinstance(p, str) else render_value(values[p[0]], p[1]) for p in self.parts).encode()


def compile_kind(
    name: str, body: Any, vars_cfg: dict[str, Any] | None, base_dir: Path = REPO, encoding: str = "json"
) -> BodyTemplate:
    where = f"workload.mix.{name}"
    variables = [parse_var(n, spec, where, base_dir) for n, spec in (vars_cfg or {}).items()]
    parts = form_parts if encoding == FORM else body_parts
    return BodyTemplate(parts(body, {v.name for v in variables}, where), variables)


class MixTemplates:
    """A mix's entries with their templates: `draw(rng) -> (kind, path, body_bytes)`."""

    def __init__(self, mix: Any, base_dir: Path = REPO) -> None:
        self.kinds = [(k, w) for k, w in mix.normalized()]
        self.templates = {
            k.name: compile_kind(k.name, k.body, getattr(k, "vars", {}), base_dir, getattr(k, "encoding", "json"))
            for k, _ in self.kinds
        }
        self._static = {name: t.static for name, t in self.templates.items()}

    def body(self, kind: str, rng: random.Random) -> bytes:
        static = self._static[kind]
        return static if static is not None else self.templates[kind].render(rng)

    def draw(self, rng: random.Random) -> tuple[str, str, bytes]:
        kind = rng.choices([k for k, _ in self.kinds], weights=[w for _, w in self.kinds])[0]
        return kind.name, kind.path, self.body(kind.name, rng)


def body_function(mix: Any, rng: random.Random) -> Callable[[str], bytes]:
    """kind name -> a fresh body for one request (a static body is encoded once)."""
    templates = MixTemplates(mix)
    return lambda kind: templates.body(kind, rng)


# -- Lua (wrk2) ---------------------------------------------------------------------------------------
def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for this text


def _lua_var(v: Var) -> str:
    if v.kind == "int":
        expr = f"math.random({v.lo}, {v.hi})"
        return f"tostring({expr})" if v.as_string else expr
    if v.kind in ("choice", "choice_file"):
        values = "{" + ", ".join(_lua_str(json.dumps(x)) for x in v.values) + "}"
        if v.weights:
            total = sum(v.weights)
            acc, cum = 0.0, []
            for w in v.weights:
                acc += w / total
                cum.append(f"{acc:.9f}")
            return f"pick_weighted({values}, {{{', '.join(cum)}}})"
        return f"pick({values})"
    if v.kind == "chars":
        return f"random_chars({v.n}, {_lua_str(v.alphabet)})"
    return "random_uuid()"


LUA_HELPERS = r"""
local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == '\\' then return '\\\\' end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end
local function encode(v, whole)
  if type(v) == "number" then return tostring(v) end
  if whole then return json_string(v) end
  local q = json_string(v)
  return q:sub(2, -2)
end
local function form_encode(v)  -- a form value: its text, urlencoded (spaces as +)
  local s = type(v) == "number" and tostring(v) or v
  s = s:gsub("[^%w%-%._~ ]", function(c) return string.format("%%%02X", c:byte()) end)
  return (s:gsub(" ", "+"))
end
local function decoded(s)  -- choice values are stored as JSON texts; strings are drawn as text
  if s:sub(1, 1) == '"' then return (s:sub(2, -2):gsub('\\(.)', '%1')) end
  return tonumber(s) or s
end
local function pick(values) return decoded(values[math.random(1, #values)]) end
local function pick_weighted(values, cum)
  local r = math.random()
  for i, c in ipairs(cum) do if r <= c then return decoded(values[i]) end end
  return decoded(values[#values])
end
local function random_chars(n, alphabet)
  local t = {}
  for i = 1, n do local j = math.random(1, #alphabet); t[i] = alphabet:sub(j, j) end
  return table.concat(t)
end
-- UUIDs come from their own generator, seeded per thread from the clock: fresh in every run.
-- MINSTD (Park-Miller): every product stays below 2^53, exact in Lua 5.1's doubles.
local uuid_state = 1
local function uuid_byte()
  uuid_state = (uuid_state * 16807) % 2147483647
  return math.floor(uuid_state / 4096) % 256
end
local function random_uuid()
  local b = {}
  for i = 1, 16 do b[i] = uuid_byte() end
  b[7] = b[7] % 16 + 64
  b[9] = b[9] % 64 + 128
  b[16] = (thread_id or 0) % 256  -- threads never share an id, whatever their generators do
  local h = {}
  for i = 1, 16 do h[i] = string.format("%02x", b[i]) end
  return table.concat(h, "", 1, 4) .. "-" .. table.concat(h, "", 5, 6) .. "-" .. table.concat(h, "", 7, 8)
    .. "-" .. table.concat(h, "", 9, 10) .. "-" .. table.concat(h, "", 11, 16)
end
local thread_counter = 0
function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
end
function init(args)
  uuid_state = (os.time() * 7919 + (thread_id or 0) * 104729 + math.floor(os.clock() * 1e6)) % 2147483646 + 1
end
"""


def _lua_part(part: tuple[str, bool | str]) -> str:
    name, whole = part
    if whole == FORM:
        return f"form_encode(v_{name})"
    return f"encode(v_{name}, {'true' if whole else 'false'})"


def lua_body_function(index: int, template: BodyTemplate) -> str:
    """`local function body_<index>()`: the template's vars drawn in order, its parts joined."""
    lines = [f"local function body_{index}()"]
    for v in template.vars:
        lines.append(f"  local v_{v.name} = {_lua_var(v)}")
    pieces = [_lua_str(p) if isinstance(p, str) else _lua_part(p) for p in template.parts]
    lines.append(f"  return {' .. '.join(pieces) if pieces else _lua_str('')}")
    lines.append("end")
    return "\n".join(lines)


def lua_source(mix: Any) -> tuple[str, list[str]]:
    """(the Lua helpers and one body function per entry, the body expression of each entry)."""
    templates = MixTemplates(mix)
    if all(t.static is not None for t in templates.templates.values()):
        return "", [_lua_str(t.static.decode()) for t in templates.templates.values()]  # type: ignore[union-attr]
    funcs, exprs = [LUA_HELPERS], []
    for i, (kind, _) in enumerate(templates.kinds, 1):
        t = templates.templates[kind.name]
        if t.static is not None:
            exprs.append(_lua_str(t.static.decode()))
        else:
            funcs.append(lua_body_function(i, t))
            exprs.append(f"body_{i}")
    return "\n".join(funcs), exprs
