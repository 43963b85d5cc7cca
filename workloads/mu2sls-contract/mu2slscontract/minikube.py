"""`minikube`: start (with the flags the deployer passes), status, tunnel (-c: Kourier's gateway at
its ClusterIP while it runs, see kourier.py), ip and stop; anything else refused as minikube does."""

from __future__ import annotations

import os
import re
import sys

from mu2slscontract.flags import Flag, parse
from mu2slscontract.state import alive, fail, home, load, locked

FLAGS = {
    "start": [Flag("cpus"), Flag("memory"), Flag("kubernetes-version"), Flag("driver")],
    "status": [],
    "tunnel": [Flag("cleanup", "c", value=False), Flag("bind-address")],
    "ip": [],
    "stop": [],
}
NOT_FOUND = '🤷  Profile "minikube" not found. Run "minikube profile list" to view all profiles.'


def start(flags: dict) -> None:
    cpus = flags.get("cpus", "2")
    if not (cpus == "max" or (cpus.isdigit() and int(cpus) >= 2)):
        fail(
            f"❌  Exiting due to RSRC_INSUFFICIENT_CORES: Requested cpu count {cpus} is less than the minimum"
            " allowed of 2"
        )
    memory = flags.get("memory", "2200m")
    if not re.fullmatch(r"(?i)\d+(b|k|kb|m|mb|g|gb)?|max|no-limit", memory):
        fail(f'❌  Exiting due to MK_USAGE: Invalid memory value "{memory}"')
    version = flags.get("kubernetes-version", "stable")
    if not re.fullmatch(r"v?\d+\.\d+\.\d+|stable|latest", version):
        fail(f'❌  Exiting due to K8S_FAIL_PARSE: Unable to parse Kubernetes version "{version}"', 1)
    with locked() as st:
        st["running"] = True
        st["start"] = {"cpus": cpus, "memory": memory, "kubernetes_version": version}
    print(f"🔥  Creating docker container (CPUs={cpus}, Memory={memory}) ...\n🐳  Preparing Kubernetes {version} ...")
    print('🏄  Done! kubectl is now configured to use "minikube" cluster and "default" namespace by default')


def status() -> None:
    st = load()
    if "start" not in st:
        fail(NOT_FOUND, 85)
    state = "Running" if st["running"] else "Stopped"
    print(f"minikube\ntype: Control Plane\nhost: {state}\nkubelet: {state}\napiserver: {state}\nkubeconfig: Configured")
    if not st["running"]:
        raise SystemExit(7)


def tunnel() -> None:
    st = load()
    if not st["running"]:
        fail(
            "🤷  The control plane node must be running for this command\n"
            '👉  To start a cluster, run: "minikube start"',
            80,
        )
    if alive(st.get("tunnel_pid")):
        fail("❌  Exiting due to SVC_TUNNEL_START: another tunnel is already running", 1)
    with locked() as s:
        s["tunnel_pid"] = os.getpid()
    # Kourier's gateway in this process, under a command line naming its cluster's state folder: a
    # `pgrep -f "minikube tunnel"` (the deployer's is-it-running check) then sees only the tunnel of a
    # real minikube, never another contract cluster's on the same test host.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    os.execve(sys.executable, [sys.executable, "-m", "mu2slscontract.kourier", str(home())], env)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else ""
    if cmd not in FLAGS:
        fail(f'Error: unknown command "{cmd}" for "minikube"\nRun \'minikube --help\' for usage.')
    p = parse(argv[1:], FLAGS[cmd], "Error: unknown flag: {flag}\nSee 'minikube " + cmd + " --help' for usage.")
    if p.args:
        fail(f"❌  Exiting due to MK_USAGE: usage: minikube {cmd}")
    if cmd == "start":
        start(p.flags)
    elif cmd == "status":
        status()
    elif cmd == "tunnel":
        tunnel()
    elif cmd == "ip":
        if not load()["running"]:
            fail(NOT_FOUND, 85)
        print(os.environ.get("MU2SLS_CONTRACT_NODE_IP", "192.168.49.2"))
    else:
        with locked() as st:
            st["running"] = False
        print('✋  Stopping node "minikube"  ...\n🛑  1 node stopped.')
