"""zkCli.sh, as zk_setup.sh calls it: `zkCli.sh -server HOST:PORT [command args...]`, or the commands
one per line on stdin (a here-document) until `quit`. Commands: create PATH [DATA], delete PATH,
deleteall PATH, get PATH, ls PATH, stat PATH (prints ctime = ..., as the real one), quit. Like the
real client, a failed command prints the error and the session goes on; the exit status is 0 unless
the server cannot be reached."""

from __future__ import annotations

import shlex
import sys
import time

from hmcontract.zk import Client

MESSAGES = {"NodeExists": "Node already exists: {path}", "NoNode": "Node does not exist: {path}"}


def run_command(client: Client, words: list[str]) -> bool:
    """False on quit."""
    if not words:
        return True
    cmd, args = words[0], words[1:]
    if cmd == "quit":
        return False
    if cmd not in ("create", "delete", "deleteall", "get", "ls", "stat") or not args:
        print(f"ZooKeeper -server host:port cmd args: unknown or incomplete command {' '.join(words)}")
        return True
    path = args[0]
    data = args[1] if cmd == "create" and len(args) > 1 else None
    r = client.call(cmd, path, data)
    if "err" in r:
        print(MESSAGES.get(r["err"], "{err}: {path}").format(err=r["err"], path=r.get("path", path)))
    elif cmd == "create":
        print(f"Created {path}")
    elif cmd == "get":
        print(r.get("data") or "null")
    elif cmd == "stat":
        st = r["stat"]
        for key in ("cZxid", "ctime", "mZxid", "mtime"):
            value = st[key]
            if key.endswith("time"):
                value = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(value / 1000))
            print(f"{key} = {value}")
        print(f"numChildren = {st['numChildren']}")
    elif cmd == "ls":
        print("[" + ", ".join(r.get("children", [])) + "]")
    return True


def main(argv: list[str]) -> int:
    server = "localhost:2181"
    if len(argv) >= 2 and argv[0] == "-server":
        server, argv = argv[1], argv[2:]
    try:
        client = Client(server, connect_timeout_s=60)
    except ConnectionError as e:
        print(e, file=sys.stderr)
        return 1
    if argv:
        run_command(client, argv)
        return 0
    for line in sys.stdin:
        if not run_command(client, shlex.split(line)):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
