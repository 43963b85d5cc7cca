"""DynamoDB credentials for the Halfmoon functions and data step where no instance profile gives them
(`--profile ssh`): the routes of benchpipe/cloud/credentials.py in the rendered stack, the contract
function binaries refusing a stack without them, and the role route's temporary credentials from a
moto server's STS, limited to the point's tables."""

from __future__ import annotations

import configparser
import json
import sys
from pathlib import Path

import pytest
import yaml

from benchpipe.cloud import credentials
from benchpipe.clusters import planned_cluster
from benchpipe.deployers.swarm import SwarmDeployer
from benchpipe.errors import ConfigError
from benchpipe.pointspec import point_spec
from tests.test_halfmoon_golden_stack import CFG, EXPERIMENTS, deploy, fakes  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workloads" / "halfmoon-contract"))

from hmcontract import functions  # noqa: E402
from hmcontract.checks import Refusal  # noqa: E402

REGION = "ap-southeast-1"
ROLE = "arn:aws:iam::123456789012:role/benchpipe-halfmoon-tables"


def ssh_render(exp: str, baseline: str, creds: dict | None) -> dict:
    """The compose services of the first point of `exp`/`baseline` as the swarm deployer renders them
    under --profile ssh (dynamodb settings of the ssh profile, with or without a credentials route)."""
    e = EXPERIMENTS[exp]
    spec = point_spec(CFG, e, e.points(baseline)[0])
    dynamodb = {"region": REGION, **({"credentials": creds} if creds else {})}
    d = SwarmDeployer({"region": REGION, "dynamodb": dynamodb})
    rendered = d.render(planned_cluster("plan", spec["machines"]), spec["deployment"], spec["env"])
    return yaml.safe_load(rendered["compose"].replace("{table_prefix}", "p-").replace("{point_dir}", "/tmp/p"))


def start_function(svc: dict, secrets_dir: Path, creds_text: str) -> dict:
    """The contract function binary's start check with the service's environment, the secrets it
    names mounted as swarm mounts them (their files under /run/secrets), on a host without EC2."""
    env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
    for s in svc.get("secrets", []):
        (secrets_dir / s["target"]).write_text(creds_text)
    if env.get("AWS_SHARED_CREDENTIALS_FILE", "").startswith("/run/secrets/"):
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(secrets_dir / env["AWS_SHARED_CREDENTIALS_FILE"].rsplit("/", 1)[1])
    binary = svc["entrypoint"][1]
    name = binary.rsplit("/", 1)[1]
    env.update(
        {"HMCONTRACT_FUNC_NAME": ("b" + name) if binary.startswith("/beldi-bin/b") else name, "HOME": "/nonexistent"}
    )
    env.update({"K_NEAREST": "5", "NUM_KEYS": "100"})  # the experiment's values; checked elsewhere
    return functions.start_check(binary, env, instance_profile=lambda: False)


FUNCTIONS = {"hotel": "halfmoon-read", "singleop": "boki"}


@pytest.mark.parametrize("exp", list(FUNCTIONS))
def test_the_ssh_stack_carries_the_role_route_and_the_contract_refuses_a_stack_without(exp, tmp_path):
    baseline = FUNCTIONS[exp]
    creds_text = credentials.shared_credentials_file(
        {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "x"}
    )
    with_route = ssh_render(exp, baseline, {"role_arn": ROLE})
    assert with_route["secrets"] == {"aws_credentials": {"external": True, "name": "{aws_secret}"}}
    checked = 0
    for name, svc in with_route["services"].items():
        if svc["image"] != "shengqipku/halfmoon-bench:sosp-ae":
            assert "secrets" not in svc and "AWS_SHARED_CREDENTIALS_FILE" not in svc.get("environment", {}), name
            continue
        env = svc["environment"]
        if "AWS_REGION" in env:  # need_aws_env (sheet §2.1): the secret, read as aws-sdk-go reads it
            assert svc["secrets"] == [{"source": "aws_credentials", "target": "aws_credentials", "mode": 0o400}]
            assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/aws_credentials"
            assert env["AWS_EC2_METADATA_DISABLED"] == "true"
            assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
        else:  # boki's nop (sheet §2.2: no AWS): nothing
            assert "secrets" not in svc, name
        report = start_function(svc, tmp_path, creds_text)
        assert (report["credentials"] is None) == ("AWS_REGION" not in env), (name, report)
        checked += 1
    assert checked == (11 if exp == "hotel" else 2)  # boki singleop: nop, singleop
    # Today's ssh stack (no route): every function that reaches DynamoDB is refused at start.
    refused = []
    for name, svc in ssh_render(exp, baseline, None)["services"].items():
        if svc["image"] == "shengqipku/halfmoon-bench:sosp-ae":
            assert "secrets" not in svc
            try:
                start_function(svc, tmp_path, creds_text)
            except Refusal as e:
                assert "no DynamoDB credentials" in str(e) and "sheet §4.1" in str(e)
                refused.append(name)
    assert len(refused) == (11 if exp == "hotel" else 1), refused


def test_the_profile_route_mounts_a_named_profile_read_only(tmp_path):
    svc = ssh_render("hotel", "unsafe", {"profile": "benchpipe", "file": "/home/me/.aws/credentials"})["services"][
        "geo-service"
    ]
    assert "/home/me/.aws/credentials:/run/benchpipe/aws/credentials:ro" in svc["volumes"]
    env = svc["environment"]
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/run/benchpipe/aws/credentials"
    assert env["AWS_PROFILE"] == "benchpipe" and "secrets" not in svc


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        ({"role_arn": "benchpipe"}, r"role_arn: expected arn:aws:iam::<account>:role/<name>"),
        ({"role_arn": ROLE, "duration_s": 60}, r"duration_s: expected 900 to 43200"),
        ({"profile": "p", "file": "~/.aws/credentials"}, r"profile with file \(the absolute path"),
        ({"access_key_id": "AKIA"}, r"expected \{role_arn, duration_s, source_profile\} or \{profile, file\}"),
    ],
)
def test_bad_credentials_settings_are_named(creds, message):
    with pytest.raises(ConfigError, match=r"deployer.settings.dynamodb.credentials.*" + message):
        SwarmDeployer({"region": REGION, "dynamodb": {"region": REGION, "credentials": creds}})


@pytest.mark.aws
def test_the_role_route_hands_the_point_temporary_credentials_and_removes_them(
    moto_endpoint,
    fakes,  # noqa: F811 (the golden stack test's fixture)
    monkeypatch,
    tmp_path,
):
    """Against moto's IAM and STS: the controller assumes the role with a session policy naming the
    point's tables; the functions get the credentials as a Docker secret, the data step as a private
    file deleted when it ends; the manifest names the route, never a key; stop removes the secret."""
    import urllib.request

    import boto3

    from benchpipe.cloud import session

    hosts, ddb = fakes
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "controller-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "controller-secret-never-copied")
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    arn = iam.create_role(RoleName="benchpipe-halfmoon-tables", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    calls = []
    real_sts = boto3.session.Session.client

    def spy(self, service, *a, **kw):
        c = real_sts(self, service, *a, **kw)
        if service == "sts":
            c.meta.events.register("before-parameter-build.sts.AssumeRole", lambda params, **_: calls.append(params))
        return c

    monkeypatch.setattr(boto3.session.Session, "client", spy)
    exp = EXPERIMENTS["retwis"]
    spec = point_spec(CFG, exp, exp.points("halfmoon-read")[0])
    settings = {
        "region": REGION,
        "dynamodb": {"region": REGION, "credentials": {"role_arn": arn, "sts_endpoint_url": moto_endpoint}},
    }
    spec["deployer"]["settings"] = settings
    _, rendered, cluster = deploy(spec)
    cluster.provider = "ssh"
    d = SwarmDeployer(settings)
    stack = d.start(cluster, rendered, "/tmp/p")
    # One AssumeRole, limited to the point's tables.
    assert len(calls) == 1 and calls[0]["RoleArn"] == arn
    policy = json.loads(calls[0]["Policy"])
    assert (
        policy["Statement"][0]["Resource"][0] == f"arn:aws:dynamodb:{REGION}:123456789012:table/{stack.table_prefix}*"
    )
    # The secret: made on the manager from a private file, removed from the disk at once.
    manager, client = cluster.manager.name, cluster.by_role("client")[0].name
    made = [c for c in hosts.runs(manager) if "docker secret create" in c]
    assert len(made) == 1 and stack.aws_secret in made[0] and "rm -f" in made[0]
    files = {key: text for key, text in hosts.files.items() if key[1].endswith("/.aws/credentials")}
    # The manager's (for the secret) and the client's (for the data step): the same credentials.
    assert set(files) == {(manager, "/tmp/p/.aws/credentials"), (client, "/tmp/p/.aws/credentials")}
    assert len(set(files.values())) == 1
    ini = configparser.ConfigParser()
    ini.read_string(next(iter(files.values())))
    temp = ini["default"]
    assert temp["aws_access_key_id"] != "controller-key" and temp["aws_session_token"]
    sts = boto3.client(
        "sts",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=temp["aws_access_key_id"],
        aws_secret_access_key=temp["aws_secret_access_key"],
        aws_session_token=temp["aws_session_token"],
    )
    assert ":assumed-role/benchpipe-halfmoon-tables/" in sts.get_caller_identity()["Arn"]
    compose = yaml.safe_load(stack.deployed["compose"])
    assert compose["secrets"]["aws_credentials"]["name"] == stack.aws_secret
    # The data step reads the private file and deletes it; nothing recorded holds a key.
    init = next(c for c in hosts.runs(client) if "init populate" in c)
    assert "AWS_SHARED_CREDENTIALS_FILE=/tmp/p/.aws/credentials" in init and init.endswith(
        "rm -f /tmp/p/.aws/credentials; exit $r"
    )
    record = json.dumps(stack.deployed)
    assert temp["aws_secret_access_key"] not in record and "controller-secret" not in record
    assert stack.deployed["credentials"] == {
        "route": "role",
        "role_arn": arn,
        "duration_s": 3600,
        "secret": stack.aws_secret,
    }
    d.stop(d.attach(d.handle(stack, "lease")))
    assert any(f"docker secret rm {stack.aws_secret}" in c for c in hosts.runs(manager))
    assert not ddb.tables
    assert session  # (the fakes fixture replaced its client for DynamoDB)
