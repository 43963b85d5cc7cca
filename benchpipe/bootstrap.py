"""Idempotent preparation of a cluster's hosts over SSH: hostnames, storage, swarm, node labels.

Run again on a prepared cluster it changes nothing: every step checks the state first.
"""

from __future__ import annotations

import json
import random
import shlex
import time

from benchpipe import remote
from benchpipe.errors import ConfigError
from benchpipe.model import Host

STORAGE_MOUNT = "/mnt/storage"


def set_hostnames(hosts: list[Host]) -> None:
    """Swarm places services by node hostname, so machines are named after their role (as the seed does)."""
    for h in hosts:
        remote.run(
            h, f'[ "$(hostname)" = {shlex.quote(h.name)} ] || sudo hostnamectl set-hostname {shlex.quote(h.name)}'
        )


def mount_storage(hosts: list[Host], device: str = "/dev/nvme1n1") -> None:
    for h in hosts:
        if not h.storage:
            continue
        remote.run(
            h,
            f"mountpoint -q {STORAGE_MOUNT} || {{ sudo mkfs -t ext4 -F {device} && sudo mkdir -p {STORAGE_MOUNT}"
            f" && sudo mount -o defaults,noatime {device} {STORAGE_MOUNT}; }}",
            timeout_s=600,
        )


def directories(hosts: list[Host]) -> None:
    for h in hosts:
        if h.role != "client":
            remote.run(h, "sudo mkdir -p /mnt/inmem/store /mnt/inmem/boki && sudo chmod 777 /mnt/inmem/store || true")


def swarm(hosts: list[Host]) -> None:
    """One swarm: init on the manager, workers joined (clients stay out), node labels added."""
    managers = [h for h in hosts if h.role == "manager"]
    if len(managers) != 1:
        raise ConfigError("the cluster must have exactly one machine with role manager")
    manager = managers[0]
    addr = manager.private_address or manager.address
    if remote.run(manager, "docker info --format '{{.Swarm.LocalNodeState}}'").strip() != "active":
        remote.run(manager, f"docker swarm init --advertise-addr {addr}")
    token = remote.run(manager, "docker swarm join-token -q worker").strip()
    for h in hosts:
        if h.role == "worker" and remote.run(h, "docker info --format '{{.Swarm.LocalNodeState}}'").strip() != "active":
            remote.run(h, f"docker swarm join --token {token} {addr}:2377")
    for h in hosts:
        if h.labels and h.role != "client":
            node = remote.run(h, "docker info --format '{{.Swarm.NodeID}}'").strip()
            label_node(manager, node, h.labels)


def label_node(manager: Host, node: str, labels: list[str], attempts: int = 10) -> None:
    """Add the labels the node lacks.

    Swarm updates a node under optimistic concurrency: two provisions labelling the same node at once
    (parallel points on one cluster) make one fail with "update out of sequence". That
    loser re-reads the node and tries again, and finds nothing left to do if the other added the same labels.
    """
    for attempt in range(attempts):
        spec = remote.run(manager, f"docker node inspect --format '{{{{json .Spec.Labels}}}}' {node}")
        have = json.loads(spec or "null") or {}
        missing = [lab for lab in labels if _label_pair(lab) not in have.items()]
        if not missing:
            return
        adds = " ".join(f"--label-add {shlex.quote(lab)}" for lab in missing)
        try:
            remote.run(manager, f"docker node update {adds} {node}")
            return
        except remote.RemoteError as e:
            if "update out of sequence" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.1, 0.3) * (attempt + 1))  # jittered, so two losers do not collide again


def _label_pair(label: str) -> tuple[str, str]:
    key, _, value = label.partition("=")
    return key, value


def bootstrap(hosts: list[Host], *, rename: bool, storage: bool) -> None:
    if rename:
        set_hostnames(hosts)
    if storage:
        mount_storage(hosts)
    directories(hosts)
    swarm(hosts)
