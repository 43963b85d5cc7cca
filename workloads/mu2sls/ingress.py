"""The ingress (Knative's Kourier in the paper) and the services of one application behind it.

    python -m mu2sls --app APP --port P --state-dir DIR --results-path FILE

Starts one process per service of APP (python -m mu2sls.service) on its own port, all sharing the
store DIR/../store.sqlite (fresh per point), then routes:
  Host: <service>.default.example.com  POST /<method>   (upstream's Knative routing)
  POST /<service>/<method>                              (path routing, for plain load generators)
Every external request (no X-Mu2sls-Internal header) adds one line to the results file:
{"callId", "function", "recvTs", "dispatchTs", "finishedTs", "success"} (µs since the epoch).
GET /healthz is 200 once every service answers its own. SIGTERM stops the services, then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from mu2sls.apps import APPS
from mu2sls.store import Store
from mu2sls.web import INTERNAL, Handler, Pool, Server

HOST_SUFFIX = ".default.example.com"


def now_us() -> int:
    return time.time_ns() // 1000


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Ingress:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.entry, classes = APPS[args.app]
        self.state_dir = Path(args.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = os.path.normpath(self.state_dir / ".." / "store.sqlite")
        self.ports = {name: free_port(args.host) for name in classes}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pool = Pool()
        self.ids = itertools.count()
        self.results = open(args.results_path, "a", buffering=1)  # noqa: SIM115 - closed at exit
        self.results_lock = threading.Lock()
        self.ready = False

    def start_services(self, ingress_port: int) -> None:
        Path(self.store).unlink(missing_ok=True)
        Store(self.store)  # created (WAL mode, table) once, before the services open it together
        for name, port in self.ports.items():
            log = open(self.state_dir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
            argv = [sys.executable, "-m", "mu2sls.service", "--app", self.args.app, "--service", name]
            argv += ["--host", self.args.host, "--port", str(port), "--store", self.store]
            argv += ["--ingress", f"{self.args.host}:{ingress_port}", "--workers", str(self.args.workers)]
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            log.close()

    def healthy(self) -> bool:
        if self.ready:
            return True
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.state_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"service {name} exited with code {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://{self.args.host}:{self.ports[name]}/healthz", timeout=1):
                    pass
            except OSError:
                return False
        self.ready = True
        return True

    def route(self, host: str, path: str) -> tuple[str, str] | None:
        """(service, path at the service) from the Host header, else from the first path segment."""
        name = host.split(":")[0]
        if name.endswith(HOST_SUFFIX):
            name = name[: -len(HOST_SUFFIX)]
            return (name, path) if name in self.ports else None
        first, _, rest = path.lstrip("/").partition("/")
        return (first, "/" + rest) if first in self.ports else None

    def record(self, function: str, recv: int, done: int, ok: bool) -> None:
        line = json.dumps(
            {
                "callId": next(self.ids),
                "function": function,
                "recvTs": recv,
                "dispatchTs": recv,
                "finishedTs": done,
                "success": ok,
            }
        )
        with self.results_lock:
            self.results.write(line + "\n")

    def stop(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.results.close()


def serve(args: argparse.Namespace) -> None:
    ing = Ingress(args)
    server = Server((args.host, args.port), Handler)  # handler class set below
    ing.start_services(server.server_address[1])

    class H(Handler):
        def do_GET(self) -> None:
            if self.path == "/healthz" and ing.route(self.headers.get("Host", ""), self.path) is None:
                try:
                    ok = ing.healthy()
                except RuntimeError as e:
                    self.reply_json(500, {"error": str(e)})
                    return
                self.reply_json(200 if ok else 503, {"ready": ok, "services": sorted(ing.ports)})
                return
            self.forward("GET")

        def do_POST(self) -> None:
            self.forward("POST")

        def forward(self, method: str) -> None:
            recv = now_us()
            body = self.body()
            target = ing.route(self.headers.get("Host", ""), self.path)
            external = self.headers.get(INTERNAL) is None
            if target is None:
                self.reply_json(404, {"error": f"no service for Host {self.headers.get('Host')!r} path {self.path!r}"})
                return
            name, path = target
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            try:
                status, data, ctype = ing.pool.request(f"{args.host}:{ing.ports[name]}", method, path, body, headers)
            except OSError as e:
                status, data, ctype = 502, json.dumps({"error": f"{name}: {e}"}).encode(), "application/json"
            self.reply(status, data, ctype)
            if external:
                ing.record(f"{name}{path}", recv, now_us(), status == 200)

    server.RequestHandlerClass = H

    def shutdown(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        server.serve_forever()
    finally:
        ing.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", required=True, choices=sorted(APPS))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--results-path", required=True)
    ap.add_argument("--workers", type=int, default=16, help="concurrent calls per service")
    serve(ap.parse_args(argv))


if __name__ == "__main__":
    main()
