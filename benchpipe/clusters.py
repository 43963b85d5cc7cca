"""Cluster lifetime: brought up by the first point that needs it, torn down after the last.

The cluster file (results/.clusters/<experiment>/<baseline>.json) exists exactly while the machines
do. It is not a Snakemake output on purpose: a file every point depends on would make Snakemake
re-measure every finished point whenever the cluster is brought up again for a missing one.
"""

from __future__ import annotations

import logging
import secrets
import signal
from pathlib import Path
from typing import Any

from benchpipe import registry
from benchpipe.errors import HostLost
from benchpipe.filelock import locked
from benchpipe.leased import stop_leased_stacks
from benchpipe.model import Cluster, Host

log = logging.getLogger("benchpipe.clusters")


def cluster_file(results: Path, experiment: str, baseline: str) -> Path:
    return results / ".clusters" / experiment / f"{baseline}.json"


def provider_for(config: dict[str, Any], own: dict[str, Any] | None = None) -> Any:
    """The profile's provider, or an experiment's own (`own`: name and settings, which go over
    the profile's settings: region, key pair, security group)."""
    prov = config["provider"]
    settings = {**prov.get("settings", {}), **((own or {}).get("settings") or {}), "results_dir": config["results_dir"]}
    return registry.load("provider", (own or prov)["name"])(settings)


def planned_cluster(name: str, machines: list[dict[str, Any]]) -> Cluster:
    """The shape as a Cluster without addresses: what a deployer renders a deployment against."""
    hosts = [
        Host(
            name=m["name"],
            address="",
            role=m["role"],
            labels=list(m.get("labels", [])),
            instance_type=m.get("instance_type"),
            storage=m.get("instance_storage"),
        )
        for m in machines
    ]
    return Cluster(name=name, provider="planned", run_id="", experiment="", baseline="", hosts=hosts, lock_key=name)


def lost_hosts(provider: Any, cluster: Cluster) -> list[str]:
    """The cluster's machines that are gone or unreachable, as sentences (none where unknowable)."""
    check = getattr(provider, "lost_hosts", None)
    return check(cluster) if check else []


RESUME = "the finished points are kept; run the same command again and only the missing points run"


def ensure_cluster(config: dict[str, Any], spec: dict[str, Any]) -> Cluster:
    """The point's cluster: the live one if its file exists and all its machines answer, a
    replacement if the provider can make one, else a new one (recorded at once)."""
    results = Path(config["results_dir"])
    path = cluster_file(results, spec["experiment"], spec["baseline"])
    run_id = config.get("run_id")
    with locked(path):
        if path.exists():
            cluster = Cluster.load(path)
            provider = provider_for(config, spec.get("provider"))
            lost = lost_hosts(provider, cluster)
            if not lost:
                keepalive = getattr(provider, "keepalive", None)
                if keepalive:
                    keepalive(cluster)
                return cluster
            if not getattr(provider, "replaceable", False):
                raise HostLost(f"cluster {cluster.name} lost {'; '.join(lost)}. When it answers again, {RESUME}")
            log.warning("cluster %s lost %s; replacing the cluster", cluster.name, "; ".join(lost))
            provider.teardown(cluster)
            path.unlink()
            run_id = cluster.run_id  # same run: same tags, same table prefix
        run_id = run_id or secrets.token_hex(4)
        name = f"{spec['experiment']}-{spec['baseline']}"
        own = spec.get("provider")
        log.info(
            "provisioning cluster %s (%d machines) with %s",
            name,
            len(spec["machines"]),
            (own or config["provider"])["name"],
        )
        cluster = provider_for(config, own).provision(
            # The deployer too: a provider prepares only what it needs (no swarm for processes).
            {"machines": spec["machines"], "deployer": spec["deployer"]["name"]},
            name=name,
            run_id=run_id,
            experiment=spec["experiment"],
            baseline=spec["baseline"],
        )
        cluster.save(path)
        return cluster


def check_still_whole(config: dict[str, Any], cluster: Cluster, failure: BaseException | None = None) -> None:
    """After a point: a machine lost during it makes the point fail (its numbers are not trusted)."""
    provider = provider_for({**config, "provider": {**config["provider"], "name": cluster.provider}})
    lost = lost_hosts(provider, cluster)
    if lost:
        then = "it is retried on a replacement cluster" if getattr(provider, "replaceable", False) else RESUME
        raise HostLost(
            f"cluster {cluster.name} lost {'; '.join(lost)} during the point, which is not recorded; {then}"
        ) from failure


def teardown_cluster(config: dict[str, Any], path: Path) -> bool:
    """Tear down the cluster recorded in `path`; idempotent. Returns whether there was one."""
    with locked(path):
        if not path.exists():
            return False
        cluster = Cluster.load(path)
        log.info("tearing down cluster %s (%s, run %s)", cluster.name, cluster.provider, cluster.run_id)
        provider_for({**config, "provider": {**config["provider"], "name": cluster.provider}}).teardown(cluster)
        path.unlink()
        return True


def teardown_all(config: dict[str, Any], experiment: str | None = None) -> list[str]:
    """Tear down every live cluster of this results folder; a second Ctrl-C does not interrupt it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # Stacks first (a point's stack outlives its jobs under the cluster's lease), then machines.
        stop_leased_stacks(config["results_dir"])
        root = Path(config["results_dir"]) / ".clusters"
        pattern = f"{experiment}/*.json" if experiment else "*/*.json"
        done = []
        for path in sorted(root.glob(pattern)):
            try:
                if teardown_cluster(config, path):
                    done.append(str(path))
            except Exception as e:  # keep going: one failed teardown must not leave the others up
                log.error("teardown of %s failed: %s; run `snakemake teardown` again", path, e)
        # Local stacks of killed jobs, if any.
        from benchpipe.deployers.process import reap_stale

        reap_stale()
        return done
    finally:
        signal.signal(signal.SIGINT, previous)
