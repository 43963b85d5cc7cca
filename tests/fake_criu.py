"""A stand-in for the `criu` command in tests, on a machine where CRIU does not work (Debian's
criu 3.17.1 fails its kernel check on kernel 6.18). It is not CRIU: `dump` records the process's
command line and environment (and writes a file as large as its resident memory, as an image
would be); `restore` starts that command again, detached. The restarted process connects to the
host with its old token, is turned away, and reconnects with the token file as a process restored
by `criu restore --tcp-close` does: so the host's CRIU-mode bookkeeping (dump, image size,
restore, reconnect, pruning) runs for real, without the warm state a real image would carry.

Every invocation is appended to the file named by FAKE_CRIU_LOG, one line each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_CRIU_LOG"], "a") as log:
        log.write("criu " + " ".join(argv) + "\n")
    image = Path(argv[argv.index("-D") + 1])
    if argv[0] == "dump":
        pid = argv[argv.index("-t") + 1]
        proc = Path(f"/proc/{pid}")
        cmd = proc.joinpath("cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        env = dict(e.split(b"=", 1) for e in proc.joinpath("environ").read_bytes().split(b"\0") if b"=" in e)
        rec = {"argv": [a.decode() for a in cmd], "env": {k.decode(): v.decode() for k, v in env.items()}}
        image.joinpath("process.json").write_text(json.dumps(rec))
        rss_pages = int(proc.joinpath("statm").read_text().split()[1])
        with open(image / "pages-1.img", "wb") as f:
            f.truncate(rss_pages * os.sysconf("SC_PAGE_SIZE"))
        return 0
    if argv[0] == "restore":
        rec = json.loads(image.joinpath("process.json").read_text())
        subprocess.Popen(
            rec["argv"],
            env=rec["env"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return 0
    print(f"fake criu: unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
