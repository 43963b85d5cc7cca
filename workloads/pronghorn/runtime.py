"""The function's process, run under PyPy: it serves invocations for the host and is its own
snapshot mechanism.

Every process of the function (a cold start, a snapshot, an instance restored from one) connects
back to the host's control port and says who it is; then it obeys newline-delimited JSON commands:

    invoke {mutability}   run the handler once; answer {ok, server_us, result, served}
    snapshot {token, keep_serving}  fork: the child keeps this process's state (JIT code, heap,
                          RNG) and waits, blocked on its own control connection (a stopped image
                          that costs no CPU); the parent goes on serving
    restore {token}       (a snapshot or the zygote) fork an instance that serves from this state

A process whose control connection closes (host gone, or evicted) exits at once; with
--reconnect-file (CRIU mode) it first tries once per new token written there: a process restored by
`criu restore --tcp-close` finds its connection closed and reconnects with the token the host
wrote for it before the restore.
Runs under PyPy 3.9: no syntax newer than Python 3.9 here.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import socket
import struct
import sys
import time
import traceback

from pronghorn.handlers import HANDLERS, preload

MADV_POPULATE_WRITE = 23  # Linux >= 5.14
PAGE = os.sysconf("SC_PAGE_SIZE")


def own_pages() -> dict:
    """Copy every present private writable page of this process now, as CRIU's restore writes a
    process's pages eagerly. Without it a forked process would pay a copy-on-write fault per page
    inside its requests, a cost no CRIU-restored process has. Returns what it did (MiB, ms)."""
    t0 = time.perf_counter()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    copied = 0
    failed = 0
    with open("/proc/self/maps") as f:
        maps = f.read().splitlines()
    with open("/proc/self/pagemap", "rb", buffering=0) as pm:
        for line in maps:
            parts = line.split()
            perms = parts[1]
            if not (perms.startswith("rw") and perms[3] == "p") or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            pm.seek(lo // PAGE * 8)
            data = pm.read((hi - lo) // PAGE * 8)
            entries = struct.unpack(f"{len(data) // 8}Q", data)
            start = None
            for i, e in enumerate((*entries, 0)):
                present = (e >> 62) & 3  # present or swapped: a page this process has
                if present and start is None:
                    start = i
                elif not present and start is not None:
                    if libc.madvise(lo + start * PAGE, (i - start) * PAGE, MADV_POPULATE_WRITE) == 0:
                        copied += (i - start) * PAGE
                    else:
                        failed += 1
                    start = None
    return {
        "copied_mib": round(copied / 2**20, 1),
        "own_ms": round((time.perf_counter() - t0) * 1e3, 1),
        "failed": failed,
    }


def connect(port: int, hello: dict) -> tuple:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rwb", buffering=0)
    send(f, dict(hello, pid=os.getpid()))
    return sock, f


def send(f, msg: dict) -> None:
    f.write(json.dumps(msg).encode() + b"\n")


def recv(f):
    line = f.readline()
    return json.loads(line) if line else None


def reconnect(path, used: set, port: int, hello: dict):
    """(sock, f) connected again with the token in `path`, or None: no file, a token this process
    already used (the host closed it on us), or no host listening."""
    try:
        with open(path) as tf:
            token = tf.read().strip()
    except OSError:
        return None
    if not token or token in used:
        return None
    used.add(token)
    try:
        return connect(port, dict(hello, token=token))
    except OSError:
        return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--benchmark", required=True, choices=sorted(HANDLERS))
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--role", choices=["instance", "zygote"], default="instance")
    ap.add_argument("--share-pages", action="store_true", help="forks keep sharing pages copy-on-write")
    ap.add_argument("--reconnect-file", help="CRIU mode: the token file a restored process reconnects with")
    args = ap.parse_args(argv)
    owning = not args.share_pages
    # Children are never waited for: snapshots outlive the instance that forked them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    handler = HANDLERS[args.benchmark]
    preload(args.benchmark)
    rng = random.Random(42)  # seeded once, as the artifact's handlers are at import
    served = 0  # requests this process's lineage has run (the JIT has seen)
    role = args.role
    port = args.control_port
    sock, f = connect(port, {"role": role, "token": args.token, "served": served})
    used = {args.token}
    while True:
        try:
            msg = recv(f)
        except OSError:
            msg = None
        if msg is None:
            hello = {"role": role, "served": served, "restored": True}
            again = reconnect(args.reconnect_file, used, port, hello) if args.reconnect_file else None
            if again is not None:
                sock, f = again
                continue
            os._exit(0)
        op = msg.get("op")
        if op == "invoke" and role == "instance":
            t0 = time.perf_counter()
            try:
                result = handler(rng, float(msg.get("mutability", 1)))
                ok = True
            except Exception:
                result = {"error": traceback.format_exc(limit=3)}
                ok = False
            server_us = (time.perf_counter() - t0) * 1e6
            served += 1
            send(f, {"ok": ok, "server_us": server_us, "result": result, "served": served})
        elif (op == "snapshot" and role == "instance") or (op == "restore" and role in ("snapshot", "zygote")):
            child_role = "snapshot" if op == "snapshot" else "instance"
            pid = os.fork()
            if pid == 0:
                # The child drops its parent's channel (close, not shutdown: the parent keeps it).
                f.close()
                sock.close()
                role = child_role
                # A restored instance copies its pages before it serves, as a CRIU restore would;
                # a snapshot only keeps the pages it shares.
                own = own_pages() if owning and role == "instance" else {}
                sock, f = connect(port, {"role": role, "token": msg["token"], "served": served, **own})
                continue
            # An instance that goes on serving after its snapshot copies its pages now (the
            # snapshot keeps the originals), as it would own them after a CRIU dump; one that is
            # evicted next does not bother.
            own = own_pages() if owning and op == "snapshot" and msg.get("keep_serving") else {}
            send(f, {"ok": True, "pid": pid, **own})
        else:
            send(f, {"ok": False, "error": f"op {op!r} not allowed for a {role}"})


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
