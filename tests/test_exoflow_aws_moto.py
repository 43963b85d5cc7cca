"""ExoFlow's AWS path against a real moto server: the run's S3 bucket (made, tagged, private,
emptied and removed), a failed `ray up` undone, the janitor, the preflight of the managed
services, and the Step Functions machines of Figure 8(a). `ray up` itself is not run here: Ray's
AWS node provider then waits for SSH on the launched instances, which moto's are not."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from benchpipe.cloud import managed, s3
from benchpipe.cloud.iam import project_roles, ray_cluster_policy
from benchpipe.cloud.session import client
from benchpipe.cloud.setup import setup
from benchpipe.cloud.spot import ProvisionError
from benchpipe.cloud.tags import resource_tags, tag_dict
from benchpipe.experiment import experiment_files, load_experiment
from benchpipe.providers.aws import janitor
from benchpipe.providers.ray_cluster import RayClusterProvider
from benchpipe.secrets_scan import scan

pytestmark = pytest.mark.aws
REPO = Path(__file__).resolve().parent.parent


def fig7c():
    path = experiment_files(REPO / "config" / "experiments")["exoflow_fig7c"]
    return load_experiment(path, {"paper": True}, 1, "aws")


def ray_settings(aws: dict, **over) -> dict:
    exp = fig7c()
    # provision does not look the AMI up (preflight does; `ray up` would launch it).
    return {**aws, **exp.data["targets"]["aws"]["provider"]["settings"], "ami": "ami-0123456789abcdef0", **over}


def buckets(settings) -> set[str]:
    return {b["Name"] for b in client(settings, "s3").list_buckets()["Buckets"]}


def test_bucket_is_tagged_private_and_removed_with_its_objects(aws):
    c = client(aws, "s3")
    tags = resource_tags(aws, run_id="r1", experiment="exoflow_fig7c", cluster="exoflow_fig7c-async")
    name = s3.bucket_name("r1", "exoflow_fig7c-async")
    assert s3.create_bucket(c, name, aws["region"], tags) == name
    assert s3.create_bucket(c, name, aws["region"], tags) == name  # idempotent
    assert c.get_bucket_location(Bucket=name)["LocationConstraint"] == aws["region"]
    assert tag_dict(c.get_bucket_tagging(Bucket=name)["TagSet"])["run-id"] == "r1"
    block = c.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for i in range(3):
        c.put_object(Bucket=name, Key="exoflow_fig7c/async/wf/task.json", Body=f"{i}".encode())
    c.delete_object(Bucket=name, Key="exoflow_fig7c/async/wf/task.json")  # a delete marker too
    assert s3.project_buckets(c) == {name: tag_dict(c.get_bucket_tagging(Bucket=name)["TagSet"])}
    assert s3.delete_bucket(c, name) is True
    assert name not in buckets(aws)
    assert s3.delete_bucket(c, name) is False  # idempotent


def test_failed_ray_up_leaves_no_bucket_and_no_secret(aws, tmp_path):
    setup(aws)
    # A `ray` that fails as the real one does without working credentials (exit 1, after output).
    fake_ray = tmp_path / "ray"
    fake_ray.write_text("#!/bin/sh\necho 'Checking AWS environment settings' >&2\nexit 1\n")
    fake_ray.chmod(0o755)
    prov = RayClusterProvider(ray_settings(aws, ray_cli=str(fake_ray)))
    exp = fig7c()
    before = buckets(aws)
    with pytest.raises(ProvisionError, match=r"exited 1; see .*async\.ray\.log"):
        prov.provision(
            {"machines": exp.machines("graph")},
            name="exoflow_fig7c-async",
            run_id="r2",
            experiment="exoflow_fig7c",
            baseline="async",
        )
    assert buckets(aws) == before
    assert project_roles(client(aws, "iam")) == {}  # the cluster's role went with it
    log = Path(aws["results_dir"]) / ".clusters" / "exoflow_fig7c" / "async.ray.log"
    assert "ray up -y --disable-usage-stats --no-config-cache" in log.read_text()
    assert "ray down -y" in log.read_text()  # the cleanup ran `ray down` too
    assert not scan([Path(aws["results_dir"])]), "a credential was written"


def test_janitor_removes_the_buckets_of_dead_runs_only(aws):
    c = client(aws, "s3")
    dead = s3.bucket_name("dead0001", "exoflow_fig8b-spark")
    live = s3.bucket_name("live0001", "exoflow_fig8b-spark")
    s3.create_bucket(c, dead, aws["region"], resource_tags(aws, run_id="dead0001"))
    s3.create_bucket(c, live, aws["region"], resource_tags(aws, run_id="live0001"))
    c.put_object(Bucket=dead, Key="x", Body=b"1")
    removed = janitor(aws, live_runs={"live0001"})
    assert f"bucket {dead}" in removed
    assert buckets(aws) & {dead, live} == {live}


def test_preflight_names_every_missing_prerequisite_before_anything_starts(aws, tmp_path):
    setup(aws)
    prereq = [
        {"kind": "dynamodb_table", "name": "hotel-reserve", "why": "Beldi", "how": "run sls deploy"},
        {"kind": "state_machine", "name": "sf-standard"},
        {"kind": "lambda_function", "name": "beldi-dev-frontend"},
        {"kind": "s3_object", "name": "s3://data-bucket/twitter-2010.txt.gz"},
        {"kind": "mwaa_environment", "name": ""},
        {"kind": "teleport", "name": "x"},
    ]
    prov = RayClusterProvider(ray_settings(aws, ami="", ray_cli=str(tmp_path / "no-ray"), prerequisites=prereq))
    launched_before = client(aws, "ec2").describe_instances()["Reservations"]
    problems = prov.preflight()
    text = "\n".join(problems)
    assert "provider.settings.ami (config/experiments/exoflow/_aws.yaml)" in text
    assert f"provider.settings.ray_cli: `{tmp_path / 'no-ray'}` not found" in text
    assert "prerequisites[0]: dynamodb_table hotel-reserve (Beldi) missing: run sls deploy" in text
    assert "prerequisites[1]: state_machine sf-standard missing" in text
    assert "prerequisites[2]: lambda_function beldi-dev-frontend missing" in text
    assert "prerequisites[3]: s3_object s3://data-bucket/twitter-2010.txt.gz missing" in text
    assert "prerequisites[4]: mwaa_environment not configured: give its name" in text
    assert "prerequisites[5].kind: expected one of" in text
    assert client(aws, "ec2").describe_instances()["Reservations"] == launched_before
    # Once they exist, they pass.
    client(aws, "dynamodb").create_table(
        TableName="hotel-reserve",
        KeySchema=[{"AttributeName": "K", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "K", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    c = client(aws, "s3")
    c.create_bucket(Bucket="data-bucket", CreateBucketConfiguration={"LocationConstraint": aws["region"]})
    c.put_object(Bucket="data-bucket", Key="twitter-2010.txt.gz", Body=b"0 1\n")
    role = client(aws, "iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client(aws, "stepfunctions").create_state_machine(name="sf-standard", definition="{}", roleArn=role)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("main.py", "def handler(e, c):\n    return e\n")
    client(aws, "lambda").create_function(
        FunctionName="beldi-dev-frontend",
        Runtime="python3.11",
        Role=role,
        Handler="main.handler",
        Code={"ZipFile": zipped.getvalue()},
    )
    left = "\n".join(managed.check_prerequisites(aws, prereq[:4]))
    assert left == ""


def test_step_functions_machines_of_figure_8a_created_tagged_and_deleted(aws):
    role = client(aws, "iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    producer = f"arn:aws:lambda:{aws['region']}:123456789012:function:producer"
    consumer = f"arn:aws:lambda:{aws['region']}:123456789012:function:consumer"
    tags = resource_tags(aws, run_id="r3", experiment="exoflow_fig8a")
    rendered = managed.render_state_machines("benchpipe-r3-fig8a", producer, consumer, role, tags)
    assert [(r["name"], r["type"]) for r in rendered] == [
        ("benchpipe-r3-fig8a-standard", "STANDARD"),
        ("benchpipe-r3-fig8a-express", "EXPRESS"),
    ]
    arns = managed.create_state_machines(aws, rendered)
    sfn = client(aws, "stepfunctions")
    for arn in arns:
        got = sfn.describe_state_machine(stateMachineArn=arn)
        assert '"Next": "Consumer"' in got["definition"] and producer in got["definition"]
        tagged = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=arn)["tags"]}
        assert tagged["project"] == "benchpipe" and tagged["run-id"] == "r3"
    managed.delete_state_machines(aws, arns)
    managed.delete_state_machines(aws, arns)  # idempotent
    assert sfn.list_state_machines()["stateMachines"] == []


def test_teardown_terminates_what_ray_down_left_and_keepalive_moves_the_expiry(aws, tmp_path):
    """Nodes launched as Ray's node provider launches them (tagged by the YAML), a `ray down` that
    leaves them (exit 0, nothing done): teardown still terminates them and removes the bucket."""
    from benchpipe.model import Cluster, Host

    lazy_ray = tmp_path / "ray"
    lazy_ray.write_text("#!/bin/sh\nexit 0\n")
    lazy_ray.chmod(0o755)
    settings = ray_settings(aws, ray_cli=str(lazy_ray), bootstrap=False)
    tags = resource_tags(settings, run_id="r4", experiment="exoflow_fig7c", cluster="exoflow_fig7c-sync")
    ec2 = client(aws, "ec2")
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-12c6146b",  # moto does not look it up (describing its images takes ~10 s)
            MinCount=3,
            MaxCount=3,
            InstanceType="r3.8xlarge",
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"]
    ]
    bucket = s3.create_bucket(client(aws, "s3"), s3.bucket_name("r4", "exoflow_fig7c-sync"), aws["region"], tags)
    yaml_path = tmp_path / "sync.ray.yaml"
    yaml_path.write_text("cluster_name: x\n")
    cluster = Cluster(
        name="exoflow_fig7c-sync",
        provider="ray-cluster",
        run_id="r4",
        experiment="exoflow_fig7c",
        baseline="sync",
        hosts=[Host(name=f"n{i}", address=f"10.0.0.{i}", role="manager" if i == 0 else "worker") for i in range(3)],
        lock_key="k",
        expires=tags["expires"],
        extra={"yaml": str(yaml_path), "bucket": bucket, "region": aws["region"], "ray_cli": str(lazy_ray)},
    )
    prov = RayClusterProvider(settings)
    assert prov.lost_hosts(cluster) == []
    ec2.create_tags(Resources=ids, Tags=[{"Key": "expires", "Value": "2000-01-01T00:00:00Z"}])
    prov.keepalive(cluster)
    got = {
        tag_dict(i["Tags"])["expires"]
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
        for i in r["Instances"]
    }
    assert got == {cluster.expires} and cluster.expires > "2026"
    ec2.terminate_instances(InstanceIds=ids[:1])
    assert prov.lost_hosts(cluster) == ["1 of 3 node(s) of exoflow_fig7c-sync are not running"]
    prov.teardown(cluster)
    states = {
        i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]
    }
    assert states == {"terminated"}
    assert bucket not in buckets(aws)
    prov.teardown(cluster)  # idempotent


def test_cluster_role_is_tagged_and_limited_to_the_run(aws):
    """The nodes' role as provision makes it: tagged, its profile of the same name, passable only
    to itself, S3 writes only on the run's bucket, the figure's extra actions."""
    from benchpipe.cloud.iam import create_cluster_role, delete_cluster_role

    c = client(aws, "iam")
    policy = ray_cluster_policy("123456789012", "benchpipe-r5-x", "benchpipe-r5-x-bucket", ["airflow:CreateCliToken"])
    create_cluster_role(c, "benchpipe-r5-x", policy, resource_tags(aws, run_id="r5"))
    assert project_roles(c)["benchpipe-r5-x"]["run-id"] == "r5"
    assert c.get_instance_profile(InstanceProfileName="benchpipe-r5-x")["InstanceProfile"]["Roles"][0]["RoleName"] == (
        "benchpipe-r5-x"
    )
    stmts = c.get_role_policy(RoleName="benchpipe-r5-x", PolicyName="benchpipe-run-tables")["PolicyDocument"][
        "Statement"
    ]
    by_action = {json.dumps(st["Action"]): st["Resource"] for st in stmts}
    assert by_action['"iam:PassRole"'] == "arn:aws:iam::123456789012:role/benchpipe/benchpipe-r5-x"
    assert by_action['"s3:*"'] == ["arn:aws:s3:::benchpipe-r5-x-bucket", "arn:aws:s3:::benchpipe-r5-x-bucket/*"]
    assert by_action['["airflow:CreateCliToken"]'] == "*"
    delete_cluster_role(c, "benchpipe-r5-x")
    assert project_roles(c) == {}
