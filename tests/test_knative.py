"""The real mu2sls path (--profile mu2sls-node, knative deployer), as far as no node is needed: the
commands it renders, checked against the artifact's own (reference/seed-mu2sls.md; the artifact's
deploy.sh, setup2.sh, start-cluster.sh, eval_*.sh, setup_env_vars.sh, single-stateful.lua), and the
dry-run plan. Expected strings are written from those facts, not copied from the renderer."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from benchpipe import stages
from benchpipe.deployers.knative import KnativeDeployer
from benchpipe.errors import StackError
from benchpipe.experiment import experiment_files, load_experiment
from benchpipe.generators.sequential import SequentialGenerator
from benchpipe.generators.wrk2 import render_lua
from benchpipe.merge import deep_merge
from benchpipe.model import Host, Mix
from benchpipe.pointspec import point_spec
from tests.test_pipeline_e2e import REPO, job_counts, snakemake
from tests.test_swarm_testbed import load_testbed

ANN = "--annotation autoscaling.knative.dev/target=500"
ENVS = '--env "LOAD_BALANCER_IP=${LOAD_BALANCER_IP}" --env "FDB_CLUSTER_DATA=${FDB_CLUSTER_DATA}"'
ALL_ON = "--env ENABLE_CUSTOM_DICT=True --env ENABLE_LOGGING=True --env ENABLE_TXN=True"


def node_config() -> dict:
    """config/config.yaml with the mu2sls-node profile's file over it, as Snakemake merges them."""
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    node = yaml.safe_load((REPO / "profiles" / "mu2sls-node" / "node.yaml").read_text())
    cfg = deep_merge(base, node)
    cfg.setdefault("measure", {}).update({"max_send_lag_ms": 50, "min_achieved_fraction": 0.95})
    return cfg


def rendered(experiment: str, baseline: str, point_index: int = 0, **params) -> tuple[dict, dict]:
    """The point's spec and its rendered deployment under the mu2sls-node profile."""
    cfg = node_config()
    exp = load_experiment(experiment_files(REPO / "config" / "experiments")[experiment], cfg["scale"], 1)
    points = [p for p in exp.points(baseline) if all(p.params.get(k) == v for k, v in params.items())]
    spec = json.loads(json.dumps(point_spec(cfg, exp, points[point_index]), sort_keys=True))
    return spec, stages.render(spec)["rendered"]


def _testbed_host() -> Host:
    """The test bed's sshd (testbed/up.sh) as the node."""
    tb = load_testbed()
    return Host(
        name="node",
        address="127.0.0.1",
        role="manager",
        user=tb["BENCHPIPE_TESTBED_USER"],
        key_file=tb["BENCHPIPE_TESTBED_KEY"],
        ssh_port=int(tb["BENCHPIPE_TESTBED_SSH_PORT"]),
    )


def lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line and not line.startswith("#")]


def test_counter_point_deploys_backend_with_the_artifacts_flags():
    spec, r = rendered("mu2sls_counter", "mu2sls", rate=140)
    assert spec["deployer"]["name"] == "knative"
    ls = lines(r["deploy_script"])
    # setup_env_vars.sh: the Kourier ClusterIP and the FDB cluster file's contents.
    assert ls[1].startswith('export LOAD_BALANCER_IP="$(kubectl --namespace kourier-system get service kourier')
    assert "clusterIP" in ls[1]
    assert 'export FDB_CLUSTER_DATA="$(cat /etc/foundationdb/fdb.cluster)"' in ls[2:5]
    # deploy.sh's create, with run_all_eval.sh's --scale 2 and the baseline's three flags.
    create = (
        "kn service create backend --image docker.io/konstantinoskallas/single-stateful-backend"
        f" --scale-init 2 --scale-min 2 --scale-max 2 {ANN} {ENVS} {ALL_ON}"
    )
    assert create in ls
    # Reset before (kn service delete --all, clear_db.py, 0 pods), then the create, then 2 pods.
    delete = ls.index("kn service delete --all || true")
    clear = ls.index("(cd ~/knative && python3 scripts/clear_db.py)")
    zero = next(i for i, line in enumerate(ls) if 'wc -l)" -eq 0 ]' in line)
    two = next(i for i, line in enumerate(ls) if 'wc -l)" -eq 2 ]' in line)
    assert delete < clear < zero < ls.index(create) < two
    assert "kubectl get pods --no-headers" in ls[two]
    assert r["pods"] == 2 and r["services"] == ["backend"]
    # wrk2 reaches the service through Kourier with the Knative Host header.
    assert r["host_from_path"] == "{service}.default.example.com"
    # Stopping is the same reset.
    assert lines(r["reset_script"])[1:4] == [
        "kn service delete --all || true",
        "(cd ~/knative && python3 scripts/clear_db.py)",
        "deadline=$((SECONDS + 600))",
    ]
    # The artifact's folder only in subshells: start() reads lb_ip from the point's folder.
    assert ls[-1] == 'echo "$LOAD_BALANCER_IP" > "$(dirname "$0")/lb_ip"'


def test_flags_of_each_baseline_are_strings_the_runtime_compares_with_true():
    for baseline, flags in {
        "no-ft": "--env ENABLE_CUSTOM_DICT=True --env ENABLE_LOGGING=False --env ENABLE_TXN=True",
        "wo-od": "--env ENABLE_CUSTOM_DICT=False --env ENABLE_LOGGING=True --env ENABLE_TXN=True",
        "unsafe-ft": "--env ENABLE_CUSTOM_DICT=False --env ENABLE_LOGGING=True --env ENABLE_TXN=False",
    }.items():
        _, r = rendered("mu2sls_counter", baseline)
        assert any(line.endswith(f"{ENVS} {flags}") for line in lines(r["deploy_script"])), baseline


def test_media_point_pins_composereview_to_five_and_populates_after_21_pods():
    _, r = rendered("mu2sls_media", "unsafe", rate=10)
    ls = lines(r["deploy_script"])
    modules = [
        "compose_review",
        "frontend",
        "movie_id",
        "movie_review",
        "review_storage",
        "text",
        "unique_id",
        "user",
        "user_review",
    ]
    off = "--env ENABLE_CUSTOM_DICT=False --env ENABLE_LOGGING=False --env ENABLE_TXN=False"
    creates = [line for line in ls if line.startswith("kn service create")]
    assert creates == [
        f"kn service create {m.replace('_', '')} --image docker.io/konstantinoskallas/media-service-test-{m}"
        f" --scale-init 2 --scale-min 2 --scale-max 2 {ANN} {ENVS} {off}"
        for m in modules
    ]
    # eval_media.sh: the update after the deploys, then wait_until_pods 21, then populate_media.py.
    update = f"kn service update composereview --scale-min 5 --scale-max 5 {ANN}"
    wait21 = next(i for i, line in enumerate(ls) if 'wc -l)" -eq 21 ]' in line)
    populate = ls.index("(cd ~/knative && python3 populate_media.py > /dev/null 2>&1)")
    assert ls.index(creates[-1]) < ls.index(update) < wait21 < populate
    assert r["pods"] == 21


def test_sequential_reference_deploys_at_scale_one():
    # eval_seq.sh: --scale 1, media's 9 pods (no composereview update), hotel's 4, populate_hotel.py.
    _, media = rendered("mu2sls_seq", "unsafe", app="media")
    assert media["pods"] == 9 and "kn service update" not in media["deploy_script"]
    assert "--scale-init 1 --scale-min 1 --scale-max 1" in media["deploy_script"]
    _, hotel = rendered("mu2sls_seq", "unsafe-ft", app="hotel")
    assert hotel["services"] == ["frontend", "hotel", "flight", "order"] and hotel["pods"] == 4
    assert "docker.io/konstantinoskallas/hotel-reservation-order" in hotel["deploy_script"]
    assert "(cd ~/knative && python3 populate_hotel.py > /dev/null 2>&1)" in lines(hotel["deploy_script"])


def test_chain_and_tree_services_in_the_csv_order():
    _, chain = rendered("mu2sls_chain", "wo-od")
    assert chain["services"] == ["caller1", "caller2", "backend"] and chain["pods"] == 6
    assert "docker.io/konstantinoskallas/chain-caller2 " in chain["deploy_script"]
    spec, tree = rendered("mu2sls_tree", "unsafe-ft")
    assert tree["services"] == ["callertxn", "backend1", "backend2"]
    # wrk2 -t4 -c16 -d60s for tree; the paper's rates and 60 s points (scale 1 in this profile).
    assert spec["generator"]["name"] == "wrk2"
    assert spec["generator"]["settings"]["threads"] == 4 and spec["generator"]["settings"]["connections"] == 16
    assert spec["workload"]["measure_s"] == 60 and spec["workload"]["rate"] == 10.0


def test_every_mu2sls_point_renders_under_the_profile():
    cfg = node_config()
    files = experiment_files(REPO / "config" / "experiments")
    n = 0
    for name in [f for f in files if f.startswith("mu2sls_")]:
        exp = load_experiment(files[name], cfg["scale"], 1)
        for point in exp.all_points():
            spec = json.loads(json.dumps(point_spec(cfg, exp, point), sort_keys=True))
            r = stages.render(spec)["rendered"]
            assert r["pods"] >= len(r["services"]) >= 1
            n += 1
    # The paper's 104 measured points (section 4) + the 10 sequential ones.
    assert n == 25 + 24 + 14 + 19 + 22 + 10 == 104 + 10


def test_an_app_without_services_is_named():
    d = KnativeDeployer({})
    with pytest.raises(StackError, match=r"stack.knative.apps: expected an entry for app 'x'"):
        d.render(None, {"vars": {"app": "x"}, "knative": {"image_prefix": "p/", "apps": {"y": {}}}}, {})
    with pytest.raises(StackError, match=r"stack.knative: the experiment does not say"):
        d.render(None, {"vars": {"app": "x"}}, {})


def test_install_follows_the_artifacts_setup_and_every_script_parses():
    first, tools, cluster = KnativeDeployer(node_config()["deployer"]["settings"]).install_scripts()
    second = tools + cluster
    assert "docker.io" in first and 'usermod -aG docker "$USER"' in first
    # The cluster's start is its own script (install: cluster runs only it, on a host with the tools).
    assert "minikube start" in cluster and "curl" not in cluster and "minikube start" not in tools
    for expected in (
        "minikube start --cpus=12 --memory=20g",
        "https://github.com/knative/client/releases/download/knative-v1.0.0/kn-linux-amd64",
        "https://github.com/knative/serving/releases/download/knative-v1.0.0/serving-crds.yaml",
        "https://github.com/knative/serving/releases/download/knative-v1.0.0/serving-core.yaml",
        "https://github.com/knative/net-kourier/releases/download/knative-v1.0.0/kourier.yaml",
        '{"data":{"ingress.class":"kourier.ingress.networking.knative.dev"}}',
        "minikube tunnel -c",
        "foundationdb-clients_6.3.23-1_amd64.deb foundationdb-server_6.3.23-1_amd64.deb",
        "/usr/lib/foundationdb/make_public.py",
        "git clone https://github.com/giltene/wrk2.git",
        'grep -c Running)" -ge 7 ]',
    ):
        assert expected in second, expected
    _, r = rendered("mu2sls_media", "mu2sls")
    # The experiment's own node setup: the artifact at d75b89f in ~/knative, its Python client.
    assert r["workdir"] == "~/knative"
    for expected in (
        "git clone https://github.com/eniac/mu2sls.git ~/mu2sls",
        "git -C ~/mu2sls checkout d75b89f7583cfb5cf969427b0a4e4813e59db76c",
        "pip3 install foundationdb==6.3.23 httpx",
        'cp -r ~/mu2sls/tests/. "$dir"/',
    ):
        assert expected in r["setup_script"], expected
    # Without FoundationDB in the profile: neither its install nor FDB_CLUSTER_DATA.
    plain = KnativeDeployer({})
    assert "foundationdb" not in plain.install_scripts()[1] and "FDB_CLUSTER_DATA" not in "\n".join(plain.env_lines())
    for script in (first, tools, cluster, r["deploy_script"], r["reset_script"], r["setup_script"]):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.skipif(not shutil.which("lua5.1") and not shutil.which("luajit"), reason="no Lua interpreter")
def test_wrk2_script_sends_the_knative_host_header(tmp_path):
    """single-stateful.lua: Host backend.default.example.com, POST /req, {"args": [v], "req_id": uuid}."""
    spec, r = rendered("mu2sls_counter", "mu2sls")
    lua = render_lua(Mix.from_config(spec["workload"]["mix"]), seed=3, host_from_path=r["host_from_path"])
    harness = lua.replace(
        "wrk.method",
        "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return p .. '|' .. h['Host'] .. '|'"
        " .. h['Content-Type'] .. '|' .. b end\nwrk.method",
    )
    harness += "for i = 1, 3 do print(request()) end\n"
    (tmp_path / "t.lua").write_text(harness)
    out = subprocess.run(
        [shutil.which("lua5.1") or shutil.which("luajit"), str(tmp_path / "t.lua")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ids = set()
    for line in out:
        path, host, ctype, body = line.split("|", 3)
        assert (path, host, ctype) == ("/req", "backend.default.example.com", "application/json")
        doc = json.loads(body)
        assert 1 <= int(doc["args"][0]) <= 1000
        ids.add(doc["req_id"])
    assert len(ids) == 3  # a fresh req_id per request


def test_dry_run_plans_figure_10_on_the_node(tmp_path):
    out = snakemake(
        REPO,
        "-n",
        "--profile",
        "mu2sls-node",
        "figures/mu2sls_fig10.png",
        "--config",
        f"results_dir={tmp_path}/results-node",
    )
    text = out.stdout + out.stderr
    assert "benchpipe plan (ssh)" in text
    assert "mu2sls_counter/mu2sls: 8 to run, 0 done  [cluster node: hosts mu2sls-node (me@node0.example.org)]" in text
    assert "to run: R20 R60 R100 R140 R180 R220 R260 R300" in text
    assert "mu2sls_tree/unsafe-ft: 9 to run" in text and "total: 50 point(s) to run" in text
    counts = job_counts(text)
    assert counts["run"] == 50 and counts["plot"] == 1


@pytest.mark.ssh
def test_a_rendered_script_runs_in_order_on_the_host_and_stops_at_the_failing_command(tmp_path):
    host = _testbed_host()
    folder = tmp_path / "point"
    folder.mkdir()
    script = "#!/bin/bash\nset -ex\necho one >> order\necho two >> order\nfalse\necho three >> order\n"
    d = KnativeDeployer({})
    with pytest.raises(StackError, match=r"(?s)deploy.sh failed: host node \(127.0.0.1\): .* exited 1: .*\+ false"):
        d._run_script(host, script, f"{folder}/deploy.sh", 30)
    # Run in the point's folder, in order, and nothing after the failure.
    assert (folder / "order").read_text() == "one\ntwo\n"
    assert (folder / "deploy.sh").read_text() == script


def test_sequential_reference_runs_the_artifacts_seq_py_on_the_node():
    """eval_seq.sh runs `python3 seq.py --name <csv name>` on the node (the controller cannot reach
    the Kourier ClusterIP); its `throughput:` line is the reference."""
    spec, r = rendered("mu2sls_seq", "unsafe-ft", app="chain")
    assert spec["generator"]["name"] == "sequential"
    assert r["sequential"] == "python3 seq.py --name chain"
    d = KnativeDeployer(node_config()["deployer"]["settings"])
    stack = d.attach(
        {
            "endpoint": "http://10.96.12.34",
            "cluster": {
                "name": "c",
                "provider": "ssh",
                "run_id": "",
                "experiment": "e",
                "baseline": "b",
                "hosts": [],
                "lock_key": "ssh-node0",
                "created": "",
            },
            "node": {"name": "mu2sls-node", "address": "node0", "role": "manager"},
            "point_dir": "/tmp/benchpipe/p",
            "app": "chain",
            "services": r["services"],
            "pods": r["pods"],
            "host_from_path": r["host_from_path"],
            "reset_script": r["reset_script"],
            "sequential": r["sequential"],
            "workdir": r["workdir"],
        }
    )
    ctx = d.load_context(stack)
    assert ctx["client"].name == "mu2sls-node"
    assert ctx["sequential_command"] == (
        "set -o pipefail; cd ~/knative && LOAD_BALANCER_IP=10.96.12.34 python3 seq.py --name chain"
        " 2>&1 | tee /tmp/benchpipe/p/seq.log"
    )
    # The stage hands the sequential generator to the node, not to the controller.
    gen = SequentialGenerator({})
    timing: dict = {}
    _, g = stages._remote_generator(ctx, gen, {"name": "sequential", "settings": {}}, stack.endpoint, timing)
    assert g is gen and g.s["command"] == ctx["sequential_command"] and timing["generator_host"] == "mu2sls-node"


def _bash(argv: list[str], timeout_s: float) -> str:
    """Runs argv as the remote runner does: joined into one command line for the login shell."""
    line = " ".join(argv)
    return subprocess.run(line, shell=True, capture_output=True, text=True, check=True, timeout=timeout_s).stdout


def test_sequential_client_output_becomes_the_report(tmp_path):
    gen = SequentialGenerator(
        {"runner": _bash, "command": "set -o pipefail; printf '\\nthroughput: 12.5\\n' | tee /dev/null"}
    )
    rep = gen.run("http://x", Mix.from_config([{"name": "a", "path": "/a", "weight": 1}]), 0, 600, tmp_path, "measure")
    assert rep.achieved_rate == 12.5 and rep.completed == 200 and rep.sent == 220
    assert rep.mean_ms == pytest.approx(80.0) and rep.duration_s == pytest.approx(16.0)
    assert "throughput: 12.5" in (tmp_path / "seq_measure.log").read_text()
    assert json.loads((tmp_path / "measure.json").read_text())["achieved_rate"] == 12.5
    # A client that printed no throughput (or failed) fails the point, with what it printed.
    bad = SequentialGenerator({"runner": _bash, "command": "echo Traceback: no LOAD_BALANCER_IP"})
    with pytest.raises(ValueError, match=r"no 'throughput: <requests/s>' line.*LOAD_BALANCER_IP"):
        bad.run("http://x", Mix.from_config([{"name": "a", "path": "/a", "weight": 1}]), 0, 600, tmp_path, "m2")


def test_media_and_hotel_run_the_artifacts_functional_check_after_deploying():
    """test_services.py runs the app's test (media, hotel) once deployed: after the pods, before populate."""
    _, hotel = rendered("mu2sls_hotel", "mu2sls", rate=10)
    ls = lines(hotel["deploy_script"])
    check = next(i for i, line in enumerate(ls) if "run_test_deployed_services" in line)
    assert ls[check].startswith("if ! ({ set +x; } 2>/dev/null; cd ~/knative && python3 -c ")
    assert ls[check].endswith(
        ' hotel-reservation.csv Frontend Hotel Flight Order) > "$(dirname "$0")/check.log" 2>&1; then'
    )
    assert "import sys, test_services as t, runtime.knative.invoke as k;" in ls[check]
    wait8 = next(i for i, line in enumerate(ls) if 'wc -l)" -eq 8 ]' in line)
    populate = ls.index("(cd ~/knative && python3 populate_hotel.py > /dev/null 2>&1)")
    assert wait8 < check < populate
    _, media = rendered("mu2sls_media", "unsafe", rate=10)
    assert "media-service-test.csv ComposeReview Frontend MovieId" in media["deploy_script"]
    # The artifact has no test for the counter apps: none is run.
    _, counter = rendered("mu2sls_counter", "mu2sls")
    assert "check.log" not in counter["deploy_script"]
    subprocess.run(["bash", "-n"], input=hotel["deploy_script"], text=True, check=True)


@pytest.mark.ssh
def test_a_failing_functional_check_fails_the_deploy_with_its_output(tmp_path):
    from benchpipe.deployers.knative import _script, check_lines

    host = _testbed_host()
    folder = tmp_path / "point"
    folder.mkdir()
    # What test_services.py prints when the hotel's assertion fails, then its exit status.
    failing = "python3 -c \"print('AssertionError: Flight Reservation Failed'); raise SystemExit(1)\""
    script = _script(
        ["echo deployed >> order", *check_lines("hotel", failing, str(tmp_path)), "echo populated >> order"]
    )
    with pytest.raises(
        StackError,
        match=r"(?s)deploy.sh failed: .*functional check of hotel failed:\n"
        r"AssertionError: Flight Reservation Failed",
    ):
        KnativeDeployer({})._run_script(host, script, f"{folder}/deploy.sh", 30)
    assert (folder / "order").read_text() == "deployed\n"  # nothing after the failed check
    assert "Flight Reservation Failed" in (folder / "check.log").read_text()
