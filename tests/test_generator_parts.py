"""The built-in generator's parts that need no server: histogram batching, request bytes, kind draws."""

from __future__ import annotations

import json
import random
from urllib.parse import urlsplit

import httptools

from benchpipe.generators.openloop import HIST_MAX_US, Recorder, new_histogram
from benchpipe.generators.request_bytes import StaticRequests, source_for
from benchpipe.model import Mix


def test_recorder_gives_the_histogram_recording_each_value_gives():
    rng = random.Random(7)
    values = [rng.lognormvariate(-7, 3) for _ in range(50_000)]
    values += [0.0, 1e-7, 0.002047, 0.002048, 0.0040961, 1.0, 3600.0, 1e6]  # edges and clipping
    rec, direct = Recorder(), new_histogram()
    for i, v in enumerate(values):
        rec.pending.append(v)
        direct.record_value(min(max(int(v * 1e6), 1), HIST_MAX_US))
        if i % 9999 == 0:
            rec.fold()  # folding in several batches adds up
    assert rec.histogram().encode() == direct.encode()


def parse(raw: bytes) -> dict:
    got: dict = {"headers": {}, "body": b""}

    class P:
        def on_url(self, url: bytes) -> None:
            got["url"] = url

        def on_header(self, name: bytes, value: bytes) -> None:
            got["headers"][name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            got["body"] += body

        def on_message_complete(self) -> None:
            got["complete"] = True

    parser = httptools.HttpRequestParser(P())
    parser.feed_data(raw)
    got["method"] = parser.get_method()
    return got


def test_request_bytes_are_one_complete_post_under_the_target_path():
    mix = Mix.from_config([{"name": "s", "weight": 1, "path": "/asyncFunction/gw", "body": {"Input": "é"}}])
    src = source_for(urlsplit("http://10.0.0.5:8080/base/"), mix, random.Random(1))
    kind, raw = src.next()
    req = parse(raw + raw)  # two back to back: Content-Length delimits the first exactly
    assert kind == 0 and src.names == ["s"]
    assert req["method"] == b"POST" and req["url"] == b"/base/asyncFunction/gw" and req["complete"]
    assert req["headers"]["host"] == "10.0.0.5:8080"
    assert req["headers"]["content-type"] == "application/json"
    assert req["body"] == b'{"Input": "\\u00e9"}' * 2


def test_kinds_drawn_by_weight_and_each_kind_has_its_own_bytes():
    mix = Mix.from_config([{"name": n, "weight": w, "path": f"/{n}", "body": {}} for n, w in (("a", 3), ("b", 1))])
    src = StaticRequests(urlsplit("http://h:1"), mix, random.Random(5))
    draws = [src.next() for _ in range(20_000)]
    share_a = sum(1 for k, _ in draws if k == 0) / len(draws)
    assert abs(share_a - 0.75) < 4 * (0.75 * 0.25 / len(draws)) ** 0.5
    assert {raw.split(b" ")[1] for _, raw in draws} == {b"/a", b"/b"}
    assert all(raw.split(b" ")[1] == f"/{src.names[k]}".encode() for k, raw in draws[:100])


def test_alarm_fires_at_the_earliest_instant_set_and_not_before():
    import asyncio
    import time

    import uvloop

    from benchpipe.generators.alarm import Alarm

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        alarm = Alarm(loop, lambda: fired.append(time.perf_counter()))
        assert alarm.fd >= 0  # Linux: the timerfd, not the loop's millisecond timers
        target = time.perf_counter() + 0.0123
        alarm.set(target + 1.0)
        alarm.set(target)  # earlier: replaces the first
        alarm.set(target + 0.5)  # later: changes nothing
        await asyncio.sleep(0.3)
        alarm.close()
        return [f - target for f in fired]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        late = runner.run(main())
    assert len(late) == 1 and 0 <= late[0] < 0.05, late


def test_a_templated_kind_gets_a_fresh_complete_request_each_time_and_a_static_kind_its_bytes():
    mix = Mix.from_config(
        [
            {
                "name": "t",
                "weight": 1,
                "path": "/t",
                "body": {"req_id": "${id}", "n": "${n}"},
                "vars": {"id": {"uuid": 4}, "n": {"int": [1, 9]}},
            },
            {"name": "s", "weight": 1, "path": "/s", "body": {"x": 1}},
        ]
    )
    src = source_for(urlsplit("http://h:1"), mix, random.Random(3))
    bodies: dict[int, list[bytes]] = {0: [], 1: []}
    for _ in range(200):
        kind, raw = src.next()
        req = parse(raw)
        assert req["complete"] and int(req["headers"]["content-length"]) == len(req["body"])
        bodies[kind].append(req["body"])
    drawn = [json.loads(b) for b in bodies[0]]
    assert len({d["req_id"] for d in drawn}) == len(drawn) > 50  # a fresh uuid per request
    assert {type(d["n"]) for d in drawn} == {int} and {d["n"] for d in drawn} <= set(range(1, 10))
    assert set(bodies[1]) == {b'{"x": 1}'}
