"""redis-server, memcached and mongod as the stack starts them. The post store (replica set rs0,
mongodb-delayed) holds documents and replicates for real: the secondary pulls the primary's oplog
over its own connection and applies each entry as it arrives, through the emulated WAN (each entry
held WAN_MS plus up to 10 % jitter, FIFO: the real regions' link, which this test bed lacks)."""

from __future__ import annotations

import collections
import os
import random
import sys
import threading
import time
from typing import Any

from dsbcontract.common import STREAM, forever, listen_only, log, refuse, serve, stream

WAN_MS = 20.0


def redis_main(argv: list[str]) -> int:
    port, i = 6379, 0
    while i < len(argv):
        a = argv[i]
        if a == "--port" and i + 1 < len(argv) and argv[i + 1].isdigit():
            port, i = int(argv[i + 1]), i + 2
        elif a in ("--slaveof", "--replicaof") and i + 2 < len(argv) and argv[i + 2].isdigit():
            i += 3
        elif a == "--replica-read-only" and i + 1 < len(argv) and argv[i + 1] in ("yes", "no"):
            i += 2
        else:
            refuse(
                f"redis-server: bad argument {a!r} (known: --port N, --slaveof HOST PORT, --replica-read-only yes|no)"
            )
    listen_only(port, "redis-server")
    forever()
    return 0


def memcached_main(argv: list[str]) -> int:
    if argv[:1] != ["-m"] or len(argv) != 2 or not argv[1].isdigit():
        refuse(f"memcached: expected -m <MB>, got {argv}")
    listen_only(11211, "memcached")
    forever()
    return 0


MONGOD_FLAGS = {
    "--bind_ip": str, "--slowms": int, "--dbpath": str, "--syncdelay": int, "--journalCommitInterval": int,
    "--wiredTigerCacheSizeGB": float, "--replSet": str, "--oplogSize": int,
}  # fmt: skip


class Mongod:
    """Documents by (collection, _id), an oplog, and the replica set's roles."""

    def __init__(self, repl_set: str) -> None:
        self.repl_set = repl_set
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.oplog: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.state = "STARTUP" if repl_set else "STANDALONE"

    def handle(self, m: str, a: dict[str, Any], conn: Any) -> Any:
        if m == "ping":
            return "pong"
        if m == "insert":
            if self.state not in ("PRIMARY", "STANDALONE"):
                raise RuntimeError(f"NotWritablePrimary (state {self.state})")
            with self.cond:
                self.docs[(a["coll"], a["doc"]["_id"])] = a["doc"]
                self.oplog.append({"op": "i", "coll": a["coll"], "doc": a["doc"]})
                self.cond.notify_all()
            return True
        if m == "find":  # read concern local: whatever this member has applied
            return self.docs.get((a["coll"], a["_id"]))
        if m == "replSetInitiate":
            return self.initiate(a["config"])
        if m == "replSetSyncFrom":
            threading.Thread(target=self.sync, args=(a["host"], int(a["port"])), daemon=True).start()
            self.state = "SECONDARY"
            return True
        if m == "status":
            return {"state": self.state, "applied": len(self.oplog)}
        if m == "oplog":  # the secondary's pull: every entry from `since`, then each as it comes
            return self.push_oplog(int(a.get("since", 0)), conn)
        raise RuntimeError(f"unknown command {m}")

    def initiate(self, config: dict[str, Any]) -> Any:
        from dsbcontract.common import Client, own_address

        if config.get("_id") != self.repl_set:
            raise RuntimeError(
                f"replSetInitiate: set name {config.get('_id')!r}, this mongod runs --replSet {self.repl_set!r}"
            )
        members = sorted(config["members"], key=lambda mb: -mb.get("priority", 1))
        me = own_address()
        primary = members[0]["host"]
        self.state = "PRIMARY"
        host, port = primary.rsplit(":", 1)
        for mb in members[1:]:
            h, p = mb["host"].rsplit(":", 1)
            Client(h, int(p)).call("replSetSyncFrom", host=host, port=int(port))
        log(f"replica set {self.repl_set}: primary {primary} ({me}), secondaries {[mb['host'] for mb in members[1:]]}")
        return True

    def push_oplog(self, since: int, conn: Any) -> Any:
        import json

        i = since
        while True:
            with self.cond:
                while i >= len(self.oplog):
                    self.cond.wait()
                batch = self.oplog[i:]
                i = len(self.oplog)
            conn.sendall("".join(json.dumps(e) + "\n" for e in batch).encode())
        return STREAM

    def sync(self, host: str, port: int) -> None:
        """Pull the primary's oplog; apply each entry once the emulated WAN has carried it."""
        held: collections.deque[tuple[float, dict[str, Any]]] = collections.deque()
        cond = threading.Condition()

        def apply() -> None:
            while True:
                with cond:
                    while not held:
                        cond.wait()
                    due, e = held[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                    continue
                with cond:
                    held.popleft()
                with self.cond:
                    self.docs[(e["coll"], e["doc"]["_id"])] = e["doc"]
                    self.oplog.append(e)

        threading.Thread(target=apply, daemon=True).start()
        try:
            for e in stream(host, port, "oplog", since=0):
                delay = WAN_MS * (1 + 0.1 * random.random()) / 1e3
                with cond:
                    due = max(time.monotonic() + delay, held[-1][0] if held else 0.0)  # FIFO, as a link
                    held.append((due, e))
                    cond.notify()
        finally:
            log(f"lost the replication link to {host}:{port}")
            os._exit(1)  # a secondary without its primary serves stale reads: fail the task


def mongod_main(argv: list[str]) -> int:
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a not in MONGOD_FLAGS or i + 1 >= len(argv):
            refuse(f"mongod: unrecognised option {a!r} (this contract knows {', '.join(MONGOD_FLAGS)})")
        try:
            opts[a] = MONGOD_FLAGS[a](argv[i + 1])
        except ValueError:
            refuse(f"mongod: {a} {argv[i + 1]!r} is not a {MONGOD_FLAGS[a].__name__}")
        i += 2
    dbpath = opts.get("--dbpath", "/data/db")
    if not os.path.isdir(dbpath) or not os.access(dbpath, os.W_OK):
        refuse(f"mongod: --dbpath {dbpath} does not exist or is not writable (the compose file's tmpfs)")
    if opts.get("--bind_ip") != "0.0.0.0":
        refuse("mongod: --bind_ip 0.0.0.0 expected (other containers connect)")
    db = Mongod(opts.get("--replSet", ""))
    serve(27017, db.handle, f"mongod{' --replSet ' + db.repl_set if db.repl_set else ''}")
    forever()
    return 0


def main() -> int:
    name = os.path.basename(sys.argv[0])
    return {"redis-server": redis_main, "memcached": memcached_main, "mongod": mongod_main}[name](sys.argv[1:])
