"""The reader region's write-home-timeline service: consumes the notifications and reads each post
once from the local replica, as upstream's FanoutHomeTimelines does.

    python -m antipode.reader --queue HOST:PORT --replica HOST:PORT --trace-path FILE

--queue is the writer region's Redis (the stream `notifications`), reached across the WAN link;
--replica is the reader region's replica. With ANTIPODE=1 the read waits on the barrier first:
poll the replica until the notification's lineage (its context id on every written key) is
visible, as AntipodeMongodb::barrier does (upstream spins without pause; here each poll is one
round trip to the replica, so two cores are not starved).

One JSON line per notification in the trace file: post_id, post_written_ts (writer, after the
write), notification_received_ts, read_notification_ts (after the barrier), antipode_wait_us,
consistent (the post was found on the replica), all times µs since the epoch.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import time
from typing import Any

from antipode.resp import Redis
from antipode.writer import READER_READY, STREAM, hostport, now_us

GROUP = "home-timeline"
IN_FLIGHT = 128  # > rate x round trip of the link, so a read is always waiting at the queue


class Reader:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.antipode = os.environ.get("ANTIPODE", "0") == "1"
        self.trace = open(args.trace_path, "a", buffering=1)  # noqa: SIM115 - closed at exit
        self.tasks: set[asyncio.Task[None]] = set()

    async def barrier(self, replica: Redis, lineage: dict[str, Any]) -> None:
        for key in lineage["keys"]:
            while await replica.execute("HGET", key, "lineage") != lineage["ctx"].encode():
                pass

    async def handle(self, replica: Redis, fields: dict[bytes, bytes]) -> None:
        received = now_us()
        post_id = int(fields[b"post_id"])
        waited = 0
        if self.antipode and b"lineage" in fields:
            t0 = time.perf_counter_ns()
            await self.barrier(replica, json.loads(fields[b"lineage"]))
            waited = (time.perf_counter_ns() - t0) // 1000
        read_ts = now_us()
        found = bool(await replica.execute("EXISTS", f"post:{post_id}"))
        rec = {
            "post_id": post_id,
            "post_written_ts": int(fields[b"post_written_ts"]),
            "notification_received_ts": received,
            "read_notification_ts": read_ts,
            "antipode_wait_us": waited,
            "consistent": found,
        }
        self.trace.write(json.dumps(rec) + "\n")

    async def run(self, stop: asyncio.Event) -> None:
        queue = await Redis.connect(*hostport(self.args.queue), timeout_s=60)
        replica = await Redis.connect(*hostport(self.args.replica), timeout_s=60)
        await queue.execute("XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM")
        await queue.execute("SET", READER_READY, "1")
        loop = asyncio.get_running_loop()

        def pull() -> asyncio.Task[Any]:
            cmd = ("XREADGROUP", "GROUP", GROUP, "reader", "COUNT", 512, "BLOCK", 500, "NOACK", "STREAMS", STREAM, ">")
            return loop.create_task(queue.execute(*cmd))

        # Several reads in flight, so that the queue pushes each notification across the link as
        # it arrives (a consumer's prefetch, as RabbitMQ federation does) instead of one round trip
        # of the WAN per read; Redis answers a connection's commands in order.
        inflight = collections.deque(pull() for _ in range(IN_FLIGHT))
        while not stop.is_set():
            reply = await inflight.popleft()
            inflight.append(pull())
            for _stream, entries in reply or []:
                for _entry_id, flat in entries:
                    fields = dict(zip(flat[::2], flat[1::2], strict=True))
                    task = loop.create_task(self.handle(replica, fields))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)


async def serve(args: argparse.Namespace) -> None:
    r = Reader(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = loop.create_task(r.run(stop))
    await asyncio.wait([runner, loop.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        runner.result()  # a failure ends the process with its traceback
    runner.cancel()
    r.trace.close()


def main() -> None:
    ap = argparse.ArgumentParser(prog="antipode.reader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--queue", required=True, help="HOST:PORT of the writer region's Redis, across the WAN link")
    ap.add_argument("--replica", required=True, help="HOST:PORT of the reader region's replica")
    ap.add_argument("--trace-path", required=True)
    asyncio.run(serve(args=ap.parse_args()))


if __name__ == "__main__":
    main()
