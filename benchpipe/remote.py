"""Commands on remote hosts over SSH (Fabric), with errors that name the host."""

from __future__ import annotations

import shlex
from typing import Any

from benchpipe.errors import StackError
from benchpipe.model import Host


class RemoteError(StackError):
    pass


def connect(host: Host, timeout_s: float = 15) -> Any:
    from fabric import Connection

    target = host.ssh_alias or host.address
    kwargs: dict[str, Any] = {"timeout": timeout_s, "banner_timeout": timeout_s, "auth_timeout": timeout_s}
    if host.key_file:
        kwargs["key_filename"] = host.key_file
    return Connection(
        target, user=host.user or None, port=host.ssh_port if not host.ssh_alias else None, connect_kwargs=kwargs
    )


def session_prefix(host: Host) -> str:
    """The host's `path` folders first on PATH and its `env` set, before a command (empty if none)."""
    parts = [f"export {k}={shlex.quote(str(v))}" for k, v in sorted(host.env.items())]
    if host.path:
        parts.append("export PATH=" + ":".join(shlex.quote(p) for p in host.path) + ':"$PATH"')
    return "".join(f"{p}; " for p in parts)


def run(host: Host, command: str, timeout_s: float = 300, hide: bool = True) -> str:
    try:
        with connect(host) as c:
            res = c.run(session_prefix(host) + command, hide=hide, warn=True, timeout=timeout_s, in_stream=False)
    except Exception as e:  # paramiko/socket errors: the host is named, the cause kept short
        raise RemoteError(f"host {host.name} ({host.address}): SSH failed: {e.__class__.__name__}: {e}") from None
    if res.exited != 0:
        raise RemoteError(
            f"host {host.name} ({host.address}): `{command[:80]}` exited {res.exited}: {res.stderr[-500:]}"
        )
    return res.stdout


def run_on_hosts(hosts: list[Host], command: str, timeout_s: float = 300) -> dict[str, str]:
    return {h.name: run(h, command, timeout_s) for h in hosts}


def put(host: Host, local: str, remote_path: str) -> None:
    try:
        with connect(host) as c:
            c.put(local, remote_path)
    except Exception as e:
        raise RemoteError(f"host {host.name} ({host.address}): upload to {remote_path} failed: {e}") from None


def put_private_text(host: Host, text: str, remote_dir: str, name: str) -> str:
    """`text` as remote_dir/name, readable by the remote user only (a 0700 folder made first, the
    file 0600 from a 0600 local file: Fabric's put keeps the mode). Returns the remote path."""
    import os
    import shlex
    import tempfile

    run(host, f"umask 077 && mkdir -p {shlex.quote(remote_dir)} && chmod 0700 {shlex.quote(remote_dir)}")
    fd, local = tempfile.mkstemp(suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        path = f"{remote_dir}/{name}"
        put(host, local, path)
        return path
    finally:
        os.unlink(local)


def get(host: Host, remote_path: str, local: str) -> None:
    try:
        with connect(host) as c:
            c.get(remote_path, local)
    except Exception as e:
        raise RemoteError(f"host {host.name} ({host.address}): cannot fetch {remote_path}: {e}") from None
