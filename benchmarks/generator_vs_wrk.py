"""The built-in generator's highest sustainable rate against a trivial endpoint, as a ratio to the
throughput Debian's wrk (closed loop, as fast as it can) gets from the same endpoint, in one run.

    python benchmarks/generator_vs_wrk.py [--seconds 5]

Sustainable: achieved >= 95% of the target and the send lag within 100 ms (the harness's own rule).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchpipe.generators.openloop import OpenLoopGenerator
from benchpipe.model import Mix

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Trivial(asyncio.Protocol):
    """HTTP/1.1 keep-alive answering 200 to every request, bodies skipped by Content-Length."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            m = re.search(rb"(?i)content-length:\s*(\d+)", self.buf[:end])
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < total:
                return
            self.buf = self.buf[total:]
            self.t.write(RESPONSE)  # type: ignore[attr-defined]


def serve(port: int) -> None:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Trivial, "127.0.0.1", port, backlog=4096))
    loop.run_until_complete(server.serve_forever())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk_rps(url: str, seconds: int) -> float:
    cmd = ["wrk", "-t1", "-c16", f"-d{seconds}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk")
        return 1
    port = free_port()
    proc = mp.get_context("fork").Process(target=serve, args=(port,), daemon=True)
    proc.start()
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}/"
    try:
        wrk = wrk_rps(url, args.seconds)
        print(f"wrk (closed loop, 1 thread, 16 connections): {wrk:.0f} requests/s")
        mix = Mix.from_config([{"name": "get", "weight": 1, "path": "/", "body": {}}])
        best = {}
        out = Path(tempfile.mkdtemp())
        for procs in (1, 2):
            rate = 500.0
            while True:
                rep = OpenLoopGenerator({"processes": procs}).run(url, mix, rate, args.seconds, out, "b")
                ok = not rep.fell_behind
                print(
                    f"  built-in, {procs} process(es), target {rate:.0f}/s: achieved {rep.achieved_rate:.0f}/s, "
                    f"lag {rep.max_send_lag_ms:.0f} ms -> {'sustained' if ok else 'fell behind'}"
                )
                if not ok:
                    break
                best[procs] = rate
                rate *= 1.4
        top = max(best.values()) if best else 0.0
        print(
            f"built-in generator, highest sustainable rate: {top:.0f} requests/s "
            f"(1 process: {best.get(1, 0):.0f}, 2 processes: {best.get(2, 0):.0f})"
        )
        print(f"ratio built-in / wrk: {top / wrk:.2f}")
    finally:
        proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
