"""The CRIU path, for a host where CRIU works (`--profile ssh`; not this development machine, where
Debian 12's criu 3.17.1 fails its kernel check on kernel 6.18): the commands the artifact's agent
and its Table 4 measurement run, rendered for a remote shell.

- dump (agent-python/main.py): `criu dump -t <pid> --tcp-established --leave-running -D <dir>`
- restore (the container's start): `criu restore --restore-detached --tcp-close -d -D <dir>`, and
  here `--pidfile <file>`: CRIU restores every process under the pid it had when dumped, and fails
  ("File exists") when another process holds it by then. So here an instance is started as the init
  of a pid namespace of its own (`unshare --pid --fork --kill-child`, pidns_argv); CRIU dumps that
  namespace with it and a restore recreates a new one, in which its pid (1) cannot be taken. The
  restored process's pid on the host is new each time; CRIU writes it to the pidfile. (criu-ns,
  shipped with CRIU, solves the same "PID mismatch" by running criu restore itself in new pid and
  mount namespaces; it leaves the restored process's host pid unknown to its caller, and the
  wrapper's init in between.)
- Table 4 (cost-analysis/table_4.py, run by hand in a pod): 10 cycles of dump, kill, restore;
  `table4_script` renders that script for a host by hand. The pipeline measures the same cycles
  through the host (`--snapshot criu --strategy cycle`: experiment pronghorn_tables), and Tables
  4 and 5 are computed by benchpipe/summaries/snapshot_costs.py.
- CriuImages: the host's snapshot pool in CRIU mode (these commands, timed; image size measured).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path


def dump_cmd(pid: int | str, image_dir: str) -> str:
    return f"criu dump -t {pid} --tcp-established --leave-running -D {shlex.quote(image_dir)}"


def restore_cmd(image_dir: str, pidfile: str | None = None) -> str:
    cmd = f"criu restore --restore-detached --tcp-close -d -D {shlex.quote(image_dir)}"
    return f"{cmd} --pidfile {shlex.quote(pidfile)}" if pidfile else cmd


def pidns_argv(argv: list[str], unshare: str = "unshare") -> list[str]:
    """`argv` run as the init (pid 1) of a new pid namespace, so that CRIU dumps the namespace with
    it and restores it into a new one: no restore can collide with a live pid. `unshare` is the
    command prefix: `unshare` as root, `sudo -n unshare` otherwise (then setpriv gives the process
    back the caller's uid and gid, so that the host can signal it and its files stay the user's)."""
    prefix = shlex.split(unshare)
    drop = []
    if prefix and prefix[0] == "sudo":
        drop = ["setpriv", f"--reuid={os.getuid()}", f"--regid={os.getgid()}", "--clear-groups"]
    # setsid: the init leads a session of its own inside its namespace, as the artifact's `setsid
    # pypy3 index.py` (CRIU dumps a tree whose session it holds); not a group leader, it keeps pid 1.
    return [*prefix, "--pid", "--fork", "--kill-child", "--", *drop, "setsid", *argv]


def ns_init_pid(launcher_pid: int) -> int:
    """The host pid of the namespace's init that `unshare --fork` (pid `launcher_pid`) started."""
    try:
        children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    except OSError:
        children = []
    if len(children) != 1:
        raise RuntimeError(f"unshare {launcher_pid}: expected one child (the namespace's init), found {children}")
    return int(children[0])


def image_bytes(image_dir: str | Path) -> int:
    """The image's size as `du -sb` counts it (apparent bytes of its files)."""
    return sum(f.stat().st_size for f in Path(image_dir).rglob("*") if f.is_file())


class CriuImages:
    """The function host's snapshot pool in CRIU mode: one image folder per snapshot point.

    `criu` is the command prefix (`criu`, or `sudo -n criu` for a non-root host: dumping a
    process and its TCP connection takes CAP_SYS_ADMIN). The commands are the artifact's."""

    def __init__(self, root: Path, criu: str = "criu") -> None:
        self.root = root
        self.criu = criu
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, request_number: int) -> Path:
        return self.root / f"after-{request_number}"

    def _run(self, cmd: str, what: str) -> float:
        t0 = time.perf_counter()
        res = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        ms = (time.perf_counter() - t0) * 1e3
        if res.returncode != 0:
            raise RuntimeError(f"{what} failed ({res.returncode}): {cmd}: {res.stderr.strip()[-800:]}")
        return ms

    def dump(self, pid: int, request_number: int) -> dict[str, float]:
        """Dump the running process (it keeps running); its dump time (ms) and image size (bytes)."""
        d = self.folder(request_number)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        ms = self._run(f"{self.criu} {dump_cmd(pid, str(d)).removeprefix('criu ')}", f"criu dump of {pid}")
        return {"dump_ms": round(ms, 1), "image_bytes": image_bytes(d)}

    def pidfile(self) -> Path:
        return self.root / "restored.pid"

    def restore(
        self, request_number: int, pid: int, own_pidns: bool = True, free_wait_s: float = 10
    ) -> tuple[float, int]:
        """Restore the image taken after `request_number`; the restore command's time (ms) and the
        restored process's pid on the host. An image of a pid namespace's init (`own_pidns`) is
        restored into a new namespace; any other keeps its old `pid`, which must be free: the
        evicted process is waited for first (another process may hold it all the same)."""
        if not own_pidns:
            deadline = time.monotonic() + free_wait_s
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.002)
        pidfile = self.pidfile()
        pidfile.unlink(missing_ok=True)
        cmd = restore_cmd(str(self.folder(request_number)), str(pidfile))
        ms = self._run(
            f"{self.criu} {cmd.removeprefix('criu ')}", f"criu restore of the image after request {request_number}"
        )
        try:
            restored = int(pidfile.read_text().strip())
            pidfile.unlink()
        except (OSError, ValueError):
            raise RuntimeError(
                f"criu restore of the image after request {request_number} wrote no pid to {pidfile}"
            ) from None
        return round(ms, 1), restored

    def drop(self, request_number: int) -> None:
        shutil.rmtree(self.folder(request_number), ignore_errors=True)


def restore_token_file(state_dir: str | Path) -> Path:
    """Where the host writes the token a restored process reconnects with (its control
    connection is closed by `--tcp-close`)."""
    return Path(state_dir) / "restore-token"


def write_token(path: Path, token: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(token)
    os.replace(tmp, path)


def size_cmd(image_dir: str) -> str:
    return f"du -sb {shlex.quote(image_dir)} | cut -f1"


def table4_script(start_cmd: str, ready_cmd: str, image_dir: str, cycles: int = 10) -> str:
    """A bash script for the remote host: start the function's process, make it serve once
    (`ready_cmd`), then `cycles` x (dump it, kill it, restore it, make it serve); one JSON line per
    cycle: {"cycle", "dump_ms", "restore_ms", "size_bytes"}. Run with `bash -s` over ssh."""
    d = shlex.quote(image_dir)
    return "\n".join(
        [
            "set -euo pipefail",
            "ms() { date +%s%3N; }",
            f"{start_cmd} &",
            "pid=$!",
            f"until {ready_cmd}; do sleep 0.1; done",
            f"for cycle in $(seq 1 {int(cycles)}); do",
            f"  rm -rf {d} && mkdir -p {d}",
            f"  t0=$(ms); {dump_cmd('$pid', image_dir)}; t1=$(ms)",
            f"  size=$({size_cmd(image_dir)})",
            "  kill -9 $pid; while kill -0 $pid 2>/dev/null; do sleep 0.01; done",
            f"  t2=$(ms); {restore_cmd(image_dir)}; t3=$(ms)",
            # CRIU restores the process under its old pid.
            f"  until {ready_cmd}; do sleep 0.01; done",
            '  printf \'{"cycle": %d, "dump_ms": %d, "restore_ms": %d, "size_bytes": %d}\\n\' '
            '"$cycle" "$((t1 - t0))" "$((t3 - t2))" "$size"',
            "done",
            "kill -9 $pid || true",
        ]
    )


def parse_cycles(text: str) -> list[dict[str, float]]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                rows.append({k: float(rec[k]) for k in ("dump_ms", "restore_ms", "size_bytes")})
            except (ValueError, KeyError):
                raise ValueError(f"table 4 output line {i}: expected a JSON cycle record, got {line!r}") from None
    if not rows:
        raise ValueError("table 4 output: no cycle recorded")
    return rows


def main(argv: list[str] | None = None) -> None:
    """`python -m pronghorn.criu script ...` prints the Table 4 script for a remote host;
    `python -m pronghorn.criu tables NAME=FILE ...` prints Tables 4 and 5 as JSON lines."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m pronghorn.criu", description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("script")
    sc.add_argument("--start", required=True, help="the function's command, e.g. 'pypy3 index.py'")
    sc.add_argument("--ready", required=True, help="succeeds once it serves, e.g. 'curl -sf localhost:8080/'")
    sc.add_argument("--dir", default="/tmp/pronghorn-checkpoint")
    sc.add_argument("--cycles", type=int, default=10)
    tb = sub.add_parser("tables")
    tb.add_argument("outputs", nargs="+", help="BENCHMARK=FILE: the script's output for that benchmark")
    args = ap.parse_args(argv)
    if args.cmd == "script":
        print(table4_script(args.start, args.ready, args.dir, args.cycles))
        return
    # On the controller: the tables' arithmetic is the snapshot_costs metric's.
    from benchpipe.summaries.snapshot_costs import table4_row, table5_row

    for item in args.outputs:
        name, _, path = item.partition("=")
        cycles = parse_cycles(Path(path).read_text())
        row = table4_row(*([c[k] for c in cycles] for k in ("dump_ms", "restore_ms", "size_bytes")))
        print(json.dumps({"table": 4, "benchmark": name, **row}))
        print(json.dumps({"table": 5, "benchmark": name, **table5_row(row["size_mb"])}))


if __name__ == "__main__":
    main()
