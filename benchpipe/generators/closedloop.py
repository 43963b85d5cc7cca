"""Closed-loop load for Halfmoon's switching experiment, writing the seed's trace format.

`concurrency` workers each send one rw request after another. Every `cycle_s` the read ratio flips
between the configured values and the gateway is asked to switch its logging mode to the one that
suits it (read-heavy -> log writes, LoggingMode=write; write-heavy -> log reads, LoggingMode=read).
trace.txt holds `<us>: <lat>ms <mode>` per request and `<us>: BEGIN TRANSITION` / `END TRANSITION`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from benchpipe.model import GeneratorReport, Mix, latency_fields, write_json_atomic


def mode_for(read_ratio: float) -> str:
    # Log the rarer operation: with mostly reads, writes are logged (Halfmoon-read).
    return "write" if read_ratio >= 0.5 else "read"


class ClosedLoopGenerator:
    name = "closedloop"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)

    def run(self, target: str, mix: Mix, rate: float, duration_s: float, out_dir: Path, label: str) -> GeneratorReport:
        warm = label == "warmup"
        concurrency = int(self.s.get("prewarm_concurrency" if warm else "concurrency", self.s.get("concurrency", 8)))
        cycle = float(self.s.get("prewarm_cycle_s" if warm else "cycle_s", self.s.get("cycle_s", 5)))
        ratios = [float(r) for r in self.s.get("read_ratios", [0.2, 0.8])]
        path = mix.kinds[0].path if mix.kinds else "/asyncFunction/rw"
        lines, hist, counts = asyncio.run(
            self._drive(target, path, concurrency, cycle, ratios, duration_s, int(self.s.get("num_ops", 10)))
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ("trace.txt" if not warm else "warmup_trace.txt")).write_text("".join(lines))

        report = GeneratorReport(
            generator="closedloop",
            target_rate=0.0,
            duration_s=duration_s,
            sent=counts["sent"],
            completed=counts["ok"],
            errors=counts["errors"],
            timeouts=0,
            achieved_rate=counts["ok"] / duration_s,
            max_send_lag_ms=0.0,
            **latency_fields(hist),
            fell_behind=counts["errors"] > 0,
            fell_behind_reason=f"{counts['errors']} failed requests" if counts["errors"] else "",
        )
        write_json_atomic(out_dir / f"{label}.json", report.to_dict())
        return report

    async def _drive(
        self, target: str, path: str, concurrency: int, cycle: float, ratios: list[float], duration: float, ops: int
    ) -> tuple[list[str], HdrHistogram, dict[str, int]]:
        import aiohttp

        base = target.rstrip("/")
        lines: list[str] = []
        hist = HdrHistogram(1, 3_600_000_000, 3)
        counts = {"sent": 0, "ok": 0, "errors": 0}
        state = {"ratio": ratios[0], "mode": mode_for(ratios[0])}
        end = time.monotonic() + duration

        def us() -> int:
            return time.time_ns() // 1000

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 2)) as session:

            async def switch(ratio: float) -> None:
                mode = mode_for(ratio)
                state["ratio"] = ratio
                if mode == state["mode"]:
                    return
                lines.append(f"{us()}: BEGIN TRANSITION\n")
                async with session.post(base + "/switchMode", json={"mode": mode}) as r:
                    await r.read()
                lines.append(f"{us()}: END TRANSITION\n")
                state["mode"] = mode

            async def worker() -> None:
                while time.monotonic() < end:
                    body = {"Input": {"Function": "rw", "NumOps": ops, "ReadRatio": state["ratio"]}}
                    t0 = time.perf_counter()
                    counts["sent"] += 1
                    try:
                        async with session.post(base + path.replace("/asyncFunction/", "/function/"), json=body) as r:
                            await r.read()
                            ok = r.status == 200
                    except aiohttp.ClientError:
                        ok = False
                    lat = time.perf_counter() - t0
                    if ok:
                        counts["ok"] += 1
                        hist.record_value(max(1, int(lat * 1e6)))
                        lines.append(f"{us()}: {lat * 1e3:.3f}ms {state['mode']}\n")
                    else:
                        counts["errors"] += 1

            async def cycler() -> None:
                i = 0
                while True:
                    await asyncio.sleep(cycle)
                    if time.monotonic() >= end:
                        return
                    i += 1
                    await switch(ratios[i % len(ratios)])

            # Start in the first cycle's mode, whatever the stack started with (not a traced transition).
            async with session.post(base + "/switchMode", json={"mode": state["mode"]}) as r:
                await r.read()
            cyc = asyncio.create_task(cycler())
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            cyc.cancel()
        return lines, hist, counts


def parse_trace(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(requests, transitions) from a trace: requests {time_us, latency_ms, mode}; transitions {begin_us,
    end_us, duration_ms}. A malformed line raises ValueError naming the file and the line."""
    requests, transitions = [], []
    begin = None
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            ts_text, rest = line.split(": ", 1)
            ts = int(ts_text)
            if rest == "BEGIN TRANSITION":
                begin = ts
            elif rest == "END TRANSITION":
                if begin is None:
                    raise ValueError("END TRANSITION without BEGIN")
                transitions.append({"begin_us": begin, "end_us": ts, "duration_ms": (ts - begin) / 1e3})
                begin = None
            else:
                lat, mode = rest.split(" ")
                if not lat.endswith("ms"):
                    raise ValueError("latency without ms")
                requests.append({"time_us": ts, "latency_ms": float(lat[:-2]), "mode": mode})
        except ValueError as e:
            raise ValueError(f"{path}: line {i}: {e} ({line[:60]!r})") from None
    return requests, transitions
