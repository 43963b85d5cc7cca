"""The README's set-up command on a fresh Debian 12 machine: a container from the test bed's debootstrap
base (python3 without venv or pip, externally managed; no registry, no image pull), the repository
copied in, the command run as written with a tiny sweep added, the figure expected."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BASE = "benchpipe/standin-base:bookworm"
# Other fresh machines to try, e.g. an Ubuntu 24.04 minbase imported as benchpipe/ubuntu-base:noble
# (testbed/ubuntu-base.sh): BENCHPIPE_FRESH_BASES="benchpipe/standin-base:bookworm benchpipe/ubuntu-base:noble".
BASES = os.environ.get("BENCHPIPE_FRESH_BASES", BASE).split()
HOST_CAS = "/etc/ssl/certs/ca-certificates.crt"
# The hotel sweep (4 baselines x 4 rates) at 1/100 of the durations and 1/10 of the rates.
TINY = "scale: {duration: 0.01, rate: 0.1}\n"
pytestmark = [pytest.mark.slow, pytest.mark.docker]


def readme_setup_command() -> str:
    """The README's one-line set-up + main job command (the test runs what a user copies)."""
    lines = [
        line.strip()
        for line in (REPO / "README.md").read_text().splitlines()
        if line.strip().startswith("bash scripts/install.sh &&")
    ]
    assert len(lines) == 1, f"README.md: expected one set-up command line, found {lines}"
    assert lines[0].endswith("snakemake figures/hotel.png"), lines[0]
    return lines[0]


def repository_tar() -> bytes:
    """The working tree as git sees it (tracked and new files; not results/, .venv or other ignored ones)."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(REPO, arcname="benchpipe", recursive=False)
        for name in filter(None, names):
            path = REPO / name.decode()
            if path.is_file():  # a deleted but still tracked file is not in the working tree
                tar.add(path, arcname=f"benchpipe/{name.decode()}", recursive=False)
        info = tarfile.TarInfo("benchpipe/tiny.yaml")
        info.size = len(TINY)
        tar.addfile(info, io.BytesIO(TINY.encode()))
    return buf.getvalue()


def docker(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(params=BASES)
def fresh_machine(request):
    """A container from the debootstrap base, with the host's network (for PyPI and the Debian mirror)."""
    if docker("info").returncode != 0:
        pytest.fail("no Docker engine: run `bash testbed/up.sh` (scripts/test.sh does)")
    base = request.param
    if base == BASE and docker("image", "inspect", BASE).returncode != 0:
        subprocess.run(["bash", str(REPO / "workloads/image/build.sh")], check=True, timeout=900)
    name = f"benchpipe-fresh-install-{uuid.uuid4().hex[:8]}"
    # The host's trust store, so that a TLS-inspecting proxy the host trusts is trusted inside too.
    cas = ["-v", f"{HOST_CAS}:{HOST_CAS}:ro"] if Path(HOST_CAS).is_file() else []
    # --rm and a finite sleep: a container left by a killed test run goes away by itself.
    started = docker("run", "-d", "--rm", "--name", name, "--network", "host", *cas, base, "sleep", "1800")
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        docker("rm", "-f", name)


def test_readme_command_on_a_fresh_debian(fresh_machine):
    name = fresh_machine
    copied = subprocess.run(
        ["docker", "cp", "-", f"{name}:/root"], input=repository_tar(), capture_output=True, timeout=120
    )
    assert copied.returncode == 0, copied.stderr.decode()

    def sh(command: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
        t0 = time.monotonic()
        proc = docker("exec", "-w", "/root/benchpipe", name, "bash", "-c", command, timeout=timeout)
        return proc, time.monotonic() - t0

    # What a fresh Debian has: no pip, no venv module, and a python3 that refuses pip installs.
    before, _ = sh("python3 -m pip -V; python3 -c 'import ensurepip'; ls /usr/lib/python3*/EXTERNALLY-MANAGED", 60)
    assert "No module named pip" in before.stderr and "No module named 'ensurepip'" in before.stderr
    assert "EXTERNALLY-MANAGED" in before.stdout

    command = readme_setup_command() + " --configfile tiny.yaml"
    run, took = sh(command, timeout=900)
    print(f"{command}: {took:.0f} s")
    assert run.returncode == 0, f"{command} failed:\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}"
    size, _ = sh("stat -c %s figures/hotel.png; ls results/hotel/*/*/manifest.json | wc -l", 30)
    png_bytes, manifests = (int(x) for x in size.stdout.split())
    assert png_bytes > 10_000 and manifests == 16, size.stdout
    # Nothing went into the system Python (and `python`, the jobs' command, exists only in the venv).
    system, _ = sh("python3 -c 'import snakemake'", 30)
    assert system.returncode != 0

    # A second install finds everything there: no apt, no new venv, no pip run.
    again, took = sh("bash scripts/install.sh", timeout=120)
    print(f"second install: {took:.1f} s")
    assert again.returncode == 0 and not again.stdout.strip() and not again.stderr.strip(), again
