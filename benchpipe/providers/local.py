"""The local provider: this machine is the whole cluster (every role on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from benchpipe.model import Cluster, Host


class LocalProvider:
    # Do all its clusters share the same machines (so one point's stack at a time overall)?
    shared_machines = True

    def __init__(self, settings: dict[str, Any]) -> None:
        self.address = settings.get("address", "127.0.0.1")

    def preflight(self) -> list[str]:
        try:
            with socket.socket() as s:
                s.bind((self.address, 0))
        except OSError as e:
            return [f"cannot bind a port on {self.address} ({e}); set provider.settings.address"]
        return []

    def provision(self, spec: dict[str, Any], *, name: str, run_id: str, experiment: str, baseline: str) -> Cluster:
        # One host plays every role: the shape's machine names are kept in `extra` for the record.
        host = Host(name=socket.gethostname(), address=self.address, role="manager")
        return Cluster(
            name=name,
            provider="local",
            run_id=run_id,
            experiment=experiment,
            baseline=baseline,
            hosts=[host],
            # Every local cluster is the same machine: all points on it take turns.
            lock_key=f"local-{socket.gethostname()}",
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            extra={"shape": [m["name"] for m in spec.get("machines", [])]},
        )

    def teardown(self, cluster: Cluster) -> None:
        # Stacks are stopped point by point; a stack left by a killed job is reaped from its pid file.
        from benchpipe.deployers.process import reap_stale

        reap_stale()
