"""/boki/gateway: the real flags and refusals, the start-up gate, and the real gateway's HTTP surface
(sheet §3 'What the gateway serves'): only POST /function/<funcName> (synchronous) and
POST /asyncFunction/<funcName> (asynchronous) for names in the registry; anything else is 404, and
there is no health endpoint. Async calls append one line to --async_call_result_path: callId,
recvTs, dispatchTs, finishedTs (µs since the epoch), success, output (base64 of the JSON output).

The calls themselves run here, in the local stand-in's apps (workloads/standin: SQLite state, the
durable log of the chosen protocol), for the app and protocol the function's launcher reported:
its build (beldi-bin = unsafe, bokiflow-bin = boki, optimal-bin = halfmoon) and its LoggingMode.
A function with no launcher registered through an engine fails its calls.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hmcontract.checks import Refusal, fatal, load_registry, multi_host_iface, parse_flags
from hmcontract.components import gate
from hmcontract.functions import Panic, request_kind
from hmcontract.zk import Client

FLAGS = {
    "zookeeper_host": "str",
    "listen_iface": "str",
    "http_port": "str",
    "func_config_file": "str",
    "async_call_result_path": "str",
    "num_io_workers": "str",
    "io_uring_entries": "str",
    "io_uring_fd_slots": "str",
    "lb_per_fn_round_robin": "bool",
    "max_running_requests": "str",
}
MODES = {"READLOG": "read", "WRITELOG": "write"}
LAUNCHER_WAIT_S = float(os.environ.get("HMCONTRACT_LAUNCHER_WAIT_S", "5"))


def now_us() -> int:
    return time.time_ns() // 1000


def check(argv: list[str]) -> dict[str, Any]:
    flags = parse_flags(argv, FLAGS)
    registry = load_registry(flags.get("func_config_file"), "gateway")
    address = multi_host_iface(flags, "gateway")
    try:
        port = int(flags.get("http_port", "8080"))
    except ValueError:
        raise Refusal(f"--http_port={flags['http_port']!r} is not a port", "sheet §3") from None
    return {"flags": flags, "registry": registry, "address": address, "port": port}


class Calls:
    """The functions' work, in the stand-in's apps; one app instance (one state) per gateway."""

    def __init__(self, zk: Client, results_path: str) -> None:
        self.zk, self.zk_lock = zk, threading.Lock()
        self.launchers: dict[str, dict[str, Any]] = {}
        self.app: Any = None
        self.app_lock = threading.Lock()
        self.state = tempfile.mkdtemp(prefix="standin-state-")
        Path(results_path).parent.mkdir(parents=True, exist_ok=True)
        self.results = open(results_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        self.results_lock = threading.Lock()
        self.seq = itertools.count(1)  # calls run on executor threads: next() is atomic, += is not

    def launcher(self, fn: str, wait_s: float = LAUNCHER_WAIT_S) -> dict[str, Any] | None:
        """The function's launcher as its engine published it; a call may wait a little for it (the
        launchers register a moment after the start gate opens), then fails."""
        deadline = time.monotonic() + wait_s
        while fn not in self.launchers:
            with self.zk_lock:
                kids = self.zk.call("ls", f"/standin/func/{fn}").get("children") or []
                if kids:
                    self.launchers[fn] = json.loads(self.zk.call("get", f"/standin/func/{fn}/{kids[0]}")["data"])
                    break
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        return self.launchers[fn]

    def app_for(self, launcher: dict[str, Any]) -> Any:
        with self.app_lock:
            if self.app is None:
                from standin.apps import APPS, Settings
                from standin.store import Store

                env = launcher.get("env", {})
                mode = launcher.get("LoggingMode")
                if launcher["variant"] == "halfmoon" and mode not in MODES:
                    raise RuntimeError(f"the stand-in has no protocol for LoggingMode {mode}")
                store = Store(Path(self.state), launcher["variant"], MODES.get(mode or ""))
                s = Settings(
                    **{
                        k: t(env[e])
                        for k, e, t in (
                            ("num_keys", "NUM_KEYS", int),
                            ("value_size", "VALUE_SIZE", int),
                            ("num_ops", "NUM_OPS", int),
                            ("read_ratio", "READ_RATIO", float),
                            ("max_return_posts", "MAX_RETURN_POSTS", int),
                        )
                        if env.get(e)
                    }
                )
                s.invoke = lambda f: f()
                app = APPS[launcher["app"]](store, s)
                app.populate()
                self.app = app
                print(
                    f"calls run in the stand-in's {launcher['app']} app, protocol {launcher['variant']}"
                    f" (LoggingMode {mode}), as {launcher.get('funcName')}'s launcher reported",
                    flush=True,
                )
        return self.app

    def run(self, fn: str, body: Any, recv: int) -> dict[str, Any]:
        seq = next(self.seq)
        call_id = f"{os.getpid():x}-{seq:x}"
        launcher = self.launcher(fn)
        if launcher is None:
            dispatch = now_us()
            out, ok = {"error": f"no engine has a launcher for {fn}"}, False
        else:
            request_kind(launcher["app"], launcher["binary"], body)  # the handler's dispatch: Panic propagates
            dispatch = 0
            try:
                app = self.app_for(launcher)  # the first call waits for the state to be populated
                dispatch = now_us()
                routed = app.route(launcher["binary"], body if isinstance(body, dict) else {})
                if routed is None:
                    raise LookupError(f"the stand-in's {launcher['app']} app has no entry {launcher['binary']}")
                out, ok = app.call(routed[0], routed[1], random.Random(seq)), True
            except Exception as e:
                dispatch = dispatch or now_us()
                out, ok = {"error": f"{e.__class__.__name__}: {e}"}, False
        return {
            "callId": call_id,
            "function": fn,
            "recvTs": recv,
            "dispatchTs": dispatch,
            "finishedTs": now_us(),
            "success": ok,
            "output": base64.b64encode(json.dumps(out).encode()).decode(),
        }

    def record(self, rec: dict[str, Any]) -> None:
        with self.results_lock:
            self.results.write(json.dumps(rec, separators=(",", ":")) + "\n")


def panic(e: Panic) -> None:
    # The real function process panics (its container exits); here the stack fails the same way.
    print(f"panic: {e}", file=sys.stderr, flush=True)
    os._exit(2)


async def serve_http(info: dict[str, Any], calls: Calls) -> None:
    from aiohttp import web

    names = {f["funcName"] for f in info["registry"]}
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def handle(request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/")
        if request.method != "POST" or len(parts) != 3 or parts[1] not in ("function", "asyncFunction"):
            return web.Response(status=404)
        fn = parts[2]
        if fn not in names:
            return web.Response(status=404)
        recv = now_us()
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = None
        if parts[1] == "asyncFunction":

            async def later() -> None:
                try:
                    rec = await loop.run_in_executor(None, calls.run, fn, body, recv)
                except Panic as e:
                    panic(e)
                calls.record(rec)

            task = loop.create_task(later())
            pending.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(pending.discard)
            return web.json_response({"success": True, "callId": f"{recv:x}"})
        try:
            rec = await loop.run_in_executor(None, calls.run, fn, body, recv)
        except Panic as e:
            panic(e)
        out = json.loads(base64.b64decode(rec["output"]))
        return web.json_response(out, status=200 if rec["success"] else 500)

    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", info["port"], reuse_address=True).start()
    print(f"gateway serving on :{info['port']} ({len(names)} functions)", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        info = check(argv)
    except Refusal as e:
        return fatal("gateway", e)
    zk = gate(info["flags"])  # sheet §3: no HTTP before /faas/cmd/start
    zk.ensure("/faas/node/gateway", json.dumps({"address": info["address"]}))
    calls = Calls(zk, info["flags"].get("async_call_result_path") or "/tmp/store/async_results")
    asyncio.run(serve_http(info, calls))
    return 0
