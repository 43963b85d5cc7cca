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

A lost part fails the reader (exit 1, the log naming it) instead of writing a trace that no longer
measures the race: the queue's or the replica's connection closing, or the replica's replication
link going down (the primary or the replication relay died; a replica then serves stale data, which
would count as inconsistent reads, and Antipode's barrier would wait forever).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time
from typing import Any

from antipode.resp import Redis
from antipode.writer import READER_READY, STREAM, hostport, now_us

GROUP = "home-timeline"
IN_FLIGHT = 128  # > rate x round trip of the link, so a read is always waiting at the queue
LINK_CHECK_S = 0.2  # how often the replica's replication link is checked


class LostPart(Exception):
    """A part the measurement depends on is gone: the point must fail."""


class Reader:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.antipode = os.environ.get("ANTIPODE", "0") == "1"
        self.trace = open(args.trace_path, "a", buffering=1)  # noqa: SIM115 - closed at exit
        self.tasks: set[asyncio.Task[None]] = set()
        self.failed: asyncio.Future[str] | None = None

    def lost(self, what: str, error: object) -> None:
        assert self.failed is not None
        if not self.failed.done():
            self.failed.set_result(f"lost {what}: {error}")

    @staticmethod
    async def link_up(replica: Redis) -> bool:
        return "master_link_status:up" in (await replica.execute("INFO", "replication")).decode()

    async def watch_link(self, replica: Redis) -> None:
        """Fail once the replica's link to its primary goes down (it is up before the reader is ready)."""
        while await self.link_up(replica):
            await asyncio.sleep(LINK_CHECK_S)
        raise LostPart(
            f"the replica's replication link to the primary is down (replica {self.args.replica}): "
            "the primary or the replication relay stopped; reads would see stale data"
        )

    async def barrier(self, replica: Redis, lineage: dict[str, Any]) -> None:
        for key in lineage["keys"]:
            while await replica.execute("HGET", key, "lineage") != lineage["ctx"].encode():
                pass

    async def handle(self, replica: Redis, fields: dict[bytes, bytes]) -> None:
        try:
            await self.read_post(replica, fields)
        except ConnectionError as e:
            self.lost(f"the replica at {self.args.replica}", e)

    async def read_post(self, replica: Redis, fields: dict[bytes, bytes]) -> None:
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

    async def run(self) -> str:
        """Consume until a part is lost; returns what was lost."""
        loop = asyncio.get_running_loop()
        self.failed = loop.create_future()
        queue = await Redis.connect(*hostport(self.args.queue), timeout_s=60)
        replica = await Redis.connect(*hostport(self.args.replica), timeout_s=60)
        await queue.execute("XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM")
        while not await self.link_up(replica):  # the first sync; the writer is not ready before it
            await asyncio.sleep(0.02)
        await queue.execute("SET", READER_READY, "1")
        watch = loop.create_task(self.watch_link(replica))
        consume = loop.create_task(self.consume(queue, replica))
        parts = ((watch, f"the replica at {self.args.replica}"), (consume, f"the queue at {self.args.queue}"))
        for task, what in parts:
            task.add_done_callback(lambda t, what=what: t.cancelled() or self.lost(what, t.exception()))
        try:
            return await self.failed
        finally:
            watch.cancel()
            consume.cancel()

    async def consume(self, queue: Redis, replica: Redis) -> None:
        loop = asyncio.get_running_loop()

        def pull() -> asyncio.Task[Any]:
            cmd = ("XREADGROUP", "GROUP", GROUP, "reader", "COUNT", 512, "BLOCK", 500, "NOACK", "STREAMS", STREAM, ">")
            return loop.create_task(queue.execute(*cmd))

        # Several reads in flight, so that the queue pushes each notification across the link as
        # it arrives (a consumer's prefetch, as RabbitMQ federation does) instead of one round trip
        # of the WAN per read; Redis answers a connection's commands in order.
        inflight = collections.deque(pull() for _ in range(IN_FLIGHT))
        while True:
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
    runner = loop.create_task(r.run())
    await asyncio.wait([runner, loop.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    r.trace.close()
    if runner.done():
        # A lost part (or a failed start) ends the reader: the point must not use its trace.
        why = runner.exception() or runner.result()
        print(f"antipode.reader: {why}", file=sys.stderr, flush=True)
        sys.exit(1)
    runner.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(prog="antipode.reader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--queue", required=True, help="HOST:PORT of the writer region's Redis, across the WAN link")
    ap.add_argument("--replica", required=True, help="HOST:PORT of the reader region's replica")
    ap.add_argument("--trace-path", required=True)
    asyncio.run(serve(args=ap.parse_args()))


if __name__ == "__main__":
    main()
