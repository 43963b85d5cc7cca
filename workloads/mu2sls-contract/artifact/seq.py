"""Stand-in of the mu2sls artifact's tests/seq.py (written from its facts, no code of it): the
sequential reference of one app. `python3 seq.py --name <csv name>` with LOAD_BALANCER_IP set: 20
warm-up requests, then 200 sequential ones, each a POST to http://$LOAD_BALANCER_IP/<method> with
the entry service's Host header and {"args": [...], "req_id": <uuid4>}; prints `throughput: <200 /
elapsed>`. Stricter than the artifact's (which checks the status of media's requests only): any
answer other than 200 stops it with an error, so a test-bed run cannot count failures as throughput."""

import argparse
import http.client
import json
import os
import random
import sys
import time
import uuid

ip = os.getenv("LOAD_BALANCER_IP")
assert ip is not None, "LOAD_BALANCER_IP is not set"

# The artifact's per-app request (seq.py's once_* functions): Host, method path, arguments.
APPS = {
    "single-stateful": ("backend", "/req", lambda: [random.randint(0, 999)]),
    "chain": ("caller1", "/req", lambda: [random.randint(0, 999)]),
    "tree": ("callertxn", "/req", lambda: [random.randint(0, 999)]),
    "media-service-test": (
        "frontend",
        "/compose",
        lambda: [
            f"username_{(i := random.randint(0, 99))}",
            f"password_{i}",
            "Titanic",
            random.randint(1, 9),
            "This is a review",
        ],
    ),
    "hotel-reservation": ("frontend", "/req", lambda: [str(random.randint(0, 99)) for _ in range(3)]),
}


def once(conn, name):
    service, path, args = APPS[name]
    body = json.dumps({"args": args(), "req_id": str(uuid.uuid4())})
    headers = {"Content-Type": "application/json", "Host": f"{service}.default.example.com"}
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    if resp.status != 200:
        sys.exit(f"{service}{path} answered {resp.status}: {text[:200]!r}")
    return time.perf_counter() - start


def main(name):
    if name not in APPS:
        raise ValueError(f"Unknown benchmark {name}")
    host, _, port = ip.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=60)
    for _ in range(20):
        once(conn, name)
    start = time.perf_counter()
    for _ in range(200):
        once(conn, name)
    print()
    print(f"throughput: {200 / (time.perf_counter() - start)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", "-n")
    main(parser.parse_args().name)
