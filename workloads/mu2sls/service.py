"""One service of an application as its own process (a Knative revision's pod).

    python -m mu2sls.service --app APP --service NAME --port P --store FILE --ingress HOST:PORT

POST /<method>  {"args": [...], "req_id": ..., "txn": optional} -> {"result": ...} or {"conflict": true}
POST /_commit, /_abort  {"txn": id}: finish this service's part of a transaction
GET /healthz, GET /stats (the runtime's counters)
Flags come from ENABLE_LOGGING, ENABLE_TXN, ENABLE_CUSTOM_DICT as upstream.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
from typing import Any

from mu2sls.apps import APPS
from mu2sls.runtime import Flags, Runtime
from mu2sls.store import Store
from mu2sls.web import INTERNAL, Handler, Pool, Server

HOST_SUFFIX = ".default.example.com"


def make_invoker(ingress: str) -> Any:
    pool = Pool()

    def invoke(service: str, method: str, args: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        # Through the ingress with the callee's Host header, as upstream's AsyncInvoke does.
        payload = json.dumps({**body, "args": args}).encode()
        headers = {"Host": f"{service}{HOST_SUFFIX}", "Content-Type": "application/json", INTERNAL: "1"}
        status, data, _ = pool.request(ingress, "POST", f"/{method}", payload, headers)
        if status != 200:
            raise RuntimeError(f"{service}/{method} answered {status}: {data[:200]!r}")
        return json.loads(data)

    return invoke


def serve(args: argparse.Namespace) -> None:
    services = APPS[args.app][1]
    cls = services[args.service]
    rt = Runtime(args.service, Store(args.store), Flags.from_env(), make_invoker(args.ingress))
    svc = cls(rt)
    svc.populate()
    methods = cls.methods()
    # Bounded like the paper's workers per pod: more concurrent calls queue for a slot.
    slots = threading.BoundedSemaphore(args.workers)

    class H(Handler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self.reply_json(200, {"service": args.service})
            elif self.path == "/stats":
                self.reply_json(200, dataclasses.asdict(rt.stats))
            else:
                self.reply_json(404, {"error": f"no {self.path}"})

        def do_POST(self) -> None:
            name = self.path.strip("/")
            try:
                body = json.loads(self.body() or b"{}")
                if name in ("_commit", "_abort"):
                    rt.finish_local(body["txn"], commit=name == "_commit")
                    self.reply_json(200, {"result": None})
                    return
                if name not in methods:
                    self.reply_json(404, {"error": f"{args.service} has no method {name!r}"})
                    return
                with slots:
                    answer = rt.handle(getattr(svc, name), body)
                self.reply_json(200, answer)
            except Exception as e:  # the caller sees the failure, the service keeps serving
                self.reply_json(500, {"error": f"{e.__class__.__name__}: {e}"})

    server = Server((args.host, args.port), H)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--app", required=True, choices=sorted(APPS))
    ap.add_argument("--service", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--ingress", required=True, help="host:port of the ingress (LOAD_BALANCER_IP)")
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args(argv)
    if args.service not in APPS[args.app][1]:
        ap.error(f"--service: expected one of {', '.join(APPS[args.app][1])} for app {args.app}")
    serve(args)


if __name__ == "__main__":
    main()
