"""The contract cluster's state: one JSON file under MU2SLS_CONTRACT_HOME (default ~/.mu2sls-contract),
changed under an flock by every CLI call, and the mu2sls stand-in's store beside it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WORKLOADS = Path(__file__).resolve().parents[2]  # holds the stand-in package `mu2sls`
# The Knative namespace and domain of the artifact's setup (Host: <service>.default.example.com).
NAMESPACE, DOMAIN = "default", "example.com"
# knative-serving's pods once serving-core.yaml and kourier.yaml are applied (Knative v1.0).
SERVING_PODS = {
    "serving-core.yaml": [
        "activator",
        "autoscaler",
        "controller",
        "domain-mapping",
        "domainmapping-webhook",
        "webhook",
    ],
    "kourier.yaml": ["net-kourier-controller"],
}


def home() -> Path:
    h = Path(os.environ.get("MU2SLS_CONTRACT_HOME") or Path.home() / ".mu2sls-contract")
    h.mkdir(parents=True, exist_ok=True)
    return h


def cluster_ip() -> str:
    """Kourier's ClusterIP: a loopback address (port 80), reachable once `minikube tunnel` runs."""
    return os.environ.get("MU2SLS_CONTRACT_CLUSTER_IP", "127.96.0.1")


def store_path() -> Path:
    return home() / "store.sqlite"


def empty() -> dict[str, Any]:
    return {"running": False, "applied": [], "patches": [], "services": {}, "tunnel_pid": None}


def load() -> dict[str, Any]:
    p = home() / "state.json"
    return json.loads(p.read_text()) if p.exists() else empty()


@contextlib.contextmanager
def locked() -> Iterator[dict[str, Any]]:
    """The state for a change: written back (atomically) when the block ends without an error."""
    with open(home() / "state.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        st = load()
        yield st
        tmp = home() / "state.json.tmp"
        tmp.write_text(json.dumps(st, indent=1, sort_keys=True))
        os.replace(tmp, home() / "state.json")


def alive(pid: int | None) -> bool:
    # benchpipe.lease has its own: this package runs on the node, where benchpipe is not installed.
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not running.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(code)


def not_running() -> None:
    """What kubectl and kn say when no cluster answers."""
    fail("The connection to the server localhost:8443 was refused - did you specify the right host or port?")
