"""Request body templates: fresh per request, the same parts and distributions in Python and Lua."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import uuid

import pytest

from benchpipe.errors import ConfigError
from benchpipe.generators.templates import MixTemplates, body_function, compile_kind
from benchpipe.generators.wrk2 import render_lua
from benchpipe.model import Mix

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MEDIA = {
    "name": "media",
    "weight": 1,
    "path": "/frontend/compose",
    "vars": {
        "i": {"int": [0, 99]},
        "title": {"choice": ["A", 'B "quoted"', "C"], "weights": [1, 0, 3]},
        "rating": {"int": [0, 10]},
        "text": {"chars": 12, "alphabet": "xyz"},
        "req_id": {"uuid": 4},
    },
    "body": {"args": ["username_${i}", "password_${i}", "${title}", "${rating}", "${text}"], "req_id": "${req_id}"},
}
HOTEL = {
    "name": "hotel",
    "weight": 1,
    "path": "/frontend/req",
    "vars": {"user": {"int": [0, 99], "string": True}, "req_id": {"uuid": 4}},
    "body": {"args": ["${user}"], "req_id": "${req_id}"},
}


def check_media(body: dict) -> None:
    args = body["args"]
    i = int(args[0].removeprefix("username_"))
    assert 0 <= i <= 99 and args[1] == f"password_{i}"
    assert args[2] in ("A", "C")  # weight 0 never drawn
    assert isinstance(args[3], int) and 0 <= args[3] <= 10  # a whole ${rating} stays a number
    assert len(args[4]) == 12 and set(args[4]) <= set("xyz")
    assert UUID.match(body["req_id"])


def test_python_bodies_are_fresh_and_follow_the_distributions():
    mix = Mix.from_config([MEDIA, HOTEL])
    body = body_function(mix, random.Random(1))
    media = [json.loads(body("media")) for _ in range(2000)]
    for b in media:
        check_media(b)
    assert len({b["req_id"] for b in media}) == 2000
    assert {int(b["args"][0].removeprefix("username_")) for b in media} == set(range(100))
    assert sum(b["args"][2] == "C" for b in media) > 2000 * 0.7  # weights 1:3
    hotel = json.loads(body("hotel"))
    assert isinstance(hotel["args"][0], str) and hotel["args"][0].isdigit()  # string: true


def test_same_seed_same_fields_but_never_the_same_request_id():
    mix = Mix.from_config([MEDIA])
    a = [json.loads(body_function(mix, random.Random(7))("media")) for _ in range(1)]
    b = [json.loads(body_function(mix, random.Random(7))("media")) for _ in range(1)]
    assert a[0]["args"] == b[0]["args"]
    assert a[0]["req_id"] != b[0]["req_id"]  # a warm-up and a measurement must not share ids


def test_static_bodies_are_unchanged_and_draw_picks_by_weight():
    mix = Mix.from_config([{"name": "s", "weight": 1, "path": "/x", "body": {"F": "a", "n": [1, 2]}}, HOTEL])
    t = MixTemplates(mix)
    assert t.body("s", random.Random(1)) == json.dumps({"F": "a", "n": [1, 2]}, separators=(",", ":")).encode()
    kinds = [t.draw(random.Random(i))[0] for i in range(400)]
    assert 120 < kinds.count("s") < 280


@pytest.mark.parametrize(
    ("vars_", "body", "message"),
    [
        ({"v": {"int": [5, 1]}}, {"a": "${v}"}, r"workload.mix.k.vars.v.int: expected \[lo, hi\]"),
        ({"v": {"dice": 6}}, {"a": "${v}"}, r"workload.mix.k.vars.v: expected a mapping with exactly one of"),
        ({"v": {"uuid": 1}}, {"a": "${v}"}, r"workload.mix.k.vars.v.uuid: expected 4"),
        ({"v": {"choice": [1, 2], "weights": [1]}}, {"a": "${v}"}, r"vars.v.weights: expected 2 numbers"),
        ({"v": {"choice_file": "no/such/file"}}, {"a": "${v}"}, r"vars.v.choice_file: expected a readable file"),
        ({}, {"a": "${w}"}, r"workload.mix.k.body: \$\{w\} is not one of the entry's vars"),
    ],
)
def test_bad_templates_name_the_key(vars_, body, message):
    with pytest.raises(ConfigError, match=message):
        compile_kind("k", body, vars_)


LUA = shutil.which("luajit") or shutil.which("lua5.1")


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_lua_renders_the_same_template(tmp_path):
    """wrk2's script (run by a Lua interpreter with a stand-in `wrk`) draws bodies of the same shape
    and ranges as the Python renderer, with fresh UUIDs per thread."""
    mix = Mix.from_config([MEDIA, HOTEL])
    lua = render_lua(mix, seed=3)
    harness = lua.replace(
        "wrk.method", "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return p .. ' ' .. b end\nwrk.method", 1
    )
    # Two wrk threads: setup() gives each an id, init() seeds its UUIDs.
    harness += "\n".join(
        [
            "local t = {vars = {}}",
            "function t:set(k, v) thread_id = v end",
            "setup(t)",
            "init({})",
            "for i = 1, 2000 do print(request()) end",
        ]
    )
    (tmp_path / "t.lua").write_text(harness)
    out = subprocess.run([LUA, str(tmp_path / "t.lua")], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2000
    py = body_function(mix, random.Random(1))
    ids = set()
    paths = {"media": 0, "hotel": 0}
    for line in lines:
        path, _, text = line.partition(" ")
        body = json.loads(text)
        ids.add(body["req_id"])
        if path == "/frontend/compose":
            paths["media"] += 1
            check_media(body)
            reference = json.loads(py("media"))
        else:
            assert path == "/frontend/req"
            paths["hotel"] += 1
            reference = json.loads(py("hotel"))
            assert UUID.match(body["req_id"])
        # Same structure as Python's: keys, argument count and each argument's JSON type.
        assert sorted(body) == sorted(reference)
        assert [type(a) for a in body["args"]] == [type(a) for a in reference["args"]]
    assert len(ids) == 2000
    assert 800 < paths["media"] < 1200
    uuid.UUID(next(iter(ids)))


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_lua_escapes_quotes_in_choices(tmp_path):
    mix = Mix.from_config(
        [{"name": "q", "weight": 1, "path": "/", "vars": {"t": {"choice": ['say "hi"\\']}}, "body": {"a": "${t}!"}}]
    )
    harness = render_lua(mix).replace(
        "wrk.method", "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return b end\nwrk.method", 1
    )
    harness += "\nprint(request())\n"
    (tmp_path / "q.lua").write_text(harness)
    out = subprocess.run([LUA, str(tmp_path / "q.lua")], capture_output=True, text=True, check=True).stdout.strip()
    assert json.loads(out) == {"a": 'say "hi"\\!'}
    assert json.loads(MixTemplates(mix).body("q", random.Random(1))) == {"a": 'say "hi"\\!'}


COMPOSE_FORM = {  # DeathStarBench's compose-post as a form (its nginx reads POST arguments)
    "name": "compose",
    "weight": 1,
    "path": "/wrk2-api/post/compose",
    "encoding": "form",
    "vars": {"u": {"int": [1, 9]}, "text": {"chars": 40, "alphabet": "a &=+%"}},
    "body": {"username": "username_${u}", "user_id": "${u}", "text": "${text}", "media_ids": "[]", "post_type": 0},
}


def _form_fields(body: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    assert len(pairs) == len({k for k, _ in pairs})
    return dict(pairs)


def check_compose(fields: dict[str, str]) -> None:
    assert list(fields) == ["username", "user_id", "text", "media_ids", "post_type"]
    assert fields["username"] == f"username_{fields['user_id']}" and 1 <= int(fields["user_id"]) <= 9
    assert len(fields["text"]) == 40 and set(fields["text"]) <= set("a &=+%")
    assert fields["media_ids"] == "[]" and fields["post_type"] == "0"


def test_form_bodies_are_urlencoded_fields_drawn_per_request():
    mix = Mix.from_config([COMPOSE_FORM])
    assert mix.kinds[0].content_type == "application/x-www-form-urlencoded"
    py = body_function(mix, random.Random(2))
    bodies = [py("compose") for _ in range(50)]
    assert len(set(bodies)) == 50  # fresh text each time, with & = + % escaped so fields stay whole
    for b in bodies:
        check_compose(_form_fields(b))
    static = Mix.from_config([{**COMPOSE_FORM, "vars": {}, "body": {"a": "x y", "b": 1}}])
    assert body_function(static, random.Random(1))("compose") == b"a=x+y&b=1"


def test_form_requests_carry_their_content_type():
    from urllib.parse import urlsplit

    from benchpipe.generators.request_bytes import source_for

    for entry in (COMPOSE_FORM, {**COMPOSE_FORM, "vars": {}, "body": {"a": "x y"}}):
        _, raw = source_for(urlsplit("http://h:1"), Mix.from_config([entry]), random.Random(1)).next()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Content-Type: application/x-www-form-urlencoded\r\n" in head
        assert f"Content-Length: {len(body)}".encode() in head
    lua = render_lua(Mix.from_config([COMPOSE_FORM]))
    assert 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"' in lua
    mixed = render_lua(Mix.from_config([COMPOSE_FORM, HOTEL]))
    assert "wrk.headers" not in mixed and '{ ["Content-Type"] = "application/json" }' in mixed


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_lua_renders_the_same_form(tmp_path):
    lua = render_lua(Mix.from_config([COMPOSE_FORM]), seed=4)
    harness = lua.replace(
        "wrk.method", "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return b end\nwrk.method", 1
    )
    harness += "\nfor i = 1, 500 do print(request()) end\n"
    (tmp_path / "t.lua").write_text(harness, encoding="utf-8")
    out = subprocess.run([LUA, str(tmp_path / "t.lua")], capture_output=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 500 and len(set(lines)) == 500
    for line in lines:
        check_compose(_form_fields(line))
