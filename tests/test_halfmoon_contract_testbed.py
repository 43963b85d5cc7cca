"""`snakemake --profile <ssh>` on the local test bed (testbed/up.sh) with the REAL rendered stacks of
hotel and retwis against the contract images (workloads/halfmoon-contract, tagged with the real
names): every service's real command line and environment, the host files, the start-up gate, the
data step's `init populate` into DynamoDB tables the harness creates in a moto server this test
starts, and the tables dropped after each point. The functions and the data step get DynamoDB
credentials by the role route (benchpipe/cloud/credentials.py: moto's STS, a Docker secret), which
the contract images require. One rate; hotel on Unsafe, retwis on Halfmoon-read (POINTS)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from benchpipe.merge import deep_merge
from tests.test_pipeline_e2e import snakemake
from tests.test_swarm_testbed import load_testbed, node_name

REPO = Path(__file__).resolve().parent.parent
REGION = "ap-southeast-1"
# The points run here: both apps, an Unsafe and a Halfmoon stack (b-prefixed names and tables, the
# baseline init argument; storage, sequencer, controller, --use_txn_engine, LoggingMode, cayon).
# Every other combination's rendered stack goes through the same start checks, without docker, in
# test_halfmoon_contract.py. Four points (both baselines of each app) took 119-160 s here.
POINTS = {"hotel": ("unsafe",), "retwis": ("halfmoon-read",)}
STACK = "benchpipe-hmc"
ROLE = "benchpipe-halfmoon-tables"
pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow, pytest.mark.aws]


def contract_images_present() -> bool:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", '{{index .Config.Labels "benchpipe.contract"}}', "zookeeper:3.6.2"],
        capture_output=True,
        text=True,
    )
    return out.returncode == 0 and bool(out.stdout.strip())


def contract_workdir(tmp_path: Path, moto: str, role_arn: str) -> Path:
    tb = load_testbed()
    if not contract_images_present():
        pytest.skip("no contract images: bash testbed/up.sh builds them")
    node = node_name()
    suite = tmp_path / "config" / "experiments" / "halfmoon"
    suite.mkdir(parents=True)
    src = REPO / "config" / "experiments" / "halfmoon"
    subprocess.run(["cp", "-r", str(src / "files"), str(suite / "files")], check=True)
    # Services pinned to the manager name it by hostname: here the test bed's one node.
    common = yaml.safe_load((src / "_halfmoon.yaml").read_text().replace("bokiexp-gateway", node))
    # One machine carries every label (one engine, storage node and sequencer); the client is 127.0.0.2.
    labels = ["engine_node=true", "storage_node=true", "sequencer_node=true"]
    common["clusters"] = {
        shape: {"machines": [{"name": node, "role": "manager", "labels": labels}, {"name": "client", "role": "client"}]}
        for shape in ("shared_log", "baseline")
    }
    baselines = common.pop("baselines")
    common["stack"]["vars"]["zk_start_gate_s"] = 1  # the artifact's 80 s before /faas/cmd/start
    (suite / "_halfmoon.yaml").write_text(yaml.safe_dump(common))
    for name, chosen in POINTS.items():
        exp = yaml.safe_load((src / f"{name}.yaml").read_text())
        own = exp.get("baselines") or {}
        exp["baselines"] = {b: deep_merge(baselines[b], own.get(b) or {}) for b in chosen}
        exp["sweep"] = {"qps": [20]}
        exp["workload"].update({"warmup_s": 0.5, "measure_s": 2.0, "pause_s": 0})
        if name == "retwis":  # 20,005 sequential UpdateItems per point is minutes; the same code path
            exp["stack"]["env"]["NUM_USERS"] = 200
        (suite / f"{name}.yaml").write_text(yaml.safe_dump(exp))
    key, port, user = tb["BENCHPIPE_TESTBED_KEY"], int(tb["BENCHPIPE_TESTBED_SSH_PORT"]), tb["BENCHPIPE_TESTBED_USER"]
    hosts = [
        {
            "name": node,
            "address": "127.0.0.1",
            "port": port,
            "user": user,
            "key_file": key,
            "role": "manager",
            "labels": labels,
        },
        {"name": "client", "address": "127.0.0.2", "port": port, "user": user, "key_file": key, "role": "client"},
    ]
    config = {
        "suite": "halfmoon",
        "experiments": list(POINTS),
        "target": "ssh",
        "scale": {"duration": 1.0, "rate": 1.0},
        "provider": {"name": "ssh", "settings": {"hosts": hosts}},
        "deployer": {
            "name": "swarm",
            "settings": {
                "host_network": True,
                "gateway_port": 8080,
                "stack": STACK,
                "pull": False,  # the contract images exist only here
                "stop_grace_s": 1,  # zk_setup.sh's `sleep infinity` ignores SIGTERM
                "dynamodb": {
                    "region": REGION,
                    "endpoint_url": moto,
                    "credentials": {"role_arn": role_arn, "sts_endpoint_url": moto},
                },
                "remote_dir_template": str(tmp_path / "remote/{experiment}/{baseline}/{point}"),
            },
        },
        "generator": {"name": "openloop", "settings": {"processes": 1}},
        "measure": {"retries": 0, "ready_timeout_s": 90},
    }
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


class TableWatch:
    """Samples the moto server's tables (and the populated user tables' item counts) while the run goes."""

    def __init__(self, moto: str) -> None:
        import boto3

        self.ddb = boto3.client(
            "dynamodb", endpoint_url=moto, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.seen: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                for t in self.ddb.list_tables()["TableNames"]:
                    n = self.seen.setdefault(t, 0)
                    if t.endswith("user"):
                        count = self.ddb.describe_table(TableName=t)["Table"]["ItemCount"]
                        self.seen[t] = max(n, count)
            except Exception:  # a table dropped between list and describe
                continue

    def tables_now(self) -> list[str]:
        return self.ddb.list_tables()["TableNames"]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def test_real_stacks_of_hotel_and_retwis_run_on_the_contract_images(tmp_path, moto_endpoint, monkeypatch):
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # the harness's boto3 client (tables), against moto
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name=REGION)
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    wd = contract_workdir(tmp_path, moto_endpoint, role_arn)
    watch = TableWatch(moto_endpoint)
    t0 = time.monotonic()
    try:
        snakemake(wd, *(f"figures/{e}.png" for e in POINTS))
    finally:
        watch.close()
    elapsed = time.monotonic() - t0
    print(f"{POINTS}: {elapsed:.1f} s on the contract images")
    assert all((wd / "figures" / f"{e}.png").exists() for e in POINTS)
    # Every point's tables existed while it ran (populated by the data step's init) and are gone now.
    want = {(e, b) for e, bs in POINTS.items() for b in bs}
    expected_tables = {
        ("hotel", "unsafe"): "-bgeo",
        ("hotel", "halfmoon-read"): "-geo",
        ("retwis", "unsafe"): "-timeline",
        ("retwis", "halfmoon-read"): "-timeline",
    }
    for point in want:
        assert len([t for t in watch.seen if t.endswith(expected_tables[point])]) >= 1, (point, watch.seen)
    # Each point's tables share its prefix; the data step filled its user table while it ran.
    for t, n in watch.seen.items():
        prefix = t[: t.rindex("-") + 1]
        if t.endswith(("-user", "-buser")):
            retwis = f"{prefix}timeline" in watch.seen
            assert n == (200 if retwis else 501), (t, n)  # NUM_USERS here; Cornell_0 ... Cornell_500
    assert watch.tables_now() == []
    manifests = {
        (p.parent.parent.parent.name, p.parent.parent.name): json.loads(p.read_text())
        for p in (wd / "results").glob("*/*/*/manifest.json")
    }
    assert set(manifests) == want
    for (exp, baseline), m in manifests.items():
        assert m["async_results_entries"] > 0, (exp, baseline)
        calls = (wd / "results" / exp / baseline / "qps20" / "raw" / "async_results").read_text().splitlines()
        assert calls and all(json.loads(c)["success"] for c in calls), (exp, baseline, calls[:3])
        # The credentials route: a per-point secret for the functions, a private file for init.
        route = m["stack"]["credentials"]
        assert route["route"] == "role" and route["role_arn"] == role_arn, route
        compose = yaml.safe_load(m["stack"]["compose"])
        assert compose["secrets"]["aws_credentials"]["name"] == route["secret"]
        with_secret = [n for n, svc in compose["services"].items() if svc.get("secrets")]
        assert len(with_secret) == (11 if exp == "hotel" else 5), with_secret
        assert "AWS_SHARED_CREDENTIALS_FILE=" in m["stack"]["data"][-1]
        commands = m["stack"]["commands"]
        assert commands["boki-gateway"][0] == "/boki/gateway"
        assert "--func_config_file=/tmp/boki/func_config.json" in commands["boki-gateway"]
        assert "--listen_iface=eth0" in commands["boki-engine"]
        root = "/beldi-bin/b" if baseline == "unsafe" else "/optimal-bin/"
        entry = "gateway-service" if exp == "hotel" else "timeline-service"
        assert commands[entry][:2] == ["/tmp/boki/run_launcher", f"{root}{exp}/{entry.split('-')[0]}"], commands
        if baseline == "halfmoon-read":
            assert "--use_txn_engine" in commands["boki-storage"]
        assert commands["zookeeper-setup"] == ["/tmp/boki/zk_setup.sh", "1"]
        # The data step: the app folder copied out of the bench image, then the artifact's init line.
        data = m["stack"]["data"]
        app_dir = f"{'b' if baseline == 'unsafe' else ''}{exp}"
        assert f"shengqipku/halfmoon-bench:sosp-ae cp -r {root}{exp} " in data[1]
        arg = {"hotel": {"unsafe": " baseline", "halfmoon-read": " cayon"}, "retwis": {"halfmoon-read": " cayon"}}
        assert data[-1].endswith(f"./{app_dir}/init populate{arg[exp].get(baseline, '')}"), data[-1]
    # Nothing of the stacks is left: no stack, no credentials secret.
    left = subprocess.run(["docker", "stack", "ls", "--format", "{{.Name}}"], capture_output=True, text=True).stdout
    assert STACK not in left.split()
    secrets = subprocess.run(["docker", "secret", "ls", "--format", "{{.Name}}"], capture_output=True, text=True)
    assert not [n for n in secrets.stdout.split() if n.startswith(f"{STACK}-aws-")], secrets.stdout


def test_the_bench_image_refuses_to_start_a_dynamodb_function_without_credentials():
    """sheet §4.1: the contract function binary, started as the real one would be but with no
    credentials anywhere aws-sdk-go looks, exits at once naming what it looked at."""
    if not contract_images_present():
        pytest.skip("no contract images: bash testbed/up.sh builds them")
    base = [
        "docker",
        "run",
        "--rm",
        "-e",
        "AWS_REGION=" + REGION,
        "-e",
        "K_NEAREST=5",
        "-e",
        "AWS_EC2_METADATA_DISABLED=true",
    ]
    image = ["shengqipku/halfmoon-bench:sosp-ae", "/optimal-bin/hotel/geo"]
    out = subprocess.run([*base, *image], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no DynamoDB credentials" in out.stderr, out
    # With them (and the launcher's registry name), it gets as far as reporting itself.
    creds = "[default]\naws_access_key_id = ASIA1\naws_secret_access_key = s\naws_session_token = t\n"
    ok = subprocess.run(
        [
            *base,
            "-e",
            "HMCONTRACT_FUNC_NAME=geo",
            "-e",
            "AWS_SHARED_CREDENTIALS_FILE=/tmp/c",
            "--entrypoint",
            "sh",
            image[0],
            "-c",
            f"printf '{creds}' > /tmp/c && timeout 3 {image[1]}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"credentials": "/tmp/c [default]"' in ok.stdout, ok
