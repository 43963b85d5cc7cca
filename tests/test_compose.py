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

REPO = Path(__file__).resolve().parent.parent
HOTEL = load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml")


def compose_for(baseline: str) -> dict:
    shape = planned_cluster("hotel", HOTEL.machines(HOTEL.baseline(baseline)["cluster"]))
    env = {"TABLE_PREFIX": "abc-", **HOTEL.baseline(baseline).get("env", {})}
    text = render_compose(HOTEL.baseline(baseline)["services"], shape, env, region="ap-southeast-1")
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
    assert "--enable_shared_log" in s["boki-engine"]["command"]
    assert ("--use_txn_engine" in s["boki-engine"]["command"]) == baseline.startswith("halfmoon")
    assert s["boki-gateway"]["ports"] == ["8080:8080"]
    assert s["boki-engine"]["environment"]["TABLE_PREFIX"] == "abc-"


def test_logging_mode_reaches_every_service():
    assert compose_for("halfmoon-read")["boki-engine"]["environment"]["LoggingMode"] == "write"
    assert compose_for("halfmoon-write")["boki-engine"]["environment"]["LoggingMode"] == "read"


def test_baseline_cluster_has_no_shared_log():
    s = compose_for("unsafe")
    assert not {"boki-controller", "boki-storage", "boki-sequencer"} & set(s)
    assert "--enable_shared_log" not in s["boki-engine"]["command"]
    assert s["boki-engine"]["deploy"]["replicas"] == 8


def test_bad_placement_is_named():
    shape = planned_cluster("x", HOTEL.machines("baseline"))
    msg = "services.s.placement.label: no machine of the cluster has label 'storage_node'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        render_compose({"s": {"image": "i", "placement": {"label": "storage_node"}}}, shape, {})
    with pytest.raises(ConfigError, match="do not fit"):
        render_compose({"s": {"image": "i", "placement": {"label": "engine_node"}, "replicas": 9}}, shape, {})
