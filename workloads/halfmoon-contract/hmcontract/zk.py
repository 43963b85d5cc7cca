"""A ZooKeeper stand-in: a znode tree served on TCP 2181 with ZooKeeper's semantics for the calls
the stack makes (create needs the parent and fails on an existing node, delete needs no children,
deleteall removes a subtree). The wire protocol is NOT ZooKeeper's: one JSON object per line,
spoken by this package's zkCli.sh and by the stand-in components. Only what the start-up gate
needs (sheet §3 'Start-up gate'): zk_setup.sh's zkCli.sh calls and components waiting for
/faas/cmd/start, then registering under /faas/node.
"""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import sys
import threading
import time
from typing import Any


class Tree:
    def __init__(self) -> None:
        # The root lists /zookeeper, as a real server's does (zk_setup.sh waits for it).
        self.nodes: dict[str, str] = {"/": "", "/zookeeper": ""}
        self.stats: dict[str, dict[str, int]] = {}
        self.zxid = 0
        self.lock = threading.Lock()

    def _touch(self, path: str, created: bool) -> None:
        self.zxid += 1
        now = int(time.time() * 1000)
        st = self.stats.setdefault(path, {"cZxid": self.zxid, "ctime": now})
        if created:
            st.update(cZxid=self.zxid, ctime=now)
        st.update(mZxid=self.zxid, mtime=now)

    @staticmethod
    def _parent(path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    def _children(self, path: str) -> list[str]:
        pre = path.rstrip("/") + "/"
        return sorted(p[len(pre) :] for p in self.nodes if p != path and p.startswith(pre) and "/" not in p[len(pre) :])

    def apply(self, req: dict[str, Any]) -> dict[str, Any]:
        op, path = req.get("op"), req.get("path", "")
        if not isinstance(path, str) or not path.startswith("/") or (path != "/" and path.endswith("/")):
            return {"err": "BadArguments", "path": path}
        with self.lock:
            if op == "create":
                if path in self.nodes:
                    return {"err": "NodeExists", "path": path}
                if self._parent(path) not in self.nodes:
                    return {"err": "NoNode", "path": self._parent(path)}
                self.nodes[path] = str(req.get("data") or "")
                self._touch(path, created=True)
                return {"ok": True}
            if op == "stat":
                if path not in self.nodes:
                    return {"err": "NoNode", "path": path}
                st = self.stats.get(path, {"cZxid": 0, "ctime": 0, "mZxid": 0, "mtime": 0})
                return {"ok": True, "stat": {**st, "numChildren": len(self._children(path))}}
            if op == "get":
                return {"ok": True, "data": self.nodes[path]} if path in self.nodes else {"err": "NoNode", "path": path}
            if op == "exists":
                return {"ok": True, "exists": path in self.nodes}
            if op == "ls":
                return {"ok": True, "children": self._children(path)} if path in self.nodes else {"err": "NoNode"}
            if op == "set":
                if path not in self.nodes:
                    return {"err": "NoNode", "path": path}
                self.nodes[path] = str(req.get("data") or "")
                self._touch(path, created=False)
                return {"ok": True}
            if op == "delete":
                if path not in self.nodes:
                    return {"err": "NoNode", "path": path}
                if self._children(path):
                    return {"err": "NotEmpty", "path": path}
                del self.nodes[path]
                return {"ok": True}
            if op == "deleteall":
                if path not in self.nodes:
                    return {"err": "NoNode", "path": path}
                pre = path.rstrip("/") + "/"
                for p in [p for p in self.nodes if p == path or p.startswith(pre)]:
                    if p != "/":
                        del self.nodes[p]
                return {"ok": True}
        return {"err": "Unimplemented", "op": op}


def serve(port: int = 2181, host: str = "0.0.0.0") -> None:
    tree = Tree()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                try:
                    req = json.loads(line)
                    resp = tree.apply(req) if isinstance(req, dict) else {"err": "BadArguments"}
                except json.JSONDecodeError:
                    resp = {"err": "BadArguments"}
                self.wfile.write(json.dumps(resp).encode() + b"\n")

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer((host, port), Handler) as srv:
        print(f"zookeeper stand-in serving on {host}:{port}", flush=True)
        srv.serve_forever()


class Client:
    """One connection; reconnects on first use (servers may start before ZooKeeper answers)."""

    def __init__(self, hostport: str, connect_timeout_s: float = 60.0) -> None:
        host, _, port = hostport.rpartition(":")
        self.addr = (host or hostport, int(port or 2181))
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self.sock = socket.create_connection(self.addr, timeout=5)
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"cannot reach ZooKeeper at {hostport}: {e}") from None
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")

    def call(self, op: str, path: str, data: str | None = None) -> dict[str, Any]:
        self.file.write(json.dumps({"op": op, "path": path, "data": data}).encode() + b"\n")
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise ConnectionError(f"ZooKeeper at {self.addr[0]}:{self.addr[1]} closed the connection")
        return json.loads(line)

    def wait_for(self, path: str, interval_s: float = 0.2) -> None:
        while not self.call("exists", path).get("exists"):
            time.sleep(interval_s)

    def ensure(self, path: str, data: str = "") -> None:
        """Create `path` and any missing parents (registration under /faas/node and /standin)."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            r = self.call("create", p, data if i == len(parts) else "")
            if i == len(parts) and r.get("err") == "NodeExists":
                self.call("set", p, data)

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in its container: no default action
    port = int(argv[0]) if argv else 2181
    serve(port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
