"""`wrk2` (giltene/wrk2): its command line checked as wrk2 parses it (-R required), the run done by
Debian's `wrk` (the same Lua API: setup, init, request, wrk.format) paced to the rate by a delay()
hook, and wrk2's report printed: the summary lines wrk prints and the HdrHistogram percentile blocks
wrk2's -L/-U print, from wrk's own latency histogram in a done() hook.

What it cannot do: wrk2's correction for coordinated omission (latency from each request's planned
send time): wrk measures from the actual send, so the "Recorded" block is the uncorrected one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from mu2slscontract.flags import Flag, parse
from mu2slscontract.state import fail

FLAGS = [
    Flag("connections", "c"),
    Flag("duration", "d"),
    Flag("threads", "t"),
    Flag("script", "s"),
    Flag("header", "H", repeat=True),
    Flag("latency", "L", value=False),
    Flag("u_latency", "U", value=False),
    Flag("batch_latency", "B", value=False),
    Flag("timeout"),
    Flag("rate", "R"),
    Flag("version", "v", value=False),
    Flag("help", "h", value=False),
]
USAGE = """Usage: wrk <options> <url>
  Options:
    -c, --connections <N>  Connections to keep open
    -d, --duration    <T>  Duration of test
    -t, --threads     <N>  Number of threads to use

    -s, --script      <S>  Load Lua script file
    -H, --header      <H>  Add header to request
    -L  --latency          Print latency statistics
    -U  --u_latency        Print uncorrected latency statistics
        --timeout     <T>  Socket/request timeout
    -B, --batch_latency    Measure latency of whole
                           batches of pipelined ops
                           (as opposed to each op)
    -v, --version          Print version details
    -R, --rate        <T>  work rate (throughput)
                           in requests/sec (total)
                           [Required Parameter]
"""
PERCENTILES = ("50.000", "75.000", "90.000", "99.000", "99.900", "99.990", "99.999", "100.000")


def hooks(rate: float, threads: int, latency: bool, u_latency: bool) -> str:
    """delay(): each thread sends at rate/threads; done(): wrk2's percentile blocks (ms)."""
    titles = []
    if latency:
        titles.append("Recorded Latency")
    if u_latency:
        titles.append("Uncorrected Latency (measured without taking delayed starts into account)")
    blocks = "".join(
        f'  io.write("  Latency Distribution (HdrHistogram - {t})\\n")\n'
        + "".join(
            f'  io.write(string.format(" %7s%%  %8.3fms\\n", "{p}", '
            + ("latency.max" if p == "100.000" else f"latency:percentile({p})")
            + " / 1000))\n"
            for p in PERCENTILES
        )
        + '  io.write(string.format("#[Mean    = %12.3f, StdDeviation   = %12.3f]\\n",'
        + " latency.mean / 1000, latency.stdev / 1000))\n"
        + '  io.write(string.format("#[Max     = %12.3f, Total count    = %12d]\\n",'
        + " latency.max / 1000, summary.requests))\n"
        for t in titles
    )
    # Each thread hands its requests the slots of its share of the rate (every threads/rate s), as
    # wrk2's plan does; delay() waits until the request's slot (LuaJIT's clock_gettime by FFI).
    return f"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct {{ long tv_sec; long tv_nsec; }} bp_timespec; int clock_gettime(int, bp_timespec *); ]]
local bp_ts = ffi.new("bp_timespec")
local function bp_now_ms()
  ffi.C.clock_gettime(1, bp_ts)
  return tonumber(bp_ts.tv_sec) * 1000 + tonumber(bp_ts.tv_nsec) / 1e6
end
local bp_interval_ms = {threads} * 1000.0 / {rate}
local bp_next = nil
function delay()
  local now = bp_now_ms()
  bp_next = math.max((bp_next or now) + bp_interval_ms, now - bp_interval_ms)
  return math.max(0, bp_next - now)
end
function done(summary, latency, requests)
{blocks}end
"""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = parse(argv, FLAGS, "wrk: unrecognized option '{flag}'\n" + USAGE)
    if p.flags.get("help") or p.flags.get("version"):
        print(USAGE if p.flags.get("help") else "wrk 4.0.0 [contract wrk2 over Debian's wrk]")
        return
    if len(p.args) != 1 or "rate" not in p.flags:
        fail(USAGE, 1)
    try:
        rate = float(p.flags["rate"])
        threads, connections = int(p.flags.get("threads", "2")), int(p.flags.get("connections", "10"))
    except ValueError:
        fail(USAGE, 1)
    if rate <= 0 or threads < 1 or connections < threads:
        fail("number of connections must be >= threads", 1)
    wrk = shutil.which("wrk", path=os.environ.get("MU2SLS_CONTRACT_WRK_PATH", "/usr/bin:/usr/local/bin"))
    if wrk is None:
        fail("contract wrk2: Debian's wrk is not installed (apt-get install wrk)", 1)
    script = ""
    if p.flags.get("script"):
        try:
            with open(p.flags["script"]) as src:
                script = src.read()
        except OSError as e:
            fail(f"{p.flags['script']}: {e.strerror}", 1)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + hooks(rate, threads, p.flags.get("latency", False), p.flags.get("u_latency", False)))
    try:
        cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", p.flags.get("duration", "10s"), "-s", f.name]
        cmd += [a for h in p.flags.get("header", []) for a in ("-H", h)]
        cmd += ["--timeout", p.flags["timeout"]] if "timeout" in p.flags else []
        raise SystemExit(subprocess.run([*cmd, p.args[0]]).returncode)
    finally:
        os.unlink(f.name)
