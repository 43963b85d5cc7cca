"""The contract minikube, kubectl, kn and wrk2 (workloads/mu2sls-contract): the exact scripts the
knative deployer renders run on them (cluster start, deploy, reset), and what the real CLIs refuse
(an unknown flag, a wrong subcommand, an image that is not the artifact's, an order Knative would
not accept) is refused with the CLI's kind of message and a non-zero exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from benchpipe import stages
from benchpipe.deployers.knative import KnativeDeployer
from benchpipe.model import Host
from tests.test_knative import rendered

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "workloads" / "mu2sls-contract" / "bin"


@pytest.fixture
def cli(tmp_path):
    """Runs a command line with the contract's bin first on PATH, its state in tmp_path."""
    ip = f"127.97.{os.getpid() % 250 + 1}.1"
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "MU2SLS_CONTRACT_HOME": str(tmp_path / "contract"),
        "MU2SLS_CONTRACT_CLUSTER_IP": ip,
    }

    def run(command: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
        if check and p.returncode:
            raise AssertionError(f"{command!r} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        return p

    run.ip = ip  # type: ignore[attr-defined]
    run.home = tmp_path / "contract"  # type: ignore[attr-defined]
    yield run
    state = tmp_path / "contract" / "state.json"
    if state.exists():
        st = json.loads(state.read_text())
        for svc in st["services"].values():  # pods a failed test left
            for pod in svc["pods"]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod["pid"], signal.SIGKILL)
        if st.get("tunnel_pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(st["tunnel_pid"], signal.SIGTERM)


def refused(p: subprocess.CompletedProcess[str], message: str) -> None:
    assert p.returncode != 0 and message in p.stderr, (p.returncode, p.stdout, p.stderr)


@pytest.mark.slow
def test_every_cli_refuses_what_the_real_one_refuses(cli):
    # Nothing started yet: the CLIs say so as the real ones do.
    refused(cli("minikube status"), 'Profile "minikube" not found')
    assert cli("minikube status").returncode == 85
    refused(cli("kubectl get pods"), "The connection to the server localhost:8443 was refused")
    # Unknown flags and subcommands, with cobra's messages.
    refused(cli("minikube start --cpu=2"), "Error: unknown flag: --cpu")
    refused(cli("minikube begin"), 'Error: unknown command "begin" for "minikube"')
    refused(cli("minikube start --memory=lots"), 'Invalid memory value "lots"')
    cli("minikube start --cpus=2 --memory=4g --kubernetes-version=v1.23.17", check=True)
    refused(cli("kubectl get pods --no-header"), "error: unknown flag: --no-header\nSee 'kubectl get --help'")
    refused(cli("kubectl wait --for=condition=Ready pods --all"), 'error: unknown command "wait" for "kubectl"')
    refused(cli("kubectl get pods --tail=3"), "error: unknown flag: --tail")  # a logs flag, not get's
    refused(cli("kubectl get deployments"), 'the server doesn\'t have a resource type "deployments"')
    # Knative's releases in order, from their release URLs only.
    refused(
        cli("kubectl apply -f https://github.com/knative/serving/releases/download/knative-v1.0.0/serving-core.yaml"),
        "ensure CRDs are installed first",
    )
    refused(cli("kubectl apply -f ./serving.yaml"), 'error: the path "./serving.yaml" does not exist')
    refused(
        cli("kn service create backend --image docker.io/konstantinoskallas/single-stateful-backend"),
        "no or newer Knative Serving API found",
    )
    refused(cli("kn service deploy backend"), "Error: unknown subcommand 'deploy' for 'kn service'")
    refused(cli("kn revision list"), 'Error: unknown command "revision" for "kn"')
    refused(cli("kn service create backend --imag x"), "Error: unknown flag: --imag\nRun 'kn service create --help'")
    refused(
        cli("kn service create backend --image x --env ENABLE_TXN"), "argument requires a value that contains the '='"
    )
    refused(cli("kn service create backend --image x --scale-min 3 --scale-max 2"), "must be greater than or equal")
    refused(cli("wrk2 -t 2 -c 16 -d 3 -L http://127.0.0.1"), "[Required Parameter]")
    refused(cli("wrk2 --rates 10 http://127.0.0.1"), "wrk: unrecognized option '--rates'")


@pytest.mark.slow
def test_the_deployers_scripts_run_on_the_contract_and_serve_the_stand_in(cli, tmp_path):
    """install-3.sh (the cluster), deploy.sh and reset.sh of a counter point, as rendered."""
    if os.geteuid() != 0:
        pytest.skip("Kourier's stand-in binds port 80 of a loopback address: needs root")
    d = KnativeDeployer({"foundationdb_version": None, "pods_timeout_s": 60})
    cluster = d.install_scripts()[2]
    spec, _ = rendered("mu2sls_counter", "mu2sls", rate=20)
    # The test bed's settings (no FDB server; the artifact's folder holds the contract's stand-ins).
    spec["deployer"]["settings"].update(foundationdb_version=None, pods_timeout_s=60)
    spec["deployment"]["knative"]["workdir"] = str(tmp_path / "knative")
    r = stages.render(spec)["rendered"]
    cli(f"bash {REPO / 'workloads' / 'mu2sls-contract' / 'node-setup.sh'} {tmp_path / 'knative'}", check=True)
    deploy = r["deploy_script"]
    for name, text in (("install-3.sh", cluster), ("deploy.sh", deploy)):
        (tmp_path / name).write_text(text)
        cli(f"bash {tmp_path / name}", check=True)
    st = json.loads((cli.home / "state.json").read_text())
    assert st["applied"] == ["serving-crds.yaml", "serving-core.yaml", "kourier.yaml"]
    assert st["services"]["backend"]["env"] == {
        "LOAD_BALANCER_IP": cli.ip,
        "ENABLE_CUSTOM_DICT": "True",
        "ENABLE_LOGGING": "True",
        "ENABLE_TXN": "True",
    }
    assert st["services"]["backend"]["annotations"] == {"autoscaling.knative.dev/target": "500"}
    assert (tmp_path / "lb_ip").read_text().strip() == cli.ip
    assert cli("kubectl get pods --no-headers | wc -l", check=True).stdout.strip() == "2"
    # As the artifact's deploy.sh finds an existing service: `kn service list | grep ^<name>\ `.
    assert cli("kn service list | grep '^backend '").returncode == 0
    # Kourier at the ClusterIP routes by Host to the stand-in's Backend (a real transaction).
    req = urllib.request.Request(
        f"http://{cli.ip}/req",
        data=json.dumps({"args": [7], "req_id": "r1"}).encode(),
        headers={"Host": "backend.default.example.com", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read()) == {"result": 1}
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(
            urllib.request.Request(f"http://{cli.ip}/req", headers={"Host": "x.default.example.com"})
        )
    assert e.value.code == 404
    # The same name again is refused; an image of another app's module too.
    refused(
        cli("kn service create backend --image docker.io/konstantinoskallas/single-stateful-backend"),
        "because the service already exists",
    )
    refused(
        cli("kn service create caller --image docker.io/konstantinoskallas/single-stateful-caller1"),
        "Unable to fetch image",
    )
    (tmp_path / "reset.sh").write_text(r["reset_script"])
    t0 = time.monotonic()
    cli(f"bash {tmp_path / 'reset.sh'}", check=True)
    assert time.monotonic() - t0 < 30
    assert json.loads((cli.home / "state.json").read_text())["services"] == {}
    assert cli("kubectl get pods --no-headers | wc -l", check=True).stdout.strip() == "0"


def test_a_hosts_path_and_env_come_first_in_every_ssh_command():
    from benchpipe.remote import session_prefix

    h = Host(name="n", address="a", role="manager", path=["/opt/contract/bin"], env={"A": "x y"})
    assert session_prefix(h) == "export A='x y'; export PATH=/opt/contract/bin:\"$PATH\"; "
    assert session_prefix(Host(name="n", address="a", role="manager")) == ""
