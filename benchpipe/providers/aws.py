"""The aws provider: a cluster of EC2 spot instances per baseline, tagged, time-limited, never leaked.

Settings (profiles/aws/aws.yaml, provider.settings): region, ami, zones, fallback_instance_types,
on_demand_fallback, key_name, key_path, security_group, security_group_id, placement_group, owner,
ttl_minutes, fulfil_timeout_s, ssh_timeout_s, ssh_user, use_private_ip,
endpoint_url (a moto server in tests), bootstrap (probe SSH and prepare hosts; false on moto),
table_prefix_root, tags.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from pathlib import Path
from typing import Any

from benchpipe.cloud import dynamo, iam
from benchpipe.cloud.session import client
from benchpipe.cloud.spot import ClusterLauncher, Launched, Ledger, ProvisionError
from benchpipe.cloud.tags import parse_iso, resource_tags, tag_dict, utcnow
from benchpipe.model import Cluster, Host

log = logging.getLogger("benchpipe.aws")
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def ledger_for(settings: dict[str, Any]) -> Ledger:
    return Ledger(settings.get("ledger") or Path(settings.get("results_dir", "results")) / ".ledger" / "aws.jsonl")


def probe_ssh(address: str, port: int = 22, timeout_s: float = 300) -> None:
    """Wait until sshd answers with its banner (probed, never slept for)."""
    deadline = time.monotonic() + timeout_s
    delay = 1.0
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=5) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as e:
            last = str(e)
        time.sleep(delay)
        delay = min(delay * 1.5, 10)
    raise ProvisionError(f"{address}:{port} gave no SSH banner within {timeout_s:g} s ({last})")


class AwsProvider:
    # Do all its clusters share the same machines (so one point's stack at a time overall)?
    shared_machines = False

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.ledger = ledger_for(self.s)

    def ec2(self) -> Any:
        return client(self.s, "ec2")

    def table_prefix(self, run_id: str) -> str:
        return f"{self.s.get('table_prefix_root', 'benchpipe')}-{run_id}-"

    # --- preflight ------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        from benchpipe.cloud.setup import preflight

        return preflight(self.s)

    # --- provision ------------------------------------------------------------------------
    def provision(self, spec: dict[str, Any], *, name: str, run_id: str, experiment: str, baseline: str) -> Cluster:
        ec2 = self.ec2()
        tags = resource_tags(self.s, run_id=run_id, experiment=experiment, baseline=baseline, cluster=name)
        expires = parse_iso(tags["expires"])
        assert expires is not None
        # The machines' role reaches this run's tables only; it goes with the cluster.
        iam_client = client(self.s, "iam")
        account = client(self.s, "sts").get_caller_identity()["Account"]
        region = self.s.get("region", "ap-southeast-1")
        profile = iam.role_name(run_id, name)
        self.ledger.record(kind="role", id=profile, run_id=run_id, cluster=name)
        try:
            iam.create_cluster_role(
                iam_client, profile, iam.table_policy(region, account, self.table_prefix(run_id)), tags
            )
            launcher = ClusterLauncher(ec2, {**self.s, "instance_profile": profile}, self.ledger)
            attempt, launched = launcher.launch(spec["machines"], tags, int(expires.timestamp()))
        except BaseException:
            iam.delete_cluster_role(iam_client, profile)
            raise
        try:
            launcher.tag_instances(launched, tags)
            described = launcher.wait_running(launched)
            hosts = []
            by_name = {m["name"]: m for m in spec["machines"]}
            for mname, iid in launched.instances.items():
                inst = described[iid]
                private = inst.get("PrivateIpAddress")
                public = inst.get("PublicIpAddress")
                address = private if self.s.get("use_private_ip") or not public else public
                m = by_name[mname]
                hosts.append(
                    Host(
                        name=mname,
                        address=address or "",
                        role=m["role"],
                        labels=list(m.get("labels", [])),
                        user=self.s.get("ssh_user", "ubuntu"),
                        key_file=self.s.get("key_path"),
                        instance_id=iid,
                        instance_type=attempt.types[mname],
                        private_address=private,
                        storage="/mnt/storage" if m.get("instance_storage") else None,
                    )
                )
            if self.s.get("bootstrap", True):
                from benchpipe.bootstrap import bootstrap

                for h in hosts:
                    probe_ssh(h.address, 22, float(self.s.get("ssh_timeout_s", 300)))
                bootstrap(hosts, rename=True, storage=True)
            cluster = Cluster(
                name=name,
                provider="aws",
                run_id=run_id,
                experiment=experiment,
                baseline=baseline,
                hosts=hosts,
                lock_key=f"aws-{run_id}-{name}",
                created=tags["created"],
                expires=tags["expires"],
                extra={
                    "region": self.s.get("region", "ap-southeast-1"),
                    "zone": attempt.zone,
                    "market": attempt.market,
                    "spot_requests": launched.requests,
                    "table_prefix": self.table_prefix(run_id),
                    "instance_profile": profile,
                    "endpoint_url": self.s.get("endpoint_url"),
                },
            )
        except BaseException:
            launcher.release(launched)
            _wait_terminated(ec2, sorted(launched.instances.values()))  # before its role can go
            iam.delete_cluster_role(iam_client, profile)
            raise
        log.info("cluster %s: %d instances (%s, %s)", name, len(hosts), attempt.market, attempt.zone)
        return cluster

    def keepalive(self, cluster: Cluster) -> None:
        """Move the expiry forward while the cluster is in use (tags; the hosts' timers over SSH)."""
        tags = resource_tags(self.s, run_id=cluster.run_id, cluster=cluster.name)
        ids = [h.instance_id for h in cluster.hosts if h.instance_id]
        if ids:
            self.ec2().create_tags(Resources=ids, Tags=[{"Key": "expires", "Value": tags["expires"]}])
        cluster.expires = tags["expires"]
        if self.s.get("bootstrap", True):
            expires = parse_iso(tags["expires"])
            assert expires is not None
            from benchpipe.remote import run_on_hosts

            run_on_hosts(cluster.hosts, f"echo {int(expires.timestamp())} | sudo tee /etc/benchpipe-expires")

    # --- health -----------------------------------------------------------------------------
    # A lost machine is replaced: the cluster is torn down and provisioned anew for the next point.
    replaceable = True

    def lost_hosts(self, cluster: Cluster) -> list[str]:
        """The cluster's machines that are no longer running (a spot interruption, a manual stop)."""
        ids = {h.instance_id: h for h in cluster.hosts if h.instance_id}
        if not ids:
            return []
        state = {}
        for page in self.ec2().get_paginator("describe_instances").paginate(InstanceIds=sorted(ids)):
            for res in page["Reservations"]:
                for inst in res["Instances"]:
                    reason = inst.get("StateReason", {}).get("Message") or inst.get("StateTransitionReason") or ""
                    state[inst["InstanceId"]] = (inst["State"]["Name"], reason)
        lost = []
        for iid, h in ids.items():
            name, reason = state.get(iid, ("gone", ""))
            if name != "running":
                lost.append(f"{h.name} ({iid}) is {name}" + (f": {reason}" if reason else ""))
        return lost

    # --- teardown -------------------------------------------------------------------------
    def teardown(self, cluster: Cluster) -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it short
        try:
            ec2 = self.ec2()
            launched = Launched(
                instances={h.name: h.instance_id for h in cluster.hosts if h.instance_id},
                requests=list(cluster.extra.get("spot_requests", [])),
            )
            # Also whatever carries this cluster's tags (a launch the cluster file never recorded).
            for inst in _tagged_instances(ec2, {"run-id": cluster.run_id, "cluster": cluster.name}):
                launched.instances.setdefault(inst["InstanceId"], inst["InstanceId"])
            ClusterLauncher(ec2, self.s, self.ledger).release(launched)
            _wait_terminated(ec2, sorted(set(launched.instances.values())))
            iam.delete_cluster_role(
                client(self.s, "iam"),
                cluster.extra.get("instance_profile") or iam.role_name(cluster.run_id, cluster.name),
            )
            prefix = cluster.extra.get("table_prefix")
            if prefix:
                dynamo.delete_tables_by_prefix(client(self.s, "dynamodb"), prefix)
        finally:
            signal.signal(signal.SIGINT, previous)


def _tagged_instances(ec2: Any, tags: dict[str, str], states: list[str] | None = None) -> list[dict[str, Any]]:
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    filters.append({"Name": "instance-state-name", "Values": states or LIVE_STATES})
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for res in page["Reservations"]:
            out.extend(res["Instances"])
    return out


def _wait_terminated(ec2: Any, ids: list[str], timeout_s: float = 600) -> None:
    if not ids:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [
            i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]
        ]
        if all(s == "terminated" for s in states):
            return
        time.sleep(2)
    raise ProvisionError(
        f"instances {ids} not terminated within {timeout_s:g} s; run `snakemake janitor --profile aws`"
    )


def janitor(settings: dict[str, Any], live_runs: set[str], now: Any = None) -> list[str]:
    """Remove everything tagged project=benchpipe whose expiry passed or whose run is not live."""
    now = now or utcnow()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    removed: list[str] = []
    try:
        ec2 = client(settings, "ec2")

        def dead(tags: dict[str, str]) -> bool:
            exp = parse_iso(tags.get("expires", ""))
            return (exp is not None and exp <= now) or tags.get("run-id") not in live_runs

        doomed = [i for i in _tagged_instances(ec2, {"project": "benchpipe"}) if dead(tag_dict(i.get("Tags")))]
        reqs = ec2.describe_spot_instance_requests(
            Filters=[{"Name": "tag:project", "Values": ["benchpipe"]}, {"Name": "state", "Values": ["open", "active"]}]
        )["SpotInstanceRequests"]
        doomed_reqs = [r["SpotInstanceRequestId"] for r in reqs if dead(tag_dict(r.get("Tags")))]
        if doomed_reqs:
            ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=doomed_reqs)
            removed += [f"spot request {r}" for r in doomed_reqs]
        ids = [i["InstanceId"] for i in doomed]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            removed += [f"instance {i}" for i in ids]
        ddb = client(settings, "dynamodb")
        root = f"{settings.get('table_prefix_root', 'benchpipe')}-"
        for table in dynamo.tables_with_prefix(ddb, root):
            run_id = table[len(root) :].split("-", 1)[0]
            arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
            tags = tag_dict(ddb.list_tags_of_resource(ResourceArn=arn).get("Tags"))
            if dead({**tags, "run-id": tags.get("run-id", run_id)}):
                ddb.delete_table(TableName=table)
                removed.append(f"table {table}")
        iam_client = client(settings, "iam")
        for role, tags in iam.project_roles(iam_client).items():
            if dead(tags):
                iam.delete_cluster_role(iam_client, role)
                removed.append(f"role {role}")
        # Workflow storage of Ray clusters (the ray-cluster provider), with everything in it.
        from benchpipe.cloud import s3

        s3_client = client(settings, "s3")
        for bucket, tags in s3.project_buckets(s3_client).items():
            if dead(tags):
                s3.delete_bucket(s3_client, bucket)
                removed.append(f"bucket {bucket}")
    finally:
        signal.signal(signal.SIGINT, previous)
    return removed
