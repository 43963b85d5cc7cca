"""wrk2 support: the Lua script from a mix, the command line, and outputs in wrk2's documented format."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from benchpipe.generators.wrk2 import command, parse, render_lua
from benchpipe.model import Mix

NORMAL = """Running 30s test @ http://10.0.0.1:8080
  2 threads and 2 connections
  Thread calibration: mean lat.: 3.612ms, rate sampling interval: 10ms
  Thread calibration: mean lat.: 3.575ms, rate sampling interval: 10ms
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.41ms  820.71us  11.65ms   79.88%
    Req/Sec   157.97    136.48   555.00     70.30%
  Latency Distribution (HdrHistogram - Recorded Latency)
 50.000%    3.31ms
 75.000%    3.80ms
 90.000%    4.31ms
 99.000%    6.18ms
 99.900%    9.72ms
 99.990%   11.65ms
 99.999%   11.65ms
100.000%   11.65ms

  Detailed Percentile spectrum:
       Value   Percentile   TotalCount 1/(1-Percentile)

       1.424     0.000000            1         1.00
       3.311     0.500000         4508         2.00
      11.655     1.000000         9000          inf
#[Mean    =        3.412, StdDeviation   =        0.821]
#[Max     =       11.648, Total count    =         9000]
#[Buckets =           27, SubBuckets     =         2048]
----------------------------------------------------------

  Latency Distribution (HdrHistogram - Uncorrected Latency (measured without taking delayed starts into account))
 50.000%    3.20ms
 75.000%    3.69ms
 90.000%    4.18ms
 99.000%    5.97ms
 99.900%    9.10ms
 99.990%   11.00ms
 99.999%   11.00ms
100.000%   11.00ms
----------------------------------------------------------
  9002 requests in 30.00s, 1.22MB read
Requests/sec:    300.05
Transfer/sec:     41.73KB
"""

ERRORS = NORMAL.replace(
    "  9002 requests in 30.00s, 1.22MB read\n",
    "  9002 requests in 30.00s, 1.22MB read\n  Socket errors: connect 1, read 2, write 0, timeout 7\n"
    "  Non-2xx or 3xx responses: 11\n",
)

BELOW = """Running 10s test @ http://10.0.0.1:8080
  2 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.03s     1.12s    3.93s    57.69%
    Req/Sec    98.12     10.00   110.00     80.00%
  Latency Distribution (HdrHistogram - Recorded Latency)
 50.000%    2.01s
 75.000%    2.98s
 90.000%    3.58s
 99.000%    3.91s
 99.900%    3.93s
 99.990%    3.93s
 99.999%    3.93s
100.000%    3.93s
#[Mean    =     2033.112, StdDeviation   =     1120.551]
#[Max     =     3930.112, Total count    =         1990]
----------------------------------------------------------
  1992 requests in 10.00s, 275.00KB read
Requests/sec:    199.12
Transfer/sec:     27.49KB
"""


def test_normal_output():
    r = parse(NORMAL, 300, 30)
    assert r.p50_ms == pytest.approx(3.31) and r.p99_ms == pytest.approx(6.18) and r.p999_ms == pytest.approx(9.72)
    assert r.achieved_rate == pytest.approx(300.05) and r.completed == 9002 and r.errors == 0
    assert r.mean_ms == pytest.approx(3.412) and r.max_ms == pytest.approx(11.648)
    assert not r.fell_behind


def test_errors_and_timeouts():
    r = parse(ERRORS, 300, 30)
    assert r.errors == 1 + 2 + 0 + 11 and r.timeouts == 7 and r.completed == 9002 - 11
    assert "14 errors, 7 timeouts" in r.fell_behind_reason


def test_below_target_rate_and_units():
    r = parse(BELOW, 300, 10)
    assert r.fell_behind and "achieved 199.1/s" in r.fell_behind_reason
    assert r.p50_ms == pytest.approx(2010.0) and r.p99_ms == pytest.approx(3910.0)


def test_units():
    text = NORMAL.replace(" 50.000%    3.31ms", " 50.000%  950.00us").replace(" 99.000%    6.18ms", " 99.000%    1.50m")
    r = parse(text, 300, 30)
    assert r.p50_ms == pytest.approx(0.95) and r.p99_ms == pytest.approx(90_000.0)


def test_incomplete_output_is_an_error():
    with pytest.raises(ValueError, match="Requests/sec"):
        parse("Running 30s test @ http://x\n", 100, 30)
    with pytest.raises(ValueError, match="-L"):
        parse("  10 requests in 1.00s, 1KB read\nRequests/sec: 10.0\n", 10, 1)


def test_command_line():
    argv = command("wrk", "http://h:8080", 300, 150, "/tmp/w.lua", 2, 2)
    assert argv == [
        "wrk",
        "-t",
        "2",
        "-c",
        "2",
        "-d",
        "150",
        "-L",
        "-U",
        "-s",
        "/tmp/w.lua",
        "http://h:8080",
        "-R",
        "300",
    ]


@pytest.mark.skipif(not shutil.which("luajit") and not shutil.which("lua5.1"), reason="no Lua interpreter")
def test_lua_script_follows_the_mix(tmp_path):
    mix = Mix.from_config(
        [
            {"name": "a", "weight": 0.9, "path": "/asyncFunction/gateway", "body": {"F": "a"}},
            {"name": "b", "weight": 0.1, "path": "/asyncFunction/gateway", "body": {"F": "b"}},
        ]
    )
    lua = render_lua(mix, seed=5)
    # Run the script's request() 10,000 times with a stand-in for wrk.format, count the bodies.
    harness = lua.replace(
        "wrk.method", "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return b end\nwrk.method"
    )
    harness += 'local n = 0\nfor i = 1, 10000 do if request() == \'{"F":"a"}\' then n = n + 1 end end\nprint(n)\n'
    (tmp_path / "t.lua").write_text(harness)
    lua_bin = shutil.which("luajit") or shutil.which("lua5.1")
    n = int(subprocess.run([lua_bin, str(tmp_path / "t.lua")], capture_output=True, text=True, check=True).stdout)
    assert 8800 < n < 9200
