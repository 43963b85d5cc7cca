"""The built-in generator's highest sustainable rate against a trivial endpoint, as a ratio to the
throughput Debian's wrk (closed loop, as fast as it can) gets from the same endpoint, in one run;
then the built-in generator's latency at half its top rate next to wrk's at the same connections.

    python benchmarks/generator_vs_wrk.py [--seconds 5] [--processes 1,2]

Both send the same request (POST / with the body {} as JSON). Sustained: achieved >= 99% of the
target and the send lag's 99th percentile below 10 ms. The search multiplies the rate by 1.25
until a rate is not sustained, then bisects once between the last two; the machine is shared, so
a rate that fails is tried once more before it counts as failed (both tries are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from benchpipe.generators.openloop import OpenLoopGenerator
from benchpipe.model import GeneratorReport, Mix

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
MIN_ACHIEVED = 0.99
MAX_LAG_P99_MS = 10.0
WRK_SCRIPT = 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n'


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


def serve(port: int, use_uvloop: bool) -> None:
    loop = uvloop.new_event_loop() if use_uvloop else asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Trivial, "127.0.0.1", port, backlog=4096))
    loop.run_until_complete(server.serve_forever())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, seconds: int, connections: int, script: Path) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "p50": ms("50"), "p99": ms("99")}


def sustained(rep: GeneratorReport) -> bool:
    return rep.achieved_rate >= MIN_ACHIEVED * rep.target_rate and rep.send_lag_p99_ms < MAX_LAG_P99_MS


def probe(url: str, mix: Mix, procs: int, rate: float, seconds: int, out: Path) -> bool:
    for attempt in (1, 2):
        rep = OpenLoopGenerator({"processes": procs}).run(url, mix, rate, seconds, out, "b")
        ok = sustained(rep)
        print(
            f"  built-in, {procs} process(es), target {rate:.0f}/s (try {attempt}): "
            f"achieved {rep.achieved_rate:.0f}/s, "
            f"send lag p99 {rep.send_lag_p99_ms:.1f} ms, p50 {rep.p50_ms:.2f} ms, p99 {rep.p99_ms:.2f} ms, "
            f"{rep.connections} connections, errors {rep.errors + rep.timeouts} -> "
            f"{'sustained' if ok else 'not sustained'}",
            flush=True,
        )
        if ok:
            return True
    return False


def top_rate(url: str, mix: Mix, procs: int, start: float, seconds: int, out: Path) -> float:
    best, rate = 0.0, start
    while rate >= 100 and not probe(url, mix, procs, rate, seconds, out):
        rate /= 1.25  # the first rate was too high: down until one is sustained
    if rate < 100:
        return 0.0
    while probe(url, mix, procs, rate * 1.25, seconds, out):
        rate *= 1.25
    best, rate = rate, rate * 1.25
    if best:
        mid = (best + rate) / 2
        if probe(url, mix, procs, mid, seconds, out):
            best = mid
    return best


def cpu_busy(seconds: float) -> float:
    """The fraction of this machine's CPU time that was busy over `seconds` (others' load too)."""

    def snap() -> tuple[int, int]:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(v), v[3] + v[4]

    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--processes", default="1,2", help="process counts to try, comma-separated")
    ap.add_argument("--start", type=float, default=10000, help="first rate tried")
    ap.add_argument("--server-loop", choices=["asyncio", "uvloop"], default="asyncio", help="the endpoint's event loop")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk")
        return 1
    print(f"before: {cpu_busy(2):.0%} of the {os.cpu_count()} cores busy with other work")
    port = free_port()
    proc = mp.get_context("fork").Process(target=serve, args=(port, args.server_loop == "uvloop"), daemon=True)
    proc.start()
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}/"
    out = Path(tempfile.mkdtemp())
    script = out / "post.lua"
    script.write_text(WRK_SCRIPT)
    try:
        w = wrk(url, args.seconds, 16, script)
        print(f"endpoint: a Python {args.server_loop} Protocol answering 200 ok")
        print(f"wrk (closed loop, 1 thread, 16 connections): {w['rps']:.0f} requests/s", flush=True)
        mix = Mix.from_config([{"name": "post", "weight": 1, "path": "/", "body": {}}])
        best = {p: top_rate(url, mix, p, args.start, args.seconds, out) for p in map(int, args.processes.split(","))}
        procs = max(best, key=lambda p: best[p])
        top = best[procs]
        if not top:
            print("the built-in generator sustained no rate tried")
            return 1
        half = OpenLoopGenerator({"processes": procs}).run(url, mix, top / 2, 2 * args.seconds, out, "half")
        wh = wrk(url, args.seconds, max(1, half.connections), script)
        w2 = wrk(url, args.seconds, 16, script)  # again: how much the machine's other load moved meanwhile
        print()
        print(f"wrk throughput: {w['rps']:.0f} requests/s (again at the end: {w2['rps']:.0f})")
        print(
            f"built-in generator, highest sustained rate: {top:.0f} requests/s ({procs} process(es); "
            + ", ".join(f"{p} process(es): {r:.0f}" for p, r in best.items())
            + ")"
        )
        print(f"ratio built-in / wrk: {top / w['rps']:.2f}")
        print(
            f"latency at {half.connections} connections: built-in at {top / 2:.0f}/s (half its top) "
            f"p50 {half.p50_ms:.3f} ms p99 {half.p99_ms:.3f} ms (send lag p99 {half.send_lag_p99_ms:.2f} ms); "
            f"wrk closed loop at {wh['rps']:.0f}/s p50 {wh['p50']:.3f} ms p99 {wh['p99']:.3f} ms"
        )
    finally:
        proc.terminate()
    print(f"after: {cpu_busy(2):.0%} of the cores busy with other work")
    return 0


if __name__ == "__main__":
    sys.exit(main())
