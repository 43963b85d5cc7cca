"""The start-up checks the stand-in binaries share. Each refusal names the fact sheet's section
(../shared/reference/halfmoon-real-services.md) that says the real binary refuses the same thing."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import sys
from collections.abc import Iterable
from typing import Any


class Refusal(Exception):
    """A start the real binary refuses. str(): what, and the fact sheet section it comes from."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(f"{message} [{source}]")
        self.source = source


def fatal(component: str, err: Refusal) -> int:
    # Like glog's LOG(FATAL)/CHECK: one line on stderr, a non-zero exit, so the swarm task fails.
    print(f"F {component}: {err}", file=sys.stderr, flush=True)
    return 2


def parse_flags(argv: Iterable[str], known: dict[str, str]) -> dict[str, Any]:
    """gflags-style `--name=value` / `--name` (booleans) / `--noname`. `known` maps each flag the
    binary defines to "bool" or "str"; an undefined flag is refused, as gflags refuses one
    ("ERROR: unknown command line flag"), which catches a misspelt flag in a rendered stack."""
    out: dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-"):
            raise Refusal(f"unexpected argument {a!r}", "gflags: only --flags")
        name, eq, value = a.lstrip("-").partition("=")
        if name not in known and name.startswith("no") and known.get(name[2:]) == "bool" and not eq:
            out[name[2:]] = False
            continue
        if name not in known:
            raise Refusal(f"unknown command line flag {name!r}", "gflags; the flags are the sheet's §3 tables")
        if known[name] == "bool":
            out[name] = value.lower() not in ("false", "0", "no") if eq else True
        elif eq:
            out[name] = value
        elif i < len(args):
            out[name] = args[i]
            i += 1
        else:
            raise Refusal(f"flag --{name} is missing its value", "gflags")
    return out


def load_registry(path: str | None, component: str) -> list[dict[str, Any]]:
    """sheet §2.1 'The function registry': gateway and engine CHECK that --func_config_file is
    non-empty and readable; names and ids must be unique and valid."""
    if not path:
        raise Refusal(f"{component} needs --func_config_file (CHECK: non-empty)", "sheet §2.1, §3 defaults")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise Refusal(f"cannot read --func_config_file={path}: {e.strerror}", "sheet §2.1") from None
    try:
        funcs = json.loads(text)
    except json.JSONDecodeError as e:
        raise Refusal(f"{path} is not JSON: {e}", "sheet §2.1 (format)") from None
    if not isinstance(funcs, list) or not funcs:
        raise Refusal(f"{path}: expected a JSON array of functions", "sheet §2.1 (format)")
    names: set[str] = set()
    ids: set[int] = set()
    for i, fn in enumerate(funcs):
        name, fid = (fn.get("funcName"), fn.get("funcId")) if isinstance(fn, dict) else (None, None)
        if not isinstance(name, str) or not name:
            raise Refusal(f"{path}[{i}]: funcName must be a non-empty string", "sheet §2.1 (valid names)")
        if not isinstance(fid, int) or isinstance(fid, bool) or fid <= 0:
            raise Refusal(f"{path}[{i}] ({name}): funcId must be a positive integer", "sheet §2.1 (valid ids)")
        for key in ("minWorkers", "maxWorkers"):
            if key in fn and (not isinstance(fn[key], int) or fn[key] < 0):
                raise Refusal(f"{path}[{i}] ({name}): {key} must be a non-negative integer", "sheet §2.1 (format)")
        if name in names:
            raise Refusal(f"{path}: duplicate funcName {name!r}", "sheet §2.1 (unique names)")
        if fid in ids:
            raise Refusal(f"{path}: duplicate funcId {fid}", "sheet §2.1 (unique ids)")
        names.add(name)
        ids.add(fid)
    return funcs


def iface_address(iface: str) -> str:
    """The IPv4 address of `iface` (SIOCGIFADDR), as the real servers bind their message port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))
        except OSError as e:
            raise Refusal(
                f"--listen_iface={iface}: no IPv4 address on this interface ({e.strerror})", "sheet §3"
            ) from None
    return socket.inet_ntoa(packed[20:24])


def multi_host_iface(flags: dict[str, Any], component: str) -> str:
    """sheet §3 defaults: --listen_iface defaults to lo; every server registers ip:port of this
    interface in ZooKeeper, so with lo the other VMs are sent to 127.0.0.1. The real binary starts
    anyway; the stand-in refuses, since such a stack can only fail later on more than one VM."""
    iface = flags.get("listen_iface", "lo")
    if iface != "eth0":
        raise Refusal(
            f"{component} --listen_iface={iface}: a multi-host role must listen on eth0 "
            "(lo, the default, registers 127.0.0.1 for the other VMs)",
            "sheet §3 'Halfmoon defaults'",
        )
    return iface_address(iface)


def node_id(flags: dict[str, Any], component: str) -> int:
    """sheet §3 'Node IDs': storage and sequencer LOG(FATAL) "Node ID not set!" without --node_id
    or FAAS_NODE_ID."""
    raw = flags.get("node_id") or os.environ.get("FAAS_NODE_ID", "")
    if not raw:
        raise Refusal(f"{component}: Node ID not set! (no --node_id, no FAAS_NODE_ID)", "sheet §3 'Node IDs'")
    try:
        return int(raw)
    except ValueError:
        raise Refusal(f"{component}: node id {raw!r} is not a number", "sheet §3 'Node IDs'") from None
