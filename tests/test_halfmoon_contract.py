"""The contract check (workloads/halfmoon-contract): the stand-in binaries of the real images take
the real command lines (sheet §3, §2) and refuse at start what the real binaries refuse. Fast: the
binaries' Python entry points run directly, without docker; one docker-marked check at the end."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "workloads" / "halfmoon-contract"
sys.path.insert(0, str(CONTRACT))

from hmcontract import checks, components, functions, gateway, zk, zkcli  # noqa: E402
from hmcontract.catalog import APP_DIRS, app_dir_of, table_names  # noqa: E402
from hmcontract.checks import Refusal  # noqa: E402

# The real command lines, flag for flag as the fact sheet's §3 table gives them.
GATEWAY = [
    "--zookeeper_host=zookeeper:2181",
    "--listen_iface=eth0",
    "--http_port=8080",
    "--func_config_file=/tmp/boki/func_config.json",
    "--async_call_result_path=/tmp/store/async_results",
    "--num_io_workers=2",
    "--io_uring_entries=2048",
    "--io_uring_fd_slots=4096",
    "--lb_per_fn_round_robin",
    "--max_running_requests=0",
]
ENGINE_UNSAFE = [
    "--zookeeper_host=zookeeper:2181",
    "--listen_iface=eth0",
    "--root_path_for_ipc=/tmp/boki/ipc",
    "--func_config_file=/tmp/boki/func_config.json",
    "--num_io_workers=4",
    "--instant_rps_p_norm=0.8",
    "--io_uring_entries=2048",
    "--io_uring_fd_slots=4096",
]
ENGINE_BOKI = [*ENGINE_UNSAFE, "--enable_shared_log", "--slog_engine_enable_cache", "--slog_engine_cache_cap_mb=1024"]
ENGINE_HM = [*ENGINE_BOKI, "--use_txn_engine"]
STORAGE_BOKI = [
    "--zookeeper_host=zookeeper:2181",
    "--listen_iface=eth0",
    "--db_path=/tmp/storage/logdata",
    "--num_io_workers=2",
    "--io_uring_entries=2048",
    "--io_uring_fd_slots=4096",
    "--slog_local_cut_interval_us=300",
    "--slog_storage_bgthread_interval_ms=1",
    "--slog_storage_backend=rocksdb",
    "--slog_storage_cache_cap_mb=4096",
]
SEQUENCER = [
    "--zookeeper_host=zookeeper:2181",
    "--listen_iface=eth0",
    "--num_io_workers=2",
    "--io_uring_entries=2048",
    "--io_uring_fd_slots=4096",
    "--slog_global_cut_interval_us=300",
]
CONTROLLER = ["--zookeeper_host=zookeeper:2181", "--metalog_replicas=3", "--userlog_replicas=3", "--index_replicas=8"]
HOTEL = [
    "geo",
    "profile",
    "rate",
    "recommendation",
    "user",
    "hotel",
    "search",
    "flight",
    "order",
    "frontend",
    "gateway",
]


def registry(tmp_path: Path, names: list[str] = HOTEL, ids: list[int] | None = None) -> str:
    ids = ids or list(range(1, len(names) + 1))
    funcs = [{"funcName": n, "funcId": i, "minWorkers": 8, "maxWorkers": 8} for n, i in zip(names, ids, strict=True)]
    path = tmp_path / "func_config.json"
    path.write_text(json.dumps(funcs))
    return str(path)


def with_registry(argv: list[str], path: str) -> list[str]:
    return [f"--func_config_file={path}" if a.startswith("--func_config_file") else a for a in argv]


@pytest.fixture
def eth0(monkeypatch):
    """eth0's address without depending on the test machine's interfaces (the name check stays)."""
    monkeypatch.setattr(checks, "iface_address", lambda iface: "10.0.0.5")


def refused(fn, *args, match: str, **kw) -> Refusal:
    with pytest.raises(Refusal, match=match) as e:
        fn(*args, **kw)
    assert "[sheet §" in str(e.value) or "gflags" in str(e.value)
    return e.value


# --- gateway and engine: the registry ------------------------------------------------------------
@pytest.mark.parametrize("component", ["gateway", "engine"])
def test_gateway_and_engine_refuse_a_missing_or_unreadable_registry(component, tmp_path, eth0):
    argv = GATEWAY if component == "gateway" else ENGINE_HM
    check = gateway.check if component == "gateway" else (lambda a: components.check("engine", a))
    no_flag = [a for a in argv if not a.startswith("--func_config_file")]
    refused(check, no_flag, match="needs --func_config_file")
    refused(check, with_registry(argv, str(tmp_path / "absent.json")), match="cannot read --func_config_file")
    info = check(with_registry(argv, registry(tmp_path)))
    assert [f["funcName"] for f in info["registry"]] == HOTEL


def test_registry_with_duplicate_names_or_ids_is_refused(tmp_path, eth0):
    dup_name = registry(tmp_path, ["geo", "geo"], [1, 2])
    refused(gateway.check, with_registry(GATEWAY, dup_name), match="duplicate funcName 'geo'")
    dup_id = registry(tmp_path, ["geo", "rate"], [3, 3])
    refused(components.check, "engine", with_registry(ENGINE_UNSAFE, dup_id), match="duplicate funcId 3")
    (tmp_path / "bad.json").write_text('[{"funcName": "", "funcId": 1}]')
    refused(gateway.check, with_registry(GATEWAY, str(tmp_path / "bad.json")), match="non-empty")


# --- listen_iface and node ids --------------------------------------------------------------------
@pytest.mark.parametrize("component", ["gateway", "engine", "storage", "sequencer"])
def test_multi_host_roles_refuse_an_iface_other_than_eth0(component, tmp_path, eth0, monkeypatch):
    monkeypatch.setenv("FAAS_NODE_ID", "1")
    argv = {"gateway": GATEWAY, "engine": ENGINE_BOKI, "storage": STORAGE_BOKI, "sequencer": SEQUENCER}[component]
    argv = with_registry(argv, registry(tmp_path))
    check = gateway.check if component == "gateway" else (lambda a: components.check(component, a))
    assert check(argv)["address"] == "10.0.0.5"
    refused(check, [a.replace("=eth0", "=lo") for a in argv], match="must listen on eth0")
    # The default is lo: leaving the flag out is the same mistake.
    refused(check, [a for a in argv if not a.startswith("--listen_iface")], match="--listen_iface=lo")


@pytest.mark.parametrize("component,argv", [("storage", STORAGE_BOKI), ("sequencer", SEQUENCER)])
def test_storage_and_sequencer_refuse_without_a_node_id(component, argv, eth0, monkeypatch):
    monkeypatch.delenv("FAAS_NODE_ID", raising=False)
    refused(components.check, component, argv, match="Node ID not set!")
    assert components.check(component, [*argv, "--node_id=4"])["node_id"] == 4
    monkeypatch.setenv("FAAS_NODE_ID", "2")  # what {{.Task.Slot}} renders to
    assert components.check(component, argv)["node_id"] == 2
    monkeypatch.setenv("FAAS_NODE_ID", "{{.Task.Slot}}")  # not rendered (not run by swarm)
    refused(components.check, component, argv, match="not a number")


def test_engine_falls_back_to_a_hostname_hash(tmp_path, eth0, monkeypatch):
    monkeypatch.delenv("FAAS_NODE_ID", raising=False)
    info = components.check("engine", with_registry(ENGINE_HM, registry(tmp_path)))
    assert isinstance(info["node_id"], int)


def test_every_real_command_line_is_accepted_and_a_misspelt_flag_is_not(tmp_path, eth0, monkeypatch):
    monkeypatch.setenv("FAAS_NODE_ID", "1")
    reg = registry(tmp_path)
    gateway.check(with_registry(GATEWAY, reg))
    for argv in (ENGINE_UNSAFE, ENGINE_BOKI, ENGINE_HM):
        components.check("engine", with_registry(argv, reg))
    components.check("storage", STORAGE_BOKI)
    components.check("storage", [*STORAGE_BOKI, "--use_txn_engine"])
    components.check("sequencer", SEQUENCER)
    components.check("controller", CONTROLLER)
    refused(components.check, "storage", [*STORAGE_BOKI, "--slog_local_cut_interval=300"], match="unknown command")


# --- launcher and function binaries ---------------------------------------------------------------
def launcher_argv(binary: str, func_id: int) -> list[str]:
    # run_launcher's one command (sheet §2.1), with "$1" and $2 filled in.
    return [
        "--fprocess_mode=go",
        "--root_path_for_ipc=/tmp/boki/ipc",
        "--fprocess_output_dir=/tmp/boki/output",
        "--hostname_in_output_fname",
        f"--fprocess={binary}",
        f"--func_id={func_id}",
    ]


def test_launcher_refuses_a_binary_not_in_the_image_and_a_func_id_not_in_the_registry(tmp_path):
    refused(components.launcher_static, launcher_argv("/optimal-bin/hotel/nosuch", 1), match="no such executable")
    fake = tmp_path / "geo"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    flags = components.launcher_static(launcher_argv(str(fake), 12))
    engine = {"registry": json.loads(Path(registry(tmp_path)).read_text())}
    refused(components.launcher_check, flags, engine, match="--func_id=12 is not in the engine's registry")
    assert (
        components.launcher_check(components.launcher_static(launcher_argv(str(fake), 1)), engine)["funcName"] == "geo"
    )


def env_of(**kw: str) -> dict[str, str]:
    # With DynamoDB's region and (environment) credentials: sheet §2.1 need_aws_env, §4.1.
    aws = {"AWS_REGION": "ap-southeast-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"}
    return {"GOGC": "1000", "FAAS_GO_MAX_PROC_FACTOR": "8", "TABLE_PREFIX": "abcdefgh-", **aws, **kw}


@pytest.mark.parametrize(
    "binary,missing",
    [
        ("/optimal-bin/hotel/geo", "K_NEAREST"),
        ("/beldi-bin/bretwis/timeline", "MAX_RETURN_POSTS"),
        ("/bokiflow-bin/singleop/singleop", "NUM_KEYS"),
        ("/optimal-bin/rw/rw", "READ_RATIO"),
    ],
)
def test_function_binaries_refuse_to_start_without_their_required_env(binary, missing):
    full = env_of(
        K_NEAREST="5",
        MAX_RETURN_POSTS="5",
        NUM_KEYS="100",
        VALUE_SIZE="256",
        NUM_OPS="10",
        READ_RATIO="0.5",
        LoggingMode="write",
    )
    name = binary.rsplit("/", 1)[1]
    fn = ("b" + name) if binary.startswith("/beldi-bin") and name not in ("timeline",) else name
    full["HMCONTRACT_FUNC_NAME"] = fn
    assert functions.start_check(binary, full)["binary"] == name
    del full[missing]
    refused(functions.start_check, binary, full, match=f"{missing} is not set")


def test_a_dynamodb_function_refuses_to_start_without_credentials(tmp_path):
    """sheet §4.1 'Credentials', §2.1 need_aws_env: found as aws-sdk-go v1's default chain finds
    them (environment, shared credentials file at AWS_PROFILE, instance profile), else refused."""
    no_imds = {"instance_profile": lambda: False}  # an ssh host: no EC2 metadata service
    bare = {k: v for k, v in env_of(HMCONTRACT_FUNC_NAME="frontend").items() if not k.startswith("AWS_ACCESS")}
    bare.pop("AWS_SECRET_ACCESS_KEY")
    bare["HOME"] = str(tmp_path)  # no ~/.aws/credentials
    hm = "/optimal-bin/hotel/frontend"
    refused(functions.start_check, hm, bare, **no_imds, match="no DynamoDB credentials")
    refused(functions.start_check, hm, {**bare, "AWS_ACCESS_KEY_ID": "AKID"}, **no_imds, match="only one of")
    refused(
        functions.start_check,
        hm,
        {k: v for k, v in env_of(HMCONTRACT_FUNC_NAME="frontend").items() if k != "AWS_REGION"},
        **no_imds,
        match="AWS_REGION is not set",
    )
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = ASIA1\naws_secret_access_key = s\naws_session_token = t\n")
    with_file = {**bare, "AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    assert functions.start_check(hm, with_file, **no_imds)["credentials"] == f"{creds} [default]"
    refused(functions.start_check, hm, {**with_file, "AWS_PROFILE": "bench"}, **no_imds, match=r"no profile \[bench\]")
    refused(
        functions.start_check,
        hm,
        {**bare, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "gone")},
        **no_imds,
        match="failed to load shared credentials file",
    )
    # The instance profile (EC2), unless the metadata service is disabled as aws-sdk-go allows.
    assert functions.start_check(hm, bare, instance_profile=lambda: True)["credentials"] == "instance profile"
    refused(
        functions.start_check,
        hm,
        {**bare, "AWS_EC2_METADATA_DISABLED": "true"},
        instance_profile=lambda: True,
        match="no DynamoDB credentials",
    )
    # sheet §2.2: boki's and optimal's nop never reach DynamoDB (AWS "–"); the Beldi one does.
    nop = {**bare, "HMCONTRACT_FUNC_NAME": "nop"}
    assert functions.start_check("/bokiflow-bin/singleop/nop", nop, **no_imds)["credentials"] is None
    refused(
        functions.start_check,
        "/beldi-bin/bsingleop/nop",
        {**nop, "HMCONTRACT_FUNC_NAME": "bnop"},
        **no_imds,
        match="no DynamoDB credentials",
    )
    # init (on the client) too, also against an endpoint override (the real init fails its first call).
    init = load_init("/optimal-bin/hotel")
    env = {
        "AWS_REGION": "ap-southeast-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "TABLE_PREFIX": "p-",
    }
    with pytest.raises(init.InitError, match="no DynamoDB credentials"):
        init.Dynamo(env)
    assert init.Dynamo({**env, "AWS_SHARED_CREDENTIALS_FILE": str(creds)}).token == "t"


def test_logging_mode_read_write_none_unset_and_anything_else():
    base = env_of(HMCONTRACT_FUNC_NAME="frontend")
    for value, mode in (("read", "READLOG"), ("write", "WRITELOG"), ("none", "NONE")):
        assert (
            functions.start_check("/optimal-bin/hotel/frontend", {**base, "LoggingMode": value})["LoggingMode"] == mode
        )
    assert functions.start_check("/optimal-bin/hotel/frontend", base)["LoggingMode"] == "WRITELOG"  # unset
    refused(functions.start_check, "/optimal-bin/hotel/frontend", {**base, "LoggingMode": "Read"}, match="LoggingMode")
    # The other builds do not read it.
    assert functions.start_check("/bokiflow-bin/hotel/frontend", {**base, "LoggingMode": "x"})["LoggingMode"] is None


def test_a_binary_launched_under_another_functions_id_is_refused():
    # Unsafe hotel: peers are b-prefixed, the entry point is not (sheet §2.3).
    assert functions.start_check("/beldi-bin/bhotel/geo", env_of(K_NEAREST="5", HMCONTRACT_FUNC_NAME="bgeo"))
    assert functions.start_check("/beldi-bin/bhotel/gateway", env_of(HMCONTRACT_FUNC_NAME="gateway"))
    refused(
        functions.start_check,
        "/optimal-bin/hotel/geo",
        env_of(K_NEAREST="5", HMCONTRACT_FUNC_NAME="bgeo"),
        match="registry names 'bgeo'",
    )
    refused(functions.start_check, "/optimal-bin/hotel/rate", env_of(HMCONTRACT_FUNC_NAME="profile"), match="profile")


def test_unknown_request_function_names_are_refused_per_app():
    body = lambda fn, **inp: {"InstanceId": "", "CallerName": "", "Async": True, "Input": {"Function": fn, **inp}}  # noqa: E731
    assert functions.request_kind("hotel", "gateway", body("search", Input={"Lat": 1}))[0] == "search"
    with pytest.raises(functions.Panic, match="Search"):
        functions.request_kind("hotel", "gateway", body("Search"))
    assert functions.request_kind("movie", "Frontend", body("Compose"))[0] == "compose"
    with pytest.raises(functions.Panic, match="'compose' is not 'Compose'"):
        functions.request_kind("movie", "Frontend", body("compose"))
    assert functions.request_kind("retwis", "timeline", body("Timeline"))[0] == "timeline"
    for wrong in ("timeline", "Login"):
        with pytest.raises(functions.Panic, match="is not 'Timeline'"):
            functions.request_kind("retwis", "timeline", body(wrong))
    rw = {"Input": {"mode": "READLOG", "nOps": 10, "readRatio": 0.2}}
    assert functions.request_kind("switching", "rw", rw) == ("rw", {"NumOps": 10, "ReadRatio": 0.2})
    with pytest.raises(functions.Panic, match="nOps"):
        functions.request_kind("switching", "rw", {"Input": {"mode": "READLOG", "readRatio": 0.2}})


def test_catalog_holds_every_directory_of_the_sheet():
    assert len(APP_DIRS) == 3 * 4 + 2 + 1  # 3 builds x (hotel, media, retwis, singleop), 2 x rw, switching
    assert APP_DIRS["/beldi-bin/bmedia"].binaries[0] == "Frontend"
    assert table_names("hotel", "unsafe")[0] == "buser" and table_names("retwis", "unsafe") == (
        "user",
        "post",
        "timeline",
    )


# --- ZooKeeper stand-in and zkCli.sh ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def zk_server():
    port = free_port()
    threading.Thread(target=zk.serve, args=(port, "127.0.0.1"), daemon=True).start()
    client = zk.Client(f"127.0.0.1:{port}", connect_timeout_s=10)
    yield f"127.0.0.1:{port}", client
    client.close()


def test_zookeeper_semantics_and_the_zk_setup_session(zk_server, monkeypatch, capsys):
    hostport, client = zk_server
    assert client.call("create", "/faas/node")["err"] == "NoNode"  # the parent must exist
    # zk_setup.sh's here-document, then its second call (sheet §3 'Start-up gate').
    script = "".join(
        f"{line}\n"
        for line in (
            "deleteall /faas",
            "create /faas",
            "create /faas/node",
            "create /faas/view",
            "create /faas/freeze",
            "create /faas/cmd",
            "quit",
        )
    )
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(script))
    assert zkcli.main(["-server", hostport]) == 0
    assert "Node does not exist: /faas" in capsys.readouterr().out  # deleteall on a fresh server: reported, not fatal
    assert client.call("ls", "/faas")["children"] == ["cmd", "freeze", "node", "view"]
    assert not client.call("exists", components.START)["exists"]
    assert zkcli.main(["-server", hostport, "create", "/faas/cmd/start"]) == 0
    assert client.call("exists", components.START)["exists"]
    capsys.readouterr()
    # The readiness command of the rendered stack: `zkCli.sh ... stat /faas/cmd/start | grep -q ctime`.
    zkcli.main(["-server", hostport, "stat", components.START])
    assert "ctime = " in capsys.readouterr().out
    assert client.call("delete", "/faas")["err"] == "NotEmpty"
    zkcli.main(["-server", hostport, "deleteall", "/faas"])
    zkcli.main(["-server", hostport, "stat", components.START])
    assert "ctime" not in capsys.readouterr().out
    zkcli.main(["-server", hostport, "ls", "/"])  # zk_setup.sh waits until the root lists zookeeper
    assert capsys.readouterr().out.strip().endswith("[zookeeper]")


# --- the gateway's HTTP surface ---------------------------------------------------------------------
def wait_lines(path: Path, n: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not path.exists() or len(path.read_text().splitlines()) < n):
        time.sleep(0.05)


def test_gateway_serves_only_registered_functions_after_the_start_gate(tmp_path, zk_server):
    hostport, client = zk_server
    reg = registry(tmp_path)
    results = tmp_path / "store" / "async_results"
    port = free_port()
    argv = [
        a for a in GATEWAY if not a.startswith(("--zookeeper_host", "--http_port", "--async_call", "--func_config"))
    ]
    argv += [
        f"--zookeeper_host={hostport}",
        f"--http_port={port}",
        f"--async_call_result_path={results}",
        f"--func_config_file={reg}",
    ]
    code = (
        "import sys; import hmcontract.checks as c; c.iface_address = lambda i: '10.0.0.5'; "
        "from hmcontract.gateway import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{CONTRACT}{os.pathsep}{REPO / 'workloads'}",
        "HMCONTRACT_LAUNCHER_WAIT_S": "0.3",  # how long a call waits for its function's launcher
    }
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"

    def status(path: str, body: dict | None = None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        try:
            with urllib.request.urlopen(urllib.request.Request(url + path, data=data), timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        time.sleep(0.5)
        with pytest.raises(urllib.error.URLError):  # nothing listens before /faas/cmd/start
            urllib.request.urlopen(url + "/", timeout=2)
        client.ensure("/faas/cmd/start")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                status("/")
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert status("/") == 404 and status("/healthz") == 404  # no health endpoint
        assert status("/function/gateway") == 404  # GET: not served
        assert status("/asyncFunction/nosuch", {}) == 404  # not in the registry
        assert status("/asyncFunction/gateway/x", {}) == 404
        user = {"Username": "Cornell_1", "Password": "1111111111"}
        call = {"InstanceId": "", "CallerName": "", "Async": True, "Input": {"Function": "user", "Input": user}}
        # No launcher registered yet: the call fails (recorded as failed) after the gateway's short wait.
        assert status("/asyncFunction/gateway", call) == 200
        wait_lines(results, 1)
        launcher = {"app": "hotel", "variant": "boki", "binary": "gateway", "LoggingMode": None, "env": {}}
        client.ensure("/standin/func/gateway/engine_1", json.dumps(launcher))
        assert status("/asyncFunction/gateway", call) == 200
        assert status("/function/gateway", call) == 200
        wait_lines(results, 2)
        lines = [json.loads(x) for x in results.read_text().splitlines()]
        assert [x["success"] for x in lines] == [False, True]
        assert lines[1]["recvTs"] <= lines[1]["dispatchTs"] <= lines[1]["finishedTs"]
        assert "ok" in json.loads(base64.b64decode(lines[1]["output"]))
        # An unknown Function stops the stack (the real handler panics or, for hotel, does nothing).
        bad = {**call, "Input": {"Function": "User"}}
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            status("/function/gateway", bad)
        assert proc.wait(timeout=10) == 2
        assert "panic: hotel gateway: Function 'User'" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


# --- init ---------------------------------------------------------------------------------------------
def load_init(app_dir: str):
    """The init file the image build writes into `app_dir` (the module with its directory set)."""
    import types

    src = (CONTRACT / "hmcontract" / "init_tool.py").read_text()
    src = src.replace('APP_DIR = globals().get("APP_DIR", "")', f"APP_DIR = {app_dir!r}")
    mod = types.ModuleType("init_" + app_dir.replace("/", "_"))
    exec(compile(src, "init", "exec"), mod.__dict__)
    return mod


def test_init_refuses_missing_env_and_a_wrong_variant_argument():
    init = load_init("/beldi-bin/bretwis")
    env = {"AWS_REGION": "ap-southeast-1", "TABLE_PREFIX": "p-", "NUM_USERS": "10", "NUM_FOLLOWERS": "2"}
    with pytest.raises(init.InitError, match="MAX_RETURN_POSTS not set"):
        init.run(["create"], env)
    hotel = load_init("/optimal-bin/hotel")
    with pytest.raises(hotel.InitError, match="expects the argument 'cayon'"):
        hotel.run(["create", "baseline"], env)
    bhotel = load_init("/beldi-bin/bhotel")
    with pytest.raises(bhotel.InitError, match="expects the argument 'baseline'"):
        bhotel.run(["populate"], env)


@pytest.mark.aws
def test_init_writes_each_variants_item_format_and_cleans_up(moto_endpoint, monkeypatch):
    import boto3

    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10)
    env = {
        "AWS_REGION": "ap-southeast-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "NUM_KEYS": "3",
    }
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name="ap-southeast-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    expected = {
        "/beldi-bin/bsingleop": ("bsingleop", {"K": {"S": "1"}, "V": {"N": "1"}}),
        "/bokiflow-bin/singleop": ("singleop", {"K": {"S": "1"}, "VERSION": {"N": "0"}, "V": {"N": "1"}}),
        "/optimal-bin/singleop": ("singleop", {"K": {"S": "1_0"}, "V": {"N": "1"}}),
    }
    for i, (app_dir, (table, item)) in enumerate(expected.items()):
        init = load_init(app_dir)
        prefix = f"p{i}-"
        for cmd in ("create", "populate"):
            assert init.run([cmd], {**env, "TABLE_PREFIX": prefix}) == 0
        desc = ddb.describe_table(TableName=prefix + table)["Table"]
        assert desc["KeySchema"] == [{"AttributeName": "K", "KeyType": "HASH"}]
        assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert ddb.scan(TableName=prefix + table)["Count"] == 3
        assert ddb.get_item(TableName=prefix + table, Key={"K": item["K"]})["Item"] == item
        assert init.run(["clean"], {**env, "TABLE_PREFIX": prefix}) == 0
        assert prefix + table not in ddb.list_tables()["TableNames"]
    hotel = load_init("/beldi-bin/bhotel")
    assert hotel.run(["create", "baseline"], {**env, "TABLE_PREFIX": "h-"}) == 0
    assert sorted(ddb.list_tables()["TableNames"]) == sorted("h-b" + t for t in HOTEL)
    rows = hotel.items("hotel", env, [])
    assert len(rows) == 80 + 3 * 79 + 501 + 100 + 100  # sheet §4.4: about 1,018 items
    assert {t for t, _, _ in rows} == {"geo", "profile", "rate", "recommendation", "user", "hotel", "flight"}
    assert dict(((t, k), v) for t, k, v in rows)[("geo", "1")]["Plon"] == 0


# --- one image, started by docker ------------------------------------------------------------------
@pytest.mark.docker
def test_image_refuses_a_bad_command_line_at_start():
    have = subprocess.run(["docker", "image", "inspect", "shengqipku/halfmoon:sosp-ae"], capture_output=True)
    if have.returncode != 0:
        pytest.skip("no contract images: bash workloads/halfmoon-contract/build.sh (testbed/up.sh does)")
    label = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "-f",
            '{{index .Config.Labels "benchpipe.contract"}}',
            "shengqipku/halfmoon:sosp-ae",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert label, "shengqipku/halfmoon:sosp-ae here is not the contract stand-in"
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "shengqipku/halfmoon:sosp-ae", "/boki/sequencer", *SEQUENCER],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Node ID not set!" in proc.stderr


def test_host_network_stacks_reach_pinned_services_by_name():
    """On the test bed's host network there is no service DNS: `zookeeper:2181` in the real command
    lines resolves through /etc/hosts entries to the machine the service is pinned to."""
    import yaml

    from benchpipe.deployers.compose import fill_addresses, render_compose
    from benchpipe.model import Cluster, Host

    hosts = [Host("vm", "127.0.0.1", "manager", ["engine_node=true"]), Host("client", "127.0.0.2", "client")]
    shape = Cluster(name="t", provider="ssh", run_id="r", experiment="e", baseline="b", hosts=hosts, lock_key="k")
    services = {
        "zookeeper": {"image": "zookeeper:3.6.2", "hostname": "zookeeper", "placement": {"hostname": "vm"}},
        "boki-gateway": {"image": "g", "hostname": "faas-gateway", "placement": {"hostname": "vm"}},
        "boki-engine": {"image": "e", "hostname": "boki-engine-{{.Task.Slot}}", "placement": {"label": "engine_node"}},
    }
    rendered = render_compose(services, shape, {}, host_network=True)
    assert "zookeeper:{address:vm}" in rendered  # the plan knows the machine, not yet its address
    on_host = yaml.safe_load(fill_addresses(rendered, shape))["services"]
    want = ["boki-gateway:127.0.0.1", "faas-gateway:127.0.0.1", "zookeeper:127.0.0.1"]
    assert all(svc["extra_hosts"] == want for svc in on_host.values())
    overlay = yaml.safe_load(render_compose(services, shape, {}, host_network=False))["services"]
    assert not any("extra_hosts" in svc or "stop_grace_period" in svc for svc in overlay.values())
    quick = yaml.safe_load(render_compose(services, shape, {}, stop_grace_s=1))["services"]
    assert {svc["stop_grace_period"] for svc in quick.values()} == {"1s"}


# --- every aws point's rendered stack, through the start checks ------------------------------------
def _launcher_argv(run_launcher: str, binary: str, func_id: str) -> list[str]:
    """The run_launcher host file's command with its arguments, as sh runs it."""
    import shlex

    line = next(x for x in run_launcher.splitlines() if "/boki/launcher" in x)
    words = shlex.split(line.replace('"$1"', binary).replace("$2", func_id))
    return words[words.index("/boki/launcher") + 1 :]


def test_every_aws_points_rendered_stack_passes_the_start_checks(tmp_path, eth0, monkeypatch):
    """The 59 stacks the aws profile deploys, as the swarm deployer renders them, started (statically)
    on the contract binaries: every service's command line and environment, the launchers' funcIds
    against the registry the engines get, and the data step's init line."""
    import yaml

    from benchpipe.pointspec import point_spec
    from tests.test_halfmoon_golden_stack import ALL_POINTS, CFG, EXPERIMENTS, deploy

    movies = tmp_path / "compressed.json"  # the artifact's data file, which benchpipe does not ship
    movies.write_text('[{"MovieId": "m1", "Title": "A"}]')
    cfg = {**CFG, "data_files": {"halfmoon_movie_data": str(movies)}}
    checked: dict[str, int] = {}
    for exp_name, point in ALL_POINTS:
        spec = point_spec(cfg, EXPERIMENTS[exp_name], point)
        _, rendered, _ = deploy(spec)
        compose = yaml.safe_load(rendered["compose"].replace("{point_dir}", "/tmp/p").replace("{table_prefix}", "x-"))
        files = {hf["dest"]: hf for hf in rendered["host_files"]}
        registry = json.loads(files["/mnt/inmem/boki/func_config.json"]["text"])
        assert json.loads(files["/tmp/nightcore_config.json"]["text"]) == registry
        reg_path = tmp_path / "func_config.json"
        reg_path.write_text(json.dumps(registry))
        where = f"{exp_name}/{point.baseline}/{point.name}"
        for name, svc in compose["services"].items():
            argv = [a.replace("/tmp/boki/func_config.json", str(reg_path)) for a in svc.get("entrypoint") or []]
            argv += svc.get("command") or []
            env = {k: str(v).replace("{{.Task.Slot}}", "1") for k, v in (svc.get("environment") or {}).items()}
            monkeypatch.delenv("FAAS_NODE_ID", raising=False)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            image = svc["image"]
            try:
                if image == "zookeeper:3.6.2":
                    continue  # the image's own command (zkServer.sh) or zk_setup.sh, a host file
                if argv[0] == "/boki/gateway":
                    assert "/tmp/nightcore_config.json:/tmp/boki/func_config.json" in svc["volumes"]
                    gateway.check(argv[1:])
                elif argv[0].startswith("/boki/"):
                    components.check(argv[0].rsplit("/", 1)[1], argv[1:])
                else:  # a function service: /tmp/boki/run_launcher <binary> <funcId>
                    assert image == "shengqipku/halfmoon-bench:sosp-ae" and argv[0] == "/tmp/boki/run_launcher"
                    assert "/mnt/inmem/boki:/tmp/boki" in svc["volumes"]
                    flags = checks.parse_flags(
                        _launcher_argv(files["/mnt/inmem/boki/run_launcher"]["text"], argv[1], argv[2]),
                        components.FLAGS["launcher"],
                    )
                    assert app_dir_of(flags["fprocess"]) is not None, flags["fprocess"]
                    entry = components.launcher_check(flags, {"registry": registry})
                    # On EC2 the cluster's instance profile (benchpipe/cloud/iam.py) gives the credentials.
                    functions.start_check(
                        flags["fprocess"],
                        {**env, "HMCONTRACT_FUNC_NAME": entry["funcName"]},
                        instance_profile=lambda: True,
                    )
                checked[name] = checked.get(name, 0) + 1
            except Refusal as e:
                raise AssertionError(f"{where}: service {name} would be refused: {e}") from None
        data = rendered["data"]
        init = load_init(data["copy_out"])
        run = data["run"]
        assert run[0] == f"./{data['copy_out'].rsplit('/', 1)[1]}/init", (where, run)
        try:
            init.check(run[1:], data["env"])
        except init.InitError as e:
            raise AssertionError(f"{where}: the data step's init would refuse: {e}") from None
    assert len(ALL_POINTS) == 59
    assert checked["boki-gateway"] == checked["boki-engine"] == 59
    unsafe = 1 + 4 + 3 + 4  # singleop, hotel, movie, retwis: no shared log
    assert checked["boki-storage"] == checked["boki-sequencer"] == checked["boki-controller"] == 59 - unsafe
