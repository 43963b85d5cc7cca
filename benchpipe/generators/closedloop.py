"""Figure 15's switching client: closed loop, the logging mode in every request.

The artifact's client (Halfmoon-bench workloads/workflow/optimal/benchmark/switching, the binary
/optimal-bin/switching/benchmark of the bench image; reference/halfmoon-real-services.md section
5.4), which this reproduces:

- `concurrency` workers, each one request at a time (8 s timeout): a SYNCHRONOUS
  `POST /function/rw` with `{"InstanceId": "", "CallerName": "", "Async": false,
  "Input": {"mode": M, "readRatio": R, "nOps": N}}`;
- the cycle is (elapsed / cycle_s) mod 2: cycle 0 sends read_ratios[0] with READLOG, cycle 1
  read_ratios[1] with WRITELOG; nothing is sent to the gateway to switch, the mode travels per request;
- checked when a request finishes: on a new cycle every request still in flight becomes transitional
  (`<us>: BEGIN TRANSITION`), and while any is left new requests go with mode TRANSITIONAL (and the
  new cycle's ratio); the last one finishing prints `<us>: END TRANSITION`;
- after the run, one line `<us>: <latency>ms <mode>` per request in issue order; times are µs since
  the client started. `--prewarm` (the warm-up run) keeps only the transition lines.

Locally it runs here, in Python. On a cluster with a client machine the deployer's load context
sets `runner`: the artifact's own binary runs on the client (copied out of the bench image when it
is not there yet), with the command line of the artifact's run_once.sh, and its stdout is the trace.

settings: concurrency, cycle_s (5), read_ratios ([0.2, 0.8]), num_ops (10), prewarm_concurrency,
prewarm_cycle_s (the warm-up's), function (rw), timeout_s (8); remote: runner, client_binary
(/tmp/switching/benchmark), client_binary_image and client_binary_dir (where the binary is in the image).
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from benchpipe.model import GeneratorReport, Mix, latency_fields, write_json_atomic

LOG_MODES = ("READLOG", "WRITELOG")
TRANSITIONAL = "TRANSITIONAL"
CLIENT_BINARY = "/tmp/switching/benchmark"


def request_body(mode: str, read_ratio: float, num_ops: int) -> dict[str, Any]:
    return {
        "InstanceId": "",
        "CallerName": "",
        "Async": False,
        "Input": {"mode": mode, "readRatio": read_ratio, "nOps": num_ops},
    }


class ClosedLoopGenerator:
    name = "closedloop"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)

    def _params(self, label: str) -> tuple[int, float, list[float], int]:
        warm = label == "warmup"
        concurrency = int(self.s.get("prewarm_concurrency" if warm else "concurrency", self.s.get("concurrency", 8)))
        cycle = float(self.s.get("prewarm_cycle_s" if warm else "cycle_s", self.s.get("cycle_s", 5)))
        ratios = [float(r) for r in self.s.get("read_ratios", [0.2, 0.8])]
        if len(ratios) != 2:
            raise ValueError(f"workload.settings.read_ratios: expected exactly two values, got {ratios}")
        return concurrency, cycle, ratios, int(self.s.get("num_ops", 10))

    def command(self, target: str, duration_s: float, label: str) -> list[str]:
        """The artifact client's command line for this run (run_once.sh's flags, in its order)."""
        concurrency, cycle, ratios, ops = self._params(label)
        url = urlsplit(target if "//" in target else f"http://{target}")
        return [
            str(self.s.get("client_binary", CLIENT_BINARY)),
            f"--faas_gateway={url.netloc}",
            f"--concurrency={concurrency}",
            *(["--prewarm"] if label == "warmup" else []),
            f"--duration={max(1, round(duration_s))}",
            f"--cycle={max(1, round(cycle))}",
            f"--num_ops={ops}",
            f"--read_ratios={','.join(format(r, 'g') for r in ratios)}",
        ]

    def fetch_command(self) -> str:
        """The shell command that puts the client binary in place (run_once.sh copies the app's
        folder out of the bench image); nothing to do when it is there."""
        binary = str(self.s.get("client_binary", CLIENT_BINARY))
        image = self.s.get("client_binary_image")
        if not image:
            return f"test -x {shlex.quote(binary)}"
        src = str(self.s.get("client_binary_dir", "/optimal-bin/switching"))
        dest = str(Path(binary).parent.parent)
        q = shlex.quote
        return (
            f"test -x {q(binary)} || {{ docker pull -q {q(image)} >/dev/null && "
            f"docker run --rm -v {q(dest)}:{q(dest)} {q(image)} cp -r {q(src)} {q(dest)}/; }}"
        )

    def run(self, target: str, mix: Mix, rate: float, duration_s: float, out_dir: Path, label: str) -> GeneratorReport:
        warm = label == "warmup"
        out_dir.mkdir(parents=True, exist_ok=True)
        trace_file = out_dir / ("warmup_trace.txt" if warm else "trace.txt")
        runner: Callable[[list[str], float], str] | None = self.s.get("runner")
        if runner is not None:
            argv = self.command(target, duration_s, label)
            runner(["sh", "-c", shlex.quote(self.fetch_command())], 600)
            text = runner(argv, duration_s + 120)
            (out_dir / f"closedloop_{label}.cmd").write_text(shlex.join(argv) + "\n")
            trace_file.write_text(text)
            requests, _ = parse_trace(trace_file)
            hist = HdrHistogram(1, 3_600_000_000, 3)
            for r in requests:
                hist.record_value(max(1, int(r["latency_ms"] * 1e3)))
            counts = {"sent": len(requests), "ok": len(requests), "errors": 0}
        else:
            concurrency, cycle, ratios, ops = self._params(label)
            fn = str(self.s.get("function", "rw"))
            lines, hist, counts = asyncio.run(
                self._drive(target, fn, concurrency, cycle, ratios, duration_s, ops, keep_requests=not warm)
            )
            trace_file.write_text("".join(lines))
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
        self,
        target: str,
        fn: str,
        concurrency: int,
        cycle: float,
        ratios: list[float],
        duration: float,
        ops: int,
        keep_requests: bool = True,
    ) -> tuple[list[str], HdrHistogram, dict[str, int]]:
        import aiohttp

        url = target.rstrip("/") + f"/function/{fn}"
        transitions: list[str] = []
        done: list[tuple[int, float, str]] = []  # (issued at, latency ms, mode)
        hist = HdrHistogram(1, 3_600_000_000, 3)
        counts = {"sent": 0, "ok": 0, "errors": 0}
        start = time.monotonic()
        state: dict[str, Any] = {"cycle": 0, "next_id": 0}
        running: set[int] = set()
        transitional: set[int] = set()
        timeout = aiohttp.ClientTimeout(total=float(self.s.get("timeout_s", 8)))

        def elapsed_us() -> int:
            return int((time.monotonic() - start) * 1e6)

        def cycle_of(us: int) -> int:
            return int(us // int(cycle * 1e6)) % 2

        def finished(rid: int, now_us: int) -> tuple[str, float]:
            """The artifact's bookkeeping when a request finishes: the next request's mode and ratio."""
            cid = cycle_of(now_us)
            if cid != state["cycle"]:
                state["cycle"] = cid
                transitional.update(running)
                if transitional:
                    transitions.append(f"{now_us}: BEGIN TRANSITION\n")
            before = len(transitional)
            transitional.discard(rid)
            if before and not transitional:
                transitions.append(f"{now_us}: END TRANSITION\n")
            return (TRANSITIONAL if transitional else LOG_MODES[cid]), ratios[cid]

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 2)) as session:

            async def worker() -> None:
                mode, ratio = LOG_MODES[0], ratios[0]
                while True:
                    rid = state["next_id"]
                    state["next_id"] += 1
                    issued = elapsed_us()
                    running.add(rid)
                    counts["sent"] += 1
                    t0 = time.perf_counter()
                    try:
                        async with session.post(url, json=request_body(mode, ratio, ops), timeout=timeout) as r:
                            await r.read()
                            ok = r.status == 200
                    except (aiohttp.ClientError, TimeoutError):
                        ok = False
                    lat = time.perf_counter() - t0
                    running.discard(rid)
                    if ok:
                        counts["ok"] += 1
                        hist.record_value(max(1, int(lat * 1e6)))
                        done.append((issued, lat * 1e3, mode))
                    else:
                        counts["errors"] += 1
                    now = elapsed_us()
                    if now > duration * 1e6:
                        return
                    mode, ratio = finished(rid, now)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        lines = list(transitions)
        if keep_requests:
            lines += [f"{ts}: {lat:.2f}ms {mode}\n" for ts, lat, mode in sorted(done)]
        return lines, hist, counts


def parse_trace(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(requests, transitions) from a trace: requests {time_us, latency_ms, mode}; transitions {begin_us,
    end_us, duration_ms}. A BEGIN while a transition is open continues it (the client prints one at
    every cycle change that finds calls still transitional); one still open when the trace ends has
    end_us and duration_ms None. A malformed line raises ValueError naming the file and the line."""
    requests, transitions = [], []
    begin = None
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            ts_text, rest = line.split(": ", 1)
            ts = int(ts_text)
            if rest == "BEGIN TRANSITION":
                begin = ts if begin is None else begin
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
    if begin is not None:
        transitions.append({"begin_us": begin, "end_us": None, "duration_ms": None})
    return requests, transitions
