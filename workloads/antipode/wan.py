"""The emulated WAN between two regions: a TCP relay that forwards every byte, each chunk held for
the link's one-way delay (plus jitter) before it goes on, in both directions.

    python -m antipode.wan --port P --target HOST:PORT --delay-ms 50 [--jitter-ms 5]
    python -m antipode.wan ... --delay-ms us-eu=50,us-sg=90 --pair us-sg   (delay chosen per region pair)

The delay is the environment (the artifact's GCP regions, netem in its `delay` command), not a cost
of the system under test: the kernel here has no netem, so the delay is added in user space. A link
is FIFO, as TCP is: a chunk never overtakes the one before it, so a slow chunk holds those behind
it (head-of-line blocking), which is how jitter on a real link delays a stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal

CHUNK = 1 << 16


def parse_delay(spec: str, pair: str | None) -> float:
    """`50` or `us-eu=50,us-sg=90` with `pair` naming the entry."""
    if "=" not in spec:
        return float(spec)
    table = dict(item.split("=", 1) for item in spec.split(","))
    if pair not in table:
        raise SystemExit(f"antipode.wan: no delay for region pair {pair!r} in {spec!r}")
    return float(table[pair])


class Link:
    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random) -> None:
        self.delay_s, self.jitter_s, self.rng = delay_s, jitter_s, rng

    async def pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Read chunks as they come; deliver each at arrival + delay (+ jitter), in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
            with contextlib.suppress(OSError):
                dst.write_eof()

        sender = loop.create_task(deliver())
        last_due = 0.0
        try:
            while True:
                data = await src.read(CHUNK)
                due = loop.time() + self.delay_s + (self.rng.uniform(0, self.jitter_s) if self.jitter_s else 0.0)
                last_due = max(last_due, due)  # FIFO: never before the chunk ahead of it
                await queue.put((last_due, data))
                if not data:
                    break
        except (ConnectionError, OSError):
            await queue.put((0.0, b""))
        with contextlib.suppress(ConnectionError, OSError):
            await sender


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    delay_s = parse_delay(args.delay_ms, args.pair) / 1e3
    jitter_s = parse_delay(args.jitter_ms, args.pair) / 1e3
    rng = random.Random(args.seed)

    async def relay(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(host, int(port))
        except OSError as e:
            # The far side is not up yet (the client retries) or has died: said in the log.
            print(f"antipode.wan: cannot reach {args.target}: {e}", flush=True)
            cw.close()
            return
        try:
            await asyncio.gather(Link(delay_s, jitter_s, rng).pump(cr, uw), Link(delay_s, jitter_s, rng).pump(ur, cw))
        finally:
            for w in (cw, uw):
                w.close()

    server = await asyncio.start_server(relay, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"antipode.wan: {args.host}:{args.port} -> {args.target}, one-way {delay_s * 1e3:g} ms "
        f"+ up to {jitter_s * 1e3:g} ms jitter",
        flush=True,
    )
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(prog="antipode.wan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target", required=True, help="HOST:PORT of the far side")
    ap.add_argument("--delay-ms", required=True, help="one-way delay: MS, or PAIR=MS,PAIR=MS with --pair")
    ap.add_argument("--jitter-ms", default="0", help="extra delay per chunk, uniform in [0, J]; same forms")
    ap.add_argument("--pair", help="the region pair whose delay applies")
    ap.add_argument("--seed", type=int, default=None)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
