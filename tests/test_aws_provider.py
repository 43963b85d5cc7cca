"""The aws provider against a real moto server: clusters come up whole and go away whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchpipe.cloud import dynamo
from benchpipe.cloud.session import client
from benchpipe.cloud.spot import ProvisionError
from benchpipe.experiment import load_experiment
from benchpipe.providers.aws import AwsProvider, janitor
from benchpipe.secrets_scan import scan
from tests.aws_fixtures import NOTHING_LEFT, capacity_error, count_live

pytestmark = pytest.mark.aws
REPO = Path(__file__).resolve().parent.parent
HOTEL = load_experiment(REPO / "config/experiments/halfmoon/hotel.yaml")
SHARED_LOG = {"machines": HOTEL.machines("shared_log")}


def alive_instances(settings) -> set[str]:
    ec2 = client(settings, "ec2")
    states = [{"Name": "instance-state-name", "Values": ["running", "pending"]}]
    return {i["InstanceId"] for r in ec2.describe_instances(Filters=states)["Reservations"] for i in r["Instances"]}


def provision(settings, run_id="r1", name="hotel-boki"):
    return AwsProvider(settings).provision(SHARED_LOG, name=name, run_id=run_id, experiment="hotel", baseline="boki")


def test_halfmoon_cluster_up_and_down_leaves_nothing(aws):
    cluster = provision(aws)
    assert len(cluster.hosts) == 16
    assert {h.instance_type for h in cluster.hosts} == {"c5d.2xlarge", "c5d.xlarge"}
    assert count_live(aws)["instances"] == 16
    ec2 = client(aws, "ec2")
    tags = {
        t["Key"]: t["Value"]
        for r in ec2.describe_instances(InstanceIds=[cluster.hosts[0].instance_id])["Reservations"]
        for i in r["Instances"]
        for t in i["Tags"]
    }
    for key in ("project", "run-id", "experiment", "baseline", "cluster", "owner", "created", "expires", "Name"):
        assert tags.get(key), key
    ddb = client(aws, "dynamodb")
    dynamo.create_tables(ddb, cluster.extra["table_prefix"], ["geo", "rate", "profile"], {"project": "benchpipe"})
    assert count_live(aws)["tables"] == 3
    AwsProvider(aws).teardown(cluster)
    assert count_live(aws) == NOTHING_LEFT
    AwsProvider(aws).teardown(cluster)  # idempotent
    assert not scan([Path(aws["results_dir"])]), "a credential was written"


def test_capacity_error_in_first_zone_lands_in_next(aws, inject):
    calls = {"n": 0}

    def refuse_zone_a(params):
        if params["LaunchSpecification"]["Placement"]["AvailabilityZone"].endswith("a"):
            calls["n"] += 1
            if calls["n"] == 5:  # after four requests were placed: a partial launch to undo
                raise capacity_error()

    inject("ec2.RequestSpotInstances", refuse_zone_a)
    cluster = provision(aws)
    assert cluster.extra["zone"] == "ap-southeast-1b"
    assert calls["n"] == 5
    # The four instances of the refused attempt are gone; only the cluster's own run.
    alive = alive_instances(aws)
    assert alive == {h.instance_id for h in cluster.hosts}
    assert count_live(aws)["spot_requests"] == 16
    AwsProvider(aws).teardown(cluster)
    assert count_live(aws)["all_instances"] == 0


def test_capacity_errors_everywhere_clear_error_nothing_left(aws, inject):
    seen = []

    def refuse_after_three(params):
        seen.append(params["LaunchSpecification"]["Placement"]["AvailabilityZone"])
        if seen.count(seen[-1]) > 3:
            raise capacity_error()

    inject("ec2.RequestSpotInstances", refuse_after_three)
    with pytest.raises(ProvisionError) as e:
        provision(aws)
    msg = str(e.value)
    for zone in ("ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"):
        assert zone in msg
    assert "on_demand_fallback" in msg
    assert count_live(aws) == NOTHING_LEFT


def test_on_demand_fallback(aws, inject):
    inject("ec2.RequestSpotInstances", lambda params: (_ for _ in ()).throw(capacity_error()))
    cluster = provision({**aws, "on_demand_fallback": True})
    assert cluster.extra["market"] == "on-demand" and len(cluster.hosts) == 16
    AwsProvider(aws).teardown(cluster)
    assert count_live(aws)["all_instances"] == 0


def test_ctrl_c_during_provisioning_leaves_nothing(aws, inject):
    fired = []

    def interrupt(params):
        if not fired:  # one Ctrl-C, while waiting for fulfilment
            fired.append(1)
            raise KeyboardInterrupt

    inject("ec2.DescribeSpotInstanceRequests", interrupt)
    with pytest.raises(KeyboardInterrupt):
        provision(aws)
    live = count_live(aws)
    assert live["all_instances"] == 0 and live["spot_requests"] == 0 and live["roles"] == 0
    ledger = (Path(aws["results_dir"]) / ".ledger" / "aws.jsonl").read_text()
    assert ledger.count('"kind": "spot-request"') == 16, "every request is in the ledger before waiting"


def test_janitor_removes_expired_spares_live(aws):
    live = provision(aws, run_id="live1", name="hotel-boki")
    expired = provision({**aws, "ttl_minutes": -1}, run_id="old1", name="hotel-unsafe")
    orphan = provision(aws, run_id="gone1", name="movie-boki")
    ddb = client(aws, "dynamodb")
    dynamo.create_tables(
        ddb,
        expired.extra["table_prefix"],
        ["t"],
        {"project": "benchpipe", "run-id": "old1", "expires": "2000-01-01T00:00:00Z"},
    )
    removed = janitor(aws, live_runs={"live1", "old1"})
    assert sum(r.startswith("instance ") for r in removed) == 32
    assert any(r.startswith("table benchpipe-old1-") for r in removed)
    alive = alive_instances(aws)
    assert alive == {h.instance_id for h in live.hosts}
    assert not ({h.instance_id for h in expired.hosts + orphan.hosts} & alive)
    AwsProvider(aws).teardown(live)
