"""Kourier's gateway at its ClusterIP (port 80), served while `minikube tunnel` runs: a request's
Host header (<service>.default.example.com) picks the Knative service, whose pods take turns; an
unknown Host gets Envoy's 404. Routes are read from the contract's state as kn changes it."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from typing import Any

from mu2slscontract.state import DOMAIN, NAMESPACE, WORKLOADS, alive, cluster_ip, home

sys.path.insert(0, str(WORKLOADS))
from mu2sls.web import Handler, Pool, Server

SUFFIX = f".{NAMESPACE}.{DOMAIN}"


class Routes:
    def __init__(self) -> None:
        self.mtime = -1
        self.ports: dict[str, list[int]] = {}
        self.turn = itertools.count()

    def pick(self, host: str) -> int | None:
        path = home() / "state.json"
        mtime = path.stat().st_mtime_ns if path.exists() else 0
        if mtime != self.mtime:
            import json

            st = json.loads(path.read_text()) if mtime else {"services": {}}
            self.ports = {n: [p["port"] for p in s["pods"] if alive(p["pid"])] for n, s in st["services"].items()}
            self.mtime = mtime
        name = host.split(":")[0]
        ports = self.ports.get(name[: -len(SUFFIX)]) if name.endswith(SUFFIX) else None
        return ports[next(self.turn) % len(ports)] if ports else None


def serve() -> None:
    routes, pool = Routes(), Pool()

    class H(Handler):
        def do_GET(self) -> None:
            self.forward("GET")

        def do_POST(self) -> None:
            self.forward("POST")

        def forward(self, method: str) -> None:
            body = self.body()
            port = routes.pick(self.headers.get("Host", ""))
            if port is None:
                self.reply(404, b"", "text/plain")
                return
            headers: dict[str, Any] = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            try:
                status, data, ctype = pool.request(f"127.0.0.1:{port}", method, self.path, body, headers)
            except OSError as e:
                status, data, ctype = 503, f"upstream connect error: {e}".encode(), "text/plain"
                with open(home() / "kourier.log", "a") as log:
                    log.write(f"{time.time():.3f} {self.headers.get('Host')} -> 127.0.0.1:{port}: {e}\n")
            self.reply(status, data, ctype)

    server = Server((cluster_ip(), 80), H)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Status:\n\tmachine: minikube\n\tpid: {os.getpid()}\n\troute: 10.96.0.0/12 -> {cluster_ip()}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    # `minikube tunnel` execs this with its state folder (so that its command line names it).
    os.environ["MU2SLS_CONTRACT_HOME"] = sys.argv[1]
    serve()
