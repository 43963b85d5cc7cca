"""What every contract component shares: refusing a wrong command line, its own address, a small
JSON-lines RPC over TCP (in place of Thrift/AMQP/the MongoDB wire protocol), and spans sent to the
Jaeger agent's UDP port."""

from __future__ import annotations

import json
import os
import random
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

AGENT = ("jaeger", 6831)  # DeathStarBench's jaeger-config: localAgentHostPort jaeger:6831


def refuse(msg: str) -> None:
    """Exit 2 with one `F` line, as a real binary refusing its arguments: the swarm task fails."""
    sys.stderr.write(f"F {msg}\n")
    sys.stderr.flush()
    sys.exit(2)


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def own_address() -> str:
    """This service's address: its hostname (the service's name) as the stack's hosts resolve it."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "0.0.0.0"


def now_ms() -> int:
    return int(time.time() * 1000)


def now_us() -> int:
    return int(time.time() * 1e6)


def wait_tcp(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


Handler = Callable[[str, dict[str, Any], "socket.socket"], Any]


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(port: int, handler: Handler, name: str) -> _Server:
    """A JSON-lines RPC server on this service's own address: {"m": method, "a": args} -> {"r": ...}
    or {"e": error}. A handler may take over the connection (streams) by returning STREAM."""

    class H(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                try:
                    req = json.loads(line)
                    r = handler(req["m"], req.get("a") or {}, self.connection)
                    if r is STREAM:
                        return
                    out = {"r": r}
                except Exception as e:  # the caller gets the error, the server goes on
                    out = {"e": f"{type(e).__name__}: {e}"}
                self.wfile.write((json.dumps(out) + "\n").encode())
                self.wfile.flush()

    srv = _Server((own_address(), port), H)
    threading.Thread(target=srv.serve_forever, daemon=True, name=f"{name}:{port}").start()
    log(f"{name} listening on {own_address()}:{port}")
    return srv


STREAM = object()


def listen_only(port: int, name: str) -> _Server:
    """A port that accepts connections (what `dockerize -wait tcp://...` checks) and answers pings."""
    return serve(port, lambda m, a, c: "pong" if m == "ping" else None, name)


class Client:
    """One keep-alive connection to a service's RPC port; reconnects once on a broken connection."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.addr, timeout=10)
        self.file = self.sock.makefile("rb")

    def call(self, method: str, **args: Any) -> Any:
        with self.lock:
            for attempt in (0, 1):
                try:
                    if self.sock is None:
                        self._connect()
                    assert self.sock is not None
                    self.sock.sendall((json.dumps({"m": method, "a": args}) + "\n").encode())
                    line = self.file.readline()
                    if not line:
                        raise ConnectionError("closed")
                    break
                except OSError:
                    self.sock = None
                    if attempt:
                        raise
            resp = json.loads(line)
        if "e" in resp:
            raise RuntimeError(f"{self.addr[0]}:{self.addr[1]} {method}: {resp['e']}")
        return resp["r"]


def stream(host: str, port: int, method: str, **args: Any):
    """A server-pushed stream of JSON lines (oplog, queue deliveries) on its own connection."""
    sock = socket.create_connection((host, port), timeout=None)
    sock.sendall((json.dumps({"m": method, "a": args}) + "\n").encode())
    for line in sock.makefile("rb"):
        yield json.loads(line)


def new_id(bits: int = 64) -> str:
    return f"{random.getrandbits(bits):0{bits // 4}x}"


class Tracer:
    """Finished spans, each one UDP datagram of JSON to the Jaeger agent (the real clients send
    Thrift-compact batches; the contract Jaeger reads this JSON)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.agent: tuple[str, int] | None = None

    def emit(
        self, trace_id: str, span_id: str, parent: str | None, op: str, start_us: int, tags: dict[str, Any]
    ) -> None:
        if self.agent is None:
            self.agent = (socket.gethostbyname(AGENT[0]), AGENT[1])
        span = {
            "traceID": trace_id,
            "spanID": span_id,
            "operationName": op,
            "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent}] if parent else [],
            "startTime": start_us,
            "duration": max(1, now_us() - start_us),
            "tags": [_tag(k, v) for k, v in tags.items()],
            "process": {"serviceName": self.service, "tags": [_tag("hostname", socket.gethostname())]},
        }
        self.sock.sendto(json.dumps(span).encode(), self.agent)


def _tag(key: str, value: Any) -> dict[str, Any]:
    kind = (
        "bool"
        if isinstance(value, bool)
        else "int64"
        if isinstance(value, int)
        else "float64"
        if isinstance(value, float)
        else "string"
    )
    return {"key": key, "type": kind, "value": value}


def env_choice(name: str, allowed: tuple[str, ...], required: bool = True) -> str:
    v = os.environ.get(name)
    if v is None:
        if required:
            refuse(f"{name} is not set (expected one of {', '.join(allowed)})")
        return ""
    if v not in allowed:
        refuse(f"{name}={v!r}: expected one of {', '.join(allowed)}")
    return v


def forever() -> None:
    while True:
        time.sleep(3600)
