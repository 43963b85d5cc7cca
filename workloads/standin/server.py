"""The gateway: Boki's HTTP interface in front of a worker pool running the app's functions.

POST /asyncFunction/<fn>   answer at once with a callId; run later; one async_results line when done
POST /function/<fn>        run and answer with the output
                           (<fn> not a function of the app: 404, as the real gateway)
GET  /healthz              200 once state is populated and the workers are up
GET  /stats                appends, reads, writes per request kind (for tests)
POST /_stall?seconds=S     test knob (benchpipe's measure.stall): holds the event loop S seconds,
                           a real stall of the gateway (no request accepted, dispatched or answered)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from standin.apps import APPS, Settings
from standin.store import Store


def now_us() -> int:
    return time.time_ns() // 1000


class Gateway:
    def __init__(self, args: argparse.Namespace) -> None:
        self.store = Store(Path(args.state_dir), args.system, args.logging_mode)
        settings = Settings(
            num_keys=args.num_keys,
            value_size=args.value_size,
            num_ops=args.num_ops,
            read_ratio=args.read_ratio,
            num_users=args.num_users,
            num_followers=args.num_followers,
            max_return_posts=args.max_return_posts,
        )
        self.pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="fn")
        # Invoking another function goes through a pool of its own (a nested call must not wait
        # for a slot its caller holds).
        self.invoke_pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="invoke")
        settings.invoke = lambda f: self.invoke_pool.submit(f).result()
        self.app = APPS[args.app](self.store, settings)
        self.app_name = args.app
        self.results = open(args.results_path, "a", buffering=1)  # noqa: SIM115 - closed at shutdown
        self.results_lock = threading.Lock()
        self.ready = False
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.gc_interval_ms = args.gc_interval_ms
        self.seq = 0

    def run_call(self, kind: str, params: dict[str, Any], seed: int, call_id: str, recv: int) -> dict[str, Any]:
        dispatch = now_us()
        try:
            out = self.app.call(kind, params, random.Random(seed))
            ok = True
        except Exception as e:  # a failed call is reported as such, not dropped
            out, ok = {"error": f"{e.__class__.__name__}: {e}"}, False
        rec = {
            "callId": call_id,
            "function": kind,
            "recvTs": recv,
            "dispatchTs": dispatch,
            "finishedTs": now_us(),
            "success": ok,
            "output": base64.b64encode(json.dumps(out).encode()).decode(),
        }
        return rec

    def write_result(self, rec: dict[str, Any]) -> None:
        with self.results_lock:
            self.results.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def _enter(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def _leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    async def _call_of(self, request: web.Request) -> tuple[str, dict[str, Any]] | web.Response:
        """The request type and its parameters, or the 404 answer for a function the app does not have."""
        fn = request.match_info["fn"]
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = {}  # not JSON: the call runs and fails on its missing parameters
        call = self.app.route(fn, body if isinstance(body, dict) else {})
        if call is None:
            return web.Response(status=404, text=f"no function {fn}")
        self.seq += 1
        return call

    async def async_function(self, request: web.Request) -> web.Response:
        recv = now_us()
        call = await self._call_of(request)
        if isinstance(call, web.Response):
            return call
        kind, params = call
        call_id = f"{os.getpid():x}-{self.seq:x}"
        seed = self.seq

        async def run() -> None:
            self._enter()
            try:
                rec = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self.run_call, kind, params, seed, call_id, recv
                )
                self.write_result(rec)
            finally:
                self._leave()

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response({"callId": call_id, "success": True})

    async def sync_function(self, request: web.Request) -> web.Response:
        recv = now_us()
        call = await self._call_of(request)
        if isinstance(call, web.Response):
            return call
        kind, params = call
        self._enter()
        try:
            rec = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.run_call, kind, params, self.seq, f"s{self.seq:x}", recv
            )
        finally:
            self._leave()
        self.write_result(rec)
        return web.json_response(json.loads(base64.b64decode(rec["output"])), status=200 if rec["success"] else 500)

    async def stall(self, request: web.Request) -> web.Response:
        seconds = min(float(request.query.get("seconds", "1")), 60.0)
        time.sleep(seconds)  # on purpose in the event loop: the whole gateway stops
        return web.Response(text=f"stalled {seconds} s")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503, text="ok" if self.ready else "starting")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.store.stats(), "inflight": self.inflight})

    async def gc_loop(self) -> None:
        # A GC tick checkpoints the state: log entries from before the previous tick are no longer needed.
        interval = self.gc_interval_ms / 1000
        previous = now_us()
        while True:
            await asyncio.sleep(interval)
            tick = now_us()
            await asyncio.get_running_loop().run_in_executor(self.pool, self.store.gc, previous)
            previous = tick

    async def start(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        await asyncio.get_running_loop().run_in_executor(self.pool, self.app.populate)
        if self.gc_interval_ms > 0:
            self.tasks.add(asyncio.create_task(self.gc_loop()))
        self.ready = True

    async def drain(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout_s)
        for t in list(self.tasks):
            t.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.invoke_pool.shutdown(wait=True, cancel_futures=True)
        self.results.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    ap = argparse.ArgumentParser(prog="python -m standin", description=__doc__.splitlines()[0])
    ap.add_argument("--app", default=env("STANDIN_APP", "hotel"), choices=sorted(APPS))
    ap.add_argument("--system", default=env("STANDIN_SYSTEM", "unsafe"), choices=["unsafe", "boki", "halfmoon"])
    ap.add_argument("--logging-mode", default=env("LoggingMode"), choices=["read", "write"])
    ap.add_argument("--host", default=env("STANDIN_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(env("STANDIN_PORT", "8080")))
    ap.add_argument("--state-dir", default=env("STANDIN_STATE_DIR", "/tmp/standin/state"))
    ap.add_argument("--results-path", default=env("STANDIN_RESULTS_PATH", "/tmp/standin/async_results"))
    ap.add_argument("--workers", type=int, default=int(env("STANDIN_WORKERS", "8")))
    ap.add_argument("--num-keys", type=int, default=int(env("NUM_KEYS", "1000")))
    ap.add_argument("--value-size", type=int, default=int(env("VALUE_SIZE", "256")))
    ap.add_argument("--num-ops", type=int, default=int(env("NUM_OPS", "10")))
    ap.add_argument("--read-ratio", type=float, default=float(env("READ_RATIO", "0.5")))
    ap.add_argument("--gc-interval-ms", type=float, default=float(env("GC_INTERVAL_MS", "0")))
    ap.add_argument("--num-users", type=int, default=int(env("NUM_USERS", "1000")))
    ap.add_argument("--num-followers", type=int, default=int(env("NUM_FOLLOWERS", "8")))
    ap.add_argument("--max-return-posts", type=int, default=int(env("MAX_RETURN_POSTS", "5")))
    args = ap.parse_args(argv)
    if args.system == "halfmoon" and args.logging_mode is None:
        ap.error("--system halfmoon needs --logging-mode (or LoggingMode) read or write")
    return args


def _lifecycle(event: str, args: argparse.Namespace) -> None:
    """One line per start and exit in STANDIN_LIFECYCLE_LOG, if set: lets a test check from the
    stack's side that no two stacks were ever up at once on one machine."""
    path = os.environ.get("STANDIN_LIFECYCLE_LOG")
    if path:
        with open(path, "a") as f:  # one short append per line: whole lines, also from many processes
            f.write(f"{event} {time.time():.6f} {os.getpid()} {args.app}/{args.system} {args.port}\n")


async def serve(args: argparse.Namespace) -> None:
    _lifecycle("up", args)
    try:
        await _serve(args)
    finally:
        _lifecycle("down", args)


async def _serve(args: argparse.Namespace) -> None:
    Path(args.results_path).parent.mkdir(parents=True, exist_ok=True)
    gw = Gateway(args)
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/asyncFunction/{fn}", gw.async_function)
    app.router.add_post("/function/{fn}", gw.sync_function)
    app.router.add_get("/healthz", gw.healthz)
    app.router.add_get("/stats", gw.stats)
    app.router.add_post("/_stall", gw.stall)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gw.start()
    print(f"standin {args.app}/{args.system}/{args.logging_mode} ready on {args.host}:{args.port}", flush=True)
    await stop.wait()
    await site.stop()
    await gw.drain(timeout_s=10)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0
