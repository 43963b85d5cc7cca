"""Request body templates: each request of a mix entry gets its own body.

A mix entry may declare `vars:` (ordered name -> distribution) and use `${name}` in the strings of
its body. A string that is exactly `${name}` becomes the value itself (a number stays a number);
`${name}` inside a longer string is replaced by the value's text. Vars are drawn once per request,
in declaration order, except that a var that uses others is drawn after them. Distributions:

    {int: [lo, hi]}                    uniform integer, both ends included; a bound may be an
                                       expression over other vars: {int: ["${in} + 1", 24]}
    {expr: "38.0235 + (${i} - 240.5) / 1000"}  arithmetic (+ - * / and parentheses) on numbers
                                       and other numeric vars; emitted as a JSON number
    {repeat: name, times: N}           the text of another var repeated N times (a string)
    {choice: [a, b, ...], weights: [..]}  one of the values, strings or numbers (weights optional)
    {choice_file: path}                one line of a file (relative to the repository)
    {choice_file: path, field: F}      field F of one record of a JSON file (an array of records,
                                       or one record per line), every record in file order, so a
                                       value that occurs twice is drawn twice as often
    {choice_file: {data_file: key}, field: F}  the same, the file named by the run configuration's
                                       `data_files.<key>` (an input the user supplies)
    {chars: N, alphabet: "..."}        N characters drawn from the alphabet (default: letters+digits)
    {uuid: 4}                          a fresh random UUID, never from the seeded generator: a run
                                       repeated with the same seed must not repeat request ids

Options of int and expr: `string: true` emits the number as a JSON string; `pad: N` emits it as a
string of at least N digits, zero-padded ("2015-04-${day}" with pad 2 gives 2015-04-09). In an
expression or a bound a var is its number, whatever it is emitted as.

Numbers are written as Lua's tostring writes them (%.14g; integral values without a fraction), in
Python as in Lua, so both renderings of the same draw are the same text.

The built-in generator renders bodies in Python (`MixTemplates`), wrk2 in Lua (`lua_source`): the
same parts and the same distributions, each language with its own random generator.
"""

from __future__ import annotations

import ast
import bisect
import json
import random
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from benchpipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
ALPHABET = string.ascii_letters + string.digits
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
KINDS = ("int", "expr", "repeat", "choice", "choice_file", "chars", "uuid")
NUMERIC_KINDS = ("int", "expr")
EXACT = 2**53  # doubles hold integers exactly below this (Lua 5.1 numbers are doubles)

# An expression: ("num", value) | ("var", name) | ("neg", e) | (op, left, right) with op in + - * /
Expr = tuple[Any, ...]
OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def number_text(v: int | float) -> str:
    """A number as Lua's tostring writes it: integral values without a fraction, others %.14g."""
    if isinstance(v, int):
        return str(v)
    if v.is_integer() and abs(v) < EXACT:
        return str(int(v))
    return format(v, ".14g")


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_expr(spec: Any, known: dict[str, bool], where: str) -> Expr:
    """An expression from a number or a string over earlier numeric vars (`known`: name -> numeric)."""
    if is_number(spec):
        return ("num", spec)
    if not isinstance(spec, str):
        raise ConfigError(f"{where}: expected a number or an expression string, got {spec!r}")

    def name_of(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in known:
            raise ConfigError(f"{where}: ${{{name}}} is not one of the entry's vars")
        if not known[name]:
            raise ConfigError(f"{where}: ${{{name}}} is not a number (expected an int, expr or numeric choice var)")
        return f"v_{name}"

    text = PLACEHOLDER.sub(name_of, spec)
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ConfigError(f"{where}: expected an arithmetic expression, got {spec!r}") from None

    def conv(node: ast.AST) -> Expr:
        if isinstance(node, ast.Constant) and is_number(node.value):
            return ("num", node.value)
        if isinstance(node, ast.Name) and node.id.startswith("v_"):
            return ("var", node.id[2:])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = conv(node.operand)
            return ("neg", inner) if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return (OPS[type(node.op)], conv(node.left), conv(node.right))
        raise ConfigError(
            f"{where}: expected numbers, ${{var}}s, + - * / and parentheses, got {ast.unparse(node)!r} in {spec!r}"
        )

    return conv(tree)


def eval_expr(e: Expr, values: dict[str, Any]) -> int | float:
    tag = e[0]
    if tag == "num":
        return e[1]
    if tag == "var":
        return values[e[1]]
    if tag == "neg":
        return -eval_expr(e[1], values)
    a, b = eval_expr(e[1], values), eval_expr(e[2], values)
    if tag == "+":
        return a + b
    if tag == "-":
        return a - b
    if tag == "*":
        return a * b
    return a / b


def lua_expr(e: Expr) -> str:
    tag = e[0]
    if tag == "num":
        return repr(float(e[1])) if isinstance(e[1], float) else str(e[1])
    if tag == "var":
        return f"v_{e[1]}"
    if tag == "neg":
        return f"(-{lua_expr(e[1])})"
    return f"({lua_expr(e[1])} {tag} {lua_expr(e[2])})"


def _whole(v: int | float, where: str) -> int:
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"{where}: bound {v!r} is not a whole number")
        return int(v)
    return v


def _text(v: Any) -> str:
    return number_text(v) if is_number(v) else str(v)


@dataclass(frozen=True)
class Var:
    name: str
    kind: str
    values: tuple[Any, ...] = ()  # choice / choice_file
    weights: tuple[float, ...] = ()
    lo: Expr = ("num", 0)
    hi: Expr = ("num", 0)
    expr: Expr = ("num", 0)
    of: str = ""  # repeat: the var repeated
    times: int = 0
    as_string: bool = False
    pad: int = 0
    n: int = 0
    alphabet: str = ALPHABET

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS or (self.kind == "choice" and all(is_number(x) for x in self.values))

    def draw(self, rng: random.Random, values: dict[str, Any], shown: dict[str, Any]) -> Any:
        """The var's own value (a number stays a number; used by later expressions)."""
        if self.kind == "int":
            lo = _whole(eval_expr(self.lo, values), f"vars.{self.name}")
            hi = _whole(eval_expr(self.hi, values), f"vars.{self.name}")
            return rng.randint(lo, hi)
        if self.kind == "expr":
            return eval_expr(self.expr, values)
        if self.kind == "repeat":
            return _text(shown[self.of]) * self.times
        if self.kind in ("choice", "choice_file"):
            if self.weights:
                return rng.choices(self.values, weights=self.weights)[0]
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "chars":
            return "".join(rng.choice(self.alphabet) for _ in range(self.n))
        return str(uuid.uuid4())

    def show(self, value: Any) -> Any:
        """The value as the body carries it (pad / string options)."""
        if self.pad:
            return f"{_whole(value, f'vars.{self.name}'):0{self.pad}d}"
        if self.as_string and is_number(value):
            return number_text(value)
        return value


def _read_values(path: Path, field: str | None, where: str) -> list[Any]:
    try:
        text = path.read_text()
    except OSError:
        raise ConfigError(f"{where}.choice_file: expected a readable file, got {path}") from None
    if field is None:
        return [line for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text)
        records = data if isinstance(data, list) else [data]
    except ValueError:
        try:  # one record per line
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise ConfigError(f"{where}.choice_file: {path} is neither a JSON array nor JSON lines") from None
    values = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not (is_number(rec.get(field)) or isinstance(rec.get(field), str)):
            raise ConfigError(f"{where}.field: record {i} of {path} has no string or number field {field!r}")
        values.append(rec[field])
    return values


def parse_var(
    name: str,
    spec: Any,
    where: str,
    base_dir: Path = REPO,
    known: dict[str, bool] | None = None,
    check_only: bool = False,
) -> Var:
    """A Var from its config; a clear error naming `where` (file and key) for a bad one. `known`:
    the vars declared before it (name -> numeric); `check_only`: a reference to a data file of the run
    configuration is checked for its form only (the experiment file is read without a configuration)."""
    known = known or {}
    if not isinstance(spec, dict) or len(set(spec) & set(KINDS)) != 1:
        raise ConfigError(
            f"{where}.vars.{name}: expected a mapping with exactly one of {', '.join(KINDS)}, got {spec!r}"
        )
    kind = next(k for k in KINDS if k in spec)
    arg = spec[kind]
    key = f"{where}.vars.{name}"
    pad = spec.get("pad", 0)
    if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0 or (pad and kind not in NUMERIC_KINDS):
        raise ConfigError(f"{key}.pad: expected a number of digits >= 0 on an int or expr var, got {pad!r}")
    as_string = bool(spec.get("string", False))
    if kind == "int":
        if not (isinstance(arg, list) and len(arg) == 2):
            raise ConfigError(f"{key}.int: expected [lo, hi] integers with lo <= hi, got {arg!r}")
        lo, hi = (parse_expr(x, known, f"{key}.int") for x in arg)
        if (
            lo[0] == "num"
            and hi[0] == "num"
            and not (all(isinstance(x, int) for x in (lo[1], hi[1])) and lo[1] <= hi[1])
        ):
            raise ConfigError(f"{key}.int: expected [lo, hi] integers with lo <= hi, got {arg!r}")
        return Var(name, kind, lo=lo, hi=hi, as_string=as_string, pad=pad)
    if kind == "expr":
        return Var(name, kind, expr=parse_expr(arg, known, f"{key}.expr"), as_string=as_string, pad=pad)
    if kind == "repeat":
        times = spec.get("times")
        if arg not in known or not isinstance(times, int) or isinstance(times, bool) or times < 0:
            raise ConfigError(
                f"{key}: expected repeat: <another var of the entry> and times: <count >= 0>, got {spec!r}"
            )
        return Var(name, kind, of=arg, times=times)
    if kind in ("choice", "choice_file"):
        if kind == "choice_file":
            field = spec.get("field")
            if field is not None and not isinstance(field, str):
                raise ConfigError(f"{key}.field: expected the name of a field of the file's records, got {field!r}")
            if isinstance(arg, dict) and set(arg) == {"data_file"}:
                if check_only:
                    return Var(name, kind, values=("",))  # the point's run configuration names the file
                raise ConfigError(
                    f"config: data_files.{arg['data_file']}: not resolved for {key} (benchpipe.pointspec does that)"
                )
            elif isinstance(arg, str):
                path = base_dir / arg
            else:
                raise ConfigError(f"{key}.choice_file: expected a path or {{data_file: <key>}}, got {arg!r}")
            values = _read_values(path, field, key)
        else:
            values = arg if isinstance(arg, list) else []
            if not all(is_number(x) or isinstance(x, str) for x in values):
                raise ConfigError(f"{key}.choice: expected strings or numbers, got {arg!r}")
        if not values:
            raise ConfigError(f"{key}.{kind}: expected at least one value")
        weights = spec.get("weights", [])
        if weights and (len(weights) != len(values) or any(not is_number(w) or w < 0 for w in weights)):
            raise ConfigError(f"{key}.weights: expected {len(values)} numbers >= 0, got {weights!r}")
        return Var(name, kind, values=tuple(values), weights=tuple(float(w) for w in weights))
    if kind == "chars":
        alphabet = str(spec.get("alphabet", ALPHABET))
        if not isinstance(arg, int) or arg < 0 or not alphabet:
            raise ConfigError(f"{key}.chars: expected a length >= 0 and a non-empty alphabet")
        return Var(name, kind, n=arg, alphabet=alphabet)
    if arg != 4:
        raise ConfigError(f"{key}.uuid: expected 4 (a random UUID), got {arg!r}")
    return Var(name, kind)


def data_file_refs(vars_cfg: dict[str, Any] | None) -> list[str]:
    """The run configuration's data files an entry's vars draw from (their keys)."""
    return [
        spec["choice_file"]["data_file"]
        for spec in (vars_cfg or {}).values()
        if isinstance(spec, dict) and isinstance(spec.get("choice_file"), dict) and "data_file" in spec["choice_file"]
    ]


def resolve_data_files(mix: list[dict[str, Any]], data_files: dict[str, str], where: str) -> list[dict[str, Any]]:
    """The mix with every `{choice_file: {data_file: key}}` replaced by the configured path; a clear
    error naming the configuration key when it is not set."""
    out = []
    for m in mix:
        vars_cfg = dict(m.get("vars") or {})
        for name, spec in vars_cfg.items():
            if data_file_refs({name: spec}):
                ref = spec["choice_file"]["data_file"]
                path = data_files.get(ref) or ""
                if not path:
                    raise ConfigError(
                        f"config: data_files.{ref}: expected the path of a file ({where}.mix.{m['name']}.vars.{name} "
                        f"draws from it), got {path!r}; set it in the run configuration (config/config.yaml, the "
                        f"profile's configuration file, or --config 'data_files={{{ref}: PATH}}')"
                    )
                full = Path(path) if Path(path).is_absolute() else REPO / path
                if not full.is_file():
                    # Checked when the point is planned, not after its machines are up.
                    raise ConfigError(f"config: data_files.{ref}: expected a readable file, got {path!r} ({full})")
                vars_cfg[name] = {**spec, "choice_file": path}
        out.append({**m, "vars": vars_cfg} if vars_cfg else dict(m))
    return out


# A body is a list of parts: literal JSON text, or (var name, whole) where `whole` means the var
# replaces a whole JSON string (its JSON value goes in) rather than text inside one.
Part = str | tuple[str, bool]


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


def render_value(value: Any, whole: bool) -> str:
    if is_number(value):
        return number_text(value)  # a number in a string is its text; a whole one a JSON number
    encoded = json.dumps(value)
    if whole:
        return encoded
    return encoded[1:-1]  # inside a JSON string: the escaped text without its quotes


@dataclass
class BodyTemplate:
    parts: list[Part]
    vars: list[Var]

    @property
    def static(self) -> bytes | None:
        return "".join(p for p in self.parts if isinstance(p, str)).encode() if not self.vars else None

    def values(self, rng: random.Random) -> dict[str, Any]:
        """Every var drawn once, in declaration order (the same order in Lua): name -> body value."""
        raw: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for v in self.vars:
            raw[v.name] = v.draw(rng, raw, shown)
            shown[v.name] = v.show(raw[v.name])
        return shown

    def render(self, rng: random.Random) -> bytes:
        shown = self.values(rng)
        return "".join(p if isinstance(p, str) else render_value(shown[p[0]], p[1]) for p in self.parts).encode()


def _depends_on(spec: Any) -> set[str]:
    """The vars a var's config refers to (bounds, expression, repeated var)."""
    if not isinstance(spec, dict):
        return set()
    texts = [x for x in (spec.get("int") or []) if isinstance(x, str)] if isinstance(spec.get("int"), list) else []
    if isinstance(spec.get("expr"), str):
        texts.append(spec["expr"])
    names = {m.group(1) for t in texts for m in PLACEHOLDER.finditer(t)}
    if isinstance(spec.get("repeat"), str):
        names.add(spec["repeat"])
    return names


def draw_order(vars_cfg: dict[str, Any], where: str) -> list[str]:
    """Declaration order, except that a var comes after the vars it uses (so a writer that sorts
    mapping keys, as yaml.safe_dump does, cannot break a template)."""
    deps = {n: _depends_on(spec) for n, spec in vars_cfg.items()}
    for n, d in deps.items():
        unknown = sorted(d - set(vars_cfg))
        if unknown:
            raise ConfigError(f"{where}.vars.{n}: ${{{unknown[0]}}} is not one of the entry's vars")
    order: list[str] = []
    while len(order) < len(deps):
        ready = next((n for n in deps if n not in order and deps[n] <= set(order)), None)
        if ready is None:
            stuck = sorted(n for n in deps if n not in order)
            raise ConfigError(f"{where}.vars: {', '.join(stuck)} depend on each other; expected no cycle")
        order.append(ready)
    return order


def compile_kind(
    name: str, body: Any, vars_cfg: dict[str, Any] | None, base_dir: Path = REPO, check_only: bool = False
) -> BodyTemplate:
    where = f"workload.mix.{name}"
    vars_cfg = vars_cfg or {}
    variables: list[Var] = []
    known: dict[str, bool] = {}
    for n in draw_order(vars_cfg, where):
        v = parse_var(n, vars_cfg[n], where, base_dir, known, check_only)
        variables.append(v)
        known[n] = v.numeric
    return BodyTemplate(body_parts(body, {v.name for v in variables}, where), variables)


class MixTemplates:
    """A mix's entries with their templates: `draw(rng) -> (kind, path, body_bytes)`."""

    def __init__(self, mix: Any, base_dir: Path = REPO) -> None:
        self.kinds = [(k, w) for k, w in mix.normalized()]
        self.templates = {k.name: compile_kind(k.name, k.body, getattr(k, "vars", {}), base_dir) for k, _ in self.kinds}
        self._static = {name: t.static for name, t in self.templates.items()}
        self.cum = list(accumulate(w for _, w in self.kinds))
        self.cum[-1] = 1.0  # no index past the end from rounding

    def body(self, kind: str, rng: random.Random) -> bytes:
        static = self._static[kind]
        return static if static is not None else self.templates[kind].render(rng)

    def draw(self, rng: random.Random) -> tuple[str, str, bytes]:
        # The first kind whose cumulative weight exceeds the coin, in mix order (as the wrk scripts).
        kind = self.kinds[bisect.bisect_right(self.cum, rng.random())][0]
        return kind.name, kind.path, self.body(kind.name, rng)


def body_function(mix: Any, rng: random.Random) -> Callable[[str], bytes]:
    """kind name -> a fresh body for one request (a static body is encoded once)."""
    templates = MixTemplates(mix)
    return lambda kind: templates.body(kind, rng)


# -- Lua (wrk2) ---------------------------------------------------------------------------------------
def lua_literal(x: Any) -> str:
    """A Lua literal of a string or number; any byte outside printable ASCII as a decimal escape."""
    if is_number(x):
        return repr(float(x)) if isinstance(x, float) else str(x)
    out = []
    for b in str(x).encode():
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _lua_var(v: Var) -> str:
    if v.kind == "int":
        return f"math.random({lua_expr(v.lo)}, {lua_expr(v.hi)})"
    if v.kind == "expr":
        return lua_expr(v.expr)
    if v.kind == "repeat":
        return f"string.rep(text(s_{v.of}), {v.times})"
    if v.kind in ("choice", "choice_file"):
        values = "{" + ", ".join(lua_literal(x) for x in v.values) + "}"
        if v.weights:
            total = sum(v.weights)
            acc, cum = 0.0, []
            for w in v.weights:
                acc += w / total
                cum.append(f"{acc:.9f}")
            return f"pick_weighted({values}, {{{', '.join(cum)}}})"
        return f"pick({values})"
    if v.kind == "chars":
        return f"random_chars({v.n}, {lua_literal(v.alphabet)})"
    return "random_uuid()"


def _lua_show(v: Var) -> str:
    if v.pad:
        return f'string.format("%0{v.pad}d", v_{v.name})'
    if v.as_string:
        return f"text(v_{v.name})"
    return f"v_{v.name}"


LUA_HELPERS = r"""
local function num_text(v)  -- as Lua's tostring, and benchpipe's Python renderer (number_text)
  if v == math.floor(v) and v > -9007199254740992 and v < 9007199254740992 then
    return string.format("%d", v)
  end
  return string.format("%.14g", v)
end
local function text(v) if type(v) == "number" then return num_text(v) end return v end
local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == '\\' then return '\\\\' end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end
local function encode(v, whole)
  if type(v) == "number" then return num_text(v) end
  if whole then return json_string(v) end
  local q = json_string(v)
  return q:sub(2, -2)
end
local function pick(values) return values[math.random(1, #values)] end
local function pick_weighted(values, cum)
  local r = math.random()
  for i, c in ipairs(cum) do if r <= c then return values[i] end end
  return values[#values]
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
local function seed_uuids()
  uuid_state = (os.time() * 7919 + (thread_id or 0) * 104729 + math.floor(os.clock() * 1e6)) % 2147483646 + 1
end
"""


def lua_body_function(index: int, template: BodyTemplate) -> str:
    """`local function body_<index>()`: the template's vars drawn in order, its parts joined."""
    lines = [f"local function body_{index}()"]
    for v in template.vars:
        lines.append(f"  local v_{v.name} = {_lua_var(v)}")
        lines.append(f"  local s_{v.name} = {_lua_show(v)}")
    pieces = [
        lua_literal(p) if isinstance(p, str) else f"encode(s_{p[0]}, {'true' if p[1] else 'false'})"
        for p in template.parts
    ]
    lines.append(f"  return {' .. '.join(pieces) if pieces else lua_literal('')}")
    lines.append("end")
    return "\n".join(lines)


def lua_source(mix: Any) -> tuple[str, list[str]]:
    """(the Lua helpers and one body function per entry, the body expression of each entry)."""
    templates = MixTemplates(mix)
    if all(t.static is not None for t in templates.templates.values()):
        return "", [lua_literal(t.static.decode()) for t in templates.templates.values()]  # type: ignore[union-attr]
    funcs, exprs = [LUA_HELPERS], []
    for i, (kind, _) in enumerate(templates.kinds, 1):
        t = templates.templates[kind.name]
        if t.static is not None:
            exprs.append(lua_literal(t.static.decode()))
        else:
            funcs.append(lua_body_function(i, t))
            exprs.append(f"body_{i}")
    return "\n".join(funcs), exprs
