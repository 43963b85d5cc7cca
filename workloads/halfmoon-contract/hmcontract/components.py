"""The Halfmoon image's servers (/boki/engine, /boki/storage, /boki/sequencer, /boki/controller) and
the launcher (/boki/launcher): the real command lines, the real start-up refusals (checks.py), the
start-up gate (sheet §3: every component waits for /faas/cmd/start), then registration in the
ZooKeeper stand-in. They move no data: the gateway runs the calls (gateway.py, README)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hmcontract.checks import Refusal, fatal, load_registry, multi_host_iface, node_id, parse_flags
from hmcontract.zk import Client

START = "/faas/cmd/start"
IO = {"num_io_workers": "str", "io_uring_entries": "str", "io_uring_fd_slots": "str"}
# The flags each binary defines, as the sheet's §3 tables and defaults list them.
FLAGS: dict[str, dict[str, str]] = {
    "engine": {
        "zookeeper_host": "str",
        "listen_iface": "str",
        "root_path_for_ipc": "str",
        "func_config_file": "str",
        "instant_rps_p_norm": "str",
        "enable_shared_log": "bool",
        "slog_engine_enable_cache": "bool",
        "slog_engine_cache_cap_mb": "str",
        "use_txn_engine": "bool",
        "node_id": "str",
        **IO,
    },
    "storage": {
        "zookeeper_host": "str",
        "listen_iface": "str",
        "db_path": "str",
        "slog_local_cut_interval_us": "str",
        "slog_storage_bgthread_interval_ms": "str",
        "slog_storage_backend": "str",
        "slog_storage_cache_cap_mb": "str",
        "use_txn_engine": "bool",
        "node_id": "str",
        **IO,
    },
    "sequencer": {
        "zookeeper_host": "str",
        "listen_iface": "str",
        "slog_global_cut_interval_us": "str",
        "node_id": "str",
        **IO,
    },
    "controller": {
        "zookeeper_host": "str",
        "metalog_replicas": "str",
        "userlog_replicas": "str",
        "index_replicas": "str",
    },
    "launcher": {
        "fprocess_mode": "str",
        "root_path_for_ipc": "str",
        "fprocess_output_dir": "str",
        "hostname_in_output_fname": "bool",
        "fprocess": "str",
        "func_id": "str",
    },
}
ENGINE_FILE = "standin-engine.json"  # the engine's registry, as a launcher's handshake would see it


def _stop_on_term() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def gate(flags: dict[str, Any]) -> Client:
    zk = Client(flags.get("zookeeper_host", "localhost:2181"), connect_timeout_s=86400)
    zk.wait_for(START)
    return zk


def check(component: str, argv: list[str]) -> dict[str, Any]:
    """Everything a component refuses at start; returns what it runs with (tests call this)."""
    flags = parse_flags(argv, FLAGS[component])
    info: dict[str, Any] = {"flags": flags}
    if component == "engine":
        info["registry"] = load_registry(flags.get("func_config_file"), "engine")
        info["address"] = multi_host_iface(flags, "engine")
        # sheet §3 'Node IDs': the engine falls back to a hash of its hostname.
        raw = flags.get("node_id") or os.environ.get("FAAS_NODE_ID")
        info["node_id"] = int(raw) if raw else int(hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4], 16)
        if not flags.get("root_path_for_ipc"):
            raise Refusal("engine needs --root_path_for_ipc (the launchers' IPC root)", "sheet §2.1, §3")
    elif component in ("storage", "sequencer"):
        info["address"] = multi_host_iface(flags, component)
        info["node_id"] = node_id(flags, component)
    return info


def serve(component: str, argv: list[str]) -> int:
    _stop_on_term()
    try:
        info = check(component, argv)
    except Refusal as e:
        return fatal(component, e)
    flags = info["flags"]
    if component == "engine":  # a previous point's handshakes are not this engine's launchers
        for f in Path(flags["root_path_for_ipc"]).glob("standin-*.json"):
            f.unlink(missing_ok=True)
    zk = gate(flags)
    name = f"{component}_{info.get('node_id', 0)}"
    data = {"address": info.get("address", ""), "flags": flags}
    zk.ensure(f"/faas/node/{name}", json.dumps(data))
    print(f"{component} {name} started (start gate passed)", flush=True)
    if component == "storage" and flags.get("db_path"):
        Path(flags["db_path"]).mkdir(parents=True, exist_ok=True)
    if component != "engine":
        while True:
            time.sleep(3600)
    ipc = Path(flags["root_path_for_ipc"])
    ipc.mkdir(parents=True, exist_ok=True)
    tmp = ipc / f".{ENGINE_FILE}"  # whole or absent: launchers poll for it
    tmp.write_text(json.dumps({"registry": info["registry"], "flags": flags, "node": name}))
    tmp.rename(ipc / ENGINE_FILE)
    published: set[str] = set()
    while True:  # relay the launchers that connected (their handshake files) to ZooKeeper
        for f in sorted(ipc.glob("standin-launcher-*.json")):
            if f.name in published:
                continue
            launcher = json.loads(f.read_text())
            launcher["engine"] = {"node": name, "flags": flags}
            zk.ensure(f"/standin/func/{launcher['funcName']}/{name}", json.dumps(launcher))
            published.add(f.name)
        time.sleep(0.3)


def launcher_check(flags: dict[str, Any], engine: dict[str, Any]) -> dict[str, Any]:
    """sheet §2.1: the launcher's funcId must be one of the registry's ids (the engine's registry)."""
    try:
        fid = int(flags.get("func_id", ""))
    except ValueError:
        raise Refusal(f"launcher --func_id={flags.get('func_id')!r} is not a number", "sheet §2.1 (Ids)") from None
    entry = next((f for f in engine["registry"] if f["funcId"] == fid), None)
    if entry is None:
        ids = ", ".join(f"{f['funcId']}={f['funcName']}" for f in engine["registry"])
        raise Refusal(f"launcher --func_id={fid} is not in the engine's registry ({ids})", "sheet §2.1 (Ids)")
    return entry


def launcher_static(argv: list[str]) -> dict[str, Any]:
    flags = parse_flags(argv, FLAGS["launcher"])
    binary = flags.get("fprocess", "")
    # sheet §2.1: run_launcher passes the binary path; it must be a binary of the bench image.
    if not binary or not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        raise Refusal(f"launcher --fprocess={binary!r}: no such executable in the image", "sheet §2.1-§2.6")
    if not flags.get("root_path_for_ipc"):
        raise Refusal("launcher needs --root_path_for_ipc", "sheet §2.1 (run_launcher)")
    return flags


def launch(argv: list[str]) -> int:
    _stop_on_term()
    try:
        flags = launcher_static(argv)
    except Refusal as e:
        return fatal("launcher", e)
    ipc = Path(flags["root_path_for_ipc"])
    while not (ipc / ENGINE_FILE).exists():  # the engine (after the start gate) opens the IPC root
        time.sleep(0.2)
    try:
        entry = launcher_check(flags, json.loads((ipc / ENGINE_FILE).read_text()))
    except Refusal as e:
        return fatal("launcher", e)
    env = {**os.environ, "HMCONTRACT_FUNC_NAME": entry["funcName"], "HMCONTRACT_FUNC_ID": str(entry["funcId"])}
    proc = subprocess.Popen([flags["fprocess"]], env=env, stdout=subprocess.PIPE, text=True)
    signal.signal(signal.SIGTERM, lambda *_: (proc.terminate(), sys.exit(0)))
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:  # the function refused to start: it printed why on stderr
        return proc.wait() or 1
    report = json.loads(line)
    host = socket.gethostname()
    tmp = ipc / f".standin-launcher-{entry['funcId']}-{host}.json"
    tmp.write_text(json.dumps({**report, **entry, "host": host}))
    tmp.rename(ipc / f"standin-launcher-{entry['funcId']}-{host}.json")
    return proc.wait()


def main(argv: list[str]) -> int:
    component = Path(argv[0]).name
    if component == "launcher":
        return launch(argv[1:])
    return serve(component, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
