"""The commands the README and the docs pages show for this machine, as written, on a fresh Debian 12:
a container from the test bed's debootstrap base (python3 without venv or pip, externally managed;
no registry, no image pull), the repository copied in, and in ONE shell session (as a user in one
terminal): the README's set-up command, then every command of the code blocks marked
`<!-- commands: local -->` in README.md and then docs/*.md (tests/markdown_commands.py), in order.
No test tool is installed in the container: what the commands need must come with the README's
install. The configuration is made tiny in the copy (tiny_files: the scale in config/config.yaml,
each suite's experiment files cut down), the commands are not changed."""

from __future__ import annotations

import io
import os
import queue
import re
import shlex
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from benchpipe.merge import deep_merge
from tests.markdown_commands import Command, commands

REPO = Path(__file__).resolve().parent.parent
BASE = "benchpipe/standin-base:bookworm"
# Other fresh machines to try, e.g. an Ubuntu 24.04 minbase imported as benchpipe/ubuntu-base:noble
# (testbed/ubuntu-base.sh): BENCHPIPE_FRESH_BASES="benchpipe/standin-base:bookworm benchpipe/ubuntu-base:noble".
BASES = os.environ.get("BENCHPIPE_FRESH_BASES", BASE).split()
HOST_CAS = "/etc/ssl/certs/ca-certificates.crt"
# Merged over config/config.yaml in the copy: the Halfmoon suite is hotel alone (4 baselines x its 2
# lowest rates) at 1/100 of the durations and 1/10 of the rates; the other suites' experiments run at
# the factors their cut-down files (tiny_suite_files) were written for.
TINY_SCALE = {"duration": 0.01, "rate": 0.1}
UNSCALED = {"duration": 1.0, "rate": 1.0, "requests": 1.0}
# The commands the README must show for this machine (issue 22), as regular expressions.
REQUIRED = {
    "set-up and the main job": r"^bash scripts/install\.sh && \. \.venv/bin/activate && snakemake figures/\S+\.png$",
    "plan": r"^snakemake -n\b",
    "measure now, summarize later": r"^snakemake --until collect\b",
    "report": r"^snakemake .*--report report\.html\b",
    "teardown": r"^snakemake teardown\b",
    "clean": r"^snakemake --delete-all-output\b",
}
STAGES = ("provision", "deploy", "warmup", "run", "collect", "summarize", "plot")
pytestmark = [pytest.mark.slow, pytest.mark.docker]


def marked_commands() -> list[Command]:
    """README.md's commands for this machine, then each docs page's, in file order."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return [c for page in pages for c in commands(page, "local", str(page.relative_to(REPO)))]


def command_line(c: Command) -> str:
    return c.text.split(" #", 1)[0].strip()


def tiny_mu2sls() -> dict[str, str | None]:
    """Every mu2sls experiment (Figures 9-11 and the sequential reference) at the lowest rate of
    each baseline's sweep, 1.5 s points, 20 sequential requests."""
    out: dict[str, str | None] = {}
    for path in sorted((REPO / "config" / "experiments" / "mu2sls").glob("mu2sls_*.yaml")):
        exp = yaml.safe_load(path.read_text())
        for sweep in [exp["sweep"]] + [b["sweep"] for b in (exp.get("baselines") or {}).values() if b and "sweep" in b]:
            if "rate" in sweep:
                sweep["rate"] = [min(sweep["rate"])]
        exp.setdefault("workload", {})
        if exp["workload"].get("generator") == "sequential":
            exp["workload"]["settings"].update({"warmup_requests": 2, "requests": 20})
        else:
            exp["workload"]["measure_s"] = 1.5
        out[str(path.relative_to(REPO))] = yaml.safe_dump(exp, allow_unicode=True)
    return out


def tiny_suite_files(tmp: Path) -> dict[str, str | None]:
    """The suites' experiment files in the copy (None: left out). Halfmoon: hotel alone at its two
    lowest rates (the others' files left out, so its rule all is hotel's figure); mu2sls:
    tiny_mu2sls; Antipode and Pronghorn Figure 4 as their end-to-end tests cut them down (one
    definition of their tiny sweeps)."""
    from tests import test_antipode_e2e, test_pronghorn_e2e

    halfmoon = REPO / "config" / "experiments" / "halfmoon"
    out: dict[str, str | None] = {
        str(p.relative_to(REPO)): None for p in halfmoon.glob("*.yaml") if p.stem not in ("_halfmoon", "hotel")
    }
    hotel = yaml.safe_load((halfmoon / "hotel.yaml").read_text())
    hotel["sweep"]["qps"] = sorted(hotel["sweep"]["qps"])[:2]
    out[str((halfmoon / "hotel.yaml").relative_to(REPO))] = yaml.safe_dump(hotel)
    out.update(tiny_mu2sls())
    for i, module in enumerate((test_antipode_e2e, test_pronghorn_e2e)):
        wd = module.make_workdir(tmp / str(i))
        for path in (wd / "config" / "experiments").rglob("*.yaml"):
            out[str(path.relative_to(wd))] = path.read_text()
    return out


def tiny_files(tmp: Path) -> dict[str, str | None]:
    """The files of the copy that differ from the working tree: config/config.yaml and the suites'."""
    suites = tiny_suite_files(tmp)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    unscaled = {Path(p).stem: UNSCALED for p, text in suites.items() if text and "halfmoon" not in p}
    tiny = {"scale": {**TINY_SCALE, "experiments": {k: v for k, v in unscaled.items() if not k.startswith("_")}}}
    return {"config/config.yaml": yaml.safe_dump(deep_merge(config, tiny)), **suites}


def repository_tar(overlay: dict[str, str | None]) -> bytes:
    """The working tree as git sees it (tracked and new files; not results/, .venv or other ignored
    ones), with `overlay` (path -> text, or None: left out) in place of those files."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(REPO, arcname="benchpipe", recursive=False)
        for name in filter(None, (n.decode() for n in names)):
            path = REPO / name
            if path.is_file() and name not in overlay:  # a deleted but still tracked file is not in the tree
                tar.add(path, arcname=f"benchpipe/{name}", recursive=False)
        for name, text in overlay.items():
            if text is None:
                continue
            data = text.encode()
            info = tarfile.TarInfo(f"benchpipe/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
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
    started = docker("run", "-d", "--rm", "--name", name, "--network", "host", *cas, base, "sleep", "3600")
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        docker("rm", "-f", name)


class Shell:
    """One bash in the container, fed one command at a time, as a user's terminal: what a command
    does to the shell (`. .venv/bin/activate`) holds for the next ones."""

    def __init__(self, container: str) -> None:
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", "-w", "/root/benchpipe", container, "bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str, timeout: float) -> tuple[int, str, float]:
        """(exit status, output, seconds). Braces, not a subshell: the command runs in this shell."""
        assert self.proc.stdin is not None
        token = f"__done_{uuid.uuid4().hex}__"
        self.proc.stdin.write(f"{{ {command}\n}} </dev/null 2>&1; echo {token} $?\n")
        self.proc.stdin.flush()
        out: list[str] = []
        t0 = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - t0)
            try:
                line = self.lines.get(timeout=max(left, 0.1))
            except queue.Empty:
                raise AssertionError(f"{command}: still running after {timeout:g} s:\n{''.join(out)[-4000:]}") from None
            if line is None:
                raise AssertionError(f"{command}: the shell ended:\n{''.join(out)[-4000:]}")
            if line.startswith(token):
                return int(line.split()[1]), "".join(out), time.monotonic() - t0
            out.append(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def check_after(c: Command, output: str, sh) -> None:
    """What each kind of command must have left, beyond its exit status."""
    line = command_line(c)
    words = shlex.split(line.split("&&")[-1])
    report = re.search(r"--report\s+(\S+)", line)
    figures = [w for w in words if re.fullmatch(r"figures/\S+\.png", w)]
    if report:
        # The one HTML file: the figure, the summaries, the points' manifests, the stage runtimes.
        html = sh(f"cat {shlex.quote(report.group(1))}").stdout
        held = [f"{fig.removeprefix('figures/')}" for fig in figures] + ["summary.csv", "manifest.json"]
        # Snakemake's runtime statistics: one entry per job, so every stage of the DAG is there.
        held += ["Runtimes of jobs", *(f'{{"rule": "{r}", "runtime' for r in STAGES)]
        for name in held:
            assert name in html, f"{c.source}: `{line}`: {report.group(1)} does not hold {name}"
    elif "--delete-all-output" in words:
        left = sh("ls figures/*.png results/*/*/*/manifest.json 2>/dev/null | wc -l").stdout.strip()
        assert left == "0", f"{c.source}: `{line}` left {left} figures or manifests"
    elif figures and "-n" not in words and "--until" not in words:
        for fig in figures:
            size = sh(f"stat -c %s {shlex.quote(fig)}").stdout.strip() or "0"
            assert int(size) > 10_000, f"{c.source}: `{line}`: {fig} is {size} bytes"


@pytest.mark.timeout(3600)
def test_readme_and_docs_commands_on_a_fresh_debian(fresh_machine, tmp_path):
    name = fresh_machine
    cmds = marked_commands()
    lines = [command_line(c) for c in cmds]
    for what, pattern in REQUIRED.items():
        assert any(re.search(pattern, x) for x in lines), (
            f"README.md: no command for {what} ({pattern}) in its blocks marked <!-- commands: local -->: {lines}"
        )
    assert re.search(REQUIRED["set-up and the main job"], lines[0]), f"the first command is not the set-up: {lines[0]}"
    copied = subprocess.run(
        ["docker", "cp", "-", f"{name}:/root"],
        input=repository_tar(tiny_files(tmp_path)),
        capture_output=True,
        timeout=120,
    )
    assert copied.returncode == 0, copied.stderr.decode()

    def sh(command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return docker("exec", "-w", "/root/benchpipe", name, "bash", "-c", command, timeout=timeout)

    # What a fresh Debian has: no pip, no venv module, and a python3 that refuses pip installs.
    before = sh("python3 -m pip -V; python3 -c 'import ensurepip'; ls /usr/lib/python3*/EXTERNALLY-MANAGED")
    assert "No module named pip" in before.stderr and "No module named 'ensurepip'" in before.stderr
    assert "EXTERNALLY-MANAGED" in before.stdout

    shell = Shell(name)
    times: list[tuple[str, float]] = []
    try:
        for c in cmds:
            status, output, took = shell.run(c.text, timeout=900)
            times.append((command_line(c), took))
            print(f"{c.source}: {command_line(c)}: {took:.0f} s (exit {status})")
            assert status == 0, f"{c.source}: `{command_line(c)}` exited {status}:\n{output[-6000:]}"
            check_after(c, output, sh)
    finally:
        shell.close()
    print(f"all {len(cmds)} commands: {sum(t for _, t in times):.0f} s")

    # No test tool came with the install (pytest would bring pygments, for one).
    assert sh(".venv/bin/python -c 'import pytest'").returncode != 0
    # Nothing went into the system Python (and `python`, the jobs' command, exists only in the venv).
    assert sh("python3 -c 'import snakemake'").returncode != 0
    # A second install finds everything there: no apt, no new venv, no pip run.
    t0 = time.monotonic()
    again = sh("bash scripts/install.sh", timeout=120)
    print(f"second install: {time.monotonic() - t0:.1f} s")
    assert again.returncode == 0 and not again.stdout.strip() and not again.stderr.strip(), again
