"""Schema validation with messages a user can act on: file, key path, what was expected.

Defaults are filled as snakemake.utils.validate fills them (jsonschema's `properties` extended to
set each missing property's default), from the schema loaded once per process: snakemake's own
validate re-reads the schema file with a pure-Python YAML parser on every call, which cost more
than a second per experiment file at every Snakemake start and in every summarize, claims and plot
job. The messages come from jsonschema's own errors, reworded, because snakemake's only repeat
jsonschema.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

from benchpipe.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "config" / "schemas"


def key_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _closest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Of a oneOf/anyOf's branch errors, one from a branch whose type the value has (a list's
    error from the list branch, not "expected object"), the deepest first."""
    kind = _JSON_TYPES.get(type(error.instance))

    def fits(e: jsonschema.ValidationError) -> bool:
        branch = e.schema_path[0] if e.schema_path else None
        t = error.validator_value[branch].get("type") if isinstance(branch, int) else None
        return t is None or kind == t or (kind == "integer" and t == "number") or (isinstance(t, list) and kind in t)

    ranked = sorted(error.context, key=lambda e: (not fits(e), -len(e.absolute_path), e.validator == "type"))
    return ranked[0]


def _describe(error: jsonschema.ValidationError) -> str:
    v, kw, val = error.validator_value, error.validator, error.instance
    shown = repr(val) if not isinstance(val, (dict, list)) else type(val).__name__
    if kw == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(val) - set(allowed)) if isinstance(val, dict) else []
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {', '.join(map(repr, extra))}{hint}"
    if kw == "required":
        return error.message.replace("is a required property", "is missing (required)")
    if kw == "type":
        return f"expected {' or '.join(v) if isinstance(v, list) else v}, got {type(val).__name__} {shown}"
    if kw == "enum":
        return f"expected one of {', '.join(map(str, v))}, got {shown}"
    if kw in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kw]
        return f"expected a number {op} {v}, got {shown}"
    if kw == "pattern":
        return f"expected a string matching {v}, got {shown}"
    if kw in ("minItems", "minProperties"):
        return f"expected at least {v} entr{'y' if v == 1 else 'ies'}, got {len(val)}"
    if kw == "minLength":
        return f"expected a non-empty string, got {shown}"
    if kw == "uniqueItems":
        return f"expected distinct values, got {val!r}"
    return error.message


def format_errors(errors: list[jsonschema.ValidationError], source: str) -> str:
    lines = []
    for e in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])[:8]:
        while e.validator in ("oneOf", "anyOf") and e.context:
            # "not valid under any of the given schemas" names nothing: say what the closest
            # branch expected, where.
            e = _closest(e)
        where = key_path(list(e.absolute_path))
        if e.validator == "propertyNames":
            where = key_path([*e.absolute_path, e.instance])
        lines.append(f"{source}: {where}: {_describe(e)}")
    return "\n".join(lines)


# libyaml's parser where PyYAML has it (same YAML, same SafeLoader types; ~10x faster).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)


def load_schema(name: str) -> dict[str, Any]:
    return _load_yaml((SCHEMA_DIR / name).read_text())


def _set_defaults(validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Any:
    # jsonschema's FAQ recipe, as snakemake.utils.validate applies it; a copy of each default, since
    # the schema (and its `default: {}`) is shared by every validation in the process.
    if isinstance(instance, dict):
        for prop, sub in properties.items():
            if isinstance(sub, dict) and "default" in sub:
                instance.setdefault(prop, copy.deepcopy(sub["default"]))
    yield from validators.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_DefaultFilling = validators.extend(jsonschema.Draft202012Validator, {"properties": _set_defaults})


@functools.cache
def _validators(schema_name: str) -> tuple[Any, Any]:
    """(the checking validator, the default-filling one) of a schema, loaded once per process."""
    schema = load_schema(schema_name)
    return jsonschema.Draft202012Validator(schema), _DefaultFilling(schema)


def validate(data: Any, schema_name: str, source: str) -> dict[str, Any]:
    """Validate `data` against config/schemas/<schema_name>, fill defaults, or raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping of keys, got {type(data).__name__}")
    check, fill = _validators(schema_name)
    # Errors first, on the data as written (a default must not hide a missing key's message).
    errors = list(check.iter_errors(data))
    if errors:
        raise ConfigError(format_errors(errors, source))
    fill.validate(data)
    return data


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        return _load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{path}: not valid YAML at {where}: {getattr(e, 'problem', e)}") from None
