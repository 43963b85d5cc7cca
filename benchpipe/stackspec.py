"""A baseline's cluster stack as configured: variables filled, function services completed, the
function registry, host files, per-point wipes, tables, the data step and the readiness probe.

Everything here is configuration (config/experiments/<suite>/*.yaml, `stack:` and
`baselines.<name>`); the swarm deployer turns it into commands. Variables are `{name}` in any
string of the stack (stack.vars, overridden by baselines.<name>.vars; a variable may use others);
a function service also gets `{func_id}` and `{func_name}`. `{point_dir}` and `{table_prefix}` are
left for the deployer, which knows them only when the point starts; `{{.Task.Slot}}` (a swarm
template) is not a variable.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from benchpipe.errors import ConfigError
from benchpipe.merge import deep_merge

VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RUNTIME = {"point_dir", "table_prefix"}  # filled by the deployer when the point starts
DEFAULT_MODE = "0644"
REPO = Path(__file__).resolve().parent.parent


def portable(path: Path) -> str:
    """A path as the point's spec records it: relative to the repository when inside it (so the
    point's hash does not depend on where the repository is checked out)."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def local_path(recorded: str) -> Path:
    return REPO / recorded if not Path(recorded).is_absolute() else Path(recorded)


def _fill_text(text: str, values: dict[str, str], where: str) -> str:
    out = VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    for name in VAR.findall(out):
        # A parameter of the experiment stands for itself here: the deployer fills it per point.
        if name not in RUNTIME and values.get(name) != f"{{{name}}}":
            known = ", ".join(sorted(n for n, v in values.items() if not VAR.search(v)))
            raise ConfigError(
                f"{where}: unknown variable {{{name}}}; expected one of {known} (stack.vars, baselines.*.vars)"
            )
    return out


def fill(data: Any, values: dict[str, str], where: str) -> Any:
    """`data` with every `{var}` of its strings (keys untouched) replaced by its value."""
    if isinstance(data, str):
        return _fill_text(data, values, where)
    if isinstance(data, list):
        return [fill(v, values, f"{where}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, dict):
        return {k: fill(v, values, f"{where}.{k}") for k, v in data.items()}
    return data


def resolve_vars(raw: dict[str, Any], where: str) -> dict[str, str]:
    """Variables whose values may name other variables, resolved (a cycle is an error)."""
    values = {k: str(v) for k, v in raw.items()}

    def expand(own: str, text: str) -> str:
        return VAR.sub(lambda m: values.get(m.group(1), m.group(0)) if m.group(1) != own else m.group(0), text)

    for _ in range(len(values) + 1):
        changed = False
        for k, v in values.items():
            new = expand(k, v)
            if new != v:
                values[k], changed = new, True
        if not changed:
            break
    # A variable left unresolved (it names an unknown one, or itself) is an error where it is used.
    return values


def _hosts_selector(sel: dict[str, Any], where: str) -> dict[str, Any]:
    if ("roles" in sel) == ("label" in sel):
        raise ConfigError(f"{where}.hosts: expected exactly one of roles (a list) or label (a machine label)")
    return dict(sel)


def registry_of(services: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The function registry: one entry per service with `function:`, by funcId (the format of
    nightcore_config.json: funcName, funcId, minWorkers, maxWorkers)."""
    entries = []
    for name, svc in services.items():
        fn = svc.get("function")
        if fn:
            w = int(fn["workers"])
            entries.append(
                {"funcName": fn["name"], "funcId": int(fn["id"]), "minWorkers": w, "maxWorkers": w, "_s": name}
            )
    entries.sort(key=lambda e: e["funcId"])
    for key in ("funcName", "funcId"):
        seen: dict[Any, str] = {}
        for e in entries:
            if e[key] in seen:
                raise ConfigError(
                    f"{where}.{e['_s']}.function: {key} {e[key]!r} is also that of {seen[e[key]]}; expected distinct"
                )
            seen[e[key]] = e["_s"]
    return [{k: v for k, v in e.items() if k != "_s"} for e in entries]


def resolve_stack(data: dict[str, Any], baseline: str, source: str) -> dict[str, Any]:
    """The stack of one baseline of an experiment (validated data), ready for a deployer."""
    stack = data.get("stack", {})
    base = data["baselines"][baseline]
    where = f"{source}: baselines.{baseline}"
    values = resolve_vars({**stack.get("vars", {}), **base.get("vars", {})}, f"{source}: stack.vars")
    values.setdefault("app", data["app"])
    # The experiment's parameters ({region_pair} in a placement) stay for the deployer, which knows
    # the point's values (benchpipe.deployers.compose.for_point).
    for p in {*(data.get("parameters") or {}), *(data.get("sweep") or {})}:
        values.setdefault(p, f"{{{p}}}")
    defaults = stack.get("function_defaults", {})
    services: dict[str, Any] = {}
    own = base.get("services", {})
    # The baseline's own services (its system's infrastructure) first, then the experiment's.
    for name in [n for n in own if n not in stack.get("services", {})] + list(stack.get("services", {})):
        svc = deep_merge(stack.get("services", {}).get(name) or {}, own.get(name) or {})
        if svc.get("function"):
            svc = deep_merge(defaults, svc)
            fn = svc["function"]
            fn_name = _fill_text(str(fn["name"]), values, f"{where}.services.{name}.function.name")
            svc = fill(svc, {**values, "func_id": str(fn["id"]), "func_name": fn_name}, f"{where}.services.{name}")
        else:
            svc = fill(svc, values, f"{where}.services.{name}")
        if "image" not in svc:
            raise ConfigError(f"{where}.services.{name}.image: is missing (required)")
        services[name] = svc
    registry = registry_of(services, f"{where}.services")
    host_files = []
    for i, hf in enumerate(stack.get("host_files", [])):
        w = f"{source}: stack.host_files[{i}]"
        _hosts_selector(hf["hosts"], w)
        if ("content" in hf) == ("source" in hf):
            raise ConfigError(f"{w}: expected exactly one of content (registry) or source (a file)")
        if "content" in hf and not registry:
            raise ConfigError(f"{w}.content: the registry is empty: no service of {baseline} has function:")
        entry = {"dest": fill(hf["dest"], values, w), "mode": hf.get("mode", DEFAULT_MODE), "hosts": hf["hosts"]}
        if "content" in hf:
            entry["content"] = hf["content"]
        else:
            # Read when the stack is rendered (a copy of the config without the file still loads);
            # its digest here, so that editing the file changes the point's hash.
            path = (Path(source).parent / hf["source"]).resolve()
            entry["source"] = portable(path)
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        host_files.append(entry)
    wipes = []
    for i, wp in enumerate(stack.get("wipes", [])):
        w = f"{source}: stack.wipes[{i}]"
        wipes.append({**fill(copy.deepcopy(wp), values, w), "hosts": _hosts_selector(wp["hosts"], w)})
    tables = fill(list(stack.get("tables", [])), values, f"{source}: stack.tables")
    data_step = None
    raw_data = deep_merge(stack.get("data") or {}, base.get("data") or {})
    if raw_data:
        for key in ("image", "copy_out", "run"):
            if key not in raw_data:
                raise ConfigError(f"{source}: stack.data.{key}: is missing (required by the data step of {baseline})")
        data_step = fill(raw_data, values, f"{where}.data")
        files = []
        for i, f in enumerate(data_step.get("files", [])):
            if ("source" in f) == ("data_file" in f):
                raise ConfigError(f"{where}.data.files[{i}]: expected exactly one of source or data_file")
            if "source" in f:
                f = {**f, "source": portable(Path(source).parent / f["source"])}
            files.append(f)
        data_step["files"] = files
    return {
        "services": services,
        "registry": registry,
        "host_files": host_files,
        "wipes": wipes,
        "tables": tables,
        "data": data_step,
        "ready": dict(stack.get("ready", {})),
        "after_ready": [dict(a) for a in stack.get("after_ready", [])],
        "vars": values,
    }


def point_env_names(data: dict[str, Any]) -> set[str]:
    """Every variable a point of the experiment can set in the stack's environment, and those the
    function defaults name (LoggingMode, in an experiment cut down to baselines without it)."""
    stack = data.get("stack", {})
    names = set(stack.get("env", {})) | {"TABLE_PREFIX", "AWS_REGION"}
    names |= set((stack.get("function_defaults") or {}).get("point_env") or [])
    for b in data["baselines"].values():
        names |= set(b.get("env", {}))
    for meta in data.get("parameters", {}).values():
        if meta.get("env"):
            names.add(meta["env"])
    return names


def check_point_env(data: dict[str, Any], stack: dict[str, Any], where: str) -> None:
    """A `point_env` name no point sets is a typo (it would be left out silently)."""
    known = point_env_names(data)
    items = [(f"services.{n}", s) for n, s in stack["services"].items()]
    if stack["data"]:
        items.append(("data", stack["data"]))
    for key, item in items:
        for name in item.get("point_env", []) or []:
            if name not in known:
                raise ConfigError(
                    f"{where}.{key}.point_env: {name!r} is set by no point; expected one of {', '.join(sorted(known))}"
                )


def resolve_data_files(data_step: dict[str, Any] | None, data_files: dict[str, str], repo: Path) -> Any:
    """The data step's files named by a key of the run configuration's data_files, as paths (a
    relative one is relative to the repository); an unset key stays, reported when the step runs."""
    if not data_step:
        return data_step
    files = []
    for f in data_step.get("files", []):
        if "data_file" in f and data_files.get(f["data_file"]):
            path = Path(data_files[f["data_file"]]).expanduser()
            f = {**f, "source": portable(path if path.is_absolute() else repo / path)}
        files.append(f)
    return {**data_step, "files": files}


def host_file_text(hf: dict[str, Any], registry: list[dict[str, Any]]) -> str:
    """A host file's content: the registry as JSON, or its source file's text."""
    if hf.get("content") == "registry":
        return json.dumps(registry, indent=2) + "\n"
    try:
        return local_path(hf["source"]).read_text()
    except OSError as e:
        raise ConfigError(f"stack.host_files ({hf['dest']}): cannot read {hf['source']}: {e.strerror}") from None
