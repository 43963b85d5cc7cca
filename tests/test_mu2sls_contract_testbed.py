"""`snakemake --profile mu2sls-node` on the local test bed (the sshd of testbed/up.sh) against the
contract minikube, kubectl, kn and wrk2 (workloads/mu2sls-contract), placed first on the ssh
session's PATH by the hosts file's `path` setting: the real rendered scripts (the cluster's start,
the artifact's node setup, deploy, reset), wrk2 on the node at Kourier's ClusterIP with the Host
header, and the sequential reference's seq.py on the node. One point of Stateful Counter (μ2sls, one
rate) and its sequential reference (unsafe (w FT)), for `figures/mu2sls_fig10.png` (its counter
panel); the summary rows' numbers must be those of the outputs fetched from the node."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import snakemake
from tests.test_swarm_testbed import load_testbed

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "workloads" / "mu2sls-contract"
pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def contract_workdir(tmp_path: Path, cluster_ip: str) -> tuple[Path, Path]:
    tb = load_testbed()
    src = REPO / "config" / "experiments" / "mu2sls"
    suite = tmp_path / "config" / "experiments" / "mu2sls"
    suite.mkdir(parents=True)
    common = yaml.safe_load((src / "_mu2sls.yaml").read_text())
    kn = common["stack"]["knative"]
    kn["workdir"] = str(tmp_path / "knative")  # the artifact's folder, here the contract's stand-ins
    kn["setup_script"] = "workloads/mu2sls-contract/node-setup.sh"
    (suite / "_mu2sls.yaml").write_text(yaml.safe_dump(common, allow_unicode=True))
    counter = yaml.safe_load((src / "mu2sls_counter.yaml").read_text())
    # Figure 10 as the user asks for it, drawn from this one point: its Stateful Counter panel (μ2sls
    # only) with the sequential reference line.
    fig10 = next(f for f in counter["figures"] if f["name"] == "mu2sls_fig10")
    panel = fig10["panels"][0]
    panel.update(baselines=["mu2sls"])
    fig10.update(panels=[panel], series_order=["μ2sls"])
    # Figure 10 only, from this file and the seq file: the other claims go with what they name.
    kept = {"mu2sls_counter", "mu2sls_seq"}
    claims = [
        c
        for c in counter.get("claims", [])
        if c.get("figure", "mu2sls_fig10") == "mu2sls_fig10" and c.get("experiment", "mu2sls_counter") in kept
    ]
    counter.update(sweep={"rate": [20]}, figures=[fig10], claims=claims)
    counter["baselines"] = {
        "mu2sls": {"sweep": {"rate": [20]}},
        **{b: None for b in ("no-ft", "wo-od", "unsafe-ft", "unsafe")},
    }
    counter["workload"] = {"measure_s": 3}
    (suite / "mu2sls_counter.yaml").write_text(yaml.safe_dump(counter, allow_unicode=True))
    seq = yaml.safe_load((src / "mu2sls_seq.yaml").read_text())
    seq["sweep"] = {"app": ["counter"]}
    seq["baselines"]["unsafe"] = None
    (suite / "mu2sls_seq.yaml").write_text(yaml.safe_dump(seq, allow_unicode=True))
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    home = tmp_path / "contract"
    hosts = {
        "experiments": ["mu2sls_counter", "mu2sls_seq"],
        "results_dir": "results",
        "provider": {
            "name": "ssh",
            "settings": {
                "swarm": False,
                "hosts": [
                    {
                        "name": "mu2sls-node",
                        "address": "127.0.0.1",
                        "port": int(tb["BENCHPIPE_TESTBED_SSH_PORT"]),
                        "user": tb["BENCHPIPE_TESTBED_USER"],
                        "key_file": tb["BENCHPIPE_TESTBED_KEY"],
                        "role": "manager",
                        # The contract CLIs first on the node's PATH; their cluster's state and ClusterIP.
                        "path": [str(CONTRACT / "bin")],
                        "env": {"MU2SLS_CONTRACT_HOME": str(home), "MU2SLS_CONTRACT_CLUSTER_IP": cluster_ip},
                    }
                ],
            },
        },
        "deployer": {
            "name": "knative",
            "settings": {
                "install": "cluster",  # the tools are the contract's: start the cluster only
                "foundationdb_version": None,  # the stand-in store needs no FDB server
                "pods_timeout_s": 60,
                "remote_dir_template": str(tmp_path / "remote/{experiment}/{baseline}/{point}"),
            },
        },
        "generator": {"name": "wrk2", "settings": {"binary": "wrk2"}},
        "measure": {"ready_timeout_s": 60, "retries": 0},
    }
    testbed = tmp_path / "testbed.yaml"
    testbed.write_text(yaml.safe_dump(hosts))
    return testbed, home


def seq_logs_dir(wd: Path) -> Path:
    return wd / "results" / "mu2sls_seq" / "unsafe-ft" / "appcounter" / "raw"


def summary(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_counter_and_its_sequential_reference_run_on_the_contract_node(tmp_path):
    if load_testbed()["BENCHPIPE_TESTBED_USER"] != "root":
        pytest.skip("Kourier's stand-in binds port 80 of a loopback address on the node: needs root")
    cluster_ip = f"127.96.{os.getpid() % 250 + 1}.1"
    testbed, home = contract_workdir(tmp_path, cluster_ip)
    profile = REPO / "profiles" / "mu2sls-node"
    t0 = time.monotonic()
    try:
        snakemake(
            tmp_path,
            "figures/mu2sls_fig10.png",
            "--profile",
            str(profile),
            "--configfile",
            str(profile / "node.yaml"),
            str(testbed),
        )
    finally:
        state = json.loads((home / "state.json").read_text()) if (home / "state.json").exists() else {}
        if state.get("tunnel_pid"):  # the detached `minikube tunnel` the install step started
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["tunnel_pid"], signal.SIGTERM)
    print(f"mu2sls contract test-bed run: {time.monotonic() - t0:.1f} s")
    assert (tmp_path / "figures" / "mu2sls_fig10.png").stat().st_size > 0
    # The cluster was started with the rendered flags; Knative's releases applied; nothing left.
    assert state["start"] == {"cpus": "12", "memory": "20g", "kubernetes_version": "v1.23.17"}
    assert state["applied"] == ["serving-crds.yaml", "serving-core.yaml", "kourier.yaml"]
    assert state["services"] == {}
    # Counter: the summary's numbers are those of wrk2's output fetched from the node.
    point = tmp_path / "results" / "mu2sls_counter" / "mu2sls" / "R20"
    wrk = (point / "raw" / "wrk_measure.log").read_text()
    assert wrk.startswith("$ wrk2 -t 2 -c 16 -d 3 -L -U -s ") and f"http://{cluster_ip} -R 20" in wrk
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
    (row,) = [r for r in summary(tmp_path / "results" / "mu2sls_counter" / "summary.csv") if r["baseline"] == "mu2sls"]
    assert float(row["achieved_rps"]) == pytest.approx(rps) and rps > 15
    p50 = float(re.search(r"Recorded Latency\)\n\s+50\.000%\s+([\d.]+)ms", wrk).group(1))
    assert float(row["p50_ms"]) == pytest.approx(p50)
    # The sequential reference: seq.py's `throughput:` from its output on the node.
    text = (seq_logs_dir(tmp_path) / "seq_measure.log").read_text()
    assert "LOAD_BALANCER_IP=" + cluster_ip in text and "python3 seq.py --name single-stateful" in text
    throughput = float(re.search(r"^throughput: ([\d.]+)$", text, re.M).group(1))
    (seq_row,) = summary(tmp_path / "results" / "mu2sls_seq" / "summary.csv")
    assert seq_row["baseline"] == "unsafe-ft" and float(seq_row["achieved_rps"]) == pytest.approx(throughput)
    # Both loads ran on the node, not on the controller.
    for raw in (point / "raw", seq_logs_dir(tmp_path)):
        assert json.loads((raw / "timing.json").read_text())["generator_host"] == "mu2sls-node"
    # What ran on the node: the pods' images (the contract's digests) and the service list.
    images = json.loads((point / "raw" / "images.json").read_text())
    assert list(images) == ["docker.io/konstantinoskallas/single-stateful-backend"] and images[
        "docker.io/konstantinoskallas/single-stateful-backend"
    ].startswith("docker.io/konstantinoskallas/single-stateful-backend@sha256:")
    assert "backend" in (point / "raw" / "services.txt").read_text()
