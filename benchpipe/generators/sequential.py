"""Closed loop, one request at a time: `warmup_requests` untimed, then `requests` timed (mu2sls's
seq.py: 20 + 200). Its achieved rate, requests / elapsed, is the sequential throughput the paper
draws as a reference line. Bodies come from the mix's templates, entries chosen by weight.

settings: warmup_requests (20), requests (200), timeout_s (30), seed (1). The run's duration_s is
a cap: a run that hits it stops early and is flagged.

Pronghorn's synthetic_run.py adds: gap_s (0), a think time after each successful request;
unavailable_retries (0) and retry_delay_s (1): a 503 (a container restarting) is tried again after
the delay and not recorded, as the artifact's client drops such requests; record_requests (false):
every timed request's client latency in `<label>.requests.csv` (request, client_us, ok, status,
retries), in order.

On a remote cluster the deployer may name the experiment's own sequential client instead (settings
command and runner; see _run_remote): mu2sls's seq.py on the Knative node.
"""

from __future__ import annotations

import csv
import http.client
import random
import re
import shlex
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from benchpipe.generators.templates import MixTemplates
from benchpipe.model import GeneratorReport, Mix, latency_fields, write_json_atomic

HIST_MAX_US = 3_600_000_000
REQUEST_COLUMNS = ("request", "client_us", "ok", "status", "retries")


class SequentialGenerator:
    name = "sequential"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)

    def run(self, target: str, mix: Mix, rate: float, duration_s: float, out_dir: Path, label: str) -> GeneratorReport:
        warm, n = int(self.s.get("warmup_requests", 20)), int(self.s.get("requests", 200))
        if n <= 0 or warm < 0:
            raise ValueError(f"sequential load needs requests > 0 and warmup_requests >= 0, got {n} and {warm}")
        if self.s.get("command"):
            return self._run_remote(duration_s, out_dir, label, warm, n)
        url = urlsplit(target)
        conn = http.client.HTTPConnection(
            url.hostname or "127.0.0.1", url.port, timeout=float(self.s.get("timeout_s", 30))
        )
        rng = random.Random(int(self.s.get("seed", 1)))
        templates = MixTemplates(mix)
        hist = HdrHistogram(1, HIST_MAX_US, 3)
        counts = {"sent": 0, "ok": 0, "errors": 0}
        first_error = ""
        cap = time.perf_counter() + duration_s
        gap_s = float(self.s.get("gap_s", 0))
        retries_max, retry_delay_s = int(self.s.get("unavailable_retries", 0)), float(self.s.get("retry_delay_s", 1))
        rows: list[tuple[int, int, int, int, int]] = []

        content_type = {k.name: k.content_type for k in mix.kinds}

        def attempt(kind: str, path: str, body: bytes) -> tuple[bool, int, float, str]:
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST", (url.path.rstrip("/") + path), body=body, headers={"Content-Type": content_type[kind]}
                )
                resp = conn.getresponse()
                resp.read()
                status, ok, why = resp.status, 200 <= resp.status < 300, f"HTTP {resp.status} from {path}"
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                status, ok, why = 0, False, f"{e.__class__.__name__}: {e}"
            return ok, status, time.perf_counter() - t0, why

        def one() -> tuple[bool, float, int, int]:
            kind, path, body = templates.draw(rng)
            tries = 0
            while True:
                ok, status, lat, why = attempt(kind, path, body)
                if status != 503 or tries >= retries_max:
                    break
                tries += 1
                time.sleep(retry_delay_s)  # the artifact's client: wait, then try again unrecorded
            nonlocal first_error
            if not ok:
                first_error = first_error or why
            elif gap_s > 0:
                time.sleep(gap_s)  # think time, outside the measured latency
            return ok, lat, status, tries

        for _ in range(warm):
            counts["sent"] += 1
            one()
        start = time.perf_counter()
        timed = 0
        while timed < n and time.perf_counter() < cap:
            counts["sent"] += 1
            timed += 1
            ok, lat, status, tries = one()
            rows.append((timed, round(lat * 1e6), int(ok), status, tries))
            if ok:
                counts["ok"] += 1
                hist.record_value(max(1, int(lat * 1e6)))
            else:
                counts["errors"] += 1
        elapsed = time.perf_counter() - start
        conn.close()

        reasons = []
        if timed < n:
            reasons.append(f"stopped after {timed} of {n} requests at the {duration_s:g} s cap")
        if counts["errors"]:
            reasons.append(f"{counts['errors']} failed requests; first: {first_error}")
        report = GeneratorReport(
            generator="sequential",
            target_rate=0.0,
            duration_s=elapsed,
            sent=counts["sent"],
            completed=counts["ok"],
            errors=counts["errors"],
            timeouts=0,
            achieved_rate=counts["ok"] / elapsed if elapsed > 0 else 0.0,
            max_send_lag_ms=0.0,
            **latency_fields(hist),
            fell_behind=bool(reasons),
            fell_behind_reason="; ".join(reasons),
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.s.get("record_requests"):
            with open(out_dir / f"{label}.requests.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(REQUEST_COLUMNS)
                w.writerows(rows)
        write_json_atomic(out_dir / f"{label}.json", report.to_dict())
        return report

    def _run_remote(self, duration_s: float, out_dir: Path, label: str, warm: int, n: int) -> GeneratorReport:
        """The experiment's own sequential client on the cluster's host (settings `command`, run with
        `runner`, both set by the deployer: mu2sls's seq.py, which prints `throughput: <requests/s>`
        after its warm-up and timed requests). Its output is kept in `seq_<label>.log`."""
        runner = self.s["runner"]
        text = runner(["bash", "-c", shlex.quote(self.s["command"])], duration_s + 120)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"seq_{label}.log").write_text(f"$ {self.s['command']}\n{text}")
        found = re.findall(r"^throughput: ([0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$", text, re.M)
        if not found or float(found[-1]) <= 0:
            raise ValueError(f"sequential client: no 'throughput: <requests/s>' line in its output: {text[-300:]!r}")
        rps = float(found[-1])
        # The client prints only its throughput: no per-request latencies (zeros, as an empty
        # histogram); the mean of a sequential run is 1 / throughput.
        report = GeneratorReport(
            generator="sequential",
            target_rate=0.0,
            duration_s=n / rps,
            sent=warm + n,
            completed=n,
            errors=0,
            timeouts=0,
            achieved_rate=rps,
            max_send_lag_ms=0.0,
            p50_ms=0.0,
            p90_ms=0.0,
            p99_ms=0.0,
            p999_ms=0.0,
            max_ms=0.0,
            mean_ms=1e3 / rps,
        )
        write_json_atomic(out_dir / f"{label}.json", report.to_dict())
        return report
