"""Golden tests of the load side of every Halfmoon point under the aws profile (59 points): the
generator's script and command line against expectations written from the fact sheet
(reference/halfmoon-real-services.md sections 5.2-5.4), not from benchpipe's own output.

A request kind, a body field, a weight, a path or a command-line flag the artifact has and the
rendered load lacks (or one it adds) fails a test here."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchpipe import registry
from benchpipe.experiment import load_experiment
from benchpipe.generators.templates import MixTemplates
from benchpipe.merge import deep_merge
from benchpipe.model import Mix
from benchpipe.pointspec import point_spec
from benchpipe.validation import validate

REPO = Path(__file__).resolve().parent.parent
HM = REPO / "config/experiments/halfmoon"
LUA = shutil.which("luajit") or shutil.which("lua5.1")
TARGET = "http://10.0.0.10:8080"  # the gateway machine's private address, as the client reaches it
MOVIE_DATA = "workloads/standin/data/movie_data.json"  # stands in for the artifact's compressed.json here

# --- the fact sheet ----------------------------------------------------------------------------------
POINTS = {"singleop": 4, "hotel": 16, "movie": 12, "retwis": 16, "overhead": 9, "switching": 2}
# section 5.3: warm-up and measurement -d per experiment (and baseline where they differ); -R the point's QPS
DURATIONS = {
    "singleop": (120, 600),
    "hotel": (30, 150),
    "movie": (30, 150),
    "retwis": (30, 150),
    "overhead": (120, 600),
}
DURATIONS_BY_BASELINE = {("singleop", "boki"): (40, 200)}
RATES = {
    "singleop": [15],
    "hotel": [100, 300, 500, 700],
    "movie": [100, 200, 300],
    "retwis": [100, 300, 500, 700],
    "overhead": [100],
}


def integer_in(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def steps(base: float, offset: float, hi: int) -> Callable[[Any], bool]:
    """base + (randint(0, hi) - offset) / 1000, a JSON number."""

    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        k = (v - base) * 1000 + offset
        return abs(k - round(k)) < 1e-6 and 0 <= round(k) <= hi

    return ok


def text(pattern: str) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None


def day(v: Any) -> bool:
    return text(r"2015-04-\d\d")(v)


LAT, LON = steps(38.0235, 240.5, 481), steps(-122.095, 157.0, 325)
TITLES = {r["Title"] for r in json.loads((REPO / MOVIE_DATA).read_text())}

# section 5.2: kind -> (weight, path, Function, {field: check}); a kind without Function has Input {}.
KINDS: dict[str, dict[str, tuple[float, str, str | None, dict[str, Callable[[Any], bool]]]]] = {
    "singleop": {"singleop": (1, "/asyncFunction/singleop", None, {})},
    "overhead": {"rw": (1, "/asyncFunction/rw", None, {})},
    "hotel": {
        "search": (
            0.9,
            "/asyncFunction/gateway",
            "search",
            {"Lat": LAT, "Lon": LON, "InDate": day, "OutDate": day},
        ),
        "recommend": (
            0.005,
            "/asyncFunction/gateway",
            "recommend",
            {"Require": lambda v: v in ("dis", "rate", "price"), "Lat": LAT, "Lon": LON},
        ),
        "user": (
            0.09,
            "/asyncFunction/gateway",
            "user",
            {"Username": text(r"Cornell_(\d|[1-9]\d|[1-4]\d\d|500)"), "Password": text(r"(\d+)")},
        ),
        "reserve": (
            0.005,
            "/asyncFunction/gateway",
            "reserve",
            {"userId": lambda v: v == "user1", "hotelId": text(r"\d|[1-9]\d"), "flightId": text(r"\d|[1-9]\d")},
        ),
    },
    "movie": {
        "Compose": (
            1,
            "/asyncFunction/Frontend",
            "Compose",
            {
                "Username": text(r"username_(\d|[1-9]\d{1,2})"),
                "Password": text(r"password_(\d|[1-9]\d{1,2})"),
                "Title": lambda v: v in TITLES,
                "Rating": integer_in(0, 10),
                "Text": text(r"[A-Za-z0-9]{256}"),
            },
        )
    },
    "retwis": {
        "Login": (
            0.05,
            "/asyncFunction/login",
            "Login",
            {"Username": text(r"user(\d{1,4}|10000)"), "Password": text(r"pwd(\d{1,4}|10000)")},
        ),
        "Profile": (0.05, "/asyncFunction/profile", "Profile", {"Username": text(r"user(\d{1,4}|10000)")}),
        "Timeline": (0.8, "/asyncFunction/timeline", "Timeline", {"Username": text(r"user(\d{1,4}|10000)")}),
        "Post": (
            0.1,
            "/asyncFunction/post",
            "Post",
            {"Username": text(r"user(\d{1,4}|10000)"), "Content": lambda v: v == ""},
        ),
    },
}


# Requests drawn per check: enough for the 0.5% kinds (25 expected in 5,000; none drawn: e^-25).
DRAWS = {"hotel": 5000, "retwis": 5000, "movie": 1000, "singleop": 200, "overhead": 200}


def check_shares(exp: str, seen: Counter[str], n: int) -> None:
    """Every kind of the artifact's mix came up, each about as often as its weight says."""
    assert set(seen) == set(KINDS[exp]), seen
    total = sum(w for w, *_ in KINDS[exp].values())
    for kind, (w, *_) in KINDS[exp].items():
        share = w / total
        assert abs(seen[kind] / n - share) < 4 * (share * (1 - share) / n) ** 0.5 + 0.002, (kind, seen)


def related(exp: str, kind: str, p: dict[str, Any]) -> None:
    """The fact sheet's relations between fields of one request."""
    if kind == "search":
        d_in, d_out = int(p["InDate"][-2:]), int(p["OutDate"][-2:])
        assert 9 <= d_in <= 23 and d_in < d_out <= 24, p
    if kind == "user":
        assert p["Password"] == p["Username"].removeprefix("Cornell_") * 10, p
    if kind == "Compose":
        assert p["Username"].removeprefix("username_") == p["Password"].removeprefix("password_"), p
    if kind == "Login":
        assert p["Username"].removeprefix("user") == p["Password"].removeprefix("pwd"), p


def check_request(exp: str, path: str, body: dict[str, Any]) -> str:
    """The kind of one rendered request, after checking it field by field; fails on any difference."""
    assert set(body) == {"InstanceId", "CallerName", "Async", "Input"}, body
    assert (body["InstanceId"], body["CallerName"], body["Async"]) == ("", "", True), body
    candidates = [
        k for k, (_, kpath, fn, _) in KINDS[exp].items() if kpath == path and fn == body["Input"].get("Function")
    ]
    assert len(candidates) == 1, (exp, path, body)
    kind = candidates[0]
    _, _, fn, fields = KINDS[exp][kind]
    if fn is None:
        assert body["Input"] == {}, body
        return kind
    assert set(body["Input"]) == {"Function", "Input"}, body
    p = body["Input"]["Input"]
    assert set(p) == set(fields), (kind, sorted(p), sorted(fields))
    for name, ok in fields.items():
        assert ok(p[name]), (kind, name, p[name])
    related(exp, kind, p)
    return kind


# --- the aws points ---------------------------------------------------------------------------------
def aws_config() -> dict[str, Any]:
    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    aws = yaml.safe_load((REPO / "profiles/aws/aws.yaml").read_text())
    config = validate(deep_merge(base, aws), "config.schema.yaml", "config + profiles/aws")
    config["data_files"] = {**config["data_files"], "halfmoon_movie_data": MOVIE_DATA}  # the user's file
    return config


def aws_points() -> list[dict[str, Any]]:
    config = aws_config()
    specs = []
    for name in POINTS:
        exp = load_experiment(HM / f"{name}.yaml", config["scale"], config["repetitions"])
        specs += [point_spec(config, exp, p) for p in exp.all_points()]
    return specs


SPECS = aws_points()


def load_plan(spec: dict[str, Any], label: str) -> tuple[str, str, list[str]]:
    """(script path, script, command line) of the point's warm-up or measurement, as the run stage makes them."""
    gen = registry.load("generator", spec["generator"]["name"])(
        {**spec["generator"]["settings"], "script_dir": f"/tmp/benchpipe/run/{spec['experiment']}/{spec['point']}"}
    )
    duration = spec["workload"]["warmup_s" if label == "warmup" else "measure_s"]
    mix = Mix.from_config(spec["workload"]["mix"], default_path=spec["workload"]["path"])
    if spec["generator"]["name"] == "closedloop":
        return "", "", gen.command(TARGET, duration, label)
    return gen.plan(TARGET, mix, spec["workload"]["rate"], duration, Path("/unused"), label)


def test_59_aws_points():
    assert Counter(s["experiment"] for s in SPECS) == POINTS
    assert len(SPECS) == 59


@pytest.mark.parametrize("spec", [s for s in SPECS if s["experiment"] != "switching"], ids=lambda s: s["point"])
def test_wrk2_command_line_per_point(spec):
    exp, qps = spec["experiment"], spec["params"]["qps"]
    assert spec["generator"]["name"] == "wrk2"
    assert qps in RATES[exp]
    warm, measure = DURATIONS_BY_BASELINE.get((exp, spec["baseline"]), DURATIONS[exp])
    for label, d in (("warmup", warm), ("measure", measure)):
        script, lua, argv = load_plan(spec, label)
        # /usr/local/bin/wrk -t 2 -c 2 -d <s> -L -U -s /tmp/workload.lua http://<ENTRY_HOST>:8080 -R <qps>
        expected = ["/usr/local/bin/wrk", "-t", "2", "-c", "2", "-d", str(d), "-L", "-U", "-s", script, TARGET]
        assert argv == [*expected, "-R", str(qps)], argv
        assert script.endswith(".lua") and "request = function()" in lua and "function init(" in lua
    assert spec["workload"]["pause_s"] == 10  # sleep 10 between the warm-up and the measurement


@pytest.mark.parametrize("exp", [e for e in POINTS if e != "switching"])
def test_every_point_of_an_experiment_renders_the_mix_of_the_fact_sheet(exp):
    specs = [s for s in SPECS if s["experiment"] == exp]
    scripts = {load_plan(s, "measure")[1] for s in specs}
    assert len(scripts) == 1  # one script for every point and baseline (the variants' files are identical)
    lua = scripts.pop()
    # The script's mix table: cumulative weights in the artifact's order, and each kind's path.
    table = re.findall(r'\{ ([\d.]+), "(/[^"]*)", ', lua)
    kinds = KINDS[exp]
    acc, expected = 0.0, []
    for weight, path, _, _ in kinds.values():
        acc += weight
        expected.append((acc / sum(w for w, *_ in kinds.values()), path))
    for (c, p), (ec, ep) in zip(table, expected, strict=True):
        assert float(c) == pytest.approx(ec, abs=1e-8) and p == ep
    # The Python rendering (the built-in generator) of the same mix: every kind, every field.
    spec = specs[0]
    t = MixTemplates(Mix.from_config(spec["workload"]["mix"], default_path=spec["workload"]["path"]))
    rng = random.Random(1)
    n = DRAWS[exp]
    seen = Counter(check_request(exp, path, json.loads(body)) for _, path, body in (t.draw(rng) for _ in range(n)))
    check_shares(exp, seen, n)


@pytest.mark.skipif(not LUA, reason="no Lua interpreter (apt-get install lua5.1)")
@pytest.mark.parametrize("exp", ["hotel", "movie", "retwis", "singleop", "overhead"])
def test_the_wrk2_script_sends_what_the_fact_sheet_says(tmp_path, exp):
    """The script itself, run by a Lua interpreter with a stand-in `wrk` (setup, init, request)."""
    spec = next(s for s in SPECS if s["experiment"] == exp)
    _, lua, _ = load_plan(spec, "measure")
    harness = lua.replace(
        "wrk.method", "wrk = {headers = {}}\nwrk.format = function(m, p, h, b) return p .. ' ' .. b end\nwrk.method", 1
    )
    harness += "\nlocal t = {}\nfunction t:set(k, v) _G[k] = v end\nsetup(t)\ninit({})\n"
    harness += f"for i = 1, {DRAWS[exp]} do io.write(request(), '\\n') end\n"
    (tmp_path / "w.lua").write_text(harness)
    out = subprocess.run([LUA, str(tmp_path / "w.lua")], capture_output=True, text=True, check=True).stdout
    seen = Counter()
    for line in out.splitlines():
        path, body = line.split(" ", 1)
        seen[check_request(exp, path, json.loads(body))] += 1
    check_shares(exp, seen, DRAWS[exp])


@pytest.mark.parametrize("spec", [s for s in SPECS if s["experiment"] == "switching"], ids=lambda s: s["point"])
def test_switching_client_command_lines(spec):
    c = spec["params"]["concurrency"]
    assert spec["generator"]["name"] == "closedloop" and c in (16, 40)
    assert load_plan(spec, "warmup")[2] == [
        "/tmp/switching/benchmark",
        "--faas_gateway=10.0.0.10:8080",
        "--concurrency=16",
        "--prewarm",
        "--duration=20",
        "--cycle=10",
        "--num_ops=10",
        "--read_ratios=0.2,0.8",
    ]
    assert load_plan(spec, "measure")[2] == [
        "/tmp/switching/benchmark",
        "--faas_gateway=10.0.0.10:8080",
        f"--concurrency={c}",
        "--duration=25",
        "--cycle=5",
        "--num_ops=10",
        "--read_ratios=0.2,0.8",
    ]
    assert spec["workload"]["pause_s"] == 10
    s = spec["generator"]["settings"]
    assert (s["client_binary_image"], s["client_binary_dir"]) == (
        "shengqipku/halfmoon-bench:sosp-ae",
        "/optimal-bin/switching",
    )


def test_the_real_movie_path_needs_the_users_data_file():
    from benchpipe.errors import ConfigError

    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    aws = yaml.safe_load((REPO / "profiles/aws/aws.yaml").read_text())
    config = validate(deep_merge(base, aws), "config.schema.yaml", "config + profiles/aws")
    exp = load_experiment(HM / "movie.yaml", config["scale"])
    with pytest.raises(ConfigError, match=r"data_files.halfmoon_movie_data"):
        point_spec(config, exp, exp.all_points()[0])
