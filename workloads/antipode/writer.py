"""The writer region's frontend, compose-post and post-storage in one service (the gateway).

    python -m antipode.writer --port P --primary HOST:PORT --replica HOST:PORT --results-path FILE

POST /wrk2-api/post/compose (DeathStarBench's compose-post.lua request: username, user_id, text,
media_ids, media_types, post_type; as a form or as JSON) stores the post on the writer region's
Redis primary, then publishes the notification on the queue (a Redis stream on the same primary,
which the reader region consumes across the WAN link). With ANTIPODE=1 the post carries its
lineage (a context id) and the notification the lineage to wait for, as upstream's
post-storage-service and compose-post-service do with Antipode on.

Every request adds one line to the results file: {"callId", "function", "recvTs", "dispatchTs",
"finishedTs", "success"} (µs since the epoch). GET /healthz is 200 once the primary answers, the
replica's replication link is up and the reader has subscribed.

Losing the primary (the post store and the queue) ends the writer (exit 1, the log naming it): its
requests could no longer store or announce posts, so the point must fail rather than count errors.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import sys
import time
import uuid
from typing import Any

from aiohttp import web

from antipode.resp import Redis

STREAM = "notifications"
READER_READY = "antipode:reader_ready"


def now_us() -> int:
    return time.time_ns() // 1000


def hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


class Writer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.antipode = os.environ.get("ANTIPODE", "0") == "1"
        self.ids = itertools.count()
        self.results = open(args.results_path, "a", buffering=1)  # noqa: SIM115 - closed at exit
        self.primary: Redis | None = None
        self.replica: Redis | None = None
        self.ready = False
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        self.primary = await Redis.connect(*hostport(self.args.primary), timeout_s=60)
        self.replica = await Redis.connect(*hostport(self.args.replica), timeout_s=60)

    async def healthz(self, request: web.Request) -> web.Response:
        if not self.ready:
            if self.primary is None or self.replica is None:
                return web.json_response({"ready": False, "why": "connecting"}, status=503)
            info = (await self.replica.execute("INFO", "replication")).decode()
            if "master_link_status:up" not in info:
                return web.json_response({"ready": False, "why": "replica not in sync"}, status=503)
            if not await self.primary.execute("EXISTS", READER_READY):
                return web.json_response({"ready": False, "why": "reader not subscribed"}, status=503)
            self.ready = True
        return web.json_response({"ready": True, "antipode": self.antipode})

    async def compose(self, request: web.Request) -> web.Response:
        recv = now_us()
        ok = False
        try:
            if request.content_type == "application/json":
                form: dict[str, Any] = await request.json()
            else:
                form = dict(await request.post())
            assert self.primary is not None
            post_id = random.getrandbits(63)
            key = f"post:{post_id}"
            fields = [
                "user_id",
                form.get("user_id", ""),
                "username",
                form.get("username", ""),
                "text",
                form.get("text", ""),
                "post_type",
                form.get("post_type", "0"),
                "media_ids",
                form.get("media_ids", "[]"),
                "timestamp",
                recv,
            ]
            ctx = uuid.uuid4().hex if self.antipode else ""
            if ctx:
                fields += ["lineage", ctx]  # the write's context id, which the barrier waits for
            await self.primary.execute("HSET", key, *fields)
            written = now_us()
            note = ["post_id", post_id, "post_written_ts", written]
            if ctx:
                note += ["lineage", json.dumps({"ctx": ctx, "keys": [key]})]
            await self.primary.execute("XADD", STREAM, "MAXLEN", "~", 100000, "*", *note)
            ok = True
            return web.json_response({"post_id": post_id})
        except ConnectionError as e:
            if not self.lost.done():
                self.lost.set_result(f"lost the primary (post store and queue) at {self.args.primary}: {e}")
            return web.json_response({"error": str(e)}, status=500)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=500)
        finally:
            line = {
                "callId": next(self.ids),
                "function": "compose-post",
                "recvTs": recv,
                "dispatchTs": recv,
                "finishedTs": now_us(),
                "success": ok,
            }
            self.results.write(json.dumps(line) + "\n")


async def serve(args: argparse.Namespace) -> None:
    w = Writer(args)
    app = web.Application()
    app.router.add_get("/healthz", w.healthz)
    app.router.add_post("/wrk2-api/post/compose", w.compose)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
    await w.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait([loop.create_task(stop.wait()), w.lost], return_when=asyncio.FIRST_COMPLETED)
    await runner.cleanup()
    w.results.close()
    if w.lost.done():
        print(f"antipode.writer: {w.lost.result()}", file=sys.stderr, flush=True)
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(prog="antipode.writer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--primary", required=True, help="HOST:PORT of the writer region's Redis primary")
    ap.add_argument("--replica", required=True, help="HOST:PORT of the reader region's replica (readiness only)")
    ap.add_argument("--results-path", required=True)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
