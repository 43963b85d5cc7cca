"""The Antipode real path, rendered as the pipeline renders a point under `--profile ssh` with the
suite's run configuration (config/experiments/antipode/_ssh_hosts.yaml): DeathStarBench's
socialNetwork stack for two regions on a swarm, and wrk2's command line on the client.

Expectations are written from the facts (reference/seed-antipode.md; DeathStarBench's
socialNetwork/docker-compose.yml on the antipode branch; configs/gcp/socialNetwork/us-eu.yml and
us-sg.yml; maestro's wkld), not from the renderer's output."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from benchpipe.experiment import load_experiment
from benchpipe.generators.wrk2 import Wrk2Generator
from benchpipe.model import Mix
from benchpipe.pointspec import point_spec
from benchpipe.stages import render
from benchpipe.validation import validate

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "config" / "experiments" / "antipode"
DSB = "yg397/social-network-microservices:antipode"

# us-eu.yml / us-sg.yml: service -> node. The reader region's three nodes carry the pair here.
NODE = {
    **dict.fromkeys(["social-graph-service", "social-graph-redis", "social-graph-mongodb"], "social-graph"),
    **dict.fromkeys(
        ["write-home-timeline-service-eu", "write-home-timeline-rabbitmq-eu", "home-timeline-redis-eu"],
        "home-timeline-eu",
    ),
    **dict.fromkeys(
        [
            "write-home-timeline-service-us",
            "write-home-timeline-rabbitmq-us",
            "home-timeline-redis-us",
            "home-timeline-service",
        ],
        "home-timeline-us",
    ),
    **dict.fromkeys(
        ["post-storage-service-eu", "post-storage-memcached-eu", "post-storage-mongodb-eu"], "post-storage-eu"
    ),
    **dict.fromkeys(
        ["post-storage-service-us", "post-storage-memcached-us", "post-storage-mongodb-us"], "post-storage-us"
    ),
    **dict.fromkeys(
        ["compose-post-redis", "compose-post-service", "unique-id-service", "text-service"], "compose-post"
    ),
    **dict.fromkeys(["user-timeline-service", "user-timeline-redis", "user-timeline-mongodb"], "user-timeline"),
    **dict.fromkeys(
        [
            "url-shorten-service",
            "url-shorten-memcached",
            "url-shorten-mongodb",
            "user-mention-service",
            "user-service",
            "user-memcached",
            "user-mongodb",
            "media-service",
            "media-memcached",
            "media-mongodb",
            "media-frontend",
        ],
        "compose-others",
    ),
    "antipode-oracle": "antipode-oracle",
    "nginx-thrift": "frontend-eu",
    "nginx-thrift-us": "frontend-us",
    **dict.fromkeys(
        [
            "jaeger",
            "xtrace-server",
            "mongodb-admin",
            "post-storage-mongodb-setup",
            "write-home-timeline-rabbitmq-setup",
        ],
        "admin-tracing",
    ),
}
READER_NODES = {"home-timeline-us", "post-storage-us", "frontend-us"}
ZONE = {"us-eu": "europe_west3_a", "us-sg": "asia_southeast1_a"}  # the reader region's zone per pair
SWITCHED = {  # ANTIPODE=1 with `maestro run -antipode` (seed sheet, section 1.5)
    "write-home-timeline-service-eu",
    "write-home-timeline-service-us",
    "post-storage-service-eu",
    "post-storage-service-us",
}


def ssh_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    run = yaml.safe_load((SUITE / "_ssh_hosts.yaml").read_text())
    for key, value in run.items():  # as Snakemake merges a --configfile: key by key, mappings deeply
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return validate(config, "config.schema.yaml", "test config")


CONFIG = ssh_config()
EXP = load_experiment(SUITE / "antipode_dsb.yaml", CONFIG["scale"], 1)


def rendered(baseline: str, pair: str, rate: int = 100) -> tuple[dict, dict]:
    point = next(p for p in EXP.points(baseline, 1) if p.params == {"region_pair": pair, "rate": rate})
    spec = render(point_spec(copy.deepcopy(CONFIG), EXP, point))
    return spec, spec["rendered"]


def services(baseline: str, pair: str) -> dict:
    return yaml.safe_load(rendered(baseline, pair)[1]["compose"])["services"]


def node_of(svc: dict) -> str:
    (constraint,) = svc["deploy"]["placement"]["constraints"]
    m = re.fullmatch(r"node\.hostname == (\S+)", constraint)
    assert m, constraint
    return m.group(1)


@pytest.mark.parametrize("pair", ["us-eu", "us-sg"])
def test_every_service_on_its_node_and_the_reader_region_per_pair(pair):
    spec, _ = rendered("antipode", pair)
    zone_of = {m["name"]: dict(lab.split("=") for lab in m["labels"])["zone"] for m in spec["machines"]}
    s = services("antipode", pair)
    assert set(s) == set(NODE) and len(s) == 42
    for name, svc in s.items():
        node = NODE[name]
        expected = f"{node}-{pair}" if node in READER_NODES else node
        assert node_of(svc) == expected, name
        # Writer region us-central1-a; the reader's three nodes in the pair's far region.
        assert zone_of[expected] == (ZONE[pair] if node in READER_NODES else "us_central1_a"), name
    assert spec["cluster_shape"] == "dsb" and spec["target"] == "ssh"


def test_the_antipode_switch_reaches_only_its_four_services():
    for baseline, value in (("original", "0"), ("antipode", "1")):
        s = services(baseline, "us-eu")
        assert {n for n, svc in s.items() if "ANTIPODE" in svc.get("environment", {})} == SWITCHED
        assert {s[n]["environment"]["ANTIPODE"] for n in SWITCHED} == {value}
    s = services("antipode", "us-sg")
    assert s["post-storage-service-eu"]["environment"] == {"ZONE": "eu", "MASTER": "1", "ANTIPODE": "1"}
    assert s["post-storage-service-us"]["environment"] == {"ZONE": "us", "MASTER": "0", "ANTIPODE": "1"}
    assert s["write-home-timeline-service-us"]["environment"]["ZONE"] == "us"
    assert s["compose-post-service"]["environment"] == {"ZONE": "eu"}
    assert (
        s["write-home-timeline-rabbitmq-us"]["environment"]["RABBITMQ_ERLANG_COOKIE"] == "WRITE-HOME-TIMELINE-RABBITMQ"
    )


def test_images_commands_and_the_replicated_stores():
    _, r = rendered("original", "us-sg")
    assert set(r["images"]) == {
        DSB,
        "mongo:4.4.6",
        "redis",
        "memcached",
        "rabbitmq:3.8-management",
        "mongodb-delayed:4.4.6",
        "mongodb-setup:4.4.6",
        "rabbitmq-setup:3.8",
        "yg397/media-frontend:xenial",
        "yg397/openresty-thrift:latest",
        "jaegertracing/all-in-one:latest",
        "jonathanmace/xtrace-server:latest",
        "mrvautin/adminmongo",
    }
    s = yaml.safe_load(r["compose"])["services"]
    # The post store: a two-member replica set rs0, data on a 3 GB tmpfs, primary in the writer region.
    for name in ("post-storage-mongodb-eu", "post-storage-mongodb-us"):
        assert s[name]["image"] == "mongodb-delayed:4.4.6"
        assert s[name]["command"][:2] == ["bash", "-c"]
        mongod = s[name]["command"][2].split()
        assert mongod[0] == "mongod" and "--replSet" in mongod and mongod[mongod.index("--replSet") + 1] == "rs0"
        assert mongod[mongod.index("--dbpath") + 1] == "/ramdata"
        assert {"type": "tmpfs", "target": "/ramdata", "tmpfs": {"size": 3_000_000_000}} in s[name]["volumes"]
    assert s["home-timeline-redis-us"]["command"] == [
        "redis-server", "--slaveof", "home-timeline-redis-eu", "6379", "--replica-read-only", "no",
    ]  # fmt: skip
    # Services start once what they call is up (dockerize), as upstream's compose file says.
    compose_post = s["compose-post-service"]["command"]
    assert compose_post[0] == "dockerize" and compose_post[-1] == "ComposePostService"
    waits = [compose_post[i + 1] for i, a in enumerate(compose_post) if a == "-wait"]
    assert waits == [
        "tcp://write-home-timeline-rabbitmq-setup:8000",
        "tcp://write-home-timeline-service-eu:9090",
        "tcp://write-home-timeline-service-us:9090",
        "tcp://post-storage-service-eu:9090",
    ]
    assert s["social-graph-service"]["entrypoint"] == ["SocialGraphService"]
    assert s["write-home-timeline-service-us"]["command"][-1] == "WriteHomeTimelineService"
    assert s["antipode-oracle"]["command"][-1] == "/usr/local/bin/AntipodeOracle"
    # Frontends: eu on 8080 (wrk2's target), us on 8082; Jaeger's UI on 16686.
    assert s["nginx-thrift"]["ports"] == ["8080:8080"] and s["nginx-thrift-us"]["ports"] == ["8082:8080"]
    assert s["jaeger"]["ports"] == ["16686:16686"]
    assert s["write-home-timeline-rabbitmq-eu"]["ports"] == ["15672:15672", "5672:5672"]
    assert s["write-home-timeline-rabbitmq-us"]["ports"] == ["15673:15672", "5673:5672"]
    assert (
        "/code/app/nginx-web-server/conf/nginx.conf:/usr/local/openresty/nginx/conf/nginx.conf"
        in (s["nginx-thrift"]["volumes"])
    )
    # Swarm's default restart (any) as upstream runs; the setup jobs: on-failure, 1 s, 3 attempts.
    for name in ("post-storage-mongodb-setup", "write-home-timeline-rabbitmq-setup"):
        assert s[name]["deploy"]["restart_policy"] == {"condition": "on-failure", "delay": "1s", "max_attempts": 3}
    assert {svc["deploy"]["restart_policy"]["condition"] for n, svc in s.items() if "setup" not in n} == {"any"}
    assert r["gateway_machine"] == "frontend-eu" and r["port"] == 8080 and r["services"][0] == "social-graph-service"


WRK2_OUTPUT = """Running 5m test @ http://us10.example.org:8080
  2 threads and 4 connections
  Latency Distribution (HdrHistogram - Recorded Latency)
 50.000%    2.10ms
 75.000%    2.90ms
 90.000%    3.50ms
 99.000%    6.00ms
 99.900%    9.00ms
 99.990%   11.00ms
 99.999%   12.00ms
100.000%   12.00ms
  30000 requests in 5.00m, 4.00MB read
Requests/sec:    100.00
Transfer/sec:     13.65KB
"""


def test_wrk2_runs_from_the_client_with_the_artifacts_command(tmp_path):
    spec, r = rendered("antipode", "us-eu", rate=125)
    gen = spec["generator"]
    assert gen["name"] == "wrk2"
    calls: list[list[str]] = []
    scripts: dict[str, str] = {}

    def runner(argv: list[str], timeout_s: float) -> str:
        calls.append(argv)
        return WRK2_OUTPUT

    wrk = Wrk2Generator(
        {**gen["settings"], "runner": runner, "put": scripts.__setitem__, "script_dir": "/tmp/benchpipe/run/p"}
    )
    target = f"http://us10.example.org:{r['port']}"  # frontend-eu's address in the run configuration
    mix = Mix.from_config(spec["workload"]["mix"])
    wrk.run(target, mix, spec["workload"]["rate"], spec["workload"]["measure_s"], tmp_path, "measure")
    (argv,) = calls
    line = " ".join(argv)  # as the client's shell gets it (remote.run)
    argv = line.split()
    # maestro wkld: docker run --network=host wrk2:antipode /wrk2/wrk --connections 4 --duration 300s
    # --threads 2 --rate <r> --latency --script compose-post.lua <HOST_EU>  (-d 300: wrk reads bare numbers as seconds)
    assert line.startswith("docker run --rm --network=host ") and " wrk2:antipode /wrk2/wrk " in line
    flags = {a: argv[i + 1] for i, a in enumerate(argv) if a in ("-t", "-c", "-d", "-s", "-R")}
    assert flags["-c"] == "4" and flags["-t"] == "2" and flags["-d"] == "300" and flags["-R"] == "125"
    assert "-L" in argv and flags["-s"] == "/tmp/benchpipe/run/p/workload-measure.lua"
    assert target in argv
    # The script wrk2 reads is the one written into the point's folder, mounted at the same path.
    assert "-v /tmp/benchpipe:/tmp/benchpipe" in line
    script = scripts["/tmp/benchpipe/run/p/workload-measure.lua"]
    assert '"/wrk2-api/post/compose"' in script and "math.random(1, 1000000000)" in script
    assert "random_chars(256" in script
    # compose-post.lua's fields as a form, which the nginx frontend reads (get_post_args).
    assert 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"' in script
    for field in ('"username=username_"', '"&user_id="', '"&text="', "&media_ids=%5B%5D", "&post_type=0"):
        assert field in script, field


def test_the_ssh_plan_lists_each_machine_with_its_host_and_zone(tmp_path):
    from benchpipe.plan import plan_text

    text = plan_text([EXP], tmp_path, 1, "ssh", CONFIG["provider"])
    assert "antipode_dsb/original: 10 to run, 0 done  [cluster dsb: 17 hosts]" in text
    assert "    frontend-eu (worker): us10.example.org  [zone=us_central1_a]" in text
    assert "    post-storage-us-us-sg (worker): sg2.example.org  [zone=asia_southeast1_a]" in text
    assert "NOT in provider.settings.hosts" not in text
    fewer = copy.deepcopy(CONFIG["provider"])
    fewer["settings"]["hosts"] = [h for h in fewer["settings"]["hosts"] if h["name"] != "frontend-us-us-eu"]
    text = plan_text([EXP], tmp_path, 1, "ssh", fewer)
    assert "    frontend-us-us-eu (worker): NOT in provider.settings.hosts" in text


def test_a_placement_naming_no_value_of_the_point_is_named():
    from benchpipe.deployers.compose import for_point
    from benchpipe.errors import ConfigError

    svc = {"image": "redis", "placement": {"hostname": "reader-{zone}"}}
    assert for_point({"s": svc}, {"zone": "eu"})["s"]["placement"]["hostname"] == "reader-eu"
    with pytest.raises(ConfigError, match=r"services\.s\.placement\.hostname: 'reader-\{zone\}' names 'zone'"):
        for_point({"s": svc}, {"rate": 50, "region_pair": "us-eu"})
