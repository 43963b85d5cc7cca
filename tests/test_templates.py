"""Request body templates: fresh per request, the same parts and distributions in Python and Lua."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from benchpipe.errors import ConfigError
from benchpipe.experiment import load_experiment
from benchpipe.generators.templates import (
    MixTemplates,
    body_function,
    compile_kind,
    number_text,
    resolve_data_files,
)
from benchpipe.generators.wrk2 import render_lua
from benchpipe.model import Mix
from benchpipe.validation import validate

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


# -- the features the Halfmoon bodies need, on the experiment files' own mixes ----------------------
REPO = Path(__file__).resolve().parent.parent
HM = REPO / "config/experiments/halfmoon"


def hm_mix(name: str, kinds: list[str] | None = None) -> Mix:
    exp = load_experiment(HM / f"{name}.yaml")
    mix = resolve_data_files(exp.data["workload"]["mix"], {"halfmoon_movie_data": MOVIE_DATA}, "test")
    mix = [m for m in mix if kinds is None or m["name"] in kinds]
    return Mix.from_config(mix, default_path=exp.data["workload"]["path"])


MOVIE_DATA = "workloads/standin/data/movie_data.json"


def check_hotel(kind: str, inp: dict) -> tuple:
    """The parameters of one hotel request, checked against the fact sheet's ranges; its draws."""
    assert inp["Function"] == kind
    p = inp["Input"]
    if kind in ("search", "recommend"):
        assert isinstance(p["Lat"], int | float) and isinstance(p["Lon"], int | float)  # JSON numbers, not strings
        lat_k = (p["Lat"] - 38.0235) * 1000 + 240.5
        lon_k = (p["Lon"] + 122.095) * 1000 + 157.0
        assert abs(lat_k - round(lat_k)) < 1e-6 and 0 <= round(lat_k) <= 481
        assert abs(lon_k - round(lon_k)) < 1e-6 and 0 <= round(lon_k) <= 325
    if kind == "search":
        assert re.fullmatch(r"2015-04-\d\d", p["InDate"]) and re.fullmatch(r"2015-04-\d\d", p["OutDate"])
        d_in, d_out = int(p["InDate"][-2:]), int(p["OutDate"][-2:])
        assert 9 <= d_in <= 23 and d_in < d_out <= 24
        return (d_in, d_out, round(lat_k), round(lon_k))
    if kind == "recommend":
        assert p["Require"] in ("dis", "rate", "price")
        return (p["Require"],)
    if kind == "user":
        uid = int(p["Username"].removeprefix("Cornell_"))
        assert 0 <= uid <= 500 and p["Password"] == str(uid) * 10
        return (uid,)
    assert p["userId"] == "user1" and isinstance(p["hotelId"], str) and isinstance(p["flightId"], str)
    assert 0 <= int(p["hotelId"]) <= 99 and 0 <= int(p["flightId"]) <= 99
    return (int(p["hotelId"]), int(p["flightId"]))


def test_hotel_bodies_in_python_follow_the_fact_sheet():
    t = MixTemplates(hm_mix("hotel"))
    rng = random.Random(5)
    seen: dict[str, list] = {k: [] for k in ("search", "recommend", "user", "reserve")}
    for _ in range(20_000):
        kind, path, body = t.draw(rng)
        assert path == "/asyncFunction/gateway"
        b = json.loads(body)
        assert (b["InstanceId"], b["CallerName"], b["Async"]) == ("", "", True)
        seen[kind].append(check_hotel(kind, b["Input"]))
    assert 0.88 < len(seen["search"]) / 20_000 < 0.92 and 0.08 < len(seen["user"]) / 20_000 < 0.10
    # Every day pair the dependent bound allows, and both ends of the position ranges, come up.
    assert {(i, o) for i, o, _, _ in seen["search"]} == {(i, o) for i in range(9, 24) for o in range(i + 1, 25)}
    assert {la for _, _, la, _ in seen["search"]} >= {0, 481} and {lo for *_, lo in seen["search"]} >= {0, 325}


def test_a_var_is_drawn_after_the_vars_it_uses_whatever_order_a_writer_gives():
    sorted_keys = {
        "lat": {"expr": "1 + ${lat_step} / 10"},
        "lat_step": {"int": [0, 9]},
        "out": {"int": ["${in} + 1", 5]},
    }
    t = compile_kind("k", {"a": "${lat}", "o": "${out}"}, {**sorted_keys, "in": {"int": [0, 4]}})
    assert [v.name for v in t.vars] == ["lat_step", "lat", "in", "out"]
    rng = random.Random(2)
    for _ in range(200):
        b = json.loads(t.render(rng))
        assert 1 <= b["a"] <= 1.9 and 1 <= b["o"] <= 5


def test_numbers_are_written_as_lua_writes_them():
    assert number_text(38.0235 + (0 - 240.5) / 1000.0) == "37.783"
    assert number_text(-122.095 + (325 - 157.0) / 1000.0) == "-121.927"
    assert number_text(38.0) == "38" and number_text(7) == "7" and number_text(0.1 + 0.2) == "0.3"


@pytest.mark.parametrize(
    ("vars_", "message"),
    [
        ({"a": {"expr": "${c} + 1"}, "b": {"int": [0, 1]}}, r"vars.a: \$\{c\} is not one of the entry's vars"),
        ({"a": {"expr": "${b} + 1"}, "b": {"int": [0, "${a}"]}}, r"vars: a, b depend on each other"),
        ({"a": {"expr": "2 ** 3"}}, r"vars.a.expr: expected numbers, \$\{var\}s, \+ - \* / and parentheses"),
        ({"a": {"choice": ["x"]}, "b": {"int": [0, "${a}"]}}, r"vars.b.int: \$\{a\} is not a number"),
        ({"a": {"choice": ["x"], "pad": 2}}, r"vars.a.pad: expected a number of digits >= 0 on an int or expr"),
        ({"a": {"repeat": "z", "times": 3}}, r"vars.a: \$\{z\} is not one of the entry's vars"),
        ({"z": {"int": [0, 1]}, "a": {"repeat": "z", "times": -1}}, r"vars.a: expected repeat: <another var"),
        ({"a": {"choice_file": "workloads/standin/data/movie_data.json", "field": "Nope"}}, r"has no string or"),
        ({"a": {"choice": [[1]]}}, r"vars.a.choice: expected strings or numbers"),
    ],
)
def test_bad_new_vars_name_the_key(vars_, message):
    with pytest.raises(ConfigError, match=message):
        compile_kind("k", {"v": "${a}"}, vars_)


def test_movie_titles_come_from_the_configured_data_file_in_file_order(tmp_path):
    records = json.loads((REPO / MOVIE_DATA).read_text())
    t = MixTemplates(hm_mix("movie")).templates["Compose"]
    title = next(v for v in t.vars if v.name == "title")
    assert list(title.values) == [r["Title"] for r in records]  # duplicates kept: drawn as often as upstream
    # The same records, one per line, give the same list.
    lines = tmp_path / "lines.json"
    lines.write_text("\n".join(json.dumps(r) for r in records))
    assert list(
        compile_kind("k", {"t": "${t}"}, {"t": {"choice_file": str(lines), "field": "Title"}}).vars[0].values
    ) == [r["Title"] for r in records]
    body = json.loads(MixTemplates(hm_mix("movie")).body("Compose", random.Random(1)))
    p = body["Input"]["Input"]
    assert body["Input"]["Function"] == "Compose" and isinstance(p["Rating"], int) and 0 <= p["Rating"] <= 10
    u = int(p["Username"].removeprefix("username_"))
    assert p["Password"] == f"password_{u}" and 0 <= u <= 999 and len(p["Text"]) == 256 and p["Title"] in title.values


def test_the_movie_data_file_is_a_configuration_key_with_a_clear_error_when_missing():
    from benchpipe.pointspec import point_spec

    exp = load_experiment(HM / "movie.yaml")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config = validate(config, "config.schema.yaml", "config")
    point = exp.all_points()[0]
    spec = point_spec(config, exp, point)
    assert spec["workload"]["data_files"] == {"halfmoon_movie_data": MOVIE_DATA}
    assert spec["workload"]["mix"][0]["vars"]["title"]["choice_file"] == MOVIE_DATA
    with pytest.raises(ConfigError, match=r"config: data_files.halfmoon_movie_data: expected the path of a file"):
        point_spec({**config, "data_files": {"halfmoon_movie_data": ""}}, exp, point)
    with pytest.raises(ConfigError, match=r"config: data_files.halfmoon_movie_data: expected a readable file"):
        point_spec({**config, "data_files": {"halfmoon_movie_data": "no/such/compressed.json"}}, exp, point)
    aws = yaml.safe_load((REPO / "profiles/aws/aws.yaml").read_text())
    assert aws["data_files"]["halfmoon_movie_data"] == ""  # the real path: the user supplies the artifact's file


def run_lua(tmp_path: Path, mix: Mix, n: int, seed: int = 3, threads: int = 1) -> list[tuple[str, str]]:
    """The wrk2 script under a real Lua interpreter with a stand-in `wrk`: setup() and init() per
    thread as wrk calls them, then `n` request() calls per thread; (path, body) per request."""
    lua = render_lua(mix, seed=seed)
    harness = lua.replace(
        "wrk.method", "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return p .. ' ' .. b end\nwrk.method", 1
    )
    script = tmp_path / "t.lua"
    script.write_text(harness)
    out = []
    for t in range(1, threads + 1):
        # Each wrk thread is its own Lua state: one interpreter run per thread.
        driver = tmp_path / f"d{t}.lua"
        driver.write_text(
            f"local t = {{}}\nfunction t:set(k, v) _G[k] = v end\n"
            f"dofile({json.dumps(str(script))})\nfor i = 1, {t} do setup(t) end\ninit({{}})\n"
            f"for i = 1, {n} do io.write(request(), '\\n') end\n"
        )
        text = subprocess.run([LUA, str(driver)], capture_output=True, text=True, check=True).stdout
        out += [tuple(line.split(" ", 1)) for line in text.splitlines()]
    return out


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_lua_and_python_draw_the_hotel_bodies_from_the_same_distributions(tmp_path):
    n = 4000
    for kind in ("search", "recommend", "user", "reserve"):
        mix = hm_mix("hotel", [kind])
        lua = [check_hotel(kind, json.loads(body)["Input"]) for _, body in run_lua(tmp_path, mix, n)]
        t, rng = MixTemplates(mix), random.Random(9)
        py = [check_hotel(kind, json.loads(t.body(kind, rng))["Input"]) for _ in range(n)]
        assert len(set(lua)) > 1  # fresh values per request
        for i in range(len(py[0])):
            a, b = Counter(x[i] for x in lua), Counter(x[i] for x in py)
            if len(b) <= 3:  # a choice: the same frequencies (0.33 / 0.33 / 0.34 for Require)
                for v in b:
                    assert abs(a[v] - b[v]) / n < 0.035, (kind, i, v, a, b)
            else:  # a range: the same support and mean
                mean_a, mean_b = sum(x[i] for x in lua) / n, sum(x[i] for x in py) / n
                spread = max(b) - min(b)
                assert abs(mean_a - mean_b) < 0.03 * spread, (kind, i, mean_a, mean_b)
                assert min(a) == min(b) and max(a) == max(b), (kind, i)


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_lua_writes_the_same_number_text_as_python(tmp_path):
    script = tmp_path / "n.lua"
    script.write_text(
        "for k = 0, 481 do print(tostring(38.0235 + (k - 240.5) / 1000.0)) end\n"
        "for k = 0, 325 do print(tostring(-122.095 + (k - 157.0) / 1000.0)) end\n"
    )
    lua = subprocess.run([LUA, str(script)], capture_output=True, text=True, check=True).stdout.split()
    py = [number_text(38.0235 + (k - 240.5) / 1000.0) for k in range(482)]
    py += [number_text(-122.095 + (k - 157.0) / 1000.0) for k in range(326)]
    assert lua == py  # the upstream script's tostring() and benchpipe's rendering, draw for draw


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_wrk2_script_draws_fresh_values_per_request_and_seeds_each_thread(tmp_path):
    mix = hm_mix("retwis")
    one = run_lua(tmp_path, mix, 3000, seed=3, threads=2)
    again = run_lua(tmp_path, mix, 3000, seed=3, threads=2)
    assert one == again  # seeded in init(): a run is reproducible
    first, second = one[:3000], one[3000:]
    assert first != second  # ... and the two threads do not repeat each other's draws
    paths = Counter(p for p, _ in first)
    for path, share in {
        "/asyncFunction/login": 0.05,
        "/asyncFunction/timeline": 0.8,
        "/asyncFunction/post": 0.1,
    }.items():
        assert abs(paths[path] / 3000 - share) < 0.03, paths
    names = {"/asyncFunction/login": "Login", "/asyncFunction/profile": "Profile"}
    names |= {"/asyncFunction/timeline": "Timeline", "/asyncFunction/post": "Post"}
    ids = set()
    for path, body in first:
        b = json.loads(body)
        assert b["Input"]["Function"] == names[path]
        ids.add(int(b["Input"]["Input"]["Username"].removeprefix("user")))
    assert min(ids) >= 0 and max(ids) <= 10000 and len(ids) > 2000


@pytest.mark.skipif(not LUA, reason="no Lua interpreter")
def test_lua_movie_titles_are_the_data_files_titles(tmp_path):
    records = json.loads((REPO / MOVIE_DATA).read_text())
    titles = {r["Title"] for r in records}
    bodies = [json.loads(b)["Input"]["Input"] for _, b in run_lua(tmp_path, hm_mix("movie"), 3000)]
    assert {b["Title"] for b in bodies} <= titles and len({b["Title"] for b in bodies}) > 800
    assert all(isinstance(b["Rating"], int) and 0 <= b["Rating"] <= 10 and len(b["Text"]) == 256 for b in bodies)
