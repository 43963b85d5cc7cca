"""Golden tests of the real Halfmoon path (issue 10): for every aws point of every experiment and
baseline, the stack as the swarm deployer deploys it (services, images, command lines, environment,
mounts, placement, replicas), the host files, the wipes, the tables and the data step, against
expectations written as data from reference/halfmoon-real-services.md (sections 1-4, 6), not from
the renderer. The deployer's start runs against recording fakes of SSH and DynamoDB: no network.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchpipe import remote
from benchpipe.cloud import session
from benchpipe.clusters import planned_cluster
from benchpipe.collect import write_manifest
from benchpipe.deployers.swarm import SwarmDeployer, SwarmStack
from benchpipe.errors import ConfigError, StackError
from benchpipe.experiment import chosen_experiments, load_experiment
from benchpipe.merge import deep_merge
from benchpipe.model import Cluster, Host
from benchpipe.plan import point_status
from benchpipe.pointspec import point_spec
from benchpipe.stackspec import resolve_stack
from benchpipe.validation import validate

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "config/experiments/halfmoon"
REGION = "ap-southeast-1"
HM_IMAGE = "shengqipku/halfmoon:sosp-ae"
BENCH_IMAGE = "shengqipku/halfmoon-bench:sosp-ae"
ZK_IMAGE = "zookeeper:3.6.2"

# --- expectations, from the fact sheet ---------------------------------------------------------
# Section 6 / harness 4.*: the default sweeps, per experiment and baseline (the planner's count).
POINTS = {
    "singleop": {"unsafe": 1, "boki": 1, "halfmoon-read": 1, "halfmoon-write": 1},
    "hotel": {"unsafe": 4, "boki": 4, "halfmoon-read": 4, "halfmoon-write": 4},
    "movie": {"unsafe": 3, "boki": 3, "halfmoon-read": 3, "halfmoon-write": 3},
    "retwis": {"unsafe": 4, "boki": 4, "halfmoon-read": 4, "halfmoon-write": 4},
    "overhead": {"boki": 3, "halfmoon-read": 3, "halfmoon-write": 3},
    "switching": {"halfmoon": 2},
}
VARIANT = {"unsafe": "Unsafe", "boki": "Boki", "halfmoon-read": "HM", "halfmoon-write": "HM", "halfmoon": "HM"}
# LoggingMode names the logged operation: Halfmoon-read logs writes (section 1; switching: unset).
LOGGING_MODE = {"halfmoon-read": "write", "halfmoon-write": "read"}
BIN_ROOT = {"Unsafe": "/beldi-bin", "Boki": "/bokiflow-bin", "HM": "/optimal-bin"}
APP_DIR = {  # section 1: the binary folder of each experiment in the bench image
    ("singleop", "Unsafe"): "bsingleop",
    ("hotel", "Unsafe"): "bhotel",
    ("movie", "Unsafe"): "bmedia",
    ("retwis", "Unsafe"): "bretwis",
    "singleop": "singleop",
    "hotel": "hotel",
    "movie": "media",
    "retwis": "retwis",
    "overhead": "rw",
    "switching": "switching",
}

# Section 3: every flag of the infrastructure services, per variant.
ZK = "--zookeeper_host=zookeeper:2181"
GATEWAY = ["/boki/gateway", ZK, "--listen_iface=eth0", "--http_port=8080",
           "--func_config_file=/tmp/boki/func_config.json", "--async_call_result_path=/tmp/store/async_results",
           "--num_io_workers=2", "--io_uring_entries=2048", "--io_uring_fd_slots=4096", "--lb_per_fn_round_robin",
           "--max_running_requests=0"]  # fmt: skip
ENGINE_UNSAFE = ["/boki/engine", ZK, "--listen_iface=eth0", "--root_path_for_ipc=/tmp/boki/ipc",
                 "--func_config_file=/tmp/boki/func_config.json", "--num_io_workers=4", "--instant_rps_p_norm=0.8",
                 "--io_uring_entries=2048", "--io_uring_fd_slots=4096"]  # fmt: skip
ENGINE_BOKI = [*ENGINE_UNSAFE, "--enable_shared_log", "--slog_engine_enable_cache", "--slog_engine_cache_cap_mb=1024"]
ENGINE_HM = [*ENGINE_BOKI, "--use_txn_engine"]
CONTROLLER = ["/boki/controller", ZK, "--metalog_replicas=3", "--userlog_replicas=3", "--index_replicas=8"]
STORAGE_BOKI = ["/boki/storage", ZK, "--listen_iface=eth0", "--db_path=/tmp/storage/logdata", "--num_io_workers=2",
                "--io_uring_entries=2048", "--io_uring_fd_slots=4096", "--slog_local_cut_interval_us=300",
                "--slog_storage_bgthread_interval_ms=1", "--slog_storage_backend=rocksdb",
                "--slog_storage_cache_cap_mb=4096"]  # fmt: skip
STORAGE_HM = [*STORAGE_BOKI, "--use_txn_engine"]
SEQUENCER = ["/boki/sequencer", ZK, "--listen_iface=eth0", "--num_io_workers=2", "--io_uring_entries=2048",
             "--io_uring_fd_slots=4096", "--slog_global_cut_interval_us=300"]  # fmt: skip
SLOT = "{{.Task.Slot}}"
CERTS = "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt"
LAUNCHER = (
    "/boki/launcher --fprocess_mode=go --root_path_for_ipc=/tmp/boki/ipc --fprocess_output_dir=/tmp/boki/output "
    '--hostname_in_output_fname --fprocess="$1" --func_id=$2'
)

# Sections 2.2-2.6: (compose service, binary, funcId, funcName, workers, AWS, env besides the common env).
# Env values: NUM_KEYS etc. from the deploy shell (section 6 step 11); "LM" stands for LoggingMode.
Fn = tuple[str, str, int, str, int, bool, dict[str, Any]]


def functions(exp: str, variant: str, params: dict[str, Any]) -> tuple[int, list[Fn]]:
    """(FAAS_GO_MAX_PROC_FACTOR, the function services) of a directory of the artifact."""
    hm = variant == "HM"
    tp: dict[str, Any] = {"TABLE_PREFIX": "TP"}
    lm: dict[str, Any] = {"LoggingMode": "LM"} if hm else {}
    if exp == "singleop":
        nop_env = tp if variant == "Unsafe" else {}
        out = [
            ("nop-service", "nop", 1, "nop", 8, variant == "Unsafe", nop_env),
            ("singleop-service", "singleop", 2, "singleop", 8, True, {**tp, "NUM_KEYS": "100", **lm}),
        ]
        if hm:
            out.append(("prewarm-service", "prewarm", 3, "prewarm", 1, True, {**tp, "NUM_KEYS": "100", **lm}))
        return 8, out
    if exp == "hotel":
        b = "b" if variant == "Unsafe" else ""
        names = ["geo", "profile", "rate", "recommendation", "user", "hotel", "search", "flight", "order", "frontend"]
        out = [(f"{n}-service", n, i, b + n, 8, True, {**tp, **lm}) for i, n in enumerate(names, 1)]
        out[0] = (*out[0][:6], {**tp, **lm, "K_NEAREST": "5"})
        out.append(("gateway-service", "gateway", 11, "gateway", 8, True, {**tp, **lm}))
        return 8, out
    if exp == "movie":
        b = "b" if variant == "Unsafe" else ""
        rows = [("frontend", "Frontend", 16), ("cast-info-service", "CastInfo", 8),
                ("review-storage-service", "ReviewStorage", 8), ("user-review-service", "UserReview", 8),
                ("movie-review-service", "MovieReview", 8), ("compose-review-service", "ComposeReview", 16),
                ("text-service", "Text", 8), ("user-service", "User", 8), ("unique-id-service", "UniqueId", 8),
                ("rating-service", "Rating", 8), ("movie-id-service", "MovieId", 8), ("plot-service", "Plot", 8),
                ("movie-info-service", "MovieInfo", 8), ("page-service", "Page", 8)]  # fmt: skip
        return 4, [
            (svc, binary, i, binary if binary == "Frontend" else b + binary, w, True, {**tp, **lm})
            for i, (svc, binary, w) in enumerate(rows, 1)
        ]
    if exp == "retwis":
        names = ["login", "profile", "timeline", "post", "publish"]
        out = [(f"{n}-service", n, i, n, 8, True, {**tp, **lm}) for i, n in enumerate(names, 1)]
        out[2] = (*out[2][:6], {**tp, **lm, "MAX_RETURN_POSTS": "5"})
        return 4, out
    if exp == "overhead":
        rw_env = {**tp, "NUM_KEYS": "10000", "VALUE_SIZE": "256", "NUM_OPS": "10"}
        rw_env["READ_RATIO"] = str(params["read_ratio"])
        out = [("rw-service", "rw", 1, "rw", 32, True, {**rw_env, **lm})]
        if hm:
            out.append(("prewarm-service", "prewarm", 2, "prewarm", 1, True, {**tp, "NUM_KEYS": "10000", **lm}))
        return 8, out
    if exp == "switching":  # no LoggingMode, NUM_OPS or READ_RATIO: the mode travels in each request
        return 8, [
            ("rw-service", "rw", 1, "rw", 32, True, {**tp, "NUM_KEYS": "1000", "VALUE_SIZE": "256"}),
            ("prewarm-service", "prewarm", 2, "prewarm", 1, True, {**tp, "NUM_KEYS": "1000"}),
        ]
    raise AssertionError(exp)


HOTEL_TABLES = ["user", "search", "flight", "frontend", "geo", "order", "hotel", "profile", "rate", "recommendation",
                "gateway"]  # fmt: skip
MOVIE_TABLES = ["CastInfo", "ComposeReview", "Frontend", "MovieId", "MovieInfo", "MovieReview", "Page", "Plot",
                "Rating", "ReviewStorage", "Text", "UniqueId", "User", "UserReview"]  # fmt: skip


def tables(exp: str, variant: str) -> set[str]:
    """Section 4.2 (the Unsafe baseline's b prefix; none in retwis)."""
    b = "b" if variant == "Unsafe" else ""
    return {
        "singleop": {b + "singleop"},
        "hotel": {b + t for t in HOTEL_TABLES},
        "movie": {b + t for t in MOVIE_TABLES},
        "retwis": {"user", "post", "timeline"},
        "overhead": {"rw"},
        "switching": {"rw"},
    }[exp]


def data_step(exp: str, variant: str, baseline: str) -> tuple[list[str], dict[str, str]]:
    """Section 4.5: `init populate` argv (after the binary) and its environment (besides TABLE_PREFIX,
    AWS_REGION); `init create` is the harness's tagged create, `init clean` its drop."""
    lm = {"LoggingMode": LOGGING_MODE[baseline]} if baseline in LOGGING_MODE else {}
    v = "baseline" if variant == "Unsafe" else "cayon"
    retwis_env = {"NUM_USERS": "10000", "NUM_FOLLOWERS": "8", "MAX_RETURN_POSTS": "5"}
    return {
        "singleop": (["populate"], {"NUM_KEYS": "100", **lm}),
        "hotel": (["populate", v], lm),
        "movie": (["populate", v, "compressed.json"], lm),
        "retwis": (["populate"] if variant == "Unsafe" else ["populate", "cayon"], {**retwis_env, **lm}),
        "overhead": (["populate"], {"NUM_KEYS": "10000", "VALUE_SIZE": "256", **lm}),
        "switching": (["populate"], {"NUM_KEYS": "1000", "VALUE_SIZE": "256"}),
    }[exp]


def engine_hostname(exp: str, variant: str) -> str:
    """Section 3: faas-engine-N in singleop/baseline, baseline-hotel, baseline-movie."""
    faas = variant == "Unsafe" and exp in ("singleop", "hotel", "movie")
    return ("faas-engine-" if faas else "boki-engine-") + SLOT


def infrastructure(exp: str, variant: str) -> dict[str, dict[str, Any]]:
    """Section 3: the services every stack of the variant runs, as rendered for swarm."""
    on_gateway = ["node.hostname == bokiexp-gateway"]
    out: dict[str, dict[str, Any]] = {
        "zookeeper": {"image": ZK_IMAGE, "hostname": "zookeeper", "ports": ["2181:2181"], "place": on_gateway},
        "zookeeper-setup": {
            "image": ZK_IMAGE,
            "command": ["/tmp/boki/zk_setup.sh", "80"],  # ours takes the gate (section 3: 80 s)
            "volumes": ["/tmp/zk_setup.sh:/tmp/boki/zk_setup.sh"],
            "place": on_gateway,
        },
        "boki-gateway": {
            "image": HM_IMAGE,
            "hostname": "faas-gateway",
            "entrypoint": GATEWAY,
            "ports": ["8080:8080"],
            # The seed's fix kept: each point's async_results in its own folder, not /mnt/inmem/store.
            "volumes": ["/tmp/nightcore_config.json:/tmp/boki/func_config.json", "{point_dir}:/tmp/store"],
            "place": on_gateway,
        },
        "boki-engine": {
            "image": HM_IMAGE,
            "hostname": engine_hostname(exp, variant),
            "entrypoint": {"Unsafe": ENGINE_UNSAFE, "Boki": ENGINE_BOKI, "HM": ENGINE_HM}[variant],
            "environment": {"FAAS_NODE_ID": SLOT, "FAAS_CGROUP_FS_ROOT": "/tmp/root_cgroupfs"},
            "volumes": ["/mnt/inmem/boki:/tmp/boki", "/sys/fs/cgroup:/tmp/root_cgroupfs"],
            "label": ("engine_node", 8),
        },
    }
    if variant != "Unsafe":
        out["boki-controller"] = {"image": HM_IMAGE, "entrypoint": CONTROLLER, "place": on_gateway}
        out["boki-storage"] = {
            "image": HM_IMAGE,
            "hostname": "faas-storage-" + SLOT,
            "entrypoint": STORAGE_HM if variant == "HM" else STORAGE_BOKI,
            "environment": {"FAAS_NODE_ID": SLOT},
            "volumes": ["/mnt/storage:/tmp/storage"],
            "label": ("storage_node", 3),
        }
        out["boki-sequencer"] = {
            "image": HM_IMAGE,
            "hostname": "faas-sequencer-" + SLOT,
            "entrypoint": SEQUENCER,
            "environment": {"FAAS_NODE_ID": SLOT},
            "label": ("sequencer_node", 3),
        }
    return out


# --- the points, the way the pipeline makes them under --profile aws -----------------------------
def aws_config() -> dict[str, Any]:
    cfg = deep_merge(
        yaml.safe_load((REPO / "config/config.yaml").read_text()),
        yaml.safe_load((REPO / "profiles/aws/aws.yaml").read_text()),
    )
    cfg = validate(cfg, "config.schema.yaml", "config + profiles/aws")
    cfg["run_id"] = ""
    return cfg


CFG = aws_config()
EXPERIMENTS = {n: load_experiment(SUITE / f"{n}.yaml", CFG["scale"], CFG["repetitions"]) for n in POINTS}
ALL_POINTS = [(e, p) for e, exp in EXPERIMENTS.items() for p in exp.all_points(CFG["repetitions"])]


def test_the_planner_counts_59_aws_points(tmp_path):
    status = point_status(list(EXPERIMENTS.values()), tmp_path, CFG["repetitions"])
    counts = {e: {b: len(st["run"]) for (ex, b), st in status.items() if ex == e} for e in POINTS}
    assert counts == POINTS
    assert sum(sum(v.values()) for v in counts.values()) == len(ALL_POINTS) == 59
    assert chosen_experiments(CFG["experiments"], "halfmoon") == list(POINTS)  # the aws profile runs all six


# --- recording fakes of SSH and DynamoDB ----------------------------------------------------------
class FakeDynamo:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []

    def create_table(self, **kw: Any) -> None:
        self.tables[kw["TableName"]] = kw

    def delete_table(self, TableName: str) -> None:
        self.tables.pop(TableName, None)
        self.deleted.append(TableName)

    def list_tables(self, **kw: Any) -> dict[str, Any]:
        return {"TableNames": sorted(self.tables)}

    def get_waiter(self, name: str) -> Any:
        return type("W", (), {"wait": lambda self, **kw: None})()


class FakeHosts:
    """remote.run / remote.put / remote.get recorded per machine, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (machine, "run"|"put", command or remote path)
        self.files: dict[tuple[str, str], str] = {}  # (machine, remote path) -> text

    def run(self, host: Host, command: str, timeout_s: float = 300, hide: bool = True) -> str:
        self.calls.append((host.name, "run", command))
        return ""

    def put(self, host: Host, local: str, remote_path: str) -> None:
        self.calls.append((host.name, "put", remote_path))
        self.files[(host.name, remote_path)] = Path(local).read_text()

    def get(self, host: Host, remote_path: str, local: str) -> None:
        Path(local).write_text('{"recvTs": 1, "dispatchTs": 2, "finishedTs": 3}\n')

    def runs(self, machine: str) -> list[str]:
        return [c for m, kind, c in self.calls if m == machine and kind == "run"]


@pytest.fixture
def fakes(monkeypatch):
    hosts, ddb = FakeHosts(), FakeDynamo()
    for name in ("run", "put", "get"):
        monkeypatch.setattr(remote, name, getattr(hosts, name))
    monkeypatch.setattr(session, "client", lambda settings, service, attempts=8: ddb)
    return hosts, ddb


def live_cluster(spec: dict[str, Any]) -> Cluster:
    shape = planned_cluster(f"{spec['experiment']}-{spec['baseline']}", spec["machines"])
    for h in shape.hosts:
        h.address = h.private_address = f"10.0.0.{shape.hosts.index(h) + 1}"
    shape.provider, shape.run_id = "aws", "r1"
    shape.extra = {"region": REGION, "table_prefix": "benchpipe-r1-", "endpoint_url": None}
    return shape


def deploy(spec: dict[str, Any]) -> tuple[SwarmDeployer, dict[str, Any], Cluster]:
    deployer = SwarmDeployer(spec["deployer"]["settings"])
    rendered = deployer.render(
        planned_cluster("plan", spec["machines"]), spec["deployment"], spec["env"]
    )  # as the deploy stage renders it
    return deployer, rendered, live_cluster(spec)


def cmdline(svc: dict[str, Any]) -> list[str]:
    return list(svc.get("entrypoint") or []) + list(svc.get("command") or [])


@pytest.mark.parametrize(("exp_name", "point"), ALL_POINTS, ids=[f"{e}/{p.baseline}/{p.name}" for e, p in ALL_POINTS])
def test_golden_stack(exp_name, point, fakes, tmp_path):
    hosts, ddb = fakes
    exp = EXPERIMENTS[exp_name]
    cfg = {**CFG, "data_files": {"halfmoon_movie_data": str(tmp_path / "compressed.json")}}
    (tmp_path / "compressed.json").write_text('[{"MovieId": "m1", "Title": "t"}]\n')
    spec = point_spec(cfg, exp, point)
    variant = VARIANT[point.baseline]
    factor, fns = functions(exp_name, variant, point.params)
    app_dir = APP_DIR.get((exp_name, variant), APP_DIR[exp_name])
    bin_dir = f"{BIN_ROOT[variant]}/{app_dir}"
    mode = LOGGING_MODE.get(point.baseline) if exp_name != "switching" else None

    deployer, rendered, cluster = deploy(spec)
    point_dir = "/tmp/benchpipe/r1/point"
    stack = deployer.start(cluster, rendered, point_dir)
    deployed = stack.deployed
    compose = yaml.safe_load(deployed["compose"])["services"]
    prefix = deployed["table_prefix"]
    assert prefix.startswith("benchpipe-r1-") and prefix.endswith("-")

    # Services: exactly the artifact's (none missing, none extra).
    infra = infrastructure(exp_name, variant)
    assert set(compose) == set(infra) | {f[0] for f in fns}
    for name, want in infra.items():
        svc = compose[name]
        assert svc["image"] == want["image"], name
        assert cmdline(svc) == list(want.get("entrypoint", [])) + list(want.get("command", [])), name
        assert svc.get("hostname") == want.get("hostname"), name
        assert svc.get("environment", {}) == want.get("environment", {}), name
        vols = [v.replace(point_dir, "{point_dir}") for v in svc.get("volumes", [])]
        assert vols == want.get("volumes", []), name
        assert svc.get("ports", []) == want.get("ports", []), name
        deploy_ = svc["deploy"]
        if "label" in want:
            label, n = want["label"]
            assert deploy_["placement"] == {"constraints": [f"node.labels.{label} == true"], "max_replicas_per_node": 1}
            assert deploy_["replicas"] == n, name
        else:
            assert deploy_["placement"]["constraints"] == want["place"] and deploy_["replicas"] == 1, name
    for svc_name, binary, fid, _name, _workers, aws, env in fns:
        svc = compose[svc_name]
        assert svc["image"] == BENCH_IMAGE
        assert svc["entrypoint"] == ["/tmp/boki/run_launcher", f"{bin_dir}/{binary}", str(fid)], svc_name
        assert "command" not in svc
        want_env = {"FAAS_GO_MAX_PROC_FACTOR": str(factor), "GOGC": "1000"}
        want_env |= {k: {"TP": prefix, "LM": mode}.get(v, v) for k, v in env.items()}
        if aws:
            want_env["AWS_REGION"] = REGION
        assert svc.get("environment") == want_env, svc_name
        want_vols = ["/mnt/inmem/boki:/tmp/boki"] + ([CERTS] if aws else [])
        assert svc["volumes"] == want_vols, svc_name
        assert svc["deploy"]["replicas"] == 8
        assert svc["deploy"]["placement"] == {
            "constraints": ["node.labels.engine_node == true"],
            "max_replicas_per_node": 1,
        }
    # Swarm's default restart policy applies to every upstream service (section 2.1).
    assert {n: s["deploy"]["restart_policy"] for n, s in compose.items()} == {n: {"condition": "any"} for n in compose}
    # Every service's command line is recorded for the manifest.
    assert deployed["commands"] == {n: cmdline(s) for n, s in compose.items()}

    # The registry, and the host files: where, with which mode, with what.
    registry = [{"funcName": f[3], "funcId": f[2], "minWorkers": f[4], "maxWorkers": f[4]} for f in fns]
    registry.sort(key=lambda e: e["funcId"])
    machines = {h.name: h for h in cluster.hosts}
    servers = sorted(n for n, h in machines.items() if h.role != "client")
    engines = sorted(n for n, h in machines.items() if "engine_node=true" in h.labels)
    storage = sorted(n for n, h in machines.items() if "storage_node=true" in h.labels)
    manager = cluster.manager.name
    client = cluster.by_role("client")[0].name
    assert len(engines) == 8 and len(storage) == (0 if variant == "Unsafe" else 3)
    placed = {(hf["dest"], hf["mode"]): sorted(hf["machines"]) for hf in deployed["host_files"]}
    assert placed == {
        ("/tmp/nightcore_config.json", "0644"): servers,
        ("/mnt/inmem/boki/func_config.json", "0644"): engines,
        ("/mnt/inmem/boki/run_launcher", "0755"): engines,
        ("/tmp/zk_setup.sh", "0755"): [manager],
    }
    installs = {}
    for m in machines:
        for cmd in hosts.runs(m):
            if " install -m " in cmd:
                words = shlex.split(cmd.split("$S install", 1)[1].split(";")[0])
                installs[(m, words[-1])] = (words[1], hosts.files[(m, words[-2])])
    for m in servers:
        assert json.loads(installs[(m, "/tmp/nightcore_config.json")][1]) == registry
    for m in engines:
        assert json.loads(installs[(m, "/mnt/inmem/boki/func_config.json")][1]) == registry
        mode_, text = installs[(m, "/mnt/inmem/boki/run_launcher")]
        assert mode_ == "0755" and text.startswith("#!")
        assert shlex.split(text.strip().splitlines()[-1]) == ["exec", *shlex.split(LAUNCHER)]
    assert installs[(manager, "/tmp/zk_setup.sh")][0] == "0755"
    assert not [k for k in installs if k[0] == client]

    # Wipes (section 6 steps 9-10) on the engine and storage machines, before the files go there.
    for m in engines:
        runs = hosts.runs(m)
        wipe = next(i for i, c in enumerate(runs) if "rm -rf /mnt/inmem/boki" in c)
        assert "mkdir -p /mnt/inmem/boki/ipc /mnt/inmem/boki/output" in runs[wipe]
        assert wipe < min(i for i, c in enumerate(runs) if "install -m" in c)
    for m in storage:
        assert any("rm -rf /mnt/storage/logdata && $S mkdir -p /mnt/storage/logdata" in c for c in hosts.runs(m))
    assert not any("rm -rf /mnt" in c for m in machines if m not in engines + storage for c in hosts.runs(m))

    # Tables (section 4): made by the harness, tagged, K as hash key of type S, on demand; under
    # the point's prefix, which every function service with TABLE_PREFIX and the data step get.
    want_tables = {prefix + t for t in tables(exp_name, variant)}
    assert set(ddb.tables) == want_tables
    for t in ddb.tables.values():
        assert t["KeySchema"] == [{"AttributeName": "K", "KeyType": "HASH"}]
        assert t["AttributeDefinitions"] == [{"AttributeName": "K", "AttributeType": "S"}]
        assert t["BillingMode"] == "PAY_PER_REQUEST"
        assert {"Key": "run-id", "Value": "r1"} in t["Tags"] and {"Key": "project", "Value": "benchpipe"} in t["Tags"]

    # The data step on the client (section 4.5), before the stack is deployed.
    args, env = data_step(exp_name, variant, point.baseline)
    env = {**env, "TABLE_PREFIX": prefix, "AWS_REGION": REGION}
    folder = f"{point_dir}/data"
    client_runs = hosts.runs(client)
    assert f"docker pull -q {BENCH_IMAGE}" in client_runs
    copy = next(c for c in client_runs if c.startswith("docker run"))
    assert copy.endswith(f"-v {folder}:{folder} {BENCH_IMAGE} cp -r {bin_dir} {folder}/")
    populate = shlex.split(client_runs[-1])
    assert populate[:4] == ["cd", folder, "&&", "env"]
    given = dict(a.split("=", 1) for a in populate[4:] if "=" in a and not a.startswith("./"))
    assert given == env
    assert populate[4 + len(given) :] == [f"./{app_dir}/init", *args]
    if exp_name == "movie":
        assert hosts.files[(client, f"{folder}/compressed.json")].startswith('[{"MovieId"')
    assert deployed["data"][-1] == client_runs[-1]
    deploy_cmds = [c for c in hosts.runs(manager) if "docker stack deploy" in c]
    assert deploy_cmds == [deployed["deploy_command"]]
    order = [c for _m, kind, c in hosts.calls if kind == "run"]
    assert order.index(client_runs[-1]) < order.index(deploy_cmds[0])

    # Once ready (section 6 step 13): 4096 cpu shares for the engine containers, on the engines.
    (step,) = rendered["after_ready"]
    assert sorted(step["machines"]) == engines
    assert "{stack}_boki-engine" in step["run"] and "echo 4096 | $S tee" in step["run"]
    assert "/sys/fs/cgroup/cpu,cpuacct/docker/$c/cpu.shares" in step["run"]

    # Readiness (section 3): the gateway's 404 outside its paths, and the start gate open.
    assert (stack.ready_path, stack.ready_status) == ("/", [404])
    assert "/faas/cmd/start" in stack.ready_command

    # After the point: the tables are dropped.
    deployer.stop(stack)
    assert not ddb.tables and set(ddb.deleted) == want_tables


# --- pieces that the golden test relies on, each checked on its own --------------------------------
def test_zk_setup_script_opens_the_gate_after_the_configured_delay(tmp_path):
    """files/zk_setup.sh with zkCli.sh and sleep recorded: the znodes of section 3, in order."""
    log = tmp_path / "log"
    for tool in ("zkCli.sh", "sleep"):
        script = tmp_path / tool
        answer = 'echo "[zookeeper]"' if tool == "zkCli.sh" else "true"
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n{answer}\n')
        script.chmod(0o755)
    script = SUITE / "files/zk_setup.sh"
    subprocess.run([str(script), "7"], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=True, timeout=10)
    lines = log.read_text().splitlines()
    zk = "zkCli.sh -server zookeeper:2181"
    assert lines == [
        f"{zk} ls /",
        f"{zk} deleteall /faas",
        *[f"{zk} create {n}" for n in ("/faas", "/faas/node", "/faas/view", "/faas/freeze", "/faas/cmd")],
        "sleep 7",
        f"{zk} create /faas/cmd/start",
        "sleep infinity",
    ]


def test_a_one_node_test_bed_gets_one_replica_per_labelled_service():
    exp = EXPERIMENTS["hotel"]
    spec = point_spec(CFG, exp, exp.points("boki")[0])
    node = [
        {"name": "bokiexp-gateway", "role": "manager", "labels": ["engine_node=true", "storage_node=true",
                                                                  "sequencer_node=true"]},
        {"name": "bokiexp-client", "role": "client"},
    ]  # fmt: skip
    r = SwarmDeployer(spec["deployer"]["settings"]).render(
        planned_cluster("bed", node), spec["deployment"], spec["env"]
    )
    services = yaml.safe_load(r["compose"])["services"]
    for name in ("boki-engine", "boki-storage", "boki-sequencer", "geo-service"):
        assert services[name]["deploy"]["replicas"] == 1, name


def test_aws_region_is_rendered_from_the_aws_profile():
    exp = EXPERIMENTS["hotel"]
    spec = point_spec(CFG, exp, exp.points("unsafe")[0])
    assert "region" not in (CFG["deployer"].get("settings") or {})  # it comes from provider.settings
    r = SwarmDeployer(spec["deployer"]["settings"]).render(
        planned_cluster("x", spec["machines"]), spec["deployment"], spec["env"]
    )
    assert yaml.safe_load(r["compose"])["services"]["geo-service"]["environment"]["AWS_REGION"] == REGION
    bare = {**spec["deployment"]}
    with pytest.raises(ConfigError, match=r"deployer.settings.region: expected the AWS region"):
        SwarmDeployer({}).render(planned_cluster("x", spec["machines"]), bare, spec["env"])


def test_tables_on_another_provider_need_a_dynamodb_endpoint(fakes):
    _hosts, ddb = fakes
    exp = EXPERIMENTS["retwis"]
    spec = point_spec(CFG, exp, exp.points("unsafe")[0])
    _, rendered, cluster = deploy(spec)
    cluster.provider = "ssh"
    with pytest.raises(ConfigError, match=r"deployer.settings.dynamodb: expected"):
        SwarmDeployer({"region": REGION}).start(cluster, rendered, "/tmp/p")
    # With an endpoint (a moto server in the test bed's run): tables made there, the endpoint given
    # to the data step, tables dropped when the stack stops.
    d = SwarmDeployer({"region": REGION, "dynamodb": {"endpoint_url": "http://127.0.0.1:5000"}})
    stack = d.start(cluster, rendered, "/tmp/p")
    assert stack.table_prefix.startswith("benchpipe-r1-")
    assert set(ddb.tables) == {stack.table_prefix + t for t in ("user", "post", "timeline")}
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:5000" in stack.deployed["data"][-1]
    d.stop(d.attach(d.handle(stack, "lease")))
    assert not ddb.tables


def test_the_manifest_records_what_the_stack_ran(fakes, tmp_path):
    exp = EXPERIMENTS["singleop"]
    spec = point_spec(CFG, exp, exp.points("boki")[0])
    deployer, rendered, cluster = deploy(spec)
    stack = deployer.start(cluster, rendered, "/tmp/p")
    raw = tmp_path / "raw"
    deployer.fetch(deployer.attach(deployer.handle(stack, "lease")), raw)
    (raw / "measure.json").write_text(
        json.dumps({"target_rate": 15, "achieved_rate": 15, "sent": 1, "fell_behind": False})
    )
    (raw / "timing.json").write_text(json.dumps({"deploy_start": 1.0}))
    spec = {**spec, "rendered": rendered}
    manifest = write_manifest(spec, cluster, raw, tmp_path / "manifest.json", REPO)
    ran = manifest["stack"]
    assert ran["commands"]["boki-engine"] == ENGINE_BOKI
    assert ran["commands"]["singleop-service"] == ["/tmp/boki/run_launcher", "/bokiflow-bin/singleop/singleop", "2"]
    assert "docker stack deploy" in ran["deploy_command"]
    assert yaml.safe_load(ran["compose"])["services"]["boki-gateway"]["volumes"][1] == "/tmp/p:/tmp/store"
    assert ran["data"][-1].endswith("./singleop/init populate")
    assert {"kernel_cmdline", "kernel_version"} <= set(ran)  # section 6 step 14


# --- readiness ---------------------------------------------------------------------------------
class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway_404():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def probe_stack(endpoint: str, status: list[int], command: str = "") -> SwarmStack:
    manager = Host(name="m", address="127.0.0.1", role="manager")
    cluster = Cluster(name="c", provider="ssh", run_id="r", experiment="e", baseline="b", hosts=[manager], lock_key="k")
    return SwarmStack(
        endpoint=endpoint, cluster=cluster, stack="bp", point_dir="/p", gateway_host=manager,
        services=["boki-gateway", "boki-engine"], ready_path="/", ready_status=status, ready_command=command,
    )  # fmt: skip


def test_ready_when_the_gateway_answers_404_and_every_replica_runs(monkeypatch, gateway_404):
    replicas = {"engine": "8/8 (max 1 per node)", "gate": "ok"}

    def run(host: Host, command: str, timeout_s: float = 300, hide: bool = True) -> str:
        if command.startswith("docker service ls"):
            return f"bp_boki-gateway 1/1\nbp_boki-engine {replicas['engine']}\n"
        if "zkCli.sh" in command and replicas["gate"] != "ok":
            raise remote.RemoteError("exited 1")
        return ""

    monkeypatch.setattr(remote, "run", run)
    d = SwarmDeployer({"probe_from": "controller"})
    ready = probe_stack(gateway_404, [404], "zkCli.sh stat /faas/cmd/start")
    ready.after_ready = [{"machines": ["m"], "run": "echo shares for {stack}_boki-engine"}]
    d.wait_ready(ready, timeout_s=5)
    assert ready.deployed["after_ready"][0]["command"] == "echo shares for bp_boki-engine"
    # A gateway that answers 404 is not ready for a probe that wants 200 (the stand-in's health path).
    with pytest.raises(StackError, match="answering 200"):
        d.wait_ready(probe_stack(gateway_404, [200]), timeout_s=0.5)
    replicas["engine"] = "7/8 (max 1 per node)"
    with pytest.raises(StackError, match="every service's replicas running"):
        d.wait_ready(probe_stack(gateway_404, [404]), timeout_s=0.5)
    replicas.update(engine="8/8", gate="closed")
    with pytest.raises(StackError, match=re.escape("zkCli.sh stat /faas/cmd/start")):
        d.wait_ready(probe_stack(gateway_404, [404], "zkCli.sh stat /faas/cmd/start"), timeout_s=0.5)


# --- configuration errors name the file, the key and what was expected ------------------------------
def _hotel(tmp_path: Path, mutate) -> Path:
    for name in ("_halfmoon.yaml", "hotel.yaml"):
        (tmp_path / name).write_text((SUITE / name).read_text())
    (tmp_path / "files").mkdir()
    for f in (SUITE / "files").iterdir():
        (tmp_path / "files" / f.name).write_text(f.read_text())
    data = yaml.safe_load((tmp_path / "hotel.yaml").read_text())
    mutate(data)
    (tmp_path / "hotel.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "hotel.yaml"


def _geo(**kw: Any):
    return lambda d: d["stack"]["services"]["geo-service"].update(**kw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["stack"]["services"]["geo-service"]["function"].update(id=2), "funcId 2 is also that of"),
        (_geo(entrypoint=["{bin_dri}/geo"]), "unknown variable {bin_dri}"),
        (_geo(point_env=["TABLE_PREFX"]), "'TABLE_PREFX' is set by no point"),
        (lambda d: d["stack"]["services"]["geo-service"]["function"].pop("workers"), "'workers' is missing"),
        (lambda d: d["stack"].update(wipes=[{"hosts": {"label": "engine_node"}}]), "'remove' is missing"),
        (lambda d: d["stack"].update(host_files=[{"dest": "/x", "hosts": {"roles": ["boss"]}, "content": "registry"}]),
         "expected one of manager, worker, client"),
        (lambda d: d.setdefault("baselines", {}).update(extra={"from": "nosuch"}),
         "baselines.extra.from: expected one of"),
    ],
)  # fmt: skip
def test_bad_stack_configuration_is_named(tmp_path, mutate, message):
    path = _hotel(tmp_path, mutate)
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert str(path) in str(e.value) and message in str(e.value), str(e.value)


def test_the_stack_of_a_baseline_is_configuration_not_code():
    """The same resolution serves every experiment: switching's one series is halfmoon-write's stack."""
    sw = resolve_stack(EXPERIMENTS["switching"].data, "halfmoon", EXPERIMENTS["switching"].source)
    assert cmdline(sw["services"]["boki-engine"]) == ENGINE_HM
    assert [e["funcName"] for e in sw["registry"]] == ["rw", "prewarm"]


def test_restarts_are_tolerated_while_the_stack_starts_and_fail_the_point_after(monkeypatch, gateway_404):
    """The artifact's launchers and components restart until ZooKeeper's gate and the engines are up;
    once the stack is ready, a failed task fails the point (it is not hidden by its restart)."""
    failed = ["t1 bp_boki-engine.1 Failed 5 seconds ago task: non-zero exit (1)"]

    def run(host: Host, command: str, timeout_s: float = 300, hide: bool = True) -> str:
        if command.startswith("docker service ls"):
            return "bp_boki-gateway 1/1\nbp_boki-engine 8/8\n"
        if command.startswith("docker stack ps"):
            return "\n".join(failed) + "\n"
        return ""

    monkeypatch.setattr(remote, "run", run)
    d = SwarmDeployer({"probe_from": "controller"})
    stack = probe_stack(gateway_404, [404])
    stack.restarts = {"boki-gateway": "any", "boki-engine": "any"}
    d.wait_ready(stack, timeout_s=5)
    assert stack.tolerated == ["t1"]
    d.check_healthy(stack)  # the failure before ready is history
    failed.append("t2 bp_boki-engine.3 Failed 1 second ago task: non-zero exit (139)")
    with pytest.raises(StackError, match=r"task\(s\) failed: bp_boki-engine.3 Failed"):
        d.check_healthy(stack)
    # A service that does not restart fails the point at once, also while the stack starts.
    stack = probe_stack(gateway_404, [200])
    stack.restarts = {"boki-gateway": "none", "boki-engine": "none"}
    with pytest.raises(StackError, match=r"bp_boki-engine\.1 Failed"):
        d.wait_ready(stack, timeout_s=5)


def test_an_experiment_cut_down_to_the_unsafe_baseline_still_loads(tmp_path):
    """LoggingMode is set by no point then; the function defaults name it, so it is not a typo."""
    cut = {"boki": None, "halfmoon-read": None, "halfmoon-write": None}
    exp = load_experiment(_hotel(tmp_path, lambda d: d.setdefault("baselines", {}).update(cut)))
    assert exp.baselines == ["unsafe"]


def test_a_missing_movie_data_file_stops_the_point_before_machines_are_launched(tmp_path, monkeypatch):
    from benchpipe import stages

    launched = []

    def ensure_cluster(config: dict[str, Any], spec: dict[str, Any]) -> Cluster:
        launched.append(spec["point"])
        return planned_cluster("c", spec["machines"])

    monkeypatch.setattr("benchpipe.clusters.ensure_cluster", ensure_cluster)
    exp, point = EXPERIMENTS["movie"], EXPERIMENTS["movie"].points("boki")[0]
    cases = [
        ({}, "data_files.halfmoon_movie_data: expected"),
        ({"halfmoon_movie_data": str(tmp_path / "no.json")}, "no.json"),
    ]
    for data_files, message in cases:
        # Named when the point is planned (the load's titles come from it too) or, at the latest,
        # by its provision step.
        with pytest.raises(ConfigError, match=message):
            spec = point_spec({**CFG, "data_files": data_files}, exp, point)
            stages.provision(CFG, spec, tmp_path / "provision.json")
    assert not launched
    (tmp_path / "movies.json").write_text("[]")
    spec = point_spec({**CFG, "data_files": {"halfmoon_movie_data": str(tmp_path / "movies.json")}}, exp, point)
    stages.provision(CFG, spec, tmp_path / "provision.json")
    assert launched == [point.name]
