"""The provider interface: where machines come from."""

from __future__ import annotations

from typing import Any, Protocol

from benchpipe.model import Cluster


class Provider(Protocol):
    """Creates and destroys clusters. Every method is safe to call twice."""

    def __init__(self, settings: dict[str, Any]) -> None: ...

    def preflight(self) -> list[str]:
        """Problems that would stop provisioning, each a sentence saying what to do."""
        ...

    def provision(self, spec: dict[str, Any], *, name: str, run_id: str, experiment: str, baseline: str) -> Cluster:
        """Bring up the machines of `spec` (the experiment's cluster shape) and return them."""
        ...

    def teardown(self, cluster: Cluster) -> None:
        """Release everything `cluster` holds; idempotent."""
        ...
