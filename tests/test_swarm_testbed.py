"""The remote path on the local test bed (testbed/up.sh): sshd on 127.0.0.1/127.0.0.2, a single-node
swarm, the stand-in image. `snakemake figures/hotel.png` with the ssh provider and the swarm deployer."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import make_workdir, snakemake

REPO = Path(__file__).resolve().parent.parent
ENV = Path(os.environ.get("BENCHPIPE_TESTBED", "/tmp/benchpipe-testbed")) / "env"
pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]


def load_testbed() -> dict[str, str]:
    if not ENV.exists():
        pytest.skip("no test bed: run `bash testbed/up.sh` (scripts/test.sh does)")
    return dict(line.split("=", 1) for line in ENV.read_text().split())


def node_name() -> str:
    return subprocess.run(
        ["docker", "info", "--format", "{{.Name}}"], capture_output=True, text=True, check=True
    ).stdout.strip()


def swarm_workdir(tmp_path: Path, hosts_extra: list[dict] | None = None, crash_at: int | None = None) -> Path:
    tb = load_testbed()
    node = node_name()
    wd = make_workdir(tmp_path, baselines=("unsafe", "boki"), rates=(20, 40))
    suite = wd / "config" / "experiments" / "halfmoon"
    common = yaml.safe_load((suite / "_halfmoon.yaml").read_text())
    common["clusters"] = {
        "shared_log": {
            "machines": [
                {"name": node, "role": "manager", "labels": ["engine_node=true"]},
                {"name": "client", "role": "client"},
            ]
        },
        "baseline": {"machines": [{"name": node, "role": "manager"}, {"name": "client", "role": "client"}]},
    }
    (suite / "_halfmoon.yaml").write_text(yaml.safe_dump(common))
    hotel = yaml.safe_load((suite / "hotel.yaml").read_text())
    hotel["parameters"] = {"qps": {"short": "qps", "role": "rate", "env": "QPS"}}
    for _name, b in hotel["baselines"].items():
        cmd = (
            f"python3 -m standin --app hotel --system {b['system']} --host 127.0.0.1 --port 18080 "
            "--state-dir /tmp/state --results-path /tmp/store/async_results"
        )
        if crash_at is not None:
            # A service that crashes mid-point (at one rate): killed 1 s into the measurement.
            # ($$ is compose's escape for a literal $.)
            cmd = f"if [ $$QPS -eq {crash_at} ]; then ({cmd} & sleep 2; kill -9 $$!; exit 1); else exec {cmd}; fi"
        b["services"] = {
            "standin": {
                "image": "benchpipe/standin:local",
                "gateway": True,
                "entrypoint": ["sh", "-c", cmd],
                "mounts": ["{point_dir}:/tmp/store"],
                "placement": {"hostname": node},
            }
        }
    (suite / "hotel.yaml").write_text(yaml.safe_dump(hotel))
    key, port, user = tb["BENCHPIPE_TESTBED_KEY"], int(tb["BENCHPIPE_TESTBED_SSH_PORT"]), tb["BENCHPIPE_TESTBED_USER"]
    hosts = [
        {
            "name": node,
            "address": "127.0.0.1",
            "port": port,
            "user": user,
            "key_file": key,
            "role": "manager",
            "labels": ["engine_node=true"],
        },
        {"name": "client", "address": "127.0.0.2", "port": port, "user": user, "key_file": key, "role": "client"},
    ]
    # The ssh settings come as a profile, as a user gives them: snakemake ... --profile <folder>.
    profile = wd / "testbed-profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("configfile: ssh.yaml\n")
    cfg = {}
    cfg.update(
        {
            "target": "ssh",
            "provider": {"name": "ssh", "settings": {"hosts": hosts + (hosts_extra or [])}},
            "deployer": {
                "name": "swarm",
                "settings": {
                    "host_network": True,
                    "gateway_port": 18080,
                    "stack": "benchpipe-test",
                    "remote_dir_template": str(tmp_path / "remote/{baseline}/{point}"),
                },
            },
            "measure": {"retries": 0, "ready_timeout_s": 60},
        }
    )
    (profile / "ssh.yaml").write_text(yaml.safe_dump(cfg))
    return wd


def run(wd: Path, *args: str, check: bool = True):
    return snakemake(wd, *args, "--profile", str(wd / "testbed-profile"), check=check)


def stacks() -> list[str]:
    out = subprocess.run(["docker", "stack", "ls", "--format", "{{.Name}}"], capture_output=True, text=True).stdout
    return [s for s in out.split() if s.startswith("benchpipe-test")]


def test_swarm_pipeline_end_to_end(tmp_path):
    wd = swarm_workdir(tmp_path)
    ssh_yaml = wd / "testbed-profile" / "ssh.yaml"
    cfg = yaml.safe_load(ssh_yaml.read_text())
    cfg["generator"] = {"name": "wrk2", "settings": {"threads": 1, "connections": 2}}
    ssh_yaml.write_text(yaml.safe_dump(cfg))
    run(wd, "figures/hotel.png")
    assert (wd / "figures" / "hotel.png").exists()
    manifests = sorted((wd / "results" / "hotel").glob("*/*/manifest.json"))
    assert len(manifests) == 4
    m = json.loads(manifests[0].read_text())
    assert m["deployer"] == "swarm" and m["cluster"]["provider"] == "ssh" and m["async_results_entries"] > 0
    assert "docker-compose" not in m["files"]
    assert m["images"]["benchpipe/standin:local"].startswith("sha256:")
    # Debian's wrk has no --rate: the built-in generator stood in for wrk2, and the manifest says so.
    assert m["timing"]["generator_host"].startswith("controller (no wrk2")
    assert m["generator"]["generator"] == "openloop"
    assert not stacks(), "a stack outlived its point"


def test_host_refusing_ssh_is_named_and_nothing_deployed(tmp_path):
    wd = swarm_workdir(tmp_path)
    ssh_yaml = wd / "testbed-profile" / "ssh.yaml"
    cfg = yaml.safe_load(ssh_yaml.read_text())
    cfg["provider"]["settings"]["hosts"][0]["address"] = "127.0.0.3"  # nobody listens there
    ssh_yaml.write_text(yaml.safe_dump(cfg))
    proc = run(wd, "--until", "collect", check=False)
    assert proc.returncode != 0
    # The preflight (onstart) probes every host before any job: the refusing one is named.
    out = proc.stdout + proc.stderr
    assert "host vm (127.0.0.3): SSH failed" in out.replace(node_name(), "vm")
    assert not (wd / "results" / "hotel").exists() or not list((wd / "results" / "hotel").glob("*/*/raw"))
    assert not stacks()


def test_service_crash_fails_that_point_with_logs(tmp_path):
    wd = swarm_workdir(tmp_path, crash_at=40)
    proc = run(wd, "--until", "collect", check=False)
    assert proc.returncode != 0
    done = sorted(p.parent.name for p in (wd / "results" / "hotel").glob("*/*/manifest.json"))
    assert done == ["qps20", "qps20"]
    logs = list((wd / "results" / "logs" / "hotel").glob("*/qps40/stack/*"))
    assert any(p.name == "tasks.txt" for p in logs) and any(p.name == "standin.log" for p in logs)
    assert not stacks()
