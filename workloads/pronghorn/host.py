"""The function host: what the artifact's container, agent and OpenFaaS gateway do for one
function, on this machine.

- HTTP on --port: `GET|POST /function/<name>[?mutability=M]` runs the function once on the running
  instance; 503 while the instance restarts (the artifact's client drops such a request and tries
  again); `GET /healthz` is 200 once the first instance serves; `GET /stats` says what the host did.
- After each request: the strategy learns the request's server-side latency; the instance is
  snapshotted (forked) if this is its snapshot point; after `eviction` requests it is killed
  (SIGKILL, as the agent's kill -9) and the next instance starts from the snapshot the strategy
  picks: a fork of that stopped snapshot, which carries its warm JIT along.
- Cold start: `--cold-start exec` runs a new PyPy process; `zygote` (default) forks the host's
  request-0 image, a process that imported the handler's libraries and served nothing. Either
  way the first request meets a cold JIT; the zygote only saves the ~0.5 s interpreter start that
  the artifact's client never measures (it drops requests that hit a restarting container).
- `--snapshot criu` (a host where CRIU works): instances are separate processes in sessions of
  their own (the artifact's `setsid pypy3 index.py`); a snapshot is a CRIU dump of the running
  instance (`--leave-running`, its time and image size recorded), a restore is `criu restore` of
  the image; the restored process, whose control connection `--tcp-close` closed, reconnects with
  the token the host wrote for it. Each instance is the init of a pid namespace of its own
  (`--unshare`, pronghorn.criu.pidns_argv), so a restore recreates a namespace and cannot collide
  with a live pid; the host knows its processes by their host pids (CRIU's --pidfile).
  JVM benchmarks (Figure 5) run `java` with the classes
  install.sh --jvm compiles, and need CRIU for any snapshot: a JVM cannot be forked.
- One JSON line per served request in --results-path (request, instance, request number, where
  the instance came from, server time, snapshot taken, evicted; recvTs/dispatchTs/finishedTs µs).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from pronghorn.criu import CriuImages, ns_init_pid, pidns_argv, restore_token_file, write_token
from pronghorn.strategies import COLD, STRATEGIES, Orchestrator, make_strategy

HERE = Path(__file__).resolve().parent
DEFAULT_PYPY = HERE / ".venv" / "bin" / "pypy3"
PR_SET_CHILD_SUBREAPER = 36
PYPY_BENCHMARKS = ("bfs", "dfs", "mst", "pagerank", "dynamic-html", "compress", "upload", "thumbnail", "video")
# Figure 5's JVM benchmarks (workloads/pronghorn/jvm/PronghornRuntime.java).
JVM_BENCHMARKS = ("matrix-multiplication", "simple-hash", "word-count", "html-rendering")
BENCHMARKS = PYPY_BENCHMARKS + JVM_BENCHMARKS
DEFAULT_JVM_CLASSES = HERE / "jvm" / "classes"
# The media benchmarks' generated input files, shared by every point on this machine (install.sh
# writes them once; a function process writes any that are missing before it serves).
DEFAULT_INPUTS = HERE / ".inputs"
# upload's largest file (the artifact's 98 MB model download), made by the origin when first asked.
LARGE_INPUT = "resnet50-19c8e357.pth"
LARGE_BYTES = 98 * 2**20


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Proc:
    """A runtime process on the control channel: an instance, a snapshot or the zygote."""

    role: str
    pid: int
    served: int
    sock: socket.socket
    f: BinaryIO
    hello: dict[str, Any] = field(default_factory=dict)

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.f.write(json.dumps(msg).encode() + b"\n")
        line = self.f.readline()
        if not line:
            raise RuntimeError(f"runtime process {self.pid} ({self.role}) closed its channel")
        return json.loads(line)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Image:
    """A CRIU snapshot in the pool: the image folder of the process `pid` after `request_number`."""

    request_number: int
    pid: int
    images: CriuImages

    def kill(self) -> None:  # pruned from the pool (the name Proc's pruning calls)
        self.images.drop(self.request_number)


@dataclass
class Control:
    """The listener every runtime process connects back to, keyed by the token it was given."""

    sock: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    waiting: dict[str, queue.Queue[Proc]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._hello(conn)
            except Exception as e:  # one bad connection must not stop the listener
                print(f"pronghorn host: dropped a control connection: {e!r}", file=sys.stderr, flush=True)
                conn.close()

    def _hello(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)  # a process that connects says who it is at once
        f = conn.makefile("rwb", buffering=0)
        line = f.readline()
        conn.settimeout(None)
        if not line:
            conn.close()
            return
        hello = json.loads(line)
        with self.lock:
            q = self.waiting.get(hello["token"])
        if q is None:
            print(f"pronghorn host: unexpected {hello.get('role')} {hello.get('pid')}", file=sys.stderr, flush=True)
            conn.close()  # nobody asked for it: it exits on EOF
            return
        q.put(Proc(hello["role"], int(hello["pid"]), int(hello["served"]), conn, f, hello))

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would leave it blocked on
        # a file whose descriptor number the next socket reuses.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def expect(self) -> tuple[str, queue.Queue[Proc]]:
        token = uuid.uuid4().hex
        q: queue.Queue[Proc] = queue.Queue()
        with self.lock:
            self.waiting[token] = q
        return token, q

    def take(self, token: str, q: queue.Queue[Proc], timeout_s: float, what: str) -> Proc:
        try:
            return q.get(timeout=timeout_s)
        except queue.Empty:
            raise RuntimeError(f"{what} did not connect back within {timeout_s:g} s (port {self.port})") from None
        finally:
            with self.lock:
                self.waiting.pop(token, None)


class Host:
    def __init__(self, args: argparse.Namespace) -> None:
        # Fork mode unless told otherwise (tests build the namespace by hand).
        defaults = {
            "snapshot": "fork",
            "criu": "criu",
            "unshare": "unshare",
            "java": "java",
            "jvm_classes": DEFAULT_JVM_CLASSES,
            "host": "127.0.0.1",
            "port": 8080,
            "inputs_dir": None,
        }
        for key, default in defaults.items():
            if not hasattr(args, key):
                setattr(args, key, default)
        self.args = args
        kw = {"capacity": args.pool_capacity, "max_requests": args.max_requests, "seed": args.seed}
        self.orch = Orchestrator(
            make_strategy(args.strategy, args.eviction, **kw)
            if args.strategy == "request-centric"
            else make_strategy(args.strategy, args.eviction)
        )
        self.control = Control()
        self.pypy = args.pypy or os.environ.get("PRONGHORN_PYPY") or str(DEFAULT_PYPY)
        self.inputs = Path(args.inputs_dir or os.environ.get("PRONGHORN_INPUTS") or DEFAULT_INPUTS)
        origin_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
        self.env = {
            **os.environ,
            "PRONGHORN_BUCKET": str(args.state_dir / "bucket"),
            "PRONGHORN_INPUTS": str(self.inputs),
            # upload's "internet": this host's /origin/ route
            "PRONGHORN_ORIGIN": f"http://{origin_host}:{args.port}/origin",
        }
        # PyPy sizes its nursery from the last-level cache: 240 MiB on a 480 MiB-L3 cloud VM, which
        # makes every process (and snapshot) ~300 MiB. The per-core L2 size gives ~60 MiB
        # processes, the size of the artifact's PyPy CRIU images (54-64 MB).
        self.env.setdefault("PYPY_GC_NURSERY", args.gc_nursery)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
        (args.state_dir / "bucket").mkdir(parents=True, exist_ok=True)
        self.results = open(args.results_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the host
        self.lock = threading.Lock()  # one request at a time on the instance, as one container
        self.restarting = threading.Event()
        # What the orchestrator is doing between requests: "idle", or the step in flight after a
        # response ("snapshot", "eviction"); a restart is `restarting`. /healthz is ready only
        # when idle, so a caller's first request never meets a dump, a kill or a restore.
        self.phase = "idle"
        self.instance: Proc | None = None
        self.snapshots: dict[int, Proc | Image] = {}
        self.criu = CriuImages(args.state_dir / "images", args.criu) if args.snapshot == "criu" else None
        self.token_file = restore_token_file(args.state_dir)
        self.zygote: Proc | None = None
        self.children: list[subprocess.Popen[bytes]] = []
        self.requests = 0
        self.instances = 0
        self.started: dict[str, float] = {}  # how the running instance started: ms, MiB copied
        self.stats = {"cold_starts": 0, "restores": 0, "snapshots": 0, "pruned": 0, "evictions": 0, "unavailable": 0}
        self.failure = ""

    # -- processes ------------------------------------------------------------------------------
    def _exec_runtime(self, role: str) -> Proc:
        token, q = self.control.expect()
        control = ["--control-port", str(self.control.port), "--token", token]
        if self.args.benchmark in JVM_BENCHMARKS:
            argv = [self.args.java, "-cp", str(self.args.jvm_classes), "PronghornRuntime"]
            argv += ["--benchmark", self.args.benchmark, *control]
        else:
            argv = [self.pypy, "-m", "pronghorn.runtime", "--benchmark", self.args.benchmark, *control, "--role", role]
            argv += ["--share-pages"] if self.args.share_pages else []
        if self.criu is not None:
            argv += ["--reconnect-file", str(self.token_file)]
        pidns = self.criu is not None and bool(self.args.unshare)
        if pidns:
            argv = pidns_argv(argv, self.args.unshare)
        # Under CRIU an instance is the root of its own session, as the artifact's
        # `setsid pypy3 index.py`: criu dumps a process tree whose session it leads.
        child = subprocess.Popen(argv, env=self.env, start_new_session=self.criu is not None)
        self.children.append(child)
        proc = self.control.take(token, q, 60, f"a new {role} process ({argv[0]})")
        if pidns:
            # It says it is pid 1 (in its namespace): the host signals and dumps its host pid.
            proc.pid = ns_init_pid(child.pid)
        return proc

    def _fork_from(self, parent: Proc, op: str, keep_serving: bool = True) -> Proc:
        token, q = self.control.expect()
        reply = parent.call({"op": op, "token": token, "keep_serving": keep_serving})
        if not reply.get("ok"):
            raise RuntimeError(f"{op} refused by {parent.role} {parent.pid}: {reply.get('error')}")
        return self.control.take(token, q, 30, f"the {op} of process {parent.pid}")

    def start_instance(self) -> None:
        """The next instance, from the snapshot the strategy picks (or cold)."""
        t0 = time.perf_counter()
        self._start_instance()
        assert self.instance is not None
        self.started = {
            "start_ms": round((time.perf_counter() - t0) * 1e3, 1),
            "copied_mib": self.instance.hello.get("copied_mib", 0.0),
        }
        if "restore_ms" in self.instance.hello:
            self.started["restore_ms"] = self.instance.hello["restore_ms"]

    def _restore_image(self, image: Image) -> Proc:
        """criu restore of `image`; the restored process reconnects with the token written first."""
        assert self.criu is not None
        token, q = self.control.expect()
        write_token(self.token_file, token)
        restore_ms, pid = self.criu.restore(image.request_number, image.pid, own_pidns=bool(self.args.unshare))
        what = f"the process restored from the image after request {image.request_number}"
        proc = self.control.take(token, q, 30, what)
        proc.pid = pid  # its pid on the host (CRIU's --pidfile), whatever it sees in its namespace
        proc.hello["restore_ms"] = restore_ms
        return proc

    def _start_instance(self) -> None:
        base = self.orch.start_instance()
        snap = self.snapshots.get(base) if base != COLD else None
        if isinstance(snap, Image):
            self.instance = self._restore_image(snap)
            self.stats["restores"] += 1
        elif base != COLD and base in self.snapshots:
            self.instance = self._fork_from(self.snapshots[base], "restore")
            self.stats["restores"] += 1
        else:
            if base != COLD:
                self.orch.started(COLD)
            if self.args.cold_start == "zygote" and self.criu is None:
                if self.zygote is None:
                    self.zygote = self._exec_runtime("zygote")
                self.instance = self._fork_from(self.zygote, "restore")
            else:
                self.instance = self._exec_runtime("instance")
            self.stats["cold_starts"] += 1
        self.instances += 1

    def _restart(self) -> None:
        try:
            self.start_instance()
        except Exception as e:
            self.failure = f"restart failed: {e}"
            print(self.failure, file=sys.stderr, flush=True)
        finally:
            self.restarting.clear()

    # -- requests -------------------------------------------------------------------------------
    def invoke(self, mutability: float) -> tuple[int, dict[str, Any]]:
        """Run one request. On 200/500 the host stays locked until `after` (the next request must
        not reach an instance that is about to be snapshotted or evicted). A request that arrives
        while the orchestrator is not idle gets 503 and is tried again by the client, unrecorded,
        as one that meets a restarting container: upstream the 200 ms think time keeps requests
        clear of a dump (74-105 ms) or a restore, so none is measured against one."""
        recv = now_us()
        if not self.lock.acquire(blocking=False):
            self.stats["unavailable"] += 1
            return 503, {"error": f"the orchestrator is busy ({self.phase})"}
        if self.restarting.is_set() or self.failure or self.instance is None:
            self.lock.release()
            self.stats["unavailable"] += 1
            return 503, {"error": self.failure or "the function's container is restarting"}
        self.phase = "request"
        try:
            dispatch = now_us()
            reply = self.instance.call({"op": "invoke", "mutability": mutability})
            finished = now_us()
        except BaseException as e:
            # An instance that died under a request (not an eviction) fails the host's later
            # requests with its reason, as a crashed container would.
            self.failure = f"instance {self.instance.pid} failed: {e}"
            self.phase = "idle"
            self.lock.release()
            raise
        self.requests += 1
        step = self.orch.after_request(float(reply["server_us"]))
        rec = {
            "request": self.requests,
            "instance": self.instances,
            "restored_from": self.orch.base,
            "request_number": step.request_number,
            "server_us": round(float(reply["server_us"]), 1),
            **({f"instance_{k}": v for k, v in self.started.items()} if self.orch.served == 1 else {}),
            "success": bool(reply["ok"]),
            "recvTs": recv,
            "dispatchTs": dispatch,
            "finishedTs": finished,
        }
        return 200 if reply["ok"] else 500, {"rec": rec, "step": step, "result": reply["result"]}

    def after(self, out: dict[str, Any]) -> None:
        """Snapshot and eviction, after the response is on its way (as the agent does from the
        runtime's log); releases the lock `invoke` took."""
        step, rec = out["step"], out["rec"]
        self.phase = "snapshot" if step.snapshot else "eviction" if step.evict else "request"
        try:
            if step.snapshot and self.instance is not None and self.criu is not None:
                rec.update(self.criu.dump(self.instance.pid, step.request_number))
                self.snapshots[step.request_number] = Image(step.request_number, self.instance.pid, self.criu)
                self.stats["snapshots"] += 1
                for k in self.orch.snapshot_taken(step.request_number):
                    self.snapshots.pop(k).kill()
                    self.stats["pruned"] += 1
            elif step.snapshot and self.instance is not None:
                snap = self._fork_from(self.instance, "snapshot", keep_serving=not step.evict)
                self.snapshots[step.request_number] = snap
                self.stats["snapshots"] += 1
                for k in self.orch.snapshot_taken(step.request_number):
                    self.snapshots.pop(k).kill()
                    self.stats["pruned"] += 1
            rec["snapshot"] = bool(step.snapshot)
            rec["pool"] = sorted(self.snapshots)
            rec["evicted"] = bool(step.evict)
            self.results.write(json.dumps(rec) + "\n")
            if step.evict and self.instance is not None:
                self.phase = "eviction"
                self.instance.kill()
                self.instance = None
                self.stats["evictions"] += 1
                self.restarting.set()
                threading.Thread(target=self._restart, daemon=True).start()
        finally:
            self.phase = "idle"
            self.lock.release()

    def readiness(self) -> dict[str, Any]:
        """/healthz: ready once an instance serves and nothing is in flight (no request, snapshot,
        eviction or restart), so that readiness means the orchestrator is idle."""
        busy = (
            "failed"
            if self.failure
            else "restart"
            if self.restarting.is_set() or self.instance is None
            else self.phase
            if self.phase != "idle"
            else ""
        )
        return {
            "ready": not busy,
            **({"in_flight": busy} if busy else {}),
            **({"error": self.failure} if self.failure else {}),
        }

    def shutdown(self) -> None:
        for p in [self.instance, self.zygote, *self.snapshots.values()]:
            if p is not None:
                p.kill()
        for c in self.children:
            with contextlib.suppress(ProcessLookupError):
                c.kill()
        self.control.close()


def write_large_input(path: Path) -> None:
    """upload's 98 MB file (a model's weights upstream): random bytes, seeded, written once."""
    import random

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(random.Random(3).randbytes(LARGE_BYTES))
    os.replace(tmp, path)


def make_handler(host: Host) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle on, the body waits for the client's
        # delayed ACK of the headers, ~40 ms on every response after a connection's first few
        # (measured: client 48 ms for a 2.7 ms dynamic-html request). The artifact's Go watchdog
        # sets TCP_NODELAY, as this does.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

        def _function(self) -> None:
            url = urlsplit(self.path)
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            mutability = float(parse_qs(url.query).get("mutability", ["1"])[0])
            try:
                status, out = host.invoke(mutability)
            except (OSError, RuntimeError, ValueError):
                self._reply(502, {"error": host.failure})
                return
            if status == 503:
                self._reply(503, out)
                return
            try:
                self._reply(status, {**out["rec"], "result": out["result"]})
            finally:
                # Off this connection's thread: the client's next request on it must meet a busy
                # orchestrator (503), not wait unseen behind the snapshot in its latency.
                threading.Thread(target=host.after, args=(out,), daemon=True).start()

        def _origin(self, name: str) -> None:
            """upload's internet: the generated input files (the artifact fetches them from
            upload.wikimedia.org and download.pytorch.org)."""
            path = host.inputs / name
            if name == LARGE_INPUT and not path.exists():
                write_large_input(path)
            if "/" in name or not path.is_file():
                self._reply(404, {"error": f"no input file {name} in {host.inputs}"})
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/function/"):
                self._function()
            elif path == "/healthz":
                state = host.readiness()
                self._reply(200 if state["ready"] else 503, state)
            elif path.startswith("/origin/"):
                self._origin(path.removeprefix("/origin/"))
            elif path == "/stats":
                inst = host.instance.pid if host.instance is not None else None
                stats = {**host.stats, "requests": host.requests, "pool": sorted(host.snapshots), "instance_pid": inst}
                self._reply(200, stats)
            else:
                self._reply(404, {"error": f"no route {path}"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path.startswith("/function/"):
                self._function()
            else:
                self._reply(404, {"error": "POST /function/<name> only"})

    return H


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pronghorn", description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    ap.add_argument("--strategy", required=True, choices=STRATEGIES)
    ap.add_argument("--eviction", type=int, required=True, help="requests per instance before it is killed")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--results-path", type=Path, required=True)
    ap.add_argument("--pool-capacity", type=int, default=14, help="the artifact's RequestCentric default")
    ap.add_argument("--max-requests", type=int, default=100, help="snapshot points 1..N")
    ap.add_argument(
        "--cold-start", choices=["zygote", "exec"], default="zygote", help="fork mode only (CRIU mode: exec)"
    )
    ap.add_argument(
        "--snapshot",
        choices=["fork", "criu"],
        default=os.environ.get("PRONGHORN_SNAPSHOT", "fork"),
        help="fork: a stopped fork of the warmed process; criu: a CRIU image (default $PRONGHORN_SNAPSHOT)",
    )
    ap.add_argument("--criu", default=os.environ.get("PRONGHORN_CRIU", "criu"), help="e.g. 'sudo -n criu'")
    ap.add_argument(
        "--unshare",
        default=os.environ.get("PRONGHORN_UNSHARE", "unshare"),
        help="CRIU mode: the prefix that starts an instance as the init of a new pid namespace "
        "('unshare' as root, 'sudo -n unshare'; '' keeps instances in the host's namespace, where a "
        "restore needs its old pid free)",
    )
    ap.add_argument("--java", default=os.environ.get("PRONGHORN_JAVA", "java"))
    classes = Path(os.environ.get("PRONGHORN_JVM_CLASSES", DEFAULT_JVM_CLASSES))
    ap.add_argument("--jvm-classes", type=Path, default=classes, help="compiled by install.sh --jvm")
    ap.add_argument("--pypy", help=f"PyPy interpreter with networkx and Jinja2 (default {DEFAULT_PYPY})")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gc-nursery", default="4MB", help="PYPY_GC_NURSERY of the function processes")
    ap.add_argument(
        "--share-pages", action="store_true", help="restored processes keep sharing pages copy-on-write (no eager copy)"
    )
    args = ap.parse_args(argv)
    if args.eviction < 1:
        ap.error(f"--eviction: expected a number of requests >= 1, got {args.eviction}")
    if args.benchmark in JVM_BENCHMARKS and args.snapshot == "fork" and args.strategy != "cold":
        ap.error(
            f"--benchmark {args.benchmark}: a JVM cannot be snapshotted by fork (its threads do not "
            "survive it); expected --snapshot criu on a host where CRIU works"
        )
    return args


def adopt_orphans() -> None:
    """Snapshots outlive the instance that forked them: as a subreaper the host stays their
    parent (not init), and reaps them itself (SIGCHLD ignored: the kernel does it)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    adopt_orphans()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    args.results_path.parent.mkdir(parents=True, exist_ok=True)
    host = Host(args)
    pypy = Path(host.pypy)
    if args.benchmark in JVM_BENCHMARKS:
        if not (args.jvm_classes / "PronghornRuntime.class").exists():
            sys.exit(f"pronghorn: no PronghornRuntime.class in {args.jvm_classes}; run install.sh --jvm")
    elif not pypy.exists():
        sys.exit(f"pronghorn: no PyPy interpreter at {pypy}; run workloads/pronghorn/install.sh (or pass --pypy)")
    threading.Thread(target=host.control.serve, daemon=True).start()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(host))
    server.daemon_threads = True

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        host.start_instance()
        # shutdown() (SIGTERM) waits for the loop's next poll: 0.5 s by default, at every point's end.
        server.serve_forever(poll_interval=0.05)
    finally:
        host.shutdown()
        server.server_close()
