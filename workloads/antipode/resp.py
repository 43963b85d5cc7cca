"""A small asyncio Redis client (RESP2): commands on one connection are pipelined, replies are
matched to callers in order, which is how Redis answers them."""

from __future__ import annotations

import asyncio
import collections
from typing import Any


class RedisError(Exception):
    pass


def encode(*args: Any) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [await read_reply(reader) for _ in range(n)]
    raise ConnectionError(f"unexpected reply type {line!r}")


class Redis:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.task = asyncio.get_running_loop().create_task(self._replies())

    @classmethod
    async def connect(cls, host: str, port: int, timeout_s: float = 30.0) -> Redis:
        """Connect, retrying while the server (or the link in front of it) is still starting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                r, w = await asyncio.open_connection(host, port)
                conn = cls(r, w)
                await conn.execute("PING")
                return conn
            except (OSError, ConnectionError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _replies(self) -> None:
        try:
            while True:
                reply = await read_reply(self.reader)
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            while self.pending:
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_exception(ConnectionError(str(e)))

    async def execute(self, *args: Any) -> Any:
        if self.task.done():
            raise ConnectionError("redis connection lost")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.writer.write(encode(*args))
        reply = await fut
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()
