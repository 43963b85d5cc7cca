"""A Docker compose file (for `docker stack deploy`) from an experiment's services and the cluster shape.

Placement as Halfmoon-bench's exp_helper writes it: `placement.hostname` pins a service to one
machine (node.hostname == X, which is why machines are named after their role), `placement.label`
spreads it over the machines carrying label L (node.labels.L == true, at most `max_per_node` per
machine). Environment values are concrete (the point's TABLE_PREFIX, LoggingMode, ...): the file
deployed is the file recorded in deploy.json.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import yaml

from benchpipe.errors import ConfigError
from benchpipe.model import Cluster


def _placement(name: str, svc: dict[str, Any], shape: Cluster) -> dict[str, Any]:
    place = svc.get("placement") or {}
    deploy: dict[str, Any] = {"replicas": int(svc.get("replicas", 1))}
    if "label" in place and "replicas" not in svc:
        # One per machine carrying the label: 8 engines on the paper's cluster, 1 on a one-node bed.
        label = place["label"]
        deploy["replicas"] = sum(1 for h in shape.hosts if any(lab.split("=")[0] == label for lab in h.labels))
    if "hostname" in place:
        names = {h.name for h in shape.hosts}
        if place["hostname"] not in names:
            raise ConfigError(
                f"services.{name}.placement.hostname: expected a machine of the cluster ({', '.join(sorted(names))}), "
                f"got {place['hostname']!r}"
            )
        deploy["placement"] = {"constraints": [f"node.hostname == {place['hostname']}"]}
    elif "label" in place:
        label = place["label"]
        carriers = [h for h in shape.hosts if any(lab.split("=")[0] == label for lab in h.labels)]
        if not carriers:
            raise ConfigError(f"services.{name}.placement.label: no machine of the cluster has label {label!r}")
        deploy["placement"] = {
            "constraints": [f"node.labels.{label} == true"],
            "max_replicas_per_node": int(svc.get("max_per_node", 1)),
        }
        if deploy["replicas"] > len(carriers) * int(svc.get("max_per_node", 1)):
            raise ConfigError(
                f"services.{name}.replicas: {deploy['replicas']} replicas do not fit on the {len(carriers)} "
                f"machine(s) labelled {label} at {svc.get('max_per_node', 1)} per machine"
            )
    deploy["restart_policy"] = _restart_policy(svc)
    return deploy


def _restart_policy(svc: dict[str, Any]) -> dict[str, Any]:
    """By default none: a crash fails the point, it is not hidden by a restart. A system whose
    components retry by restarting until their peers are up says so (`restart: any`, or
    `{condition, delay, max_attempts}` as its own deployment has it); the deployer still fails the
    point on any task that fails once the stack is ready."""
    restart = svc.get("restart") or "none"
    return {"condition": restart} if isinstance(restart, str) else {"condition": "none", **restart}


def _point_env(svc: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """The point's environment (baseline env, parameters) for this service: all of it, or only the
    names its `point_env` lists (a switch that upstream sets on some services only)."""
    names = svc.get("point_env")
    return dict(env) if names is None else {k: v for k, v in env.items() if k in names}


def _tmpfs_volumes(svc: dict[str, Any]) -> list[dict[str, Any]]:
    """`tmpfs: {target: size_bytes}` as compose's long-form tmpfs volumes (a store's data in memory)."""
    return [
        {"type": "tmpfs", "target": target, "tmpfs": {"size": int(size)}}
        for target, size in (svc.get("tmpfs") or {}).items()
    ]


def for_point(services: dict[str, Any], point_vars: dict[str, Any]) -> dict[str, Any]:
    """The services with `{param}` in placement.hostname filled from the point's values: one cluster
    holding several variants' machines (Antipode's reader region per region pair) places each
    point's services on its own."""
    out = {}
    for name, svc in services.items():
        host = (svc.get("placement") or {}).get("hostname", "")
        if "{" in host:
            try:
                host = host.format(**point_vars)
            except (KeyError, IndexError, ValueError) as e:
                raise ConfigError(
                    f"services.{name}.placement.hostname: {host!r} names {e}, not one of the point's values "
                    f"({', '.join(sorted(point_vars))})"
                ) from None
            svc = {**svc, "placement": {**svc["placement"], "hostname": host}}
        out[name] = svc
    return out


ADDRESS = re.compile(r"\{address:([^{}]+)\}")


def _pinned_names(services: dict[str, Any]) -> list[str]:
    """On the host network there is no service DNS: a service pinned to a machine is reached by its
    name (zookeeper:2181) and hostname at that machine's address, as /etc/hosts entries. The address
    is known once the machines are (fill_addresses, when the stack starts)."""
    out: dict[str, str] = {}
    for name, svc in services.items():
        machine = (svc.get("placement") or {}).get("hostname")
        if not machine:
            continue
        for alias in (name, svc.get("hostname")):
            if alias and "{" not in alias:
                out[alias] = f"{{address:{machine}}}"
    return [f"{alias}:{address}" for alias, address in sorted(out.items())]


def service_addresses(services: dict[str, Any], cidr: str) -> dict[str, str]:
    """Each service's own address in `cidr` (in the services' order): on a one-node test bed with the
    host network, services that all listen on the same port (DeathStarBench's 9090) each bind their
    own loopback address, found by their hostname (the service's name), as the overlay network's
    per-service addresses would give them on real hosts."""
    net = ipaddress.ip_network(cidr)
    if net.num_addresses - 2 < len(services):
        raise ConfigError(
            f"deployer.settings.service_addresses: {cidr} has fewer addresses than {len(services)} services"
        )
    return {name: str(net[i + 1]) for i, name in enumerate(services)}


def fill_addresses(compose: str, cluster: Cluster) -> str:
    """The machines' in-cluster addresses in place of `{address:<machine>}`."""
    addresses = {h.name: h.private_address or h.address for h in cluster.hosts}

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in addresses:
            raise ConfigError(f"the compose file names machine {m.group(1)!r}, not in cluster {cluster.name}")
        return addresses[m.group(1)]

    return ADDRESS.sub(sub, compose)


def render_compose(
    services: dict[str, Any],
    shape: Cluster,
    env: dict[str, str],
    *,
    region: str = "",
    host_network: bool = False,
    point_dir: str = "{point_dir}",
    stop_grace_s: float | None = None,
    aws_access: dict[str, Any] | None = None,
    service_cidr: str = "",
) -> str:
    """aws_access: what a needs_aws_env service gets besides AWS_REGION where no instance profile
    gives credentials ({environment, volumes, secrets}: benchpipe.cloud.credentials.container_access);
    its secrets are external, named `{aws_secret}` until the deployer creates one per point."""
    if not services:
        raise ConfigError("the baseline has no services for the swarm deployer (baselines.<name>.services)")
    out: dict[str, Any] = {"version": "3.8", "services": {}}
    extra_hosts = _pinned_names(services) if host_network else []
    own = service_addresses(services, service_cidr) if host_network and service_cidr else {}
    if own:
        extra_hosts = [f"{name}:{addr}" for name, addr in own.items()]
    for name, svc in services.items():
        environment = {**{k: str(v) for k, v in svc.get("environment", {}).items()}, **_point_env(svc, env)}
        if svc.get("needs_aws_env"):
            if not region:
                raise ConfigError(
                    f"deployer.settings.region: expected the AWS region for services.{name} (needs_aws_env), "
                    "or provider.settings.region; got none"
                )
            environment["AWS_REGION"] = region
        access = aws_access if svc.get("needs_aws_env") and aws_access else {}
        environment.update(access.get("environment", {}))
        volumes: list[Any] = [m.replace("{point_dir}", point_dir) for m in svc.get("mounts", [])]
        volumes += access.get("volumes", [])
        if svc.get("mount_certs"):
            volumes.append("/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt")
        entry: dict[str, Any] = {"image": svc["image"], "deploy": _placement(name, svc, shape)}
        if own:
            entry["hostname"] = name  # how a service finds its own address (service_addresses)
        elif svc.get("hostname"):
            entry["hostname"] = svc["hostname"]
        if svc.get("command"):
            entry["command"] = list(svc["command"])
        if svc.get("entrypoint"):
            entry["entrypoint"] = list(svc["entrypoint"])
        if environment:
            entry["environment"] = dict(sorted(environment.items()))
        volumes += _tmpfs_volumes(svc)
        if volumes:
            entry["volumes"] = volumes
        if access.get("secrets"):
            entry["secrets"] = list(access["secrets"])
        if svc.get("ports") and not host_network:
            entry["ports"] = list(svc["ports"])
        if host_network:
            entry["networks"] = ["hostnet"]
            if extra_hosts:
                entry["extra_hosts"] = extra_hosts
        if stop_grace_s is not None:
            # SIGTERM to SIGKILL: a PID 1 without a handler (`sleep infinity`) otherwise holds docker's 10 s.
            entry["stop_grace_period"] = f"{stop_grace_s:g}s"
        out["services"][name] = entry
    if host_network:
        # Swarm services on the host's own network stack: traffic stays on the machine's addresses.
        out["networks"] = {"hostnet": {"external": True, "name": "host"}}
    secrets = {s["source"] for svc in out["services"].values() for s in svc.get("secrets", [])}
    if secrets:
        out["secrets"] = {name: {"external": True, "name": "{aws_secret}"} for name in sorted(secrets)}
    return yaml.safe_dump(out, sort_keys=False)
