"""Pronghorn on a CRIU host (--profile ssh): what benchpipe renders for it (the remote-process
deployer's setup, environment, start and stop scripts), written from the artifact's facts, and the
dry run's plan of Figure 5 and Tables 4-5; locally they are refused with their file and key."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from benchpipe.clusters import planned_cluster
from benchpipe.deployers.remote_process import RemoteProcessDeployer, start_script, stop_script
from benchpipe.errors import ConfigError
from benchpipe.experiment import load_experiment
from benchpipe.merge import deep_merge
from benchpipe.pointspec import point_spec
from benchpipe.validation import validate
from tests.test_pipeline_e2e import job_counts, snakemake

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "config" / "experiments" / "pronghorn"


def run_config(target: str) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if target == "ssh":  # merged key by key, as Snakemake merges a profile's configfile
        cfg = deep_merge(cfg, yaml.safe_load((REPO / "profiles" / "ssh" / "hosts.yaml").read_text()))
    return validate(cfg, "config.schema.yaml", "test config")


def spec_of(experiment: str, target: str, baseline: str, point: str) -> dict:
    cfg = run_config(target)
    exp = load_experiment(SUITE / f"{experiment}.yaml", cfg["scale"])
    return point_spec(cfg, exp, next(p for p in exp.points(baseline) if p.name == point))


def test_figure4_runs_at_the_papers_size_on_the_criu_host_and_scaled_locally():
    ssh = spec_of("pronghorn_fig4", "ssh", "cold", "bfs_E1")["generator"]["settings"]
    local = spec_of("pronghorn_fig4", "local", "cold", "bfs_E1")["generator"]["settings"]
    assert (ssh["requests"], ssh["gap_s"]) == (500, 0.2)
    # Locally no think time: the host answers 503 while its last request's snapshot or restore
    # runs, and the client tries again 10 ms later, unrecorded, for up to 3 s as the artifact's.
    assert (local["requests"], local["gap_s"], local["retry_delay_s"], local["unavailable_retries"]) == (
        60,
        0,
        0.01,
        300,
    )
    # Locally each benchmark's own count (twice where its latency settles, at least 40).
    assert spec_of("pronghorn_fig4", "local", "fixed1", "video_E20")["generator"]["settings"]["requests"] == 40
    assert spec_of("pronghorn_fig4", "ssh", "fixed1", "video_E20")["generator"]["settings"]["requests"] == 500


def test_ssh_points_deploy_the_host_with_criu_snapshots_on_its_own_host():
    spec = spec_of("pronghorn_fig5", "ssh", "request-centric", "matrix-multiplication_E4")
    assert spec["deployer"]["name"] == "remote-process"  # not the profile's swarm
    deployer = RemoteProcessDeployer(spec["deployer"]["settings"])
    rendered = deployer.render(planned_cluster("c", spec["machines"]), spec["deployment"], spec["env"])
    # Setup on the host, once per version of workloads/pronghorn: PyPy, the JDK, CRIU, `criu check`.
    assert rendered["setup"] == ["bash ~/.cache/benchpipe/workloads/pronghorn/install.sh --criu-host"]
    assert rendered["packages"] == ["pronghorn"]
    assert rendered["env"] == {
        "PRONGHORN_SNAPSHOT": "criu",
        "PRONGHORN_CRIU": "sudo -n criu",
        "PRONGHORN_UNSHARE": "sudo -n unshare",  # each instance the init of its own pid namespace
    }
    (host,) = rendered["services"]
    argv = [
        a.format(
            **rendered["vars"],
            python="python3",
            host="10.0.0.5",
            port="8080",
            state_dir="/w/state/host",
            results_path="/w/async_results",
        )
        for a in host["argv"]
    ]
    assert argv == [
        "python3", "-m", "pronghorn", "--benchmark", "matrix-multiplication", "--strategy", "request-centric",
        "--eviction", "4", "--host", "10.0.0.5", "--port", "8080", "--state-dir", "/w/state/host",
        "--results-path", "/w/async_results", "--pool-capacity", "14", "--max-requests", "100",
    ]  # fmt: skip
    # The artifact's run: 500 requests, 100 ms apart for the JVM, 503s retried unrecorded.
    settings = spec["generator"]["settings"]
    assert (spec["generator"]["name"], settings["requests"], settings["gap_s"]) == ("sequential", 500, 0.1)
    assert settings["unavailable_retries"] == 3 and settings["retry_delay_s"] == 1


def test_tables_run_the_dump_kill_restore_cycle_on_every_benchmark():
    exp = load_experiment(SUITE / "pronghorn_tables.yaml")
    assert exp.baselines == ["criu"] and exp.data["summary"]["metrics"] == ["snapshot_costs"]
    assert [p.name for p in exp.points("criu")] == [
        "bfs_E1", "dfs_E1", "mst_E1", "pagerank_E1", "dynamic-html_E1", "compress_E1",
        "upload_E1", "thumbnail_E1", "video_E1",
        "matrix-multiplication_E1", "simple-hash_E1", "html-rendering_E1", "word-count_E1",
    ]  # fmt: skip
    spec = spec_of("pronghorn_tables", "ssh", "criu", "bfs_E1")
    assert spec["deployment"]["vars"]["system"] == "cycle"  # the host's --strategy
    assert spec["generator"]["settings"]["requests"] == 11  # 1 request + 10 cycles (table_4.py)


def test_start_script_golden():
    services = [
        {
            "name": "host",
            "argv": ["python3", "-m", "pronghorn", "--benchmark", "bfs", "--port", "40001"],
            "env": {"EXTRA": "a b"},
        }
    ]
    script = start_script("/tmp/benchpipe/r1/pronghorn_fig5/cold/p", services, {"PYTHONPATH": "/home/me/code"})
    assert script.splitlines() == [
        "set -eu",
        "rm -rf /tmp/benchpipe/r1/pronghorn_fig5/cold/p",
        "mkdir -p /tmp/benchpipe/r1/pronghorn_fig5/cold/p/logs /tmp/benchpipe/r1/pronghorn_fig5/cold/p/outputs "
        "/tmp/benchpipe/r1/pronghorn_fig5/cold/p/state/host",
        "cd /tmp/benchpipe/r1/pronghorn_fig5/cold/p",
        "export BENCHPIPE_STACK_DIR=/tmp/benchpipe/r1/pronghorn_fig5/cold/p",
        "export PYTHONPATH=/home/me/code",
        "setsid env EXTRA='a b' python3 -m pronghorn --benchmark bfs --port 40001 > logs/host.log 2>&1 < /dev/null &",
        'echo host "$!" | tee -a pids',
    ]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_stop_script_golden():
    script = stop_script("/tmp/w", {"host": 4242}, grace_s=2)
    assert script.splitlines() == [
        "mine=",
        "for g in 4242; do",
        "  tr '\\0' '\\n' < /proc/$g/environ 2>/dev/null | grep -qxF BENCHPIPE_STACK_DIR=/tmp/w && mine=\"$mine $g\"",
        "done",
        "for g in $mine; do kill -TERM -- -$g 2>/dev/null || true; done",
        "for _ in $(seq 20); do",
        "  alive=0",
        "  for g in $mine; do kill -0 -- -$g 2>/dev/null && alive=1; done",
        '  [ "$alive" = 0 ] && break',
        "  sleep 0.1",
        "done",
        "for g in $mine; do kill -KILL -- -$g 2>/dev/null || true; done",
        "rm -rf /tmp/w",
    ]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_stop_script_stops_its_services_and_not_a_process_that_took_a_recorded_pid(tmp_path):
    # The scripts as the host runs them (bash), here on this machine: one service started, and a
    # stranger in a session of its own standing for a process that now has a recorded pid.
    work = str(tmp_path / "point")
    services = [{"name": "svc", "argv": ["sleep", "300"], "env": {}}]
    out = subprocess.run(["bash", "-c", start_script(work, services, {})], capture_output=True, text=True, check=True)
    pid = int(out.stdout.split()[1])
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        script = stop_script(work, {"svc": pid, "old": stranger.pid}, grace_s=1)
        subprocess.run(["bash", "-c", script], check=True, timeout=30)
        for _ in range(50):  # the service is reaped by init a moment after the signal
            if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
                break
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        assert stranger.poll() is None, "stop_script signalled a process the point did not start"
        assert not Path(work).exists()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("experiment", ["pronghorn_fig5", "pronghorn_tables"])
def test_local_points_are_refused_naming_the_file_and_key(experiment):
    exp = load_experiment(SUITE / f"{experiment}.yaml")
    with pytest.raises(ConfigError, match=rf"{experiment}\.yaml: targets\.local\.unsupported: .*--profile ssh"):
        point_spec(run_config("local"), exp, exp.all_points()[0])


def workdir(tmp_path: Path) -> Path:
    shutil.copytree(SUITE, tmp_path / "config" / "experiments" / "pronghorn")
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text()) | {"suite": "pronghorn"}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    profile = tmp_path / "ssh-profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("configfile: hosts.yaml\n")
    shutil.copy(REPO / "profiles" / "ssh" / "hosts.yaml", profile)
    return tmp_path


@pytest.mark.slow  # four snakemake dry runs, ~20 s
def test_dry_run_plans_figure5_and_tables_under_ssh_and_refuses_them_locally(tmp_path):
    wd = workdir(tmp_path)
    ssh = ("--profile", str(wd / "ssh-profile"))
    out = snakemake(wd, "-n", *ssh, "figures/pronghorn_fig5.png", "results-ssh/pronghorn_tables/summary.csv")
    text = out.stdout + out.stderr
    for b in ("cold", "fixed1", "request-centric"):
        where = "[cluster node: hosts pronghorn (me@criu-host.example.org); deployer remote-process]"
        plan = f"pronghorn_fig5/{b}: 12 to run, 0 done  {where}"
        assert plan in text
    assert "pronghorn_tables/criu: 13 to run, 0 done" in text and "total: 49 point(s) to run" in text
    assert job_counts(text)["run"] == 49 and job_counts(text)["summarize"] == 2
    # Rule all under ssh: the three experiments, the tables ending in their summary.
    every = snakemake(wd, "-n", *ssh)
    counts = job_counts(every.stdout + every.stderr)
    assert counts["run"] == 72 + 36 + 13 and counts["plot"] == 2
    # Locally: asked for by name, refused before any job; rule all leaves them out, saying why.
    refused = snakemake(wd, "-n", "figures/pronghorn_fig5.png", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "pronghorn_fig5.yaml: targets.local.unsupported: Figure 5's JVM functions need CRIU" in refused.stderr
    local_all = snakemake(wd, "-n")
    assert job_counts(local_all.stdout + local_all.stderr)["run"] == 72
    assert (
        "pronghorn_tables.yaml: targets.local.unsupported" in local_all.stderr
        and "left out of rule all" in local_all.stderr
    )
