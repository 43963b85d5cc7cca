"""Figure 15's client: the artifact's protocol against the stand-in, and its command line on a cluster."""

from __future__ import annotations

from pathlib import Path

from benchpipe.generators.closedloop import ClosedLoopGenerator, parse_trace, request_body
from benchpipe.model import Host, Mix
from tests.test_standin_protocols import Standin

SETTINGS = {"concurrency": 4, "cycle_s": 0.5, "read_ratios": [0.2, 0.8], "num_ops": 4, "function": "rw"}


def test_request_body_is_the_artifacts():
    assert request_body("READLOG", 0.2, 10) == {
        "InstanceId": "",
        "CallerName": "",
        "Async": False,
        "Input": {"mode": "READLOG", "readRatio": 0.2, "nOps": 10},
    }


def test_cycles_transitions_and_modes_against_the_standin(tmp_path):
    s = Standin(tmp_path, "switching", "halfmoon", "read", "--num-keys", "50")
    try:
        rep = ClosedLoopGenerator(SETTINGS).run(s.url(""), Mix([]), 0, 2.2, tmp_path / "out", "measure")
        stats = s.stats()
    finally:
        assert s.stop() == 0
    assert rep.errors == 0 and rep.completed > 20  # every body was one the real rw accepts
    requests, transitions = parse_trace(tmp_path / "out" / "trace.txt")
    assert len(requests) == rep.completed
    assert {r["mode"] for r in requests} <= {"READLOG", "WRITELOG", "TRANSITIONAL"}
    assert len(transitions) >= 1  # cycles of 0.5 s in 2.2 s: changes with calls in flight
    cycle_us = 500_000
    misplaced = 0
    for r in requests:
        # A transition still open when the run ended has no end.
        inside = any(t["begin_us"] <= r["time_us"] <= (t["end_us"] or 10**12) for t in transitions)
        if r["mode"] == "TRANSITIONAL":
            misplaced += not inside
        else:
            misplaced += ("READLOG", "WRITELOG")[r["time_us"] // cycle_us % 2] != r["mode"]
    assert misplaced <= max(1, len(requests) // 50), misplaced
    # The stand-in logged what each request named: reads and writes of both kinds were appended.
    assert stats["appends"]["rw"] > 0 and stats["requests"]["rw"] == rep.completed


def test_on_a_cluster_the_artifacts_binary_runs_on_the_client(tmp_path):
    calls: list[str] = []
    trace = "2500000: BEGIN TRANSITION\n2600000: END TRANSITION\n1000: 12.50ms READLOG\n2550000: 30.00ms TRANSITIONAL\n"

    def runner(argv: list[str], timeout_s: float) -> str:
        calls.append(" ".join(argv))
        return trace if argv[0] == "/tmp/switching/benchmark" else ""

    settings = {
        **SETTINGS,
        "concurrency": 40,
        "cycle_s": 5,
        "num_ops": 10,
        "prewarm_concurrency": 16,
        "prewarm_cycle_s": 10,
        "client_binary": "/tmp/switching/benchmark",
        "client_binary_image": "shengqipku/halfmoon-bench:sosp-ae",
        "client_binary_dir": "/optimal-bin/switching",
        "runner": runner,
    }
    gen = ClosedLoopGenerator(settings)
    rep = gen.run("http://10.0.0.5:8080", Mix([]), 0, 25, tmp_path, "measure")
    assert (
        "docker run --rm -v /tmp:/tmp shengqipku/halfmoon-bench:sosp-ae cp -r /optimal-bin/switching /tmp/" in calls[0]
    )
    assert calls[0].startswith("sh -c 'test -x /tmp/switching/benchmark ||")
    assert calls[1] == (
        "/tmp/switching/benchmark --faas_gateway=10.0.0.5:8080 --concurrency=40 --duration=25 --cycle=5"
        " --num_ops=10 --read_ratios=0.2,0.8"
    )
    assert (tmp_path / "trace.txt").read_text() == trace and rep.completed == 2
    assert gen.command("http://10.0.0.5:8080", 20, "warmup") == [
        "/tmp/switching/benchmark",
        "--faas_gateway=10.0.0.5:8080",
        "--concurrency=16",
        "--prewarm",
        "--duration=20",
        "--cycle=10",
        "--num_ops=10",
        "--read_ratios=0.2,0.8",
    ]


WRK_OUT = (Path(__file__).parent / "test_wrk2.py").read_text().split('NORMAL = """', 1)[1].split('"""', 1)[0]


def test_remote_load_runs_on_the_client_and_the_wrk2_script_makes_its_folder(tmp_path, monkeypatch):
    from benchpipe import registry, remote, stages

    client = Host(name="client", address="10.0.0.9", role="client")
    log: list[tuple[str, str]] = []

    def run(host: Host, command: str, timeout_s: float = 300, hide: bool = True) -> str:
        log.append(("run", command))
        return "yes\n" if "--help" in command else WRK_OUT if command.startswith("wrk ") else ""

    def put(host: Host, local: str, remote_path: str) -> None:
        log.append(("put", remote_path))

    monkeypatch.setattr(remote, "run", run)
    monkeypatch.setattr(remote, "put", put)
    ctx = {"client": client, "target": "http://10.0.1.1:8080", "work_dir": "/tmp/benchpipe/r/hotel/boki/qps100"}
    cfg = {"name": "wrk2", "settings": {"threads": 2, "connections": 2}}
    timing: dict = {}
    target, gen = stages._remote_generator(ctx, registry.load("generator", "wrk2")(cfg["settings"]), cfg, "x", timing)
    assert target == "http://10.0.1.1:8080" and timing["generator_host"] == "client"
    mix = Mix.from_config([{"name": "a", "weight": 1, "path": "/asyncFunction/singleop", "body": {}}])
    gen.run(target, mix, 300, 30, tmp_path, "measure")
    script = "/tmp/benchpipe/r/hotel/boki/qps100/workload-measure.lua"
    i = log.index(("put", script))
    assert log[i - 1] == ("run", "mkdir -p /tmp/benchpipe/r/hotel/boki/qps100")  # before the upload
    assert log[i + 1] == ("run", f"wrk -t 2 -c 2 -d 30 -L -U -s {script} http://10.0.1.1:8080 -R 300")
    # The switching client runs on the client machine too (the controller cannot reach port 8080).
    cfg = {"name": "closedloop", "settings": {}}
    target, gen = stages._remote_generator(ctx, registry.load("generator", "closedloop")({}), cfg, "x", timing)
    assert target == "http://10.0.1.1:8080" and callable(gen.s["runner"]) and timing["generator_host"] == "client"
