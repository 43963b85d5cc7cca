"""Figure 8(a)'s server and client: data movement between two tasks.

server: an HTTP server connected to the point's Ray runtime. `GET /<workflow_id>?size=&trigger_time=`
runs a two-task workflow: the first task makes a payload of `size` bytes, the second receives it
(through Ray's object store, and storage when checkpointed) and returns its length. It answers
trigger_time, start (the first task's start) and end (the second task's end), all server-side
timestamps, as the artifact's server does. --system: sync / async / none (the engine, ExoF.-Ray
{Sync,Async,No}Ckpt: both tasks with that checkpoint mode; async does not wait for the commit) or
ray (two plain Ray tasks).

client (the job's driver): for each size, 3 warm-ups, then --repetitions requests, one at a time;
trigger = start - trigger_time, step = end - start. Its JSON has `groups`, one per size, each with
the metrics trigger_s and step_s (lists).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import ray

from exoflow import engine

SIZES = [1, 128 * 1024, 1 << 20, 32 << 20, 128 << 20]


def produce(size: int) -> np.ndarray:
    return np.ones(size, dtype=np.uint8)


def consume(x: np.ndarray) -> int:
    return len(x)


@ray.remote
def produce_task(size: int) -> tuple[np.ndarray, float]:
    return np.ones(size, dtype=np.uint8), time.time()


@ray.remote
def consume_task(x: np.ndarray) -> tuple[int, float]:
    return len(x), time.time()


class Server:
    def __init__(self, system: str, storage: str) -> None:
        self.system, self.storage = system, storage
        self.persister = engine.Persister.remote() if system != "ray" else None
        self.lock = threading.Lock()

    def run(self, workflow_id: str, size: int) -> tuple[float, float]:
        if self.system == "ray":
            ref, start_ref = produce_task.options(num_returns=2).remote(size)
            _n, end = ray.get(consume_task.remote(ref))
            return ray.get(start_ref), end
        mode = engine.checkpoint_mode(self.system)
        ex = engine.Executor(self.storage, workflow_id, persister=self.persister, events_file=False)
        a = engine.step(produce, size, name="produce", checkpoint=mode)
        b = engine.step(consume, a, name="consume", checkpoint=mode)
        ex.run(b, wait_committed=False)  # the latency of the two steps; an async commit goes on
        if mode == "sync":
            ex.wait_committed()  # already on disk before consume started; its own write, too
        infos = {e["step"]: e for e in ex.events if e["event"] == "done"}
        ex.close()
        return infos["produce"]["start"], infos["consume"]["end"]


def serve(args: argparse.Namespace) -> None:
    ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    server = Server(args.system, args.storage)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                return self._send(200, {"ok": True})
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                size, trigger = int(q["size"]), float(q["trigger_time"])
            except (KeyError, ValueError):
                return self._send(400, {"error": "expected ?size=<bytes>&trigger_time=<unix seconds>"})
            start, end = server.run(url.path.strip("/") or uuid.uuid4().hex, size)
            self._send(200, {"trigger_time": trigger, "start": start, "end": end, "size": size})

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.serve_forever()


def client(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    groups = []
    t0 = time.time()
    for size in sizes:
        trig, step = [], []
        for i in range(args.warmups + args.repetitions):
            trigger_time = time.time()
            url = f"{args.url}/{uuid.uuid4().hex}?size={size}&trigger_time={trigger_time}"
            with urllib.request.urlopen(url, timeout=600) as r:
                ans = json.loads(r.read())
            if i >= args.warmups:
                trig.append(ans["start"] - ans["trigger_time"])
                step.append(ans["end"] - ans["start"])
        groups.append({"size": size, "metrics": {"trigger_s": trig, "step_s": step}})
    out = {"duration_s": time.time() - t0, "groups": groups, "warmups": args.warmups, "repetitions": args.repetitions}
    engine.write_durable(__import__("pathlib").Path(args.result), json.dumps(out, indent=1).encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--system", choices=["sync", "async", "none", "ray"], required=True)
    s.add_argument("--storage", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--sizes", default=",".join(map(str, SIZES)))
    c.add_argument("--warmups", type=int, default=3)
    c.add_argument("--repetitions", type=int, default=5)
    c.add_argument("--result", required=True)
    args = p.parse_args(argv)
    serve(args) if args.cmd == "server" else client(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
