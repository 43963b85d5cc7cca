"""jaegertracing/all-in-one as the stack runs it: the agent's UDP port 6831 takes spans (one JSON
span per datagram here; the real agent reads Thrift-compact batches), kept in memory like the
all-in-one's default storage; the query service on 16686 answers GET /api/traces (service, start,
end in µs, limit, lookback) and /api/services in Jaeger's JSON format, and / (what dockerize waits
for). COLLECTOR_ZIPKIN_HTTP_PORT must be 9411, as the compose file sets it."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dsbcontract.common import forever, listen_only, log, own_address, refuse

UNITS = {"us": 1, "ms": 1000, "s": 10**6, "m": 60 * 10**6, "h": 3600 * 10**6}


class Store:
    def __init__(self) -> None:
        self.traces: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def add(self, span: dict[str, Any]) -> None:
        with self.lock:
            self.traces.setdefault(span["traceID"], []).append(span)

    def services(self) -> list[str]:
        with self.lock:
            return sorted({s["process"]["serviceName"] for t in self.traces.values() for s in t})

    def find(self, service: str, start: int, end: int, limit: int) -> list[dict[str, Any]]:
        """Traces with a span of `service` that started in [start, end], newest first, at most limit."""
        with self.lock:
            hits = []
            for spans in self.traces.values():
                own = [s["startTime"] for s in spans if s["process"]["serviceName"] == service]
                if any(start <= t <= end for t in own):
                    hits.append((min(s["startTime"] for s in spans), list(spans)))
        hits.sort(key=lambda h: -h[0])
        return [as_trace(spans) for _, spans in hits[:limit]]


def as_trace(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """Jaeger's JSON model: processes keyed p1.., each span naming its processID."""
    procs: dict[str, str] = {}
    out = []
    for s in sorted(spans, key=lambda s: s["startTime"]):
        key = json.dumps(s["process"], sort_keys=True)
        pid = procs.setdefault(key, f"p{len(procs) + 1}")
        out.append(
            {
                **{k: v for k, v in s.items() if k != "process"},
                "flags": 1,
                "logs": [],
                "processID": pid,
                "warnings": None,
            }
        )
    return {
        "traceID": spans[0]["traceID"],
        "spans": out,
        "processes": {pid: json.loads(key) for key, pid in procs.items()},
        "warnings": None,
    }


def duration_us(text: str) -> int:
    m = re.fullmatch(r"(\d+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"cannot parse lookback {text!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Query(BaseHTTPRequestHandler):
        def reply(self, code: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, msg: str) -> None:  # Jaeger's structured error (400)
            self.reply(400, {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 400, "msg": msg}]})

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path == "/":
                return self.reply(200, {"ui": "jaeger contract"})
            if url.path == "/api/services":
                svcs = store.services()
                return self.reply(200, {"data": svcs, "total": len(svcs), "limit": 0, "offset": 0, "errors": None})
            if url.path != "/api/traces":
                return self.reply(404, {"errors": [{"code": 404, "msg": "404 page not found"}]})
            if not q.get("service"):
                return self.error("parameter 'service' is required")
            try:
                end = int(q["end"]) if "end" in q else int(time.time() * 1e6)
                start = int(q["start"]) if "start" in q else end - duration_us(q.get("lookback", "1h"))
                limit = int(q.get("limit", "100"))
            except ValueError as e:
                return self.error(str(e))
            data = store.find(q["service"], start, end, limit)
            self.reply(200, {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None})

        def log_message(self, *args: Any) -> None:
            pass

    return Query


def agent(store: Store, sock: socket.socket) -> None:
    while True:
        data, _ = sock.recvfrom(65535)
        try:
            span = json.loads(data)
            store.add(span)
        except (ValueError, KeyError, TypeError):
            log(f"agent: dropped a datagram that is not a span ({len(data)} bytes)")


def main() -> int:
    import sys

    if sys.argv[1:]:
        refuse(f"all-in-one: no arguments expected here, got {sys.argv[1:]}")
    if os.environ.get("COLLECTOR_ZIPKIN_HTTP_PORT") != "9411":
        refuse("all-in-one: COLLECTOR_ZIPKIN_HTTP_PORT=9411 expected (the compose file's Zipkin collector port)")
    store = Store()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((own_address(), 6831))
    threading.Thread(target=agent, args=(store, sock), daemon=True).start()
    listen_only(9411, "zipkin collector")
    srv = ThreadingHTTPServer((own_address(), 16686), make_handler(store))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    log(f"jaeger contract: agent udp {own_address()}:6831, query http {own_address()}:16686")
    forever()
    return 0
