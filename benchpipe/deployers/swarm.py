"""The swarm deployer: the stack as a Docker Swarm stack, deployed on the manager over SSH.

Every point gets a fresh stack (removed, and waited for until its containers are gone, before and
after) and its own results folder on the hosts, mounted into the gateway as `{point_dir}`, so points
never overwrite each other's async_results. Before the stack starts, in this order: the point's
DynamoDB tables (tagged, under a per-point TABLE_PREFIX; dropped when the stack stops), the data step
on the client machine, the wipes and the host files (stack.* of the experiment, benchpipe.stackspec).
Readiness is polled (every service's replicas running, the gateway's HTTP answer, an optional
command on the manager; the stack's tasks for failures), never slept for. What ran (the compose file
as deployed, each service's command line, the data step's commands, the host files) goes to the
point's raw folder as stack.json, and from there into its manifest.
"""

from __future__ import annotations

import hashlib
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
from benchpipe.cloud import credentials
from benchpipe.deployers.base import wait_for_count
from benchpipe.deployers.compose import fill_addresses, for_point, render_compose, service_addresses
from benchpipe.errors import ConfigError, StackError
from benchpipe.model import Cluster, Host, write_json_atomic
from benchpipe.stackspec import host_file_text, local_path


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
    table_prefix: str = ""  # the point's DynamoDB tables, deleted when the stack stops
    ready_status: list[int] = field(default_factory=lambda: [200])
    ready_command: str = ""  # run on the manager; the stack is ready only once it succeeds
    dynamodb: dict[str, Any] = field(default_factory=dict)  # where the tables are (region, endpoint_url)
    deployed: dict[str, Any] = field(default_factory=dict)  # what ran: for the point's manifest
    restarts: dict[str, str] = field(default_factory=dict)  # service -> its restart condition
    tolerated: list[str] = field(default_factory=list)  # tasks that failed (and restarted) before ready
    after_ready: list[dict[str, Any]] = field(default_factory=list)  # host steps once ready (stack.after_ready)
    aws_secret: str = ""  # the point's Docker secret (temporary DynamoDB credentials), removed at stop
    finished_from: str = "stack"  # "generator": the stack writes no async_results; the generator's count
    traces: dict[str, Any] = field(default_factory=dict)  # stack.swarm.traces: records from Jaeger's query API
    traces_url: str = ""  # the Jaeger query service as the cluster's machines reach it


class SwarmDeployer:
    """settings: stack (benchpipe), host_network (false; true on the local test bed), gateway_port (8080),
    ready_path (/healthz for the stand-in) and ready_status ([200]) where the experiment sets no
    stack.ready, stop_timeout_s, stop_grace_s (docker's 10 s from SIGTERM to SIGKILL), region
    (default: the provider's), pull (true: the data step pulls its image and `docker stack deploy`
    resolves images at the registry; false keeps local images, as on the test bed), dynamodb
    ({region, endpoint_url, table_prefix_root, credentials}: where the tables go on providers other
    than aws, e.g. a moto server; on aws the cluster's region and prefix, which this overrides;
    credentials: how the functions and the data step get DynamoDB credentials where no instance
    profile does, benchpipe.cloud.credentials)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.stack_name = self.s.get("stack", "benchpipe")
        self.credentials = credentials.route(self.s)
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
        region = self._region()
        own = (deployment.get("swarm") or {}) if isinstance(deployment.get("swarm"), dict) else {}
        cidr = str(self.s.get("service_addresses") or "") if self.s.get("host_network") else ""
        addresses = service_addresses(services, cidr) if cidr else {}
        traces = dict(own.get("traces") or {})
        if traces:
            jaeger = traces["jaeger"]["service"]
            if jaeger not in services:
                raise StackError(f"stack.swarm.traces.jaeger.service: {jaeger!r} is not a service of the stack")
            if not addresses and not (services[jaeger].get("placement") or {}).get("hostname"):
                raise StackError(
                    f"services.{jaeger}.placement.hostname: Jaeger must be pinned to a machine (its query API)"
                )
        compose = render_compose(
            services,
            cluster,
            env,
            region=region,
            host_network=bool(self.s.get("host_network")),
            stop_grace_s=self.s.get("stop_grace_s"),
            aws_access=credentials.container_access(self.credentials) if self.credentials else None,
            service_cidr=cidr,
        )
        ready = deployment.get("ready") or {}
        hosts = {h.name: h for h in cluster.hosts}
        registry = list(deployment.get("registry", []))
        host_files = [
            {**hf, "text": host_file_text(hf, registry), "machines": self._select(cluster, hf["hosts"])}
            for hf in deployment.get("host_files", [])
        ]
        wipes = [{**w, "machines": self._select(cluster, w["hosts"])} for w in deployment.get("wipes", [])]
        after_ready = [{**a, "machines": self._select(cluster, a["hosts"])} for a in deployment.get("after_ready", [])]
        data = deployment.get("data")
        if data:
            if not region:
                raise ConfigError("deployer.settings.region: expected the AWS region for the data step (stack.data)")
            data = {**data, "env": self._data_env(data, env, region)}
            if not cluster.by_role("client"):
                raise ConfigError(
                    f"stack.data: the data step runs on the client machine; cluster {cluster.name} has none"
                )
        return {
            "kind": "swarm",
            "stack": self.stack_name,
            "compose": compose,
            "gateway_machine": host,
            "gateway_service": gateways[0],
            "service_addresses": addresses,
            "placements": {n: (svc.get("placement") or {}).get("hostname", "") for n, svc in services.items()},
            "finished_from": own.get("finished_from", "stack"),
            "traces": traces,
            "services": list(services),
            "port": int(self.s.get("gateway_port", 8080)),
            "ready_path": ready.get("path", self.s.get("ready_path", "/healthz")),
            "ready_status": list(ready.get("status", self.s.get("ready_status", [200]))),
            "ready_command": ready.get("command", ""),
            "tables": list(deployment.get("tables", [])),
            "registry": registry,
            "host_files": host_files,
            "wipes": wipes,
            "after_ready": after_ready,
            "data": data,
            "images": sorted({svc["image"] for svc in services.values()}),
            "restarts": {n: svc.get("restart", "none") for n, svc in services.items()},
            "machines": sorted(hosts),
        }

    def check(self, deployment: dict[str, Any]) -> None:
        """Before the cluster is provisioned: the files the point's stack takes from the controller."""
        data = deployment.get("data") or {}
        for f in data.get("files", []):
            self._data_file(f)
        for hf in deployment.get("host_files", []):
            host_file_text(hf, list(deployment.get("registry", [])))

    @staticmethod
    def _data_file(f: dict[str, Any]) -> Path:
        if "source" not in f:
            raise ConfigError(
                f"data_files.{f['data_file']}: expected the path of the file the data step uploads as "
                f"{f['dest']} (run configuration, e.g. --config data_files='{{{f['data_file']}: PATH}}'); got none"
            )
        local = local_path(f["source"])
        if not local.is_file():
            raise ConfigError(f"stack.data.files: {local} is missing (the data step uploads it as {f['dest']})")
        return local

    def _region(self) -> str:
        return str(self.s.get("region") or (self.s.get("dynamodb") or {}).get("region") or "")

    @staticmethod
    def _data_env(data: dict[str, Any], env: dict[str, str], region: str) -> dict[str, str]:
        """The data step's environment: its own values, the point's variables it names, AWS_REGION."""
        out = {k: str(v) for k, v in (data.get("environment") or {}).items()}
        out.update({k: env[k] for k in data.get("point_env", []) if k in env})
        out["AWS_REGION"] = region
        return dict(sorted(out.items()))

    @staticmethod
    def _select(cluster: Cluster, sel: dict[str, Any]) -> list[str]:
        """The machines (names) a host step applies to: by role or by label."""
        if "roles" in sel:
            return [h.name for h in cluster.hosts if h.role in sel["roles"]]
        return [h.name for h in cluster.hosts if any(lab.split("=")[0] == sel["label"] for lab in h.labels)]

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
        dynamodb = self._dynamodb(cluster) if rendered.get("tables") else {}
        prefix = self._open_tables(cluster, rendered, remote_dir, dynamodb)
        secret = f"{stack}-aws-{hashlib.sha1(remote_dir.encode()).hexdigest()[:12]}" if self.credentials else ""
        compose = rendered["compose"].replace("{point_dir}", remote_dir).replace("{table_prefix}", prefix)
        compose = fill_addresses(compose.replace("{aws_secret}", secret), cluster)
        try:
            creds_file = self._point_credentials(cluster, secret, remote_dir, prefix, dynamodb)
            deployed = {
                "compose": compose,
                "commands": service_commands(compose),
                "tables": [prefix + t for t in rendered.get("tables", [])],
                "table_prefix": prefix,
                "credentials": self._credentials_record(secret),
                "data": self._data_step(cluster, rendered.get("data"), remote_dir, prefix, dynamodb, creds_file),
            }
            deployed["wipes"] = self._wipe(cluster, rendered.get("wipes", []))
            deployed["host_files"] = self._place_files(cluster, rendered.get("host_files", []))
            remote_file = f"{remote_dir}/docker-compose.yml"
            _put_text(manager, compose, remote_file)
            resolve = "" if self.s.get("pull", True) else " --resolve-image never"
            deployed["deploy_command"] = f"docker stack deploy --prune{resolve} -c {shlex.quote(remote_file)} {stack}"
            remote.run(manager, deployed["deploy_command"])
        except BaseException:
            if secret:
                self._remove_secret(manager, secret)
            if prefix:
                self._drop_tables(dynamodb, prefix)
            raise
        addresses = rendered.get("service_addresses") or {}
        own_address = addresses.get(rendered.get("gateway_service", ""))
        gateway_address = own_address or gateway_host.address
        inside = own_address or gateway_host.private_address or gateway_host.address
        return SwarmStack(
            endpoint=f"http://{gateway_address}:{rendered['port']}",
            cluster=cluster,
            stack=stack,
            point_dir=remote_dir,
            gateway_host=gateway_host,
            services=rendered["services"],
            ready_path=rendered["ready_path"],
            internal_endpoint=f"http://{inside}:{rendered['port']}",
            images=list(rendered.get("images", [])),
            table_prefix=prefix,
            ready_status=list(rendered.get("ready_status", [200])),
            ready_command=rendered.get("ready_command", ""),
            dynamodb=dynamodb,
            deployed=deployed,
            restarts=dict(rendered.get("restarts", {})),
            after_ready=list(rendered.get("after_ready", [])),
            aws_secret=secret,
            finished_from=rendered.get("finished_from", "stack"),
            traces=dict(rendered.get("traces") or {}),
            traces_url=self._traces_url(cluster, rendered),
        )

    # --- DynamoDB credentials where no instance profile gives them (benchpipe.cloud.credentials) ---
    def _point_credentials(
        self, cluster: Cluster, secret: str, remote_dir: str, prefix: str, dynamodb: dict[str, Any]
    ) -> str:
        """The role route: temporary credentials for the point's tables, as the Docker secret the
        functions read; returns the shared credentials file's text for the data step ("" otherwise)."""
        r = self.credentials
        if not r or r["kind"] != "role":
            return ""
        if not prefix:
            raise ConfigError("deployer.settings.dynamodb.credentials: the stack has no tables (stack.tables)")
        region = str(dynamodb.get("region") or self._region())
        creds = credentials.assume_role(r, region, prefix, f"benchpipe-{cluster.run_id}")
        text = credentials.shared_credentials_file(creds)
        manager = cluster.manager
        self._remove_secret(manager, secret)  # a killed attempt's
        path = remote.put_private_text(manager, text, f"{remote_dir}/.aws", "credentials")
        q = shlex.quote
        remote.run(
            manager,
            f"docker secret create --label project=benchpipe {q(secret)} {q(path)} >/dev/null; "
            f"r=$?; rm -f {q(path)}; exit $r",
        )
        return text

    def _credentials_record(self, secret: str) -> dict[str, Any]:
        """For the manifest: the route, never the keys."""
        r = self.credentials
        if not r:
            return {}
        if r["kind"] == "role":
            return {"route": "role", "role_arn": r["role_arn"], "duration_s": r["duration_s"], "secret": secret}
        return {"route": "profile", "profile": r["profile"], "file": r["file"]}

    @staticmethod
    def _remove_secret(manager: Host, secret: str) -> None:
        remote.run(manager, f"docker secret rm {shlex.quote(secret)} >/dev/null 2>&1 || true")

    @staticmethod
    def _traces_url(cluster: Cluster, rendered: dict[str, Any]) -> str:
        """Jaeger's query API as the cluster reaches it: its machine's (or, on the test bed, its own) address."""
        traces = rendered.get("traces") or {}
        if not traces:
            return ""
        name = traces["jaeger"]["service"]
        address = (rendered.get("service_addresses") or {}).get(name)
        if not address:
            machine = rendered["placements"][name]
            host = next((h for h in cluster.hosts if h.name == machine), None)
            if host is None:
                raise StackError(f"services.{name}: its machine {machine} is not in cluster {cluster.name}")
            address = host.private_address or host.address
        return f"http://{address}:{int(traces['jaeger'].get('port', 16686))}"

    # --- before the stack: data step, wipes, host files ---------------------------------------
    def _hosts(self, cluster: Cluster, names: list[str]) -> list[Host]:
        by_name = {h.name: h for h in cluster.hosts}
        return [by_name[n] for n in names if n in by_name]

    def _data_step(
        self,
        cluster: Cluster,
        data: dict[str, Any] | None,
        remote_dir: str,
        prefix: str,
        dynamodb: dict[str, Any],
        creds_file: str = "",
    ) -> list[str]:
        """Copy the data step's folder out of its image on the client, upload its files, run it there
        (with the point's credentials file, deleted when it ends, on the role route)."""
        if not data:
            return []
        client = cluster.by_role("client")[0]
        folder = f"{remote_dir}/data"
        q = shlex.quote
        env = {k: v.replace("{table_prefix}", prefix) for k, v in data["env"].items()}
        if dynamodb.get("endpoint_url"):
            env["AWS_ENDPOINT_URL"] = dynamodb["endpoint_url"]  # a DynamoDB other than AWS's (tests: moto)
        commands = [f"rm -rf {q(folder)} && mkdir -p {q(folder)}"]
        if self.s.get("pull", True):
            commands.append(f"docker pull -q {q(data['image'])}")
        # As the client's own user, so the next point can remove the folder.
        commands.append(
            f'docker run --rm -u "$(id -u):$(id -g)" -v {q(folder)}:{q(folder)} {q(data["image"])}'
            f" cp -r {q(data['copy_out'])} {q(folder)}/"
        )
        for cmd in commands:
            remote.run(client, cmd, timeout_s=900)
        for f in data.get("files", []):
            remote.put(client, str(self._data_file(f)), f"{folder}/{f['dest']}")
            commands.append(f"upload {f['source']} -> {folder}/{f['dest']}")
        secret_path = ""
        if self.credentials and self.credentials["kind"] == "role":
            secret_path = remote.put_private_text(client, creds_file, f"{remote_dir}/.aws", "credentials")
            env.update({"AWS_SHARED_CREDENTIALS_FILE": secret_path, "AWS_EC2_METADATA_DISABLED": "true"})
        elif self.credentials:
            env.update({"AWS_SHARED_CREDENTIALS_FILE": str(self.credentials["file"])})
            env.update({"AWS_PROFILE": str(self.credentials["profile"]), "AWS_EC2_METADATA_DISABLED": "true"})
        assignments = " ".join(f"{k}={q(v)}" for k, v in sorted(env.items()))
        run = f"cd {q(folder)} && env {assignments} {' '.join(q(a) for a in data['run'])}"
        commands.append(run)
        if secret_path:  # the temporary credentials do not outlive the step
            run = f"{run}; r=$?; rm -f {q(secret_path)}; exit $r"
        remote.run(client, run, timeout_s=float(self.s.get("data_timeout_s", 3600)))
        return commands

    def _wipe(self, cluster: Cluster, wipes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = []
        for w in wipes:
            cmd = f"$S rm -rf {' '.join(map(shlex.quote, w['remove']))}"
            if w.get("create"):
                cmd += f" && $S mkdir -p {' '.join(map(shlex.quote, w['create']))}"
            for h in self._hosts(cluster, w["machines"]):
                remote.run(h, SUDO + cmd)
            done.append({"machines": w["machines"], "command": cmd.replace("$S ", "sudo ")})
        return done

    def _place_files(self, cluster: Cluster, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = []
        for hf in files:
            digest = hashlib.sha256(hf["text"].encode()).hexdigest()
            staged = f"/tmp/.benchpipe-{digest[:12]}"
            dest = shlex.quote(hf["dest"])
            for h in self._hosts(cluster, hf["machines"]):
                _put_text(h, hf["text"], staged)
                remote.run(
                    h,
                    SUDO + f"$S mkdir -p $(dirname {dest}) && $S install -m {hf['mode']} {staged} {dest}; "
                    f"r=$?; rm -f {staged}; exit $r",
                )
            done.append({"dest": hf["dest"], "mode": hf["mode"], "machines": hf["machines"], "sha256": digest})
        return done

    def handle(self, stack: SwarmStack, lease: str) -> dict[str, Any]:
        """What another job needs to reach, check and stop this stack (it lives on the cluster)."""
        return asdict(stack)

    def attach(self, handle: dict[str, Any]) -> SwarmStack:
        h = dict(handle)
        h["cluster"] = Cluster.from_dict(h["cluster"])
        h["gateway_host"] = Host.from_dict(h["gateway_host"])
        return SwarmStack(**h)

    def _dynamodb(self, cluster: Cluster) -> dict[str, Any]:
        """Where the point's tables go: the aws cluster's region and run prefix (its machines' role
        reaches only those), or deployer.settings.dynamodb on other providers."""
        own = {k: v for k, v in (self.s.get("dynamodb") or {}).items() if v is not None}
        if cluster.provider == "aws":
            extra = cluster.extra
            base = {"region": extra.get("region"), "endpoint_url": extra.get("endpoint_url")}
            return {**base, "table_prefix": extra["table_prefix"], **own}
        if not own:
            raise ConfigError(
                "deployer.settings.dynamodb: expected {region, endpoint_url (optional)} for the point's DynamoDB "
                f"tables on provider {cluster.provider} (e.g. a moto server's URL)"
            )
        root = own.get("table_prefix_root", "benchpipe")
        return {"region": self._region(), **own, "table_prefix": f"{root}-{cluster.run_id}-"}

    def _open_tables(
        self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str, dynamodb: dict[str, Any]
    ) -> str:
        """The point's DynamoDB tables, tagged, under a prefix naming the run and the point."""
        names = rendered.get("tables") or []
        if not names:
            return ""
        from benchpipe.cloud import dynamo
        from benchpipe.cloud.session import client

        prefix = f"{dynamodb['table_prefix']}{hashlib.sha1(remote_dir.encode()).hexdigest()[:8]}-"
        ddb = client(dynamodb, "dynamodb")
        # Deleted by prefix when the stack stops (stop), whichever job that is; here if making them
        # fails. Leftovers of a killed attempt of the same point go first.
        dynamo.delete_tables_by_prefix(ddb, prefix)
        tags = {"project": "benchpipe", "run-id": cluster.run_id, "cluster": cluster.name}
        try:
            dynamo.create_tables(ddb, prefix, names, tags)
        except BaseException:
            dynamo.delete_tables_by_prefix(ddb, prefix)
            raise
        return prefix

    @staticmethod
    def _drop_tables(dynamodb: dict[str, Any], prefix: str) -> None:
        from benchpipe.cloud import dynamo
        from benchpipe.cloud.session import client

        dynamo.delete_tables_by_prefix(client(dynamodb, "dynamodb"), prefix)

    def client(self, stack: SwarmStack) -> Host | None:
        clients = stack.cluster.by_role("client")
        return clients[0] if clients else None

    def _answers(self, stack: SwarmStack) -> bool:
        """Does the gateway answer with a ready status (200; 404 for a gateway without a health
        endpoint)? Asked from the client machine when there is one: the security group admits only
        SSH from the controller, the gateway's port only from inside the cluster."""
        client = self.client(stack)
        if client is None or self.s.get("probe_from") == "controller":
            try:
                with urllib.request.urlopen(stack.endpoint + stack.ready_path, timeout=3) as r:
                    return r.status in stack.ready_status
            except urllib.error.HTTPError as e:
                return e.code in stack.ready_status
            except (urllib.error.URLError, OSError):
                return False
        url = shlex.quote(stack.internal_endpoint + stack.ready_path)
        code = remote.run(client, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 {url} || true").strip()
        return code.isdigit() and int(code) in stack.ready_status

    def _converged(self, stack: SwarmStack) -> bool:
        """Every service of the stack runs all its replicas."""
        out = remote.run(
            self._manager(stack),
            f"docker service ls --filter label=com.docker.stack.namespace={shlex.quote(stack.stack)}"
            " --format '{{.Name}} {{.Replicas}}'",
        )
        running = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and "/" in parts[1]:
                have, want = parts[1].split("/", 1)
                running[parts[0]] = have == want
        return all(running.get(f"{stack.stack}_{svc}", False) for svc in stack.services)

    def _command_ok(self, stack: SwarmStack) -> bool:
        if not stack.ready_command:
            return True
        try:
            remote.run(self._manager(stack), stack.ready_command.replace("{stack}", stack.stack), timeout_s=60)
            return True
        except StackError:
            return False

    def _ready(self, stack: SwarmStack) -> bool:
        return self._converged(stack) and self._command_ok(stack) and self._answers(stack)

    def load_context(self, stack: SwarmStack) -> dict[str, Any]:
        """Where the load generator runs (the client machine) and the gateway it targets from there."""
        return {"client": self.client(stack), "target": stack.internal_endpoint, "work_dir": stack.point_dir}

    def _failed(self, stack: SwarmStack) -> list[tuple[str, str]]:
        """(task id, line) of the stack's failed or rejected tasks, history included, and of the
        tasks that exited 0 in a service swarm restarts on any exit (each one a restart)."""
        out = remote.run(
            self._manager(stack),
            f"docker stack ps {shlex.quote(stack.stack)} --no-trunc"
            " --format '{{.ID}} {{.Name}} {{.CurrentState}} {{.Error}}' 2>/dev/null || true",
        )
        found = []
        for line in out.splitlines():
            parts = line.split(" ", 1)
            rest = parts[1] if len(parts) > 1 else ""
            service = rest.split(".", 1)[0].removeprefix(f"{stack.stack}_")
            restarted = " Complete" in rest and _condition(stack.restarts.get(service)) == "any"
            if " Failed" in rest or " Rejected" in rest or restarted:
                found.append((parts[0], rest))
        return found

    def check_healthy(self, stack: SwarmStack, starting: bool = False) -> None:
        """A failed task fails the point, except, while the stack starts, one of a service that
        restarts (restart: any | on-failure: the artifact's components retry until ZooKeeper's start
        gate opens and the engine is up); the failures seen until ready are recorded and tolerated."""
        bad = []
        for tid, line in self._failed(stack):
            if tid in stack.tolerated:
                continue
            service = line.split(".", 1)[0].removeprefix(f"{stack.stack}_")
            if starting and _condition(stack.restarts.get(service)) != "none":
                continue
            bad.append((service, line))
        if bad:
            names = ", ".join(sorted({s for s, _ in bad}))
            when = "" if starting else " (after the stack was ready: a restart then is a failure)"
            raise StackError(
                f"stack {stack.stack}: service(s) {names} failed or restarted{when}; task(s) failed: "
                + "; ".join(b for _, b in bad[:5])
            )

    def wait_ready(self, stack: SwarmStack, timeout_s: float) -> None:
        url = stack.endpoint + stack.ready_path
        deadline = time.monotonic() + timeout_s
        delay = 0.2
        while True:
            if self._ready(stack):
                stack.tolerated = [tid for tid, _ in self._failed(stack)]
                self._after_ready(stack)
                return
            self.check_healthy(stack, starting=True)
            if time.monotonic() > deadline:
                # Restarting services' failures first: a component that refuses its command line
                # restarts until this deadline, and its error is the explanation.
                failed = [line for _, line in self._failed(stack)]
                tasks = "; ".join((failed or self._tasks(self._manager(stack), stack.stack))[:8])
                want = "/".join(map(str, stack.ready_status))
                extra = f", `{stack.ready_command}` on the manager succeeding" if stack.ready_command else ""
                raise StackError(
                    f"stack not ready within {timeout_s:g} s: expected every service's replicas running, "
                    f"{url} answering {want}{extra} (tasks: {tasks})"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)

    def _after_ready(self, stack: SwarmStack) -> None:
        """The experiment's host steps once the stack is ready (the artifact's engine cpu.shares)."""
        done = []
        for step in stack.after_ready:
            cmd = step["run"].replace("{stack}", stack.stack)
            out = {h.name: remote.run(h, SUDO + cmd).strip() for h in self._hosts(stack.cluster, step["machines"])}
            done.append({"machines": step["machines"], "command": cmd, "output": out})
        stack.deployed["after_ready"] = done

    def _completed(self, stack: SwarmStack) -> int:
        """Calls completed so far: lines of async_results on the gateway's host."""
        path = shlex.quote(f"{stack.point_dir}/async_results")
        return int(remote.run(stack.gateway_host, f"cat {path} 2>/dev/null | wc -l").strip() or 0)

    def counts_calls(self, stack: SwarmStack) -> bool:
        """Does the stack record each call (async_results)? DeathStarBench's nginx does not: the
        finished count is then the load generator's own (wrk2's output)."""
        return stack.finished_from != "generator"

    def wait_drained(self, stack: SwarmStack, expected: int, timeout_s: float) -> int:
        return wait_for_count(lambda: self._completed(stack), expected, timeout_s, 0.3)

    def completed_counter(self, stack: SwarmStack) -> Callable[[], int] | None:
        """Calls completed so far, counted on the gateway's host at most every 5 s: for progress."""
        state = {"t": 0.0, "n": 0}
        if not self.counts_calls(stack):
            return None

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
        files = []
        if self.counts_calls(stack):
            remote.get(stack.gateway_host, f"{stack.point_dir}/async_results", str(out))
            files.append(out)
        if stack.traces:
            files.append(self._fetch_traces(stack, dest))
        # Provenance: the image ids the stack ran (as the manager has them).
        ids = {}
        for image in stack.images:
            q = shlex.quote(image)
            ids[image] = remote.run(
                self._manager(stack), f"docker image inspect --format '{{{{.Id}}}}' {q} || true"
            ).strip()
        write_json_atomic(dest / "images.json", ids)
        # The manager's kernel, as the artifact records it (kernel_cmdline, kernel_version).
        kernel = remote.run(self._manager(stack), "cat /proc/cmdline; uname -a").strip().split("\n")
        write_json_atomic(
            dest / "stack.json",
            {**stack.deployed, "kernel_cmdline": kernel[0], "kernel_version": kernel[-1] if len(kernel) > 1 else ""},
        )
        return files

    def _get(self, stack: SwarmStack) -> Callable[[str], tuple[int, bytes]]:
        """HTTP GET inside the cluster: from the client machine (the security group admits only SSH
        from the controller), or from the controller where there is no client."""
        from benchpipe.jaeger import urllib_get

        client = self.client(stack)
        if client is None or self.s.get("probe_from") == "controller":
            return urllib_get

        def get(url: str) -> tuple[int, bytes]:
            try:
                out = remote.run(
                    client, f"curl -s --max-time 30 -w '\\n%{{http_code}}' {shlex.quote(url)}", timeout_s=60
                )
            except StackError as e:
                return 0, str(e).encode()
            body, _, code = out.rpartition("\n")
            return (int(code) if code.strip().isdigit() else 0), body.encode()

        return get

    def _fetch_traces(self, stack: SwarmStack, dest: Path) -> Path:
        """The point's per-request records from Jaeger (stack.swarm.traces): its traces of the
        measurement's window, each turned into one line of `file` (traces.jsonl), and what the
        query did in jaeger.json."""
        import json

        from benchpipe.jaeger import JaegerQuery, collect_records

        t = stack.traces
        timing = json.loads((dest / "timing.json").read_text())
        report = json.loads((dest / "measure.json").read_text())
        finished = int(report.get("completed", 0))
        start_us = int(float(timing["measure_start"]) * 1e6)
        end_us = int(time.time() * 1e6)
        q = t.get("query") or {}
        query = JaegerQuery(
            stack.traces_url,
            q["service"],
            limit=int(q.get("limit", 1000)),
            lookback=str(q.get("lookback", "1h")),
            retries=int(q.get("retries", 4)),
            get=self._get(stack),
        )
        recs, skipped, queried = collect_records(
            query, start_us, end_us, t["fields"], finished, timeout_s=float(q.get("timeout_s", 120))
        )
        out = dest / t.get("file", "traces.jsonl")
        out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
        write_json_atomic(
            dest / "jaeger.json",
            {
                "url": query.url(start_us, end_us),
                "traces_queried": queried,
                "records": len(recs),
                "skipped_missing_tags": skipped,
                "finished": finished,
                "requests": query.stats.requests,
                "retries": query.stats.retries,
                "splits": query.stats.splits,
                "errors": query.stats.errors[-5:],
            },
        )
        return out

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
            if stack.aws_secret:
                self._remove_secret(self._manager(stack), stack.aws_secret)
        finally:
            if stack.table_prefix:
                # Possibly in another job than the one that made them: by prefix, as the janitor does.
                extra = stack.cluster.extra
                where = stack.dynamodb or {"region": extra.get("region"), "endpoint_url": extra.get("endpoint_url")}
                self._drop_tables(where, stack.table_prefix)


# Root where needed: the artifact's host folders (/mnt/inmem, /mnt/storage) belong to root.
SUDO = 'S=; [ "$(id -u)" = 0 ] || S="sudo -n"; '


def _condition(restart: Any) -> str:
    """A service's restart condition (none, on-failure, any) from its rendered restart."""
    if isinstance(restart, dict):
        return str(restart.get("condition", "none"))
    return str(restart or "none")


def _put_text(host: Host, text: str, remote_path: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".tmp") as f:
        f.write(text)
        f.flush()
        remote.put(host, f.name, remote_path)


def service_commands(compose: str) -> dict[str, list[str]]:
    """Each service's command line as the container runs it (entrypoint, then command)."""
    import yaml

    services = (yaml.safe_load(compose) or {}).get("services", {})
    return {n: list(s.get("entrypoint") or []) + list(s.get("command") or []) for n, s in services.items()}
