"""The built-in open-loop generator: a constant target rate, latency from the intended send time.

Request i is due at t0 + i/rate (or at Poisson arrivals); it is fired when due without waiting for
earlier ones, and its latency is completion - due time, so a stalled server shows in the tail
instead of silently lowering the offered load (no coordinated omission). The generator reports how
late it itself was in sending (send lag) and the rate it achieved; a run where it fell behind is
flagged. One process drives a few thousand requests/s; `processes` spreads the rate over several,
each offering rate/N with its schedule shifted, and their HdrHistograms are merged.

    python -m benchpipe.generators.openloop --target URL --rate R --duration S --mix-json FILE --out DIR --label L
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from benchpipe.generators import templates
from benchpipe.model import GeneratorReport, Mix, write_json_atomic

HIST_MAX_US = 3_600_000_000  # one hour
HIST_DIGITS = 3


@dataclass
class ShardResult:
    sent: int = 0
    completed: int = 0
    errors: int = 0
    timeouts: int = 0
    max_lag_s: float = 0.0
    histogram: str = ""
    per_kind: dict[str, int] = field(default_factory=dict)
    first_error: str = ""


def _schedule(n: int, rate: float, offset: float, poisson: bool, rng: random.Random) -> list[float]:
    if not poisson:
        return [offset + i / rate for i in range(n)]
    t, out = offset, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


async def _drive(
    target: str, mix: Mix, rate: float, duration_s: float, offset_s: float, settings: dict[str, Any], seed: int
) -> ShardResult:
    import aiohttp

    rng = random.Random(seed)
    kinds = mix.normalized()
    names = [k.name for k, _ in kinds]
    weights = [w for _, w in kinds]
    bodies = {k.name: (target.rstrip("/") + k.path, json.dumps(k.body).encode()) for k, _ in kinds}
    new_body = templates.body_function(mix, rng)  # a fresh body per request where the entry has vars
    n = round(rate * duration_s)
    due = _schedule(n, rate, offset_s, bool(settings.get("poisson", False)), rng)
    choice = rng.choices(names, weights=weights, k=n)
    hist = HdrHistogram(1, HIST_MAX_US, HIST_DIGITS)
    res = ShardResult(per_kind={k: 0 for k in names})
    timeout = aiohttp.ClientTimeout(total=float(settings.get("timeout_s", 10)))
    connector = aiohttp.TCPConnector(limit=int(settings.get("max_connections", 256)), force_close=False)
    headers = {"Content-Type": "application/json"}
    pending: set[asyncio.Task[None]] = set()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def one(kind: str, due_at: float) -> None:
            url, body = bodies[kind][0], new_body(kind)
            try:
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    done = time.perf_counter()
                    if 200 <= resp.status < 300:
                        res.completed += 1
                        hist.record_value(max(1, int((done - start - due_at) * 1e6)))
                    else:
                        res.errors += 1
                        res.first_error = res.first_error or f"HTTP {resp.status} from {url}"
            except TimeoutError:
                res.timeouts += 1
            except aiohttp.ClientError as e:
                res.errors += 1
                res.first_error = res.first_error or f"{e.__class__.__name__}: {e}"

        start = time.perf_counter()
        for i in range(n):
            wait = start + due[i] - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            lag = time.perf_counter() - start - due[i]
            res.max_lag_s = max(res.max_lag_s, lag)
            task = asyncio.create_task(one(choice[i], due[i]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            res.sent += 1
            res.per_kind[choice[i]] += 1
        if pending:
            await asyncio.wait(pending)
    res.histogram = hist.encode().decode() if hist.get_total_count() else ""
    return res


def _shard(args: tuple[str, dict[str, Any], float, float, float, dict[str, Any], int]) -> ShardResult:
    target, mix_cfg, rate, duration_s, offset_s, settings, seed = args
    mix = Mix.from_config(mix_cfg["kinds"])
    return asyncio.run(_drive(target, mix, rate, duration_s, offset_s, settings, seed))


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
        hist = HdrHistogram(1, HIST_MAX_US, HIST_DIGITS)
        for s in shards:
            if s.histogram:
                hist.add(HdrHistogram.decode(s.histogram))
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

        def pct(p: float) -> float:
            return hist.get_value_at_percentile(p) / 1e3 if hist.get_total_count() else 0.0

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
            p50_ms=pct(50),
            p90_ms=pct(90),
            p99_ms=pct(99),
            p999_ms=pct(99.9),
            max_ms=hist.get_max_value() / 1e3 if hist.get_total_count() else 0.0,
            mean_ms=hist.get_mean_value() / 1e3 if hist.get_total_count() else 0.0,
            histogram=hist.encode().decode() if hist.get_total_count() else "",
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
