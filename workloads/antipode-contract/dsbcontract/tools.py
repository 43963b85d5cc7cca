"""dockerize, the setup jobs and the admin services, as the stack runs them."""

from __future__ import annotations

import os
import re
import sys
import time

from dsbcontract.common import Client, forever, listen_only, log, refuse, wait_tcp


def dockerize_main(argv: list[str]) -> int:
    """dockerize -wait tcp://H:P ... [-wait-retry-interval D] [-timeout D] CMD...: waits, then execs."""
    waits, timeout_s, i = [], 10.0, 0
    while i < len(argv) and argv[i].startswith("-"):
        flag = argv[i]
        if i + 1 >= len(argv):
            refuse(f"dockerize: {flag} needs a value")
        value = argv[i + 1]
        if flag == "-wait":
            m = re.fullmatch(r"tcp://([^:/]+):(\d+)", value)
            if not m:
                refuse(f"dockerize: -wait {value!r}: only tcp://host:port is used by the stack")
            waits.append((m.group(1), int(m.group(2))))
        elif flag in ("-timeout", "-wait-retry-interval"):
            m = re.fullmatch(r"(\d+)(ms|s|m)", value)
            if not m:
                refuse(f"dockerize: {flag} {value!r} is not a duration")
            if flag == "-timeout":
                timeout_s = int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]
        else:
            refuse(f"dockerize: unknown flag {flag}")
        i += 2
    cmd = argv[i:]
    if not cmd:
        refuse("dockerize: no command after the flags")
    deadline = time.monotonic() + timeout_s
    for host, port in waits:
        if not wait_tcp(host, port, max(0.0, deadline - time.monotonic())):
            sys.stderr.write(
                f"Timeout after {timeout_s:g}s waiting on dependencies to become available: tcp://{host}:{port}\n"
            )
            return 1
    os.execvp(cmd[0], cmd)
    return 0


def mongodb_setup_main() -> int:
    """post-storage's replica set rs0 (replicaSet.js): eu priority 1000, us priority 0; then :8000."""
    members = [("post-storage-mongodb-eu", 1000), ("post-storage-mongodb-us", 0)]
    for host, _ in members:
        if not wait_tcp(host, 27017, 300):
            refuse(f"mongodb-setup: {host}:27017 never answered")
    config = {
        "_id": "rs0",
        "members": [{"_id": i, "host": f"{h}:27017", "priority": p} for i, (h, p) in enumerate(members)],
    }
    Client(members[0][0], 27017).call("replSetInitiate", config=config)
    listen_only(8000, "mongodb-setup (done)")
    forever()
    return 0


def rabbitmq_setup_main() -> int:
    cookie = os.environ.get("RABBITMQ_ERLANG_COOKIE")
    for host in ("write-home-timeline-rabbitmq-eu", "write-home-timeline-rabbitmq-us"):
        if not wait_tcp(host, 5672, 300):
            refuse(f"rabbitmq-setup: {host}:5672 never answered")
        theirs = Client(host, 5672).call("cookie")
        if theirs != cookie:
            refuse(
                f"rabbitmq-setup: RABBITMQ_ERLANG_COOKIE {cookie!r} differs from {host}'s ({theirs!r}):"
                " rabbitmqctl cannot reach it"
            )
    listen_only(8000, "rabbitmq-setup (done)")
    forever()
    return 0


def xtrace_main() -> int:
    listen_only(4080, "xtrace-server")
    listen_only(5563, "xtrace-server pubsub")
    forever()
    return 0


def adminmongo_main() -> int:
    if os.environ.get("HOST") != "0.0.0.0":
        refuse("adminmongo: HOST=0.0.0.0 expected")
    listen_only(1234, "adminmongo")
    forever()
    return 0


def main() -> int:
    name = os.path.basename(sys.argv[0])
    if name == "dockerize":
        return dockerize_main(sys.argv[1:])
    log(f"{name} starting")
    return {
        "mongodb-setup": mongodb_setup_main,
        "rabbitmq-setup": rabbitmq_setup_main,
        "xtrace-server": xtrace_main,
        "adminmongo": adminmongo_main,
    }[name]()
