"""The compose file for the Halfmoon 16-machine shape places services as the seed does (reference §4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from benchpipe.clusters import planned_cluster
from benchpipe.deployers.compose import render_compose
from benchpipe.errors import ConfigError
from benchpipe.experiment import load_experiment
from benchpipe.stackspec import resolve_stack

REPO = Path(__file__).resolve().parent.parent
HOTEL = load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml")


def compose_for(baseline: str) -> dict:
    shape = planned_cluster("hotel", HOTEL.machines(HOTEL.baseline(baseline)["cluster"]))
    env = {"TABLE_PREFIX": "abc-", **HOTEL.baseline(baseline).get("env", {})}
    services = resolve_stack(HOTEL.data, baseline, HOTEL.source)["services"]
    text = render_compose(services, shape, env, region="ap-southeast-1")
    return yaml.safe_load(text)["services"]


def constraint(svc: dict) -> str:
    return svc["deploy"]["placement"]["constraints"][0]


@pytest.mark.parametrize("baseline", ["boki", "halfmoon-read", "halfmoon-write"])
def test_shared_log_placement_matches_seed(baseline):
    s = compose_for(baseline)
    for name in ("zookeeper", "zookeeper-setup", "boki-controller", "boki-gateway"):
        assert constraint(s[name]) == "node.hostname == bokiexp-gateway", name
    for name, label, n in (
        ("boki-storage", "storage_node", 3),
        ("boki-sequencer", "sequencer_node", 3),
        ("boki-engine", "engine_node", 8),
    ):
        assert constraint(s[name]) == f"node.labels.{label} == true", name
        assert s[name]["deploy"]["replicas"] == n and s[name]["deploy"]["placement"]["max_replicas_per_node"] == 1
    assert "--enable_shared_log" in s["boki-engine"]["entrypoint"]
    assert ("--use_txn_engine" in s["boki-engine"]["entrypoint"]) == baseline.startswith("halfmoon")
    assert s["boki-gateway"]["ports"] == ["8080:8080"]
    # The point's variables go to the function services (point_env), not to the infrastructure.
    assert s["geo-service"]["environment"]["TABLE_PREFIX"] == "abc-"
    assert "TABLE_PREFIX" not in s["boki-engine"]["environment"]


def test_logging_mode_reaches_every_function_service():
    for baseline, mode in (("halfmoon-read", "write"), ("halfmoon-write", "read")):
        s = compose_for(baseline)
        functions = [n for n in s if n.endswith("-service")]
        assert len(functions) == 11
        assert all(s[n]["environment"]["LoggingMode"] == mode for n in functions)
    assert all("LoggingMode" not in svc.get("environment", {}) for svc in compose_for("boki").values())


def test_baseline_cluster_has_no_shared_log():
    s = compose_for("unsafe")
    assert not {"boki-controller", "boki-storage", "boki-sequencer"} & set(s)
    assert "--enable_shared_log" not in s["boki-engine"]["entrypoint"]
    assert s["boki-engine"]["deploy"]["replicas"] == 8


def test_bad_placement_is_named():
    shape = planned_cluster("x", HOTEL.machines("baseline"))
    msg = "services.s.placement.label: no machine of the cluster has label 'storage_node'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        render_compose({"s": {"image": "i", "placement": {"label": "storage_node"}}}, shape, {})
    with pytest.raises(ConfigError, match="do not fit"):
        render_compose({"s": {"image": "i", "placement": {"label": "engine_node"}, "replicas": 9}}, shape, {})
