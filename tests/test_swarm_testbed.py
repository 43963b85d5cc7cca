"""The remote path on the local test bed (testbed/up.sh): sshd on 127.0.0.1/127.0.0.2, a single-node
swarm, the stand-in image. `snakemake figures/hotel.png` with the ssh provider and the swarm deployer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import harness_processes
from tests.test_faults import assert_resumes, checksums, start, wait_for
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


def swarm_workdir(
    tmp_path: Path,
    hosts_extra: list[dict] | None = None,
    crash_at: int | None = None,
    baselines: tuple[str, ...] = ("unsafe", "boki"),
    start_delay_s: float = 0,
) -> Path:
    tb = load_testbed()
    node = node_name()
    wd = make_workdir(tmp_path, baselines=baselines, rates=(20, 40))
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
    # The stand-in image plays the whole system here: none of the real path's function services,
    # host files, wipes, tables, data step or readiness probe (the contract stand-in's test has them).
    common["stack"] = {"process": common["stack"]["process"]}
    (suite / "_halfmoon.yaml").write_text(yaml.safe_dump(common))
    hotel = yaml.safe_load((suite / "hotel.yaml").read_text())
    hotel.pop("stack", None)
    hotel["parameters"] = {"qps": {"short": "qps", "role": "rate", "env": "QPS"}}
    for _name, b in hotel["baselines"].items():
        cmd = (
            f"python3 -m standin --app hotel --system {b['system']} --host 127.0.0.1 --port 18080 "
            "--state-dir /tmp/state --results-path /tmp/store/async_results"
        )
        if start_delay_s:
            cmd = f"sleep {start_delay_s:g}; exec {cmd}"
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


def profile_args(wd: Path) -> tuple[str, str]:
    return ("--profile", str(wd / "testbed-profile"))


def run(wd: Path, *args: str, check: bool = True):
    return snakemake(wd, *args, *profile_args(wd), check=check)


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


class Relay:
    """A TCP relay in front of the test bed's sshd: the host it stands for vanishes when it stops."""

    def __init__(self, target: tuple[str, int], address: str = "127.0.0.3", port: int = 0) -> None:
        self.target = target
        self.server = socket.create_server((address, port), reuse_port=False)
        self.address, self.port = self.server.getsockname()[:2]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.server.accept()
            except OSError:
                return
            b = socket.create_connection(self.target)
            self.conns += [a, b]
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self.server.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
                c.close()


def stack_containers() -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=com.docker.stack.namespace=benchpipe-test"],
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def test_host_lost_mid_sweep_is_named_and_the_resume_runs_only_the_rest(tmp_path):
    wd = swarm_workdir(tmp_path, baselines=("unsafe",), start_delay_s=3)
    ssh_yaml = wd / "testbed-profile" / "ssh.yaml"
    cfg = yaml.safe_load(ssh_yaml.read_text())
    client = cfg["provider"]["settings"]["hosts"][1]
    relay = Relay((client["address"], client["port"]))
    client.update(address=relay.address, port=relay.port)
    ssh_yaml.write_text(yaml.safe_dump(cfg))
    run(wd, "results/hotel/unsafe/qps20/manifest.json")
    before = checksums(wd / "results")
    proc = start(wd, *profile_args(wd))
    wait_for(stacks, 120, "the qps40 point's stack")
    relay.stop()  # the client host is gone
    out, _ = proc.communicate(timeout=300)
    text = out.decode()
    assert proc.returncode != 0
    assert f"cluster hotel-unsafe lost host client ({relay.address})" in text, text[-4000:]
    assert "run the same command again" in text
    assert not stacks() and not stack_containers()
    assert not harness_processes(mine_only=True)
    assert sorted(p.parent.name for p in (wd / "results/hotel").glob("*/*/manifest.json")) == ["qps20"]
    assert not (wd / "results/hotel/unsafe/qps40/raw").exists()
    # The host is back: the same command runs only the missing point.
    relay = Relay(relay.target, port=relay.port)
    try:
        assert_resumes(wd, before, 1, run=run)
    finally:
        relay.stop()


def test_ctrl_c_during_swarm_deployment_leaves_no_stack(tmp_path):
    wd = swarm_workdir(tmp_path, baselines=("unsafe",), start_delay_s=20)
    proc = start(wd, *profile_args(wd))
    wait_for(stack_containers, 120, "the stack's container")  # deployed, not ready: the stand-in sleeps first
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=180)
    assert proc.returncode != 0
    assert not stacks() and not stack_containers()
    assert not harness_processes(mine_only=True)
    assert not list((wd / "results" / ".clusters").glob("*/*.json"))
    assert not list((wd / "results/hotel").glob("*/*/raw")) and not list(
        (wd / "results/hotel").glob("*/*/manifest.json")
    )


def test_concurrent_provisions_label_one_node_without_update_out_of_sequence():
    """Parallel points on one cluster provision at once, and each adds the node's labels: swarm's
    optimistic concurrency fails all but one `docker node update` ("update out of sequence", which
    failed a point in CI). Every caller must end with every label on the node."""
    from benchpipe.bootstrap import label_node
    from benchpipe.model import Host

    tb = load_testbed()
    key, port, user = tb["BENCHPIPE_TESTBED_KEY"], int(tb["BENCHPIPE_TESTBED_SSH_PORT"]), tb["BENCHPIPE_TESTBED_USER"]
    manager = Host(node_name(), "127.0.0.1", "manager", user=user, key_file=key, ssh_port=port)
    node = subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.NodeID}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    labels = [f"bp_race_{i}=v{i}" for i in range(6)]
    stop = threading.Event()

    def other_provision() -> None:
        # Another point's provision updating the same node, as fast as swarm lets it.
        k = 0
        while not stop.is_set():
            k += 1
            subprocess.run(["docker", "node", "update", "--label-add", f"bp_race_bg={k}", node], capture_output=True)

    others = [threading.Thread(target=other_provision) for _ in range(2)]
    for t in others:
        t.start()
    try:
        for i in range(len(labels)):
            label_node(manager, node, labels[: i + 1])
        have = json.loads(
            subprocess.run(
                ["docker", "node", "inspect", "--format", "{{json .Spec.Labels}}", node],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert {lab.split("=")[0]: lab.split("=")[1] for lab in labels}.items() <= have.items()
    finally:
        stop.set()
        for t in others:
            t.join()
        rm = [arg for lab in [*labels, "bp_race_bg"] for arg in ("--label-rm", lab.split("=")[0])]
        subprocess.run(["docker", "node", "update", *rm, node], capture_output=True, check=False)
