"""A stand-in for the `criu` command in tests, on a machine where CRIU does not work (Debian's
criu 3.17.1 fails its kernel check on kernel 6.18). It is not CRIU: `dump` records the process's
command line and environment, and whether it is the init of a pid namespace of its own (and writes
a file as large as its resident memory, as an image would be); `restore` starts that command
again, detached. The restarted process connects to the host with its old token, is turned away,
and reconnects with the token file as a process restored by `criu restore --tcp-close` does: so
the host's CRIU-mode bookkeeping (dump, image size, restore, reconnect, pruning) runs for real,
without the warm state a real image would carry.

Pids follow CRIU's rules: an image of a pid namespace's init is restored as the init of a new
namespace (a real unshare(CLONE_NEWPID) and fork here), its host pid written to `--pidfile`; any
other image needs its old pid, and the restore fails as CRIU's does ("File exists") while a live
process holds it (without taking it when free: the restarted process gets a new pid).

Every invocation is appended to the file named by FAKE_CRIU_LOG, one line each. With
FAKE_CRIU_DUMP_GATE set, a dump finishes only once that file exists (a slow dump, on cue).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLONE_NEWPID = 0x20000000


def nspids(pid: str | int) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return line.split()[1:]
    return [str(pid)]


def restore_in_new_pidns(rec: dict) -> int:
    """Start the recorded command as the init of a new pid namespace, detached (this process exits,
    the restored one is reparented, as after `criu restore --restore-detached`); its host pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID)")
    pid = os.fork()
    if pid == 0:  # pid 1 of the new namespace
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execvpe(rec["argv"][0], rec["argv"], rec["env"])
    return pid


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_CRIU_LOG"], "a") as log:
        log.write("criu " + " ".join(argv) + "\n")
    image = Path(argv[argv.index("-D") + 1])
    if argv[0] == "dump":
        gate = os.environ.get("FAKE_CRIU_DUMP_GATE")
        deadline = time.monotonic() + 30
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = argv[argv.index("-t") + 1]
        proc = Path(f"/proc/{pid}")
        cmd = proc.joinpath("cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        env = dict(e.split(b"=", 1) for e in proc.joinpath("environ").read_bytes().split(b"\0") if b"=" in e)
        ns = nspids(pid)
        rec = {
            "argv": [a.decode() for a in cmd],
            "env": {k.decode(): v.decode() for k, v in env.items()},
            "pid": int(pid),
            "pidns_init": len(ns) > 1 and ns[-1] == "1",
        }
        image.joinpath("process.json").write_text(json.dumps(rec))
        rss_pages = int(proc.joinpath("statm").read_text().split()[1])
        with open(image / "pages-1.img", "wb") as f:
            f.truncate(rss_pages * os.sysconf("SC_PAGE_SIZE"))
        return 0
    if argv[0] == "restore":
        rec = json.loads(image.joinpath("process.json").read_text())
        if rec.get("pidns_init"):
            pid = restore_in_new_pidns(rec)
        elif Path(f"/proc/{rec['pid']}").exists():
            print(f"Error (criu/cr-restore.c): Can't fork for {rec['pid']}: File exists", file=sys.stderr)
            return 1
        else:
            pid = subprocess.Popen(
                rec["argv"],
                env=rec["env"],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).pid
        if "--pidfile" in argv:
            Path(argv[argv.index("--pidfile") + 1]).write_text(f"{pid}\n")
        return 0
    print(f"fake criu: unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
