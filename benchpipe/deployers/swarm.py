"""The swarm deployer: the stack as a Docker Swarm stack, deployed on the manager over SSH.

Every point gets a fresh stack (removed, and waited for until its containers are gone, before and
after) and its own results folder on the hosts, mounted into the gateway as `{point_dir}`, so points
never overwrite each other's async_results. Readiness is polled (the gateway's HTTP endpoint, and the
stack's tasks for failures), never slept for.
"""

from __future__ import annotations

import shlex
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchpipe import remote
from benchpipe.deployers.base import wait_for_count
from benchpipe.deployers.compose import for_point, render_compose
from benchpipe.errors import StackError
from benchpipe.model import Cluster, Host, write_json_atomic


@dataclass
class SwarmStack:
    endpoint: str
    cluster: Cluster
    stack: str
    point_dir: str
    gateway_host: Host
    services: list[str]
    ready_path: str
    internal_endpoint: str = ""  # the gateway as the cluster's own machines reach it (private address)
    images: list[str] = field(default_factory=list)
    table_prefix: str = ""  # the point's DynamoDB tables (AWS), deleted when the stack stops


class SwarmDeployer:
    """settings: stack (benchpipe), host_network (false; true on the local test bed), gateway_port (8080),
    ready_path (/healthz for the stand-in), ready_timeout_s, stop_timeout_s, region."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.stack_name = self.s.get("stack", "benchpipe")
        # Per point, on the hosts: where the gateway writes async_results (kept after the stack goes).
        self.remote_dir_template = self.s.get(
            "remote_dir_template", "/tmp/benchpipe/{run_id}/{experiment}/{baseline}/{point}"
        )

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        services = for_point(deployment.get("services") or {}, deployment.get("vars", {}))
        gateways = [n for n, svc in services.items() if svc.get("gateway")]
        if len(gateways) != 1:
            raise StackError("services: expected exactly one service with gateway: true")
        host = (services[gateways[0]].get("placement") or {}).get("hostname")
        if not host:
            raise StackError(f"services.{gateways[0]}.placement.hostname: the gateway must be pinned to a machine")
        compose = render_compose(
            services, cluster, env, region=self.s.get("region", ""), host_network=bool(self.s.get("host_network"))
        )
        return {
            "kind": "swarm",
            "stack": self.stack_name,
            "compose": compose,
            "gateway_machine": host,
            "services": list(services),
            "port": int(self.s.get("gateway_port", 8080)),
            "ready_path": self.s.get("ready_path", "/healthz"),
            "tables": list(deployment.get("tables", [])),
            "images": sorted({svc["image"] for svc in services.values()}),
        }

    # --- helpers --------------------------------------------------------------------------
    def _manager(self, stack_or_cluster: SwarmStack | Cluster) -> Host:
        cluster = stack_or_cluster.cluster if isinstance(stack_or_cluster, SwarmStack) else stack_or_cluster
        return cluster.manager

    def _tasks(self, manager: Host, stack: str) -> list[str]:
        out = remote.run(
            manager,
            f"docker stack ps {stack} --no-trunc"
            " --format '{{.Name}} {{.CurrentState}} {{.Error}}' 2>/dev/null || true",
        )
        return [line for line in out.splitlines() if line.strip()]

    def _wait_removed(self, manager: Host, stack: str, timeout_s: float) -> None:
        remote.run(manager, f"docker stack rm {stack} >/dev/null 2>&1 || true")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = remote.run(
                manager,
                f"docker ps -aq --filter label=com.docker.stack.namespace={stack}; "
                f"docker network ls -q --filter label=com.docker.stack.namespace={stack}",
            ).split()
            if not left:
                return
            time.sleep(0.5)
        raise StackError(f"stack {stack} still has containers or networks {timeout_s:g} s after `docker stack rm`")

    # --- the Deployer interface -----------------------------------------------------------
    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> SwarmStack:
        manager = cluster.manager
        stack = rendered["stack"]
        gateway_host = next((h for h in cluster.hosts if h.name == rendered["gateway_machine"]), None)
        if gateway_host is None:
            raise StackError(f"the gateway's machine {rendered['gateway_machine']} is not in cluster {cluster.name}")
        self._wait_removed(manager, stack, float(self.s.get("stop_timeout_s", 120)))
        for h in {h.address: h for h in cluster.hosts if h.role != "client"}.values():
            remote.run(h, f"rm -rf {shlex.quote(remote_dir)} && mkdir -p {shlex.quote(remote_dir)}")
        prefix = self._open_tables(cluster, rendered, remote_dir)
        compose = rendered["compose"].replace("{point_dir}", remote_dir).replace("{table_prefix}", prefix)
        remote_file = f"{remote_dir}/docker-compose.yml"
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write(compose)
            f.flush()
            remote.put(manager, f.name, remote_file)
        remote.run(manager, f"docker stack deploy --prune -c {shlex.quote(remote_file)} {stack}")
        return SwarmStack(
            endpoint=f"http://{gateway_host.address}:{rendered['port']}",
            cluster=cluster,
            stack=stack,
            point_dir=remote_dir,
            gateway_host=gateway_host,
            services=rendered["services"],
            ready_path=rendered["ready_path"],
            internal_endpoint=f"http://{gateway_host.private_address or gateway_host.address}:{rendered['port']}",
            images=list(rendered.get("images", [])),
            table_prefix=prefix,
        )

    def handle(self, stack: SwarmStack, lease: str) -> dict[str, Any]:
        """What another job needs to reach, check and stop this stack (it lives on the cluster)."""
        return asdict(stack)

    def attach(self, handle: dict[str, Any]) -> SwarmStack:
        h = dict(handle)
        h["cluster"] = Cluster.from_dict(h["cluster"])
        h["gateway_host"] = Host.from_dict(h["gateway_host"])
        return SwarmStack(**h)

    def _open_tables(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> str:
        """On AWS, the point's DynamoDB tables under a prefix naming the run and the point."""
        names = rendered.get("tables") or []
        if not names or cluster.provider != "aws":
            return ""
        import hashlib

        from benchpipe.cloud import dynamo
        from benchpipe.cloud.session import client

        prefix = f"{cluster.extra['table_prefix']}{hashlib.sha1(remote_dir.encode()).hexdigest()[:8]}-"
        settings = {"region": cluster.extra.get("region"), "endpoint_url": cluster.extra.get("endpoint_url")}
        ddb = client(settings, "dynamodb")
        # Deleted by prefix when the stack stops (stop), whichever job that is; here if making them fails.
        try:
            dynamo.create_tables(ddb, prefix, names, {"project": "benchpipe", "run-id": cluster.run_id})
        except BaseException:
            dynamo.delete_tables_by_prefix(ddb, prefix)
            raise
        return prefix

    def client(self, stack: SwarmStack) -> Host | None:
        clients = stack.cluster.by_role("client")
        return clients[0] if clients else None

    def _answers(self, stack: SwarmStack) -> bool:
        """Does the gateway answer 200? Asked from the client machine when there is one: the security
        group admits only SSH from the controller, the gateway's port only from inside the cluster."""
        client = self.client(stack)
        if client is None or self.s.get("probe_from") == "controller":
            try:
                with urllib.request.urlopen(stack.endpoint + stack.ready_path, timeout=3) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False
        url = shlex.quote(stack.internal_endpoint + stack.ready_path)
        code = remote.run(client, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 {url} || true").strip()
        return code == "200"

    def load_context(self, stack: SwarmStack) -> dict[str, Any]:
        """Where the load generator runs (the client machine) and the gateway it targets from there."""
        return {"client": self.client(stack), "target": stack.internal_endpoint, "work_dir": stack.point_dir}

    def check_healthy(self, stack: SwarmStack) -> None:
        bad = [t for t in self._tasks(self._manager(stack), stack.stack) if " Failed" in t or " Rejected" in t]
        if bad:
            raise StackError(f"stack {stack.stack}: task(s) failed: " + "; ".join(bad[:5]))

    def wait_ready(self, stack: SwarmStack, timeout_s: float) -> None:
        url = stack.endpoint + stack.ready_path
        deadline = time.monotonic() + timeout_s
        delay = 0.2
        while True:
            if self._answers(stack):
                return
            self.check_healthy(stack)
            if time.monotonic() > deadline:
                tasks = "; ".join(self._tasks(self._manager(stack), stack.stack)[:8])
                raise StackError(f"stack not ready: {url} did not answer 200 within {timeout_s:g} s (tasks: {tasks})")
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)

    def _completed(self, stack: SwarmStack) -> int:
        """Calls completed so far: lines of async_results on the gateway's host."""
        path = shlex.quote(f"{stack.point_dir}/async_results")
        return int(remote.run(stack.gateway_host, f"cat {path} 2>/dev/null | wc -l").strip() or 0)

    def wait_drained(self, stack: SwarmStack, expected: int, timeout_s: float) -> int:
        return wait_for_count(lambda: self._completed(stack), expected, timeout_s, 0.3)

    def completed_counter(self, stack: SwarmStack) -> Callable[[], int]:
        """Calls completed so far, counted on the gateway's host at most every 5 s: for progress."""
        state = {"t": 0.0, "n": 0}

        def count() -> int:
            if time.monotonic() - state["t"] >= 5:
                state["t"] = time.monotonic()
                state["n"] = self._completed(stack)
            return state["n"]

        return count

    def fetch(self, stack: SwarmStack, dest: Path) -> list[Path]:
        self.check_healthy(stack)  # a service that crashed mid-point fails the point
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / "async_results"
        remote.get(stack.gateway_host, f"{stack.point_dir}/async_results", str(out))
        # Provenance: the image ids the stack ran (as the manager has them).
        ids = {}
        for image in stack.images:
            q = shlex.quote(image)
            ids[image] = remote.run(
                self._manager(stack), f"docker image inspect --format '{{{{.Id}}}}' {q} || true"
            ).strip()
        write_json_atomic(dest / "images.json", ids)
        return [out]

    def collect_logs(self, stack: SwarmStack, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        manager = self._manager(stack)
        (dest / "tasks.txt").write_text("\n".join(self._tasks(manager, stack.stack)) + "\n")
        for svc in stack.services:
            text = remote.run(manager, f"docker service logs --timestamps --raw {stack.stack}_{svc} 2>&1 || true")
            (dest / f"{svc}.log").write_text(text)

    def stop(self, stack: SwarmStack) -> None:
        try:
            self._wait_removed(self._manager(stack), stack.stack, float(self.s.get("stop_timeout_s", 120)))
        finally:
            if stack.table_prefix:
                # Possibly in another job than the one that made them: by prefix, as the janitor does.
                from benchpipe.cloud import dynamo
                from benchpipe.cloud.session import client

                extra = stack.cluster.extra
                ddb = client({"region": extra.get("region"), "endpoint_url": extra.get("endpoint_url")}, "dynamodb")
                dynamo.delete_tables_by_prefix(ddb, stack.table_prefix)
