"""wrk2:antipode's /wrk2/wrk: wrk2's flags (-t -c -d -R -L -U -s URL), an open loop at the rate for
the duration over `-c` keep-alive connections, latency from each request's intended send time
(wrk2's correction), and wrk2's output (Recorded Latency percentiles, "N requests in Ts", Requests/sec).
It does not run Lua: from the script it takes wrk.method, the Content-Type header, the mix's path
and its body's form fields (the literal parts kept, each generated part a random number)."""

from __future__ import annotations

import http.client
import random
import re
import sys
import threading
import time
import urllib.parse

from dsbcontract.common import refuse

USAGE = "wrk -t N -c N -d N -L [-U] -s SCRIPT URL -R RATE"


def parse(argv: list[str]) -> dict:
    o: dict = {"L": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-t", "-c", "-d", "-R", "-s"):
            if i + 1 >= len(argv):
                refuse(f"wrk: {a} needs a value ({USAGE})")
            o[a[1]] = argv[i + 1]
            i += 2
        elif a in ("-L", "-U", "--latency", "--u_latency"):
            o["L"] = o["L"] or a in ("-L", "--latency")
            i += 1
        elif a == "--help":
            print(f"Usage: {USAGE}\n    -R, --rate <T>  work rate (throughput) in requests/sec (total)")
            sys.exit(1)
        elif a.startswith("http://"):
            o["url"] = a
            i += 1
        else:
            refuse(f"wrk: unknown argument {a!r} ({USAGE})")
    for k in ("t", "c", "d", "R", "s", "url"):
        if k not in o:
            refuse(f"wrk: missing {k} ({USAGE}); -R is required by wrk2")
    if not o["L"]:
        refuse("wrk: -L expected (the latency distribution benchpipe parses)")
    if int(o["c"]) < int(o["t"]):
        refuse("wrk: number of connections must be >= threads")
    return o


def request_shape(script: str) -> tuple[str, str, str, list[str]]:
    try:
        with open(script) as f:
            text = f.read()
    except OSError as e:
        refuse(f"wrk: cannot read script {script}: {e.strerror}")
    if not re.search(r"^request\s*=\s*function", text, re.M):
        refuse(f"wrk: {script} defines no request function")
    m = re.search(r'wrk\.method\s*=\s*"(\w+)"', text)
    method = m.group(1) if m else "GET"
    ctype = re.search(r'wrk\.headers\["Content-Type"\]\s*=\s*"([^"]+)"', text)
    path = re.search(r'\{\s*[\d.]+,\s*"(/[^"]*)"', text)
    if not path:
        refuse(f"wrk: {script}: no request path in its mix")
    body = re.search(r'^\s*return\s+(".*)$', text[text.find("local function body_1") :], re.M)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|(\w+\([^)]*\))', body.group(1)) if body else []
    return method, ctype.group(1) if ctype else "", path.group(1), [lit if lit else "\0" for lit, _ in parts]


def main() -> int:
    o = parse(sys.argv[1:])
    method, ctype, path, parts = request_shape(o["s"])
    url = urllib.parse.urlparse(o["url"])
    rate, duration, conns = float(o["R"]), float(o["d"]), int(o["c"])
    latencies: list[float] = []
    non2xx, errors = [0], [0]
    lock = threading.Lock()
    t_start = time.monotonic()
    interval = conns / rate

    def conn_loop(k: int) -> None:
        c = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        n = 0
        while True:
            due = t_start + k / rate + n * interval
            if due >= t_start + duration:
                return
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            body = "".join(str(random.randint(1, 10**9)) if p == "\0" else p for p in parts).encode()
            try:
                c.request(method, path, body=body if body else None, headers={"Content-Type": ctype} if ctype else {})
                r = c.getresponse()
                r.read()
                with lock:
                    latencies.append((time.monotonic() - due) * 1000)
                    if r.status >= 400:
                        non2xx[0] += 1
            except OSError:
                with lock:
                    errors[0] += 1
                c.close()
            n += 1

    threads = [threading.Thread(target=conn_loop, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    lat = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

    out = [f"Running {int(duration)}s test @ {o['url']}", f"  {o['t']} threads and {conns} connections", "",
           "  Latency Distribution (HdrHistogram - Recorded Latency)"]  # fmt: skip
    for p in (50, 75, 90, 99, 99.9, 99.99, 99.999, 100):
        out.append(f"{p:7.3f}%  {pct(p):8.2f}ms")
    out += ["", f"#[Mean    =  {sum(lat) / len(lat):.3f}, StdDeviation   =  0.000]",
            f"#[Max     =  {lat[-1]:.3f}, Total count    =  {len(latencies)}]",
            f"  {len(latencies)} requests in {elapsed:.2f}s, 0.00KB read"]  # fmt: skip
    if errors[0]:
        out.append(f"  Socket errors: connect 0, read {errors[0]}, write 0, timeout 0")
    if non2xx[0]:
        out.append(f"  Non-2xx or 3xx responses: {non2xx[0]}")
    out += [f"Requests/sec: {len(latencies) / elapsed:10.2f}", "Transfer/sec:      0.00KB"]
    print("\n".join(out))
    return 0
