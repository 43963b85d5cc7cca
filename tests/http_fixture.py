"""A small HTTP server for generator tests, run in its own process (python tests/http_fixture.py PORT).

POST /ok         200 at once
POST /err        500
POST /slow       answers after 3 s
POST /stall      200; the first request after 1 s blocks the whole server for 1 s (a GC pause, say)
POST /close      200 with Connection: close (the server ends every keep-alive connection)
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiohttp import web

START = time.monotonic()
stalled = False


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


async def err(request: web.Request) -> web.Response:
    return web.Response(status=500, text="no")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.Response(text="late")


async def close(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="bye", headers={"Connection": "close"})


async def stall(request: web.Request) -> web.Response:
    global stalled
    await request.read()
    if not stalled and time.monotonic() - START > 1.0:
        stalled = True
        time.sleep(1.0)  # blocks the event loop: every request in flight or arriving waits
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    for path, fn in (("/ok", ok), ("/err", err), ("/slow", slow), ("/stall", stall), ("/close", close)):
        app.router.add_post(path, fn)
    app.router.add_get("/healthz", ok)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
