"""rabbitmq-server (rabbitmq:3.8-management) as the stack mounts it: refuses a broker without its
definitions, config, enabled_plugins (federation and management on) or Erlang cookie. Publishing
and consuming go over 5672 (JSON lines, not AMQP 0-9-1); 15672 answers HTTP. Federation is real
message movement: a broker whose definitions name a federation upstream pulls every message
published there (max-hops 1: only messages published on that broker) over the emulated WAN."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dsbcontract.common import STREAM, forever, log, own_address, refuse, serve, stream, wait_tcp
from dsbcontract.stores import WAN_MS

ETC = "/etc/rabbitmq"


class Broker:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def handle(self, m: str, a: dict[str, Any], conn: Any) -> Any:
        if m == "ping":
            return "pong"
        if m == "cookie":
            return os.environ.get("RABBITMQ_ERLANG_COOKIE")
        if m == "publish":
            with self.cond:
                self.messages.append({"body": a["body"], "hops": int(a.get("hops", 0))})
                self.cond.notify_all()
            return True
        if m == "consume":  # every message from now on (a fanout exchange's queue), pushed
            return self.push(conn, local_only=bool(a.get("local_only")))
        raise RuntimeError(f"unknown method {m}")

    def push(self, conn: Any, local_only: bool) -> Any:
        with self.cond:
            i = len(self.messages)
        while True:
            with self.cond:
                while i >= len(self.messages):
                    self.cond.wait()
                batch = self.messages[i:]
                i = len(self.messages)
            out = [m for m in batch if not (local_only and m["hops"])]
            if out:
                conn.sendall("".join(json.dumps(m) + "\n" for m in out).encode())
        return STREAM

    def federate(self, host: str) -> None:
        """Pull the upstream's own messages; each is held for the emulated WAN, then published here."""
        while not wait_tcp(host, 5672, 5):
            pass
        log(f"federation upstream {host}: linked")
        held: list[tuple[float, dict[str, Any]]] = []
        cond = threading.Condition()

        def deliver() -> None:
            while True:
                with cond:
                    while not held:
                        cond.wait()
                    due, msg = held[0]
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                    continue
                with cond:
                    held.pop(0)
                self.handle("publish", {"body": msg["body"], "hops": msg["hops"] + 1}, None)

        threading.Thread(target=deliver, daemon=True).start()
        for msg in stream(host, 5672, "consume", local_only=True):
            delay = WAN_MS * (1 + 0.1 * random.random()) / 1e3
            with cond:
                held.append((max(time.monotonic() + delay, held[-1][0] if held else 0.0), msg))
                cond.notify()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        refuse(f"rabbitmq-server: {path}: {e.strerror} (the compose file mounts it from the DeathStarBench folder)")
        return ""


def main() -> int:
    import sys

    if sys.argv[1:]:
        refuse(f"rabbitmq-server: no arguments expected, got {sys.argv[1:]}")
    if not os.environ.get("RABBITMQ_ERLANG_COOKIE"):
        refuse("rabbitmq-server: RABBITMQ_ERLANG_COOKIE is not set (the brokers of a federation share it)")
    plugins = _read(os.environ.get("RABBITMQ_ENABLED_PLUGINS_FILE", f"{ETC}/enabled_plugins"))
    for p in ("rabbitmq_federation", "rabbitmq_management"):
        if p not in plugins:
            refuse(f"rabbitmq-server: enabled_plugins does not enable {p}")
    conf = _read(f"{ETC}/rabbitmq.conf")
    if "definitions.json" not in conf:
        refuse(f"rabbitmq-server: {ETC}/rabbitmq.conf does not load the definitions (load_definitions)")
    try:
        defs = json.loads(_read(f"{ETC}/definitions.json"))
    except ValueError as e:
        refuse(f"rabbitmq-server: {ETC}/definitions.json is not JSON: {e}")
    upstreams = [p["value"]["uri"] for p in defs.get("parameters", []) if p.get("component") == "federation-upstream"]
    broker = Broker()
    serve(5672, broker.handle, "rabbitmq-server (amqp)")

    class Mgmt(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"RabbitMQ Management (contract)")

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer((own_address(), 15672), Mgmt)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    for uri in upstreams:
        m = re.match(r"amqp://(?:[^@/]*@)?([^:/]+)", uri)
        if not m:
            refuse(f"rabbitmq-server: federation upstream uri {uri!r} is not amqp://host")
        threading.Thread(target=broker.federate, args=(m.group(1),), daemon=True).start()
    forever()
    return 0
