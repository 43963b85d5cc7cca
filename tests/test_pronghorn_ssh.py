"""Pronghorn's remote path end to end on the local sshd (testbed/up.sh: 127.0.0.1:2222), with
ssh settings given as a profile: one point of Figure 4 and one of Tables 4-5, the function host
started over SSH by the remote-process deployer (code uploaded once, own session, pids recorded,
stopped, files fetched). CRIU fails on this machine's kernel: Figure 4's point snapshots by fork,
the tables' point runs the host's CRIU mode with tests/fake_criu.py as `criu` (it restarts the
dumped command: the commands and the Tables' arithmetic are real, the warm state is not)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.test_pipeline_e2e import REPO, job_counts, snakemake
from tests.test_pronghorn_standin import PYPY
from tests.test_swarm_testbed import load_testbed

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(PYPY).exists(), reason=f"no PyPy venv at {PYPY}: run workloads/pronghorn/install.sh"),
]


def ssh_workdir(tmp_path: Path) -> Path:
    tb = load_testbed()
    suite = tmp_path / "config" / "experiments" / "pronghorn"
    suite.mkdir(parents=True)
    src = REPO / "config" / "experiments" / "pronghorn"
    common = yaml.safe_load((src / "_pronghorn.yaml").read_text())
    deployer = common["targets"]["ssh"]["deployer"]
    # The experiment's own deployer, with what this machine needs instead of a CRIU host's setup:
    # no install (the PyPy venv is here), fork snapshots, code and points under tmp_path.
    deployer["settings"].update(
        python=sys.executable,
        code_dir=str(tmp_path / "code"),
        setup=[],
        env={"PRONGHORN_SNAPSHOT": "fork", "PRONGHORN_PYPY": PYPY},
        remote_dir_template=str(tmp_path / "remote" / "{baseline}" / "{point}"),
        stop_grace_s=5,
    )
    (suite / "_pronghorn.yaml").write_text(yaml.safe_dump(common, allow_unicode=True))
    fig4 = yaml.safe_load((src / "pronghorn_fig4.yaml").read_text())
    fig4["sweep"] = {"benchmark": ["dynamic-html"], "eviction": [4]}
    fig4["baselines"] = {"fixed1": None, "cold": None}  # request-centric only
    fig4["workload"] = {"settings": {"requests": 12, "gap_s": 0.0, "retry_delay_s": 0.05}}
    (suite / "pronghorn_fig4.yaml").write_text(yaml.safe_dump(fig4, allow_unicode=True))
    tables = yaml.safe_load((src / "pronghorn_tables.yaml").read_text())
    tables["sweep"]["benchmark"] = ["dynamic-html"]
    # The fake's restore starts a new PyPy process (~0.5 s, a real restore ~50 ms): the client waits.
    tables["workload"]["settings"].update(requests=4, gap_s=0.0, retry_delay_s=0.1, unavailable_retries=50)
    fake = {"PRONGHORN_SNAPSHOT": "criu", "PRONGHORN_CRIU": f"{sys.executable} {REPO / 'tests' / 'fake_criu.py'}"}
    fake["PRONGHORN_UNSHARE"] = "unshare"  # the test bed's user is root: no sudo
    fake["FAKE_CRIU_LOG"] = str(tmp_path / "criu.log")
    tables["targets"]["ssh"] = {"deployer": {"settings": {"env": fake}}}  # merged over _pronghorn.yaml's
    (suite / "pronghorn_tables.yaml").write_text(yaml.safe_dump(tables, allow_unicode=True))
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump({"suite": "pronghorn"}))
    host = {
        "name": "pronghorn",
        "address": "127.0.0.1",
        "port": int(tb["BENCHPIPE_TESTBED_SSH_PORT"]),
        "user": tb["BENCHPIPE_TESTBED_USER"],
        "key_file": tb["BENCHPIPE_TESTBED_KEY"],
        "role": "manager",
        "docker": False,
    }
    profile = tmp_path / "ssh-profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("configfile: ssh.yaml\n")
    cfg = {
        "target": "ssh",
        "results_dir": "results-ssh",
        "scale": {"duration": 1, "rate": 1},
        "provider": {"name": "ssh", "settings": {"hosts": [host]}},
        "measure": {"retries": 0, "ready_timeout_s": 60, "exclusive": False},
    }
    (profile / "ssh.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def processes_under(folder: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line and "ps -eo" not in line]


def test_figure_and_tables_points_through_the_remote_process_deployer(tmp_path, no_stray_stack):
    wd = ssh_workdir(tmp_path)
    targets = ("figures/pronghorn_fig4.png", "results-ssh/pronghorn_tables/summary.csv")
    out = snakemake(wd, *targets, "--profile", str(wd / "ssh-profile"))
    text = out.stdout + out.stderr
    assert job_counts(text)["run"] == 2
    assert (wd / "figures" / "pronghorn_fig4.png").stat().st_size > 10_000
    df = pl.read_parquet(wd / "results-ssh" / "pronghorn_fig4" / "summary.parquet")
    assert df.height == 12 and set(df["label"]) == {"Request-centric"}
    assert (df["server_us"] > 0).all() and (df["client_us"] >= df["server_us"]).all()
    assert df["restored_from"].max() > 0, "request-centric never restored a snapshot"
    # Tables 4-5's point: one request, then dump/kill/restore cycles through the host's CRIU mode.
    (row,) = pl.read_csv(wd / "results-ssh" / "pronghorn_tables" / "summary.csv").to_dicts()
    assert (row["benchmark"], row["dumps"], row["restores"]) == ("dynamic-html", 4, 3)
    assert row["size_mb"] > 1 and row["dump_ms"] > 0 and row["restore_ms"] > 0
    assert row["max_storage_mb"] == pytest.approx(row["size_mb"] * 12, abs=0.01)
    log = (tmp_path / "criu.log").read_text().splitlines()
    assert [line.split()[1] for line in log] == ["dump", "restore"] * 4
    # Each instance ran as the init of a pid namespace of its own (unshare over SSH): its image is
    # restored into a new namespace, its host pid read from CRIU's --pidfile.
    assert all("--pidfile" in line for line in log[1::2])
    # The code went up once (one version mark) and each point's stack was stopped and removed.
    assert len(list((tmp_path / "code").glob(".benchpipe-code-*"))) == 1
    assert (tmp_path / "code" / "pronghorn" / "host.py").exists()
    assert not any((tmp_path / "remote").rglob("async_results"))
    assert processes_under(tmp_path) == []
    point = wd / "results-ssh" / "pronghorn_fig4" / "request-centric" / "dynamic-html_E4"
    images = (point / "raw" / "images.json").read_text()
    assert '"workloads/pronghorn": "sha256:' in images
    shutil.rmtree(tmp_path / "code")
