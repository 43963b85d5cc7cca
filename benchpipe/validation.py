"""Schema validation with messages a user can act on: file, key path, what was expected.

Defaults are filled by snakemake.utils.validate (the workflow's one way to apply a schema); the
messages come from jsonschema's own errors, reworded, because snakemake's only repeat jsonschema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from benchpipe.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "config" / "schemas"


def key_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


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
        where = key_path(list(e.absolute_path))
        if e.validator == "propertyNames":
            where = key_path([*e.absolute_path, e.instance])
        lines.append(f"{source}: {where}: {_describe(e)}")
    return "\n".join(lines)


def load_schema(name: str) -> dict[str, Any]:
    return yaml.safe_load((SCHEMA_DIR / name).read_text())


def validate(data: Any, schema_name: str, source: str) -> dict[str, Any]:
    """Validate `data` against config/schemas/<schema_name>, fill defaults, or raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping of keys, got {type(data).__name__}")
    schema = load_schema(schema_name)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        raise ConfigError(format_errors(errors, source))
    from snakemake.utils import validate as snakemake_validate

    snakemake_validate(data, str(SCHEMA_DIR / schema_name), set_default=True)
    return data


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(f"{path}: not valid YAML at {where}: {getattr(e, 'problem', e)}") from None
