"""The ssh provider: existing hosts (CloudLab, a lab cluster) listed in the profile, as a swarm.

settings.hosts: [{name, address, user, key_file | ssh_alias, port, role, labels, private_address,
docker, path, env}] (path: folders placed first on PATH for every command over SSH, env: variables
set for them). The experiment's machine names are matched to the listed names; the hosts are probed (a
host that refuses SSH is named and nothing is deployed), joined into one swarm (manager init,
workers join, node labels) when the experiment deploys on the swarm, and left as they were at
teardown: they are not ours to destroy. A host with `docker: false` (Pronghorn's CRIU host, whose
processes the remote-process deployer starts) is probed with SSH alone; so is every host with
settings.swarm: false (a deployer that prepares its hosts itself: knative, which installs Docker).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from benchpipe import remote
from benchpipe.bootstrap import bootstrap
from benchpipe.errors import ConfigError, StackError
from benchpipe.filelock import locked
from benchpipe.lease import lock_dir
from benchpipe.model import Cluster, Host

log = logging.getLogger("benchpipe.ssh")
DOCKER_PROBE = "docker version --format '{{.Server.Version}}'"


def hosts_from_settings(settings: dict[str, Any]) -> list[Host]:
    out = []
    for i, h in enumerate(settings.get("hosts") or []):
        if not isinstance(h, dict) or not h.get("name") or not (h.get("address") or h.get("ssh_alias")):
            raise ConfigError(f"provider.settings.hosts[{i}]: expected a mapping with name and address (or ssh_alias)")
        out.append(
            Host(
                name=h["name"],
                address=h.get("address") or h["ssh_alias"],
                role=h.get("role", "worker"),
                labels=list(h.get("labels", [])),
                user=h.get("user"),
                key_file=h.get("key_file"),
                ssh_port=int(h.get("port", 22)),
                ssh_alias=h.get("ssh_alias"),
                private_address=h.get("private_address"),
                path=[str(p) for p in h.get("path") or []],
                env={str(k): str(v) for k, v in (h.get("env") or {}).items()},
            )
        )
    if not out:
        raise ConfigError("provider.settings.hosts: expected the list of hosts (name, address, user, key_file, role)")
    return out


def _not_answering(hosts: list[Host], command: str, timeout_s: float) -> list[str]:
    """One sentence per host on which `command` fails over SSH (each names the host)."""
    failures = []
    for h in hosts:
        try:
            remote.run(h, command, timeout_s=timeout_s)
        except StackError as e:
            failures.append(str(e))
    return failures


class SshProvider:
    # Do all its clusters share the same machines (so one point's stack at a time overall)?
    shared_machines = True

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.hosts = hosts_from_settings(self.s)
        self.without_docker = {h["name"] for h in self.s["hosts"] if isinstance(h, dict) and h.get("docker") is False}

    @property
    def swarm(self) -> bool:
        return bool(self.s.get("swarm", True))

    def preflight(self) -> list[str]:
        docker = [h for h in self.hosts if self.swarm and h.name not in self.without_docker]
        plain = [h for h in self.hosts if h not in docker]
        return _not_answering(docker, DOCKER_PROBE, 30) + _not_answering(plain, "true", 30)

    def _select(self, spec: dict[str, Any]) -> list[Host]:
        by_name = {h.name: h for h in self.hosts}
        wanted = [m["name"] for m in spec.get("machines", [])]
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise ConfigError(
                f"provider.settings.hosts: the experiment's cluster needs machines {', '.join(missing)}, "
                f"which the hosts list ({', '.join(by_name)}) does not name"
            )
        return [by_name[n] for n in wanted] if wanted else list(self.hosts)

    def provision(self, spec: dict[str, Any], *, name: str, run_id: str, experiment: str, baseline: str) -> Cluster:
        hosts = self._select(spec)
        swarm = self.swarm and spec.get("deployer", "swarm") == "swarm"
        for h in hosts:  # probe all before touching any
            remote.run(h, DOCKER_PROBE if swarm else "true", timeout_s=30)
        if swarm:
            # Existing hosts keep their names (the hosts file names them as they are) unless asked.
            # Clusters of different experiments or baselines may share hosts and provision at once:
            # one bootstrap at a time, so two never both `swarm init` a host they both saw inactive.
            with locked(lock_dir() / ("bootstrap-" + "-".join(sorted({h.address for h in hosts})))):
                bootstrap(
                    hosts,
                    rename=bool(self.s.get("set_hostnames", False)),
                    storage=bool(self.s.get("mount_storage", False)),
                )
        return Cluster(
            name=name,
            provider="ssh",
            run_id=run_id,
            experiment=experiment,
            baseline=baseline,
            hosts=hosts,
            lock_key="ssh-" + "-".join(sorted({h.address for h in hosts})),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )

    # Listed hosts are not ours to replace: a lost one stops the sweep with its name.
    replaceable = False

    def lost_hosts(self, cluster: Cluster) -> list[str]:
        """The cluster's hosts that do not answer over SSH within a short timeout."""
        return _not_answering(cluster.hosts, "true", 20)

    def teardown(self, cluster: Cluster) -> None:
        # Stacks are removed point by point; a stack left by a killed job goes here. Hosts stay.
        if not self.swarm:
            return
        stack = self.s.get("stack", "benchpipe")
        try:
            remote.run(cluster.manager, f"docker stack rm {stack} >/dev/null 2>&1 || true")
        except StackError as e:
            log.warning("teardown of %s: %s", cluster.name, e)
