"""A Knative revision's pods: each one process of the mu2sls stand-in service (python -m
mu2sls.service), all on the contract cluster's store, calling each other through Kourier's ClusterIP
with the callee's Host header (as the artifact's services do)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from mu2slscontract.state import WORKLOADS, alive, cluster_ip, home, store_path

# The artifact's images: docker.io/konstantinoskallas/<csv name>-<module> (knative_dev.py), its apps.
IMAGE = re.compile(r"^docker\.io/konstantinoskallas/(?P<ns>[a-z-]+)-(?P<module>[a-z0-9_]+)$")
APP_OF_CSV = {
    "single-stateful": "counter",
    "chain": "chain",
    "tree": "tree",
    "media-service-test": "media",
    "hotel-reservation": "hotel",
}


def image_service(image: str) -> tuple[str, str] | None:
    """(stand-in app, stand-in service) the artifact's image holds, None for any other image."""
    sys.path.insert(0, str(WORKLOADS))
    from mu2sls.apps import APPS

    m = IMAGE.match(image)
    if not m or m["ns"] not in APP_OF_CSV:
        return None
    app = APP_OF_CSV[m["ns"]]
    service = m["module"].replace("_", "")
    return (app, service) if service in APPS[app][1] else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_name(service: str, revision: int, index: int) -> str:
    h = hashlib.sha1(f"{service}-{revision}".encode()).hexdigest()
    return f"{service}-{revision:05d}-deployment-{h[:10]}-{h[10:15]}{index}"


def start(name: str, svc: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`count` pods of the service's current revision, started detached (they outlive the CLI)."""
    app, service = svc["app"], svc["service"]
    env = {**os.environ, **svc["env"], "PYTHONPATH": str(WORKLOADS)}
    (home() / "pods").mkdir(exist_ok=True)
    pods = []
    for i in range(count):
        pod = pod_name(name, svc["revision"], i)
        port = _free_port()
        log = home() / "pods" / f"{pod}.log"
        argv = [sys.executable, "-m", "mu2sls.service", "--app", app, "--service", service, "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--store", str(store_path()), "--ingress", f"{cluster_ip()}:80"]
        with open(log, "wb") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        pods.append({"name": pod, "pid": p.pid, "port": port, "log": str(log), "started": time.time()})
    return pods


def wait_ready(pods: list[dict[str, Any]], timeout_s: float = 60) -> str | None:
    """None once every pod answers its /healthz; else why not (a pod's exit and log tail)."""
    deadline = time.monotonic() + timeout_s
    waiting = list(pods)
    while waiting and time.monotonic() < deadline:
        for pod in list(waiting):
            if not alive(pod["pid"]):
                tail = Path(pod["log"]).read_text(errors="replace")[-800:]
                return f"Container failed with: {tail.strip()}"
            url = f"http://127.0.0.1:{pod['port']}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
                waiting.remove(pod)
        time.sleep(0.1)
    return "Revision not ready within the wait timeout" if waiting else None


def stop(pods: list[dict[str, Any]]) -> None:
    for pod in pods:
        if alive(pod["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(alive(p["pid"]) for p in pods) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pod in pods:
        if alive(pod["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod["pid"], signal.SIGKILL)
