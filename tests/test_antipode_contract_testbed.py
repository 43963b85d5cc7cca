"""Antipode's real path on the local test bed (testbed/up.sh): `snakemake --profile ssh`'s deployer,
provider and wrk2 settings (config/experiments/antipode/_ssh_hosts.yaml) with the REAL rendered
DeathStarBench stack (42 services, config/experiments/antipode/antipode_dsb.yaml) against the
contract images (workloads/antipode-contract, tagged with the real names): every service's real
command line and environment, the DeathStarBench folder's mounts, wrk2:antipode on the client, and
the consistency records collected from the contract Jaeger's query API.

What differs from a real run, because the test bed is one node whose overlay network does not work:
every machine of the experiment is the test bed's node, services share the host network and each
binds its own loopback address (deployer setting service_addresses), the DeathStarBench folder is a
fixture folder in place of /code/app. One point (Antipode, us-eu, 20 req/s, 3 s)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import snakemake
from tests.test_swarm_testbed import load_testbed, node_name

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "config" / "experiments" / "antipode"
STACK = "benchpipe-dsbc"
pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]


def contract_images_present() -> bool:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", '{{index .Config.Labels "benchpipe.contract"}}', "wrk2:antipode"],
        capture_output=True,
        text=True,
    )
    return out.returncode == 0 and bool(out.stdout.strip())


def dsb_folder(root: Path) -> Path:
    """What the compose file mounts from DeathStarBench's socialNetwork folder (/code/app upstream):
    RabbitMQ's definitions (a federation upstream to the other region's broker), its config loading
    them and the plugins; nginx's conf, pages, scripts and Jaeger config; the media frontend's."""
    app = root / "app"
    rabbit = app / "config" / "rabbitmq"
    rabbit.mkdir(parents=True)
    for zone, other in (("eu", "us"), ("us", "eu")):
        defs = {
            "parameters": [
                {
                    "component": "federation-upstream",
                    "vhost": "/",
                    "name": f"write-home-timeline-rabbitmq-{other}",
                    "value": {"uri": f"amqp://write-home-timeline-rabbitmq-{other}", "max-hops": 1},
                }
            ],
            "policies": [
                {"vhost": "/", "name": "federate", "pattern": "^write-home-timeline-", "apply-to": "exchanges",
                 "definition": {"federation-upstream-set": "all"}, "priority": 0}
            ],
        }  # fmt: skip
        (rabbit / f"write-home-timeline-rabbitmq-{zone}-definitions.json").write_text(json.dumps(defs))
        (rabbit / f"write-home-timeline-rabbitmq-{zone}.conf").write_text(
            "management.load_definitions = /etc/rabbitmq/definitions.json\n"
        )
    plugins = "[rabbitmq_management,rabbitmq_federation,rabbitmq_federation_management].\n"
    (rabbit / "enabled_plugins").write_text(plugins)
    for d in ("nginx-web-server/lua-scripts", "nginx-web-server/pages", "nginx-web-server/conf", "gen-lua",
              "media-frontend/lua-scripts", "media-frontend/conf"):  # fmt: skip
        (app / d).mkdir(parents=True, exist_ok=True)
    (app / "nginx-web-server" / "pages" / "index.html").write_text("<html>Social Network</html>\n")
    (app / "nginx-web-server" / "conf" / "nginx.conf").write_text("worker_processes auto;\n")
    (app / "nginx-web-server" / "jaeger-config.json").write_text('{"service_name": "nginx-web-server"}\n')
    (app / "media-frontend" / "conf" / "nginx.conf").write_text("worker_processes auto;\n")
    return app


def contract_workdir(tmp_path: Path, baselines: tuple[str, ...]) -> Path:
    tb = load_testbed()
    if not contract_images_present():
        pytest.skip("no antipode contract images: bash testbed/up.sh builds them")
    node = node_name()
    app = dsb_folder(tmp_path)
    suite = tmp_path / "config" / "experiments" / "antipode"
    suite.mkdir(parents=True)
    exp = yaml.safe_load((SUITE / "antipode_dsb.yaml").read_text().replace("/code/app/", f"{app}/"))
    # Every machine of the experiment is the test bed's one node (placement by node.hostname).
    exp["clusters"] = {"dsb": {"machines": [{"name": node, "role": "manager"}, {"name": "client", "role": "client"}]}}
    exp["baselines"] = {b: exp["baselines"][b] for b in baselines}
    for b in exp["baselines"].values():
        for svc in b["services"].values():
            svc["placement"]["hostname"] = node
    exp["sweep"] = {"region_pair": ["us-eu"], "rate": [20]}
    exp["workload"].update({"warmup_s": 0, "measure_s": 3})
    (suite / "antipode_dsb.yaml").write_text(yaml.safe_dump(exp))
    real = yaml.safe_load((SUITE / "_ssh_hosts.yaml").read_text())
    key, port, user = tb["BENCHPIPE_TESTBED_KEY"], int(tb["BENCHPIPE_TESTBED_SSH_PORT"]), tb["BENCHPIPE_TESTBED_USER"]
    hosts = [
        {"name": node, "address": "127.0.0.1", "port": port, "user": user, "key_file": key, "role": "manager"},
        {"name": "client", "address": "127.0.0.2", "port": port, "user": user, "key_file": key, "role": "client"},
    ]
    config = {
        "suite": "antipode",
        "experiments": ["antipode_dsb"],
        "target": "ssh",
        "scale": {"duration": 1.0, "rate": 1.0, "min_duration_s": 0},
        "provider": {"name": "ssh", "settings": {"hosts": hosts}},
        "deployer": {
            "name": "swarm",
            "settings": {
                **real["deployer"]["settings"],  # gateway_port 8080, ready_path / (nginx's index page)
                "host_network": True,  # the test bed's overlay network does not work
                "service_addresses": "127.1.0.0/24",
                "stack": STACK,
                "pull": False,  # the contract images exist only here
                "stop_grace_s": 1,
                # Under /tmp/benchpipe, which the wrk2 container mounts (the real run's folder).
                "remote_dir_template": f"/tmp/benchpipe/{tmp_path.name}/{{experiment}}/{{baseline}}/{{point}}",
            },
        },
        "generator": real["generator"],  # docker run ... wrk2:antipode /wrk2/wrk, -t2 -c4
        "measure": {"retries": 0, "ready_timeout_s": 120},
    }
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_the_real_dsb_stack_runs_on_the_contract_images_and_the_summary_comes_from_jaeger(tmp_path):
    wd = contract_workdir(tmp_path, ("antipode",))
    t0 = time.monotonic()
    snakemake(wd, "figures/antipode_dsb.png")
    print(f"one Antipode point on the contract DSB stack: {time.monotonic() - t0:.1f} s")
    point = wd / "results" / "antipode_dsb" / "antipode"
    (raw,) = point.glob("*/raw")
    manifest = json.loads((raw.parent / "manifest.json").read_text())
    measure = json.loads((raw / "measure.json").read_text())
    jaeger = json.loads((raw / "jaeger.json").read_text())
    # wrk2 (the contract of wrk2:antipode, on the client) finished its requests; nginx wrote no
    # async_results; every finished request's trace came back from the Jaeger query, complete.
    assert measure["completed"] >= 50 and not (raw / "async_results").exists()
    assert jaeger["traces_queried"] == jaeger["records"] == measure["completed"], jaeger
    assert jaeger["skipped_missing_tags"] == 0 and "service=compose-post-service" in jaeger["url"]
    traces = [json.loads(line) for line in (raw / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == measure["completed"]
    # The numbers the summary shows are those records': Antipode's barrier waited for replication
    # over the contract's emulated 20 ms WAN, so every read was consistent and came >= 20 ms after
    # the post was written.
    (row,) = [r for r in _csv(wd / "results" / "antipode_dsb" / "summary.csv")]
    assert int(row["traces"]) == len(traces) and int(row["traces_skipped"]) == 0
    assert float(row["per_inconsistencies"]) == 0.0 and all(t["consistent"] for t in traces)
    windows = sorted((t["read_notification_ts"] - t["post_written_ts"]) / 1e3 for t in traces)
    assert windows[0] >= 19 and float(row["window_p50_ms"]) == pytest.approx(windows[len(windows) // 2], abs=1)
    assert (wd / "figures" / "antipode_dsb.png").exists()
    # What ran: the real command lines of the rendered stack.
    commands = manifest["stack"]["commands"]
    compose_post = commands["compose-post-service"]
    assert compose_post[0] == "dockerize" and compose_post[-1] == "ComposePostService"
    assert commands["social-graph-service"] == ["SocialGraphService"] and len(commands) == 42
    left = subprocess.run(["docker", "stack", "ls", "--format", "{{.Name}}"], capture_output=True, text=True).stdout
    assert STACK not in left.split()


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


# A service that exits until its dependency is up (here: until its third start), as DeathStarBench's
# services do before `dockerize` existed for them, then serves; it exits 0 when /w/stop appears.
FLAKY = """
import http.server, os, sys, threading, time
n = int(open('/w/starts').read()) if os.path.exists('/w/starts') else 0
open('/w/starts', 'w').write(str(n + 1))
if n < 2:
    sys.exit(1)
srv = http.server.HTTPServer(('127.0.0.1', 18187), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
while not os.path.exists('/w/stop'):
    time.sleep(0.2)
sys.exit(0)
"""


def test_restarts_are_tolerated_until_ready_and_a_restart_after_ready_fails_the_point_naming_it(tmp_path):
    """Upstream's readiness: every service running its replicas, then the frontend answering; swarm
    restarts a service whose dependencies are not up yet (restart: any), which must not fail the
    point; once ready, a restart (even one that exited 0) fails it, naming the service."""
    from benchpipe.deployers.swarm import SwarmDeployer
    from benchpipe.errors import StackError
    from benchpipe.model import Cluster, Host

    tb = load_testbed()
    node = node_name()
    key, port, user = tb["BENCHPIPE_TESTBED_KEY"], int(tb["BENCHPIPE_TESTBED_SSH_PORT"]), tb["BENCHPIPE_TESTBED_USER"]
    hosts = [
        Host(node, "127.0.0.1", "manager", user=user, key_file=key, ssh_port=port),
        Host("client", "127.0.0.2", "client", user=user, key_file=key, ssh_port=port),
    ]
    cluster = Cluster("restarts", "ssh", "r1", "e", "b", hosts, "k")
    w = tmp_path / "w"
    w.mkdir()
    services = {
        "flaky": {
            "image": "benchpipe/standin-base:bookworm",
            "command": ["python3", "-c", FLAKY],
            "mounts": [f"{w}:/w"],
            "restart": {"condition": "any", "delay": "1s"},
            "placement": {"hostname": node},
            "gateway": True,
        }
    }
    d = SwarmDeployer(
        {"host_network": True, "gateway_port": 18187, "ready_path": "/", "stack": "benchpipe-rpa-restarts",
         "pull": False, "stop_grace_s": 1}
    )  # fmt: skip
    rendered = d.render(cluster, {"services": services, "vars": {}}, {})
    stack = d.start(cluster, rendered, str(tmp_path / "remote"))
    try:
        d.wait_ready(stack, 60)
        assert (w / "starts").read_text() == "3" and len(stack.tolerated) == 2  # two failed starts, tolerated
        d.check_healthy(stack)
        (w / "stop").touch()  # exits 0; swarm restarts it (condition any)
        deadline = time.monotonic() + 30
        with pytest.raises(StackError, match=r"service\(s\) flaky failed or restarted \(after the stack was ready"):
            while time.monotonic() < deadline:
                d.check_healthy(stack)
                time.sleep(0.5)
    finally:
        d.stop(stack)
