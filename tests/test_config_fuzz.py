"""Property: whatever an experiment or config file holds, the answer is a result or a message
naming the file and the key, never a traceback from deeper down."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchpipe.errors import ConfigError
from benchpipe.experiment import load_experiment
from benchpipe.validation import validate

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "config" / "experiments" / "halfmoon"
EXPERIMENTS = sorted(p.stem for p in SUITE.glob("[!_]*.yaml"))
pytestmark = pytest.mark.slow  # 300 generated files

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths(v, (*prefix, i))
    return out


def mutate(data: Any, path: tuple, value: Any, op: str) -> Any:
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if op == "delete" and isinstance(node, dict):
        del node[last]
    elif op == "extra" and isinstance(node, dict):
        node[f"{last}_extra"] = value
    else:
        node[last] = value
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(EXPERIMENTS),
    pick=st.integers(0, 10**6),
    value=values,
    op=st.sampled_from(["set", "delete", "extra"]),
)
def test_mutated_experiment_gives_result_or_message(tmp_path_factory, name, pick, value, op):
    folder = tmp_path_factory.mktemp("suite")
    for f in SUITE.glob("_*.yaml"):
        (folder / f.name).write_text(f.read_text())
    data = yaml.safe_load((SUITE / f"{name}.yaml").read_text())
    all_paths = paths(data)
    target = folder / f"{name}.yaml"
    target.write_text(yaml.safe_dump(mutate(data, all_paths[pick % len(all_paths)], value, op)))
    try:
        load_experiment(target, {"duration": 0.1, "rate": 0.5})
    except ConfigError as e:
        first = str(e).splitlines()[0]
        assert first.startswith(str(target) + ": ") or first.startswith(str(folder)), first
        assert first.count(": ") >= 2, f"no key named: {first}"


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(["suite", "experiments", "repetitions", "scale", "provider", "measure", "zzz"]), value=values
)
def test_mutated_config_gives_result_or_message(key, value):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg[key] = value
    try:
        validate(cfg, "config.schema.yaml", "config/config.yaml")
    except ConfigError as e:
        assert str(e).startswith("config/config.yaml: ")
