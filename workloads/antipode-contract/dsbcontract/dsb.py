"""yg397/social-network-microservices:antipode: the service binaries as the compose file starts
them (no arguments; ZONE, MASTER and ANTIPODE where upstream sets them), each on its Thrift port
9090 (JSON-lines RPC here). The compose-post path does its work for real:

  ComposePostService  _ComposeAndUpload: StorePost on post-storage-service-eu, then
                      _UploadHomeTimelineHelper: publish the notification to write-home-timeline-rabbitmq-eu
  PostStorageService  (MASTER=1) StorePost: insert into post-storage-mongodb-eu (the rs0 primary),
                      the post carrying its lineage (the request's context) when ANTIPODE=1
  WriteHomeTimelineService (ZONE=us) FanoutHomeTimelines: consume from write-home-timeline-rabbitmq-us;
                      with ANTIPODE=1 first the barrier (poll post-storage-mongodb-us until the
                      lineage is visible), then one read there: consistency_bool = found

with the span tags upstream's gather reads (poststorage_post_written_ts, poststorage_read_notification_ts
in ms since the epoch; consistency_bool; wht_* timings)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from dsbcontract.common import (
    Client,
    Tracer,
    env_choice,
    forever,
    listen_only,
    log,
    new_id,
    now_ms,
    now_us,
    refuse,
    serve,
    stream,
)

BINARIES = {
    "SocialGraphService", "WriteHomeTimelineService", "HomeTimelineService", "PostStorageService",
    "ComposePostService", "UniqueIdService", "TextService", "UserTimelineService", "UrlShortenService",
    "UserMentionService", "UserService", "MediaService", "AntipodeOracle",
}  # fmt: skip
ZONED = {"WriteHomeTimelineService", "PostStorageService", "ComposePostService"}  # upstream sets ZONE on these
SWITCHED = {"WriteHomeTimelineService", "PostStorageService"}  # ANTIPODE reaches these (maestro run -antipode)


def _antipode(name: str) -> bool:
    v = os.environ.get("ANTIPODE")
    if v is None:
        return False
    if name not in SWITCHED:
        refuse(
            f"{name}: ANTIPODE is set here, but upstream switches only PostStorageService and WriteHomeTimelineService"
        )
    return env_choice("ANTIPODE", ("0", "1")) == "1"


def compose_post() -> None:
    tracer = Tracer("compose-post-service")
    storage = Client("post-storage-service-eu", 9090)
    queue = Client("write-home-timeline-rabbitmq-eu", 5672)
    counter = [0]
    lock = threading.Lock()

    def handle(m: str, a: dict[str, Any], conn: Any) -> Any:
        if m == "ping":
            return "pong"
        if m != "ComposePost":
            raise RuntimeError(f"ComposePostService has no method {m}")
        trace, parent = a["trace_id"], a["span_id"]
        t0 = now_us()
        with lock:
            counter[0] += 1
            post_id = int(time.time() * 1000) * 1000 + counter[0] % 1000
        compose_span = new_id()
        post = {"_id": str(post_id), "user_id": a["user_id"], "username": a["username"], "text": a["text"],
                "post_type": a["post_type"], "timestamp": now_ms()}  # fmt: skip
        lineage = storage.call("StorePost", post=post, trace_id=trace, span_id=compose_span)
        t1 = now_us()
        upload_span = new_id()
        queue.call(
            "publish", body={"post_id": str(post_id), "trace_id": trace, "span_id": upload_span, "lineage": lineage}
        )
        tracer.emit(
            trace, upload_span, compose_span, "_UploadHomeTimelineHelper", t1, {"wht_start_queue_ts": str(now_ms())}
        )
        tracer.emit(trace, compose_span, parent, "_ComposeAndUpload", t0, {"composepost_id": str(post_id)})
        return True

    serve(9090, handle, "ComposePostService")


def post_storage(zone: str, master: str, antipode: bool) -> None:
    tracer = Tracer(f"post-storage-service-{zone}")
    db = Client(f"post-storage-mongodb-{zone}", 27017)

    def handle(m: str, a: dict[str, Any], conn: Any) -> Any:
        if m == "ping":
            return "pong"
        if m != "StorePost":
            raise RuntimeError(f"PostStorageService has no method {m}")
        if master != "1":
            raise RuntimeError("StorePost on a MASTER=0 post-storage-service")
        t0 = now_us()
        post = dict(a["post"])
        if antipode:
            post["lineage"] = a["trace_id"]  # the write's context, which the barrier waits for
        db.call("insert", coll="post", doc=post)
        tracer.emit(
            a["trace_id"], new_id(), a["span_id"], "StorePost", t0, {"poststorage_post_written_ts": str(now_ms())}
        )
        return [{"coll": "post", "_id": post["_id"], "lineage": a["trace_id"]}] if antipode else []

    serve(9090, handle, "PostStorageService")


def write_home_timeline(zone: str, antipode: bool) -> None:
    listen_only(9090, "WriteHomeTimelineService")
    if zone != "us":
        return  # the writer region's fan-out reads nothing across regions: nothing to measure
    tracer = Tracer(f"write-home-timeline-service-{zone}")
    replica = Client(f"post-storage-mongodb-{zone}", 27017)

    def fanout(msg: dict[str, Any]) -> None:
        t0 = now_us()
        worker_ts = now_ms()
        start = time.perf_counter()
        if antipode:
            for dep in msg["lineage"]:  # the barrier: until every written object of the lineage is visible
                while True:
                    doc = replica.call("find", coll=dep["coll"], _id=dep["_id"])
                    if doc is not None and doc.get("lineage") == dep["lineage"]:
                        break
                    time.sleep(0.001)  # upstream spins; a poll per ms leaves the test bed's 2 cores usable
        waited_ms = (time.perf_counter() - start) * 1000
        read_ts = now_ms()
        r0 = time.perf_counter()
        found = replica.call("find", coll="post", _id=msg["post_id"]) is not None  # read once
        read_ms = (time.perf_counter() - r0) * 1000
        tracer.emit(msg["trace_id"], new_id(), msg["span_id"], "FanoutHomeTimelines", t0, {
            "wht_start_worker_ts": str(worker_ts), "poststorage_read_notification_ts": str(read_ts),
            "wht_antipode_duration": str(waited_ms), "consistency_mongoread_duration": str(read_ms),
            "consistency_bool": found,
        })  # fmt: skip

    def consume() -> None:
        try:
            for delivery in stream(f"write-home-timeline-rabbitmq-{zone}", 5672, "consume"):
                threading.Thread(target=fanout, args=(delivery["body"],), daemon=True).start()
        finally:
            log("lost the queue")
            os._exit(1)

    threading.Thread(target=consume, daemon=True).start()


def main() -> int:
    name = os.path.basename(sys.argv[0])
    if name not in BINARIES:
        refuse(f"{name}: not a binary of the image")
    if sys.argv[1:]:
        refuse(f"{name}: takes no arguments (its config is the image's service-config.json), got {sys.argv[1:]}")
    zone = env_choice("ZONE", ("eu", "us")) if name in ZONED else ""
    if name not in ZONED and "ZONE" in os.environ:
        refuse(f"{name}: ZONE is set, upstream sets it only on {', '.join(sorted(ZONED))}")
    antipode = _antipode(name)
    if name == "PostStorageService":
        master = env_choice("MASTER", ("0", "1"))
        if (zone == "eu") != (master == "1"):
            refuse(f"PostStorageService: ZONE={zone} with MASTER={master}: the writer region (eu) is the master")
        post_storage(zone, master, antipode)
    elif name == "ComposePostService":
        if zone != "eu":
            refuse("ComposePostService: ZONE=eu expected (posts are written in the writer region)")
        compose_post()
    elif name == "WriteHomeTimelineService":
        write_home_timeline(zone, antipode)
    else:
        listen_only(9090, name)
    log(f"{name} up (ZONE={zone or '-'}, ANTIPODE={int(antipode)})")
    forever()
    return 0
