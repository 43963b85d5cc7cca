"""yg397/openresty-thrift (nginx-thrift, nginx-thrift-us) and yg397/media-frontend: openresty as the
compose file starts it (`openresty -g 'daemon off;'`), refusing when a mounted file or folder is
missing. nginx-thrift serves the pages (GET / is the index page) and POST /wrk2-api/post/compose
with compose.lua's form fields, each call a root span '/wrk2-api/post/compose' (service
nginx-web-server) and a ComposePost call to compose-post-service:9090."""

from __future__ import annotations

import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dsbcontract.common import Client, Tracer, forever, log, new_id, now_us, own_address, refuse

NGINX = "/usr/local/openresty/nginx"
THRIFT_MOUNTS = {  # the compose file's volumes: target -> kind
    f"{NGINX}/lua-scripts": "dir", f"{NGINX}/pages": "dir", f"{NGINX}/conf/nginx.conf": "file",
    f"{NGINX}/jaeger-config.json": "file", "/gen-lua": "dir",
}  # fmt: skip
MEDIA_MOUNTS = {f"{NGINX}/lua-scripts": "dir", f"{NGINX}/conf/nginx.conf": "file"}
FIELDS = ("username", "user_id", "text", "media_ids", "media_types", "post_type")  # compose.lua's post args


def _check_mounts(mounts: dict[str, str]) -> None:
    for path, kind in mounts.items():
        ok = os.path.isdir(path) if kind == "dir" else os.path.isfile(path)
        if not ok:
            refuse(f"openresty: {path} is not a {kind} (mounted from the DeathStarBench folder, /code/app upstream)")


def main() -> int:
    if sys.argv[1:] != ["-g", "daemon off;"]:
        refuse(f"openresty: expected -g 'daemon off;' (foreground in a container), got {sys.argv[1:]}")
    media = os.path.exists("/media-frontend")
    _check_mounts(MEDIA_MOUNTS if media else THRIFT_MOUNTS)
    tracer = Tracer("nginx-web-server")
    compose = Client("compose-post-service", 9090)
    index = b""
    if not media and os.path.isfile(f"{NGINX}/pages/index.html"):
        with open(f"{NGINX}/pages/index.html", "rb") as f:
            index = f.read()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Kept alive (wrk2): headers and body in two writes would wait ~40 ms for the delayed ACK.
        disable_nagle_algorithm = True

        def reply(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html") and index:
                return self.reply(200, index)
            self.reply(404, b"not found")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if media or self.path != "/wrk2-api/post/compose":
                return self.reply(404, b"not found")
            if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
                return self.reply(400, b"compose.lua reads a form (ngx.req.get_post_args)")
            args = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
            missing = [f for f in FIELDS if not args.get(f)]
            if missing:
                return self.reply(400, f"Incomplete arguments: {', '.join(missing)}".encode())
            trace, span, t0 = new_id(), new_id(), now_us()
            trace = span  # a root span's id is its trace's
            try:
                compose.call("ComposePost", trace_id=trace, span_id=span, **{f: args[f] for f in FIELDS})
            except Exception as e:
                tracer.emit(trace, span, None, "/wrk2-api/post/compose", t0, {"error": True})
                return self.reply(500, str(e).encode())
            tracer.emit(trace, span, None, "/wrk2-api/post/compose", t0, {"http.status_code": 200})
            self.reply(200, b"Successfully upload post\n")

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer((own_address(), 8080), H)
    srv.daemon_threads = True
    log(f"openresty ({'media-frontend' if media else 'nginx-thrift'}) on {own_address()}:8080")
    srv.serve_forever()
    forever()
    return 0
