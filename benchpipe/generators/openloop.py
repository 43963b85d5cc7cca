"""The built-in open-loop generator: a constant target rate, latency from the intended send time.

Request i is due at t0 + i/rate (or at Poisson arrivals); it is sent when due without waiting for
earlier ones, and its latency is completion - due time, so a stalled server shows in the tail
instead of silently lowering the offered load (no coordinated omission). The generator reports how
late it itself was in sending (send lag, worst and p99) and the rate it achieved; a run where it
fell behind is flagged.

Built for throughput: a uvloop event loop, one asyncio Protocol per keep-alive connection with
httptools parsing the responses, request bytes rendered once per mix kind (request_bytes.py), an
alarm at the next due instant (alarm.py: a timerfd, to ~0.05 ms) that sends every request due
when it fires (batched at high rates, see ALARM_MIN_S), and latencies appended to a list that is
counted into HdrHistogram buckets a few times a second. A request due when every
connection is busy waits in a FIFO (its latency still counts from its due time) while a new
connection opens, up to `max_connections`; the pool starts at about rate x 4 ms connections.
`processes` spreads the rate over several processes, each offering rate/N with its schedule shifted
by i/rate, and their HdrHistograms are merged.

    python -m benchpipe.generators.openloop --target URL --rate R --duration S --mix-json FILE --out DIR --label L
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import socket
import ssl
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httptools
import numpy as np
import uvloop
from hdrh.histogram import HdrHistogram

from benchpipe.generators.alarm import Alarm
from benchpipe.generators.request_bytes import RequestSource, source_for
from benchpipe.model import GeneratorReport, Mix, latency_fields, write_json_atomic

HIST_MAX_US = 3_600_000_000  # one hour
HIST_DIGITS = 3
SUB_BUCKET_BITS = 11  # 3 significant digits: 2048 sub-buckets per power of two
N_BUCKETS = (HIST_MAX_US.bit_length() - SUB_BUCKET_BITS + 2) << (SUB_BUCKET_BITS - 1)
# Each send wakes the server and each alarm wakes the generator, so at high rates due requests go
# out in batches: the alarm fires at the next due instant but at most every ALARM_MIN_S, and in
# between, due requests ride on the processing of a response, at most every SEND_BATCH_S. Below
# 1/ALARM_MIN_S requests/s every request leaves at its instant; above, it may wait up to that long.
ALARM_MIN_S = 0.001
SEND_BATCH_S = 0.00025
FLUSH_S = 0.25  # how often recorded latencies are folded into the histograms
POOL_LATENCY_S = 0.004  # initial pool: the connections rate x this much latency keeps busy


@dataclass
class ShardResult:
    sent: int = 0
    completed: int = 0
    errors: int = 0
    timeouts: int = 0
    max_lag_s: float = 0.0
    histogram: str = ""
    lag_histogram: str = ""
    connections: int = 0
    per_kind: dict[str, int] = field(default_factory=dict)
    first_error: str = ""


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, HIST_DIGITS)


class Recorder:
    """Durations in seconds, appended per request and counted in HdrHistogram buckets with numpy a
    few times a second, so the per-request cost is one list append. A bucket is identified as the
    HdrHistogram does it (microseconds, SUB_BUCKET_BITS significant bits), so the histogram built
    at the end equals the one recording each value would have given."""

    def __init__(self) -> None:
        self.pending: list[float] = []
        self.counts = np.zeros(N_BUCKETS, dtype=np.int64)

    def fold(self) -> None:
        if not self.pending:
            return
        us = np.clip((np.asarray(self.pending) * 1e6).astype(np.int64), 1, HIST_MAX_US)
        self.pending.clear()
        shift = np.maximum(np.frexp(us.astype(np.float64))[1] - SUB_BUCKET_BITS, 0)  # bit length - 11
        self.counts += np.bincount((shift << (SUB_BUCKET_BITS - 1)) + (us >> shift), minlength=N_BUCKETS)

    def histogram(self) -> HdrHistogram:
        self.fold()
        hist = new_histogram()
        for idx in np.flatnonzero(self.counts).tolist():
            shift = max(0, (idx >> (SUB_BUCKET_BITS - 1)) - 1)
            hist.record_value((idx - (shift << (SUB_BUCKET_BITS - 1))) << shift, int(self.counts[idx]))
        return hist


def encoded(hist: HdrHistogram) -> str:
    return hist.encode().decode() if hist.get_total_count() else ""


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, shard: _Shard) -> None:
        self.shard = shard
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.due = 0.0
        self.kind = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.shard.opened(self)

    def send(self, due: float, kind: int, data: bytes, now: float) -> None:
        # The send lag counts to the write, so a request that waited for a free connection is late.
        shard = self.shard
        lag = now - due
        shard.lags.append(lag)
        if lag > shard.max_lag:
            shard.max_lag = lag
        self.busy = True
        self.due = due
        self.kind = kind
        shard.inflight += 1
        self.transport.write(data)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.finish_with_error(f"bad HTTP response: {e}")
            self.transport.abort()  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        if not self.busy:
            return  # an answer to nothing (the request timed out): the connection is being dropped
        shard = self.shard
        self.busy = False
        shard.inflight -= 1
        status = self.parser.get_status_code()
        if 200 <= status < 300:
            shard.completed += 1
            shard.latencies.append(now - self.due)
        else:
            shard.errors += 1
            if not shard.first_error:
                shard.first_error = f"HTTP {status} from {shard.urls[self.kind]}"
        if self.parser.should_keep_alive():
            shard.free(self, now)
        else:
            self.transport.close()  # type: ignore[union-attr]
        if now >= shard.next_due and now - shard.last_tick >= SEND_BATCH_S:
            shard.tick()

    def finish_with_error(self, message: str) -> None:
        if self.busy:
            self.busy = False
            shard = self.shard
            shard.inflight -= 1
            shard.errors += 1
            shard.first_error = shard.first_error or message

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish_with_error(f"connection lost: {exc or 'closed by the server'}")
        self.shard.closed(self)


class _Shard:
    """One process's share of the schedule, its connection pool and its counts."""

    def __init__(
        self,
        url: SplitResult,
        source: RequestSource,
        rate: float,
        duration_s: float,
        offset_s: float,
        settings: dict[str, Any],
        rng: random.Random,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.url = url
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        self.addr = ""
        self.source = source
        base = f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"
        self.urls = [base + p for p in settings["_paths"]]
        self.rate = rate
        self.n = round(rate * duration_s)
        self.offset = offset_s
        self.poisson = bool(settings.get("poisson", False))
        self.rng = rng
        self.timeout = float(settings.get("timeout_s", 10))
        self.max_conns = max(1, int(settings.get("max_connections", 256)))
        initial = settings.get("connections", "auto")
        if initial in (None, "auto"):
            initial = max(2, math.ceil(rate * POOL_LATENCY_S))
        self.initial = min(self.max_conns, max(1, int(initial)))
        self.conns: set[_Conn] = set()
        self.idle: list[_Conn] = []
        self.backlog: collections.deque[tuple[float, int, bytes]] = collections.deque()
        self.connecting = 0
        self.peak_conns = 0
        self.inflight = 0
        self.i = 0
        self.next_due = math.inf  # nothing is due before the clock starts
        self.alarm = Alarm(self.loop, self.tick)
        self.last_tick = 0.0
        self.start = 0.0
        self.sent = self.completed = self.errors = self.timeouts = 0
        self.first_error = ""
        self.per_kind = [0] * len(source.names)
        self.latency = Recorder()
        self.lag = Recorder()
        self.latencies = self.latency.pending  # appended to per request
        self.lags = self.lag.pending
        self.max_lag = 0.0
        self.done: asyncio.Future[None] = self.loop.create_future()

    # -- the pool -------------------------------------------------------------------------------

    def opened(self, conn: _Conn) -> None:
        self.connecting -= 1
        self.conns.add(conn)
        self.peak_conns = max(self.peak_conns, len(self.conns))
        self.free(conn, time.perf_counter())

    def free(self, conn: _Conn, now: float) -> None:
        if self.backlog:
            due, kind, data = self.backlog.popleft()
            conn.send(due, kind, data, now)
        else:
            self.idle.append(conn)
            if self.inflight == 0 and self.i >= self.n:
                self.finish()

    def closed(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        self.grow()
        self.check_done()

    def grow(self) -> None:
        while len(self.backlog) > self.connecting and len(self.conns) + self.connecting < self.max_conns:
            self.connecting += 1
            self.loop.create_task(self.connect())

    async def connect(self) -> None:
        try:
            await self.open_one()
        except OSError as e:
            self.connecting -= 1
            # The request that asked for this connection fails, as a client library's would.
            if self.backlog:
                self.backlog.popleft()
                self.errors += 1
                self.first_error = self.first_error or f"{e.__class__.__name__}: {e}"
            self.grow()
            self.check_done()

    async def open_one(self) -> Any:
        host = self.addr or self.host  # resolved once: new connections skip the resolver
        tls = {"ssl": self.ssl, "server_hostname": self.host} if self.ssl else {}
        return await self.loop.create_connection(lambda: _Conn(self), host, self.port, **tls)

    # -- the schedule ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Send every request that is due, then sleep until the next one is."""
        now = self.last_tick = time.perf_counter()
        due, i, n = self.next_due, self.i, self.n
        source, idle, backlog, per_kind = self.source, self.idle, self.backlog, self.per_kind
        base, period, poisson = self.start + self.offset, 1.0 / self.rate, self.poisson
        while due <= now:
            kind, data = source.next()
            per_kind[kind] += 1
            if idle:
                idle.pop().send(due, kind, data, now)
            else:
                backlog.append((due, kind, data))
                self.grow()
            i += 1
            if i >= n:
                due = math.inf
                break
            due = due + self.rng.expovariate(self.rate) if poisson else base + i * period
        self.sent += i - self.i
        self.i, self.next_due = i, due
        if i >= n:
            self.check_done()
        else:
            # A due instant within the batching interval needs no precision: the loop's timer does.
            if due > now + ALARM_MIN_S:
                self.alarm.set(due)
            else:
                self.alarm.set(now + ALARM_MIN_S, coarse=True)

    def housekeeping(self) -> None:
        """Fold recorded values into the histograms; time out requests older than timeout_s."""
        self.latency.fold()
        self.lag.fold()
        limit = time.perf_counter() - self.timeout
        while self.backlog and self.backlog[0][0] < limit:
            self.backlog.popleft()
            self.timeouts += 1
        for conn in list(self.conns):
            if conn.busy and conn.due < limit:
                conn.busy = False
                self.inflight -= 1
                self.timeouts += 1
                conn.transport.abort()  # type: ignore[union-attr]
        self.check_done()
        if not self.done.done():
            self.loop.call_later(min(FLUSH_S, self.timeout / 10), self.housekeeping)

    def check_done(self) -> None:
        if self.i >= self.n and self.inflight == 0 and not self.backlog:
            self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    async def run(self) -> ShardResult:
        with contextlib.suppress(OSError):  # unresolvable: each connection attempt fails and says why
            infos = await self.loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self.addr = infos[0][4][0]
        # Open the pool before the clock starts, so the first requests do not pay for connecting.
        self.connecting = self.initial
        await asyncio.gather(
            *(self.open_one() for _ in range(self.initial)),
            return_exceptions=True,
        )
        self.connecting = 0  # the ones that failed to open
        self.start = time.perf_counter()
        self.next_due = self.start + self.offset
        if self.poisson:
            self.next_due += self.rng.expovariate(self.rate)
        if self.n:
            self.tick()
        else:
            self.finish()
        self.loop.call_later(min(FLUSH_S, self.timeout / 10), self.housekeeping)
        await self.done
        self.alarm.close()
        for conn in list(self.conns):
            conn.transport.close()  # type: ignore[union-attr]
        return ShardResult(
            sent=self.sent,
            completed=self.completed,
            errors=self.errors,
            timeouts=self.timeouts,
            max_lag_s=self.max_lag,
            histogram=encoded(self.latency.histogram()),
            lag_histogram=encoded(self.lag.histogram()),
            connections=self.peak_conns,
            per_kind=dict(zip(self.source.names, self.per_kind, strict=True)),
            first_error=self.first_error,
        )


async def _drive(
    target: str, mix: Mix, rate: float, duration_s: float, offset_s: float, settings: dict[str, Any], seed: int
) -> ShardResult:
    rng = random.Random(seed)
    url = urlsplit(target)
    if url.scheme not in ("http", "https"):
        raise ValueError(f"open-loop target must be an http(s) URL, got {target!r}")
    source = source_for(url, mix, rng)
    paths = [k.path for k, _ in mix.normalized()]
    shard = _Shard(url, source, rate, duration_s, offset_s, {**settings, "_paths": paths}, rng)
    return await shard.run()


def _shard(args: tuple[str, dict[str, Any], float, float, float, dict[str, Any], int]) -> ShardResult:
    target, mix_cfg, rate, duration_s, offset_s, settings, seed = args
    mix = Mix.from_config(mix_cfg["kinds"])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(target, mix, rate, duration_s, offset_s, settings, seed))


def _processes(setting: Any) -> int:
    if setting in (None, "auto"):
        return max(1, (os.cpu_count() or 1) // 2)
    return max(1, int(setting))


class OpenLoopGenerator:
    name = "openloop"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = dict(settings)

    def run(self, target: str, mix: Mix, rate: float, duration_s: float, out_dir: Path, label: str) -> GeneratorReport:
        if rate <= 0 or duration_s <= 0:
            raise ValueError(f"open-loop load needs a rate and a duration > 0, got rate={rate} duration={duration_s}")
        procs = _processes(self.settings.get("processes", 1))
        seed = int(self.settings.get("seed", 1))
        mix_cfg = {"kinds": [asdict(k) for k in mix.kinds]}
        jobs = [
            (target, mix_cfg, rate / procs, duration_s, i / rate, self.settings, seed * 1000 + i) for i in range(procs)
        ]
        t0 = time.monotonic()
        if procs == 1:
            shards = [_shard(jobs[0])]
        else:
            with mp.get_context("fork").Pool(procs) as pool:
                shards = pool.map(_shard, jobs)
        elapsed = time.monotonic() - t0
        report = self._report(shards, rate, duration_s, elapsed)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / f"{label}.json", report.to_dict())
        (out_dir / f"{label}.hgrm").write_text(percentile_text(report.histogram))
        return report

    def _report(self, shards: list[ShardResult], rate: float, duration_s: float, elapsed: float) -> GeneratorReport:
        hist, lag_hist = new_histogram(), new_histogram()
        for s in shards:
            if s.histogram:
                hist.add(HdrHistogram.decode(s.histogram))
            if s.lag_histogram:
                lag_hist.add(HdrHistogram.decode(s.lag_histogram))
        completed = sum(s.completed for s in shards)
        lag_ms = max(s.max_lag_s for s in shards) * 1e3
        achieved = completed / duration_s
        min_frac = float(self.settings.get("min_achieved_fraction", 0.95))
        max_lag = float(self.settings.get("max_send_lag_ms", 100))
        reasons = []
        if achieved < min_frac * rate:
            reasons.append(f"achieved {achieved:.1f}/s < {min_frac:.0%} of target {rate:g}/s")
        if lag_ms > max_lag:
            reasons.append(f"send lag {lag_ms:.0f} ms > {max_lag:g} ms")
        errors = [s.first_error for s in shards if s.first_error]
        if errors:
            reasons.append(f"first error: {errors[0]}")
        per_kind: dict[str, int] = {}
        for s in shards:
            for k, v in s.per_kind.items():
                per_kind[k] = per_kind.get(k, 0) + v

        return GeneratorReport(
            generator="openloop",
            target_rate=rate,
            duration_s=duration_s,
            sent=sum(s.sent for s in shards),
            completed=completed,
            errors=sum(s.errors for s in shards),
            timeouts=sum(s.timeouts for s in shards),
            achieved_rate=achieved,
            max_send_lag_ms=lag_ms,
            send_lag_p99_ms=lag_hist.get_value_at_percentile(99) / 1e3 if lag_hist.get_total_count() else 0.0,
            connections=sum(s.connections for s in shards),
            **latency_fields(hist),
            fell_behind=bool(reasons and (achieved < min_frac * rate or lag_ms > max_lag)),
            fell_behind_reason="; ".join(reasons),
            per_kind=per_kind,
        )


def percentile_text(encoded: str) -> str:
    """The HdrHistogram percentile distribution in ms, as wrk2 -L prints it."""
    if not encoded:
        return "no samples\n"
    import io

    hist = HdrHistogram.decode(encoded)
    buf = io.BytesIO()
    hist.output_percentile_distribution(buf, 1000.0)
    return buf.getvalue().decode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="open-loop constant-rate HTTP load")
    ap.add_argument("--target", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--mix-json", required=True, help="a JSON list of {name, weight, path, body}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", default="measure")
    ap.add_argument("--settings-json", default="{}")
    a = ap.parse_args(argv)
    mix = Mix.from_config(json.loads(Path(a.mix_json).read_text()))
    rep = OpenLoopGenerator(json.loads(a.settings_json)).run(a.target, mix, a.rate, a.duration, Path(a.out), a.label)
    print(json.dumps({k: v for k, v in rep.to_dict().items() if k != "histogram"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
