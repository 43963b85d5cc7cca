"""HTTP plumbing shared by the ingress and the services: a threaded HTTP/1.1 server and keep-alive
client connections, one per thread and upstream."""

from __future__ import annotations

import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INTERNAL = "X-Mu2sls-Internal"  # set on service-to-service calls (the ingress logs only external ones)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # an open-loop burst must queue, not be refused

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout) closed the connection: not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def reply_json(self, status: int, data: Any) -> None:
        self.reply(status, json.dumps(data).encode())


class Pool:
    """Keep-alive connections per (thread, address)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self._local = threading.local()

    def request(
        self, address: str, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        conns = self._local.__dict__.setdefault("conns", {})
        for attempt in (1, 2):
            conn = conns.get(address)
            if conn is None:
                host, port = address.rsplit(":", 1)
                conn = conns[address] = http.client.HTTPConnection(host, int(port), timeout=self.timeout_s)
            try:
                conn.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body))})
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, data, resp.getheader("Content-Type", "application/json")
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: reconnect once.
                conn.close()
                conns.pop(address, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
