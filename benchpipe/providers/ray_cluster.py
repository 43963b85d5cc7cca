"""The ray-cluster provider: a Ray cluster started by Ray's own cluster launcher (`ray up`), as the
ExoFlow artifact starts its clusters, with the project's settings instead of the authors' ids.

provision = the run's S3 bucket (tagged) + the rendered cluster YAML + `ray up`; teardown =
`ray down` + whatever still carries the cluster's tags + the bucket; a failed provision undoes
itself the same way before the error is raised. Settings: the aws profile's provider settings
(region, zones, key_name, key_path, security_group, security_group_id, placement_group, ssh_user,
ttl_minutes, owner, tags, endpoint_url) with the experiment's own over them (targets.aws.provider.
settings): ami (the nodes' image), ray (cluster_yaml, experiment_dir, head_resources,
worker_resources, num_cpus, volume_gb, worker_placement_group, extra_setup), ray_cli, ray_up_timeout_s,
allow_ray_version_mismatch, prerequisites (managed services, benchpipe/cloud/managed.py), plan.
"""

from __future__ import annotations

import logging
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml

from benchpipe.cloud import ray_yaml, s3
from benchpipe.cloud.session import client
from benchpipe.cloud.spot import ProvisionError
from benchpipe.cloud.tags import parse_iso, resource_tags
from benchpipe.errors import ConfigError
from benchpipe.model import Cluster, Host

log = logging.getLogger("benchpipe.ray_cluster")


def cluster_dir(settings: dict[str, Any], experiment: str) -> Path:
    """Where the rendered YAML and the launcher's logs live (beside the cluster file)."""
    return Path(settings.get("results_dir", "results")) / ".clusters" / experiment


def run_ray(argv: list[str], log_path: Path, timeout_s: float) -> str:
    """Run a `ray` CLI command; its output goes to `log_path`; a failure names the command and the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=out, text=True, timeout=timeout_s)
        except FileNotFoundError:
            raise ProvisionError(
                f"`{argv[0]}` not found: install the Ray cluster launcher (pip install 'ray[default]' boto3)"
                " or set provider.settings.ray_cli"
            ) from None
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"`{shlex.join(argv[:3])}` took over {timeout_s:g} s; see {log_path}") from None
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise ProvisionError(f"`{shlex.join(argv[:3])} ...` exited {proc.returncode}; see {log_path}")
    return proc.stdout


class RayClusterProvider:
    shared_machines = False
    replaceable = False  # a lost node fails the point; the next run brings a new cluster up

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = dict(settings)
        self.ray_cli = str(self.s.get("ray_cli", "ray"))

    # --- preflight ----------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        from benchpipe.cloud.managed import check_prerequisites
        from benchpipe.cloud.setup import preflight

        problems = []
        if not self.s.get("ami"):
            problems.append(
                "provider.settings.ami (config/experiments/exoflow/_aws.yaml): expected the nodes' AMI in "
                f"{self.s.get('region')}: an Ubuntu 20.04 Deep Learning AMI (NVIDIA driver for Figure 6's "
                "g4dn head); the authors' ami-0bc093c9b91f2c0e2 is private to their account"
            )
        problems += preflight(self.s, check_ami=bool(self.s.get("ami")))
        problems += self.cli_problems()
        problems += check_prerequisites(self.s, self.s.get("prerequisites", []))
        return problems

    def cli_problems(self) -> list[str]:
        """The controller's `ray` must be there, and (unless told otherwise) the nodes' version."""
        try:
            out = subprocess.run([*shlex.split(self.ray_cli), "--version"], capture_output=True, text=True, timeout=120)
        except (FileNotFoundError, PermissionError):
            return [
                f"provider.settings.ray_cli: `{self.ray_cli}` not found: the cluster launcher needs "
                f"`pip install 'ray[default]=={ray_yaml.RAY_VERSION}' boto3` (a Python <= 3.9 venv)"
            ]
        version = (out.stdout or out.stderr).strip().split()[-1] if out.returncode == 0 else ""
        if version != ray_yaml.RAY_VERSION and not self.s.get("allow_ray_version_mismatch"):
            return [
                f"provider.settings.ray_cli: `{self.ray_cli}` is ray {version or '(unknown)'}, the nodes run "
                f"ray {ray_yaml.RAY_VERSION} (ExoFlow's pin), and the head's autoscaler reads the YAML the "
                f"controller's launcher writes: point ray_cli to a ray {ray_yaml.RAY_VERSION} CLI (Python <= 3.9), "
                "or set allow_ray_version_mismatch: true"
            ]
        return []

    # --- provision ----------------------------------------------------------------------------
    def paths(self, experiment: str, baseline: str) -> tuple[Path, Path]:
        d = cluster_dir(self.s, experiment)
        return d / f"{baseline}.ray.yaml", d / f"{baseline}.ray.log"

    def render(
        self, machines: list[dict[str, Any]], *, name: str, run_id: str, experiment: str, baseline: str
    ) -> tuple[dict[str, Any], dict[str, str], str]:
        """(cluster YAML, tags, bucket) of the cluster; no cloud contacted."""
        if not isinstance(self.s.get("ray"), dict) or not self.s["ray"].get("experiment_dir"):
            raise ConfigError(
                f"provider.settings.ray (experiment {experiment}, targets.aws.provider): expected the Ray "
                "cluster's settings with at least experiment_dir"
            )
        tags = resource_tags(self.s, run_id=run_id, experiment=experiment, baseline=baseline, cluster=name)
        expires = parse_iso(tags["expires"])
        assert expires is not None
        bucket = s3.bucket_name(run_id, name)
        doc = ray_yaml.render_cluster_yaml(
            {"key_path": str(self._key_path()), **self.s},
            self.s["ray"],
            machines,
            name=ray_yaml.cluster_name(run_id, experiment, baseline),
            bucket=bucket,
            storage_prefix=f"{experiment}/{baseline}",
            tags=tags,
            expires_epoch=int(expires.timestamp()),
        )
        return doc, tags, bucket

    def _key_path(self) -> Path:
        from benchpipe.cloud.setup import key_path

        return key_path(self.s)

    def _security_group_id(self) -> str:
        if self.s.get("security_group_id"):
            return str(self.s["security_group_id"])
        name = self.s.get("security_group", "benchpipe")
        found = client(self.s, "ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
        if not found["SecurityGroups"]:
            raise ProvisionError(f"security group {name} missing: run `snakemake setup --profile aws`")
        return str(found["SecurityGroups"][0]["GroupId"])

    def provision(self, spec: dict[str, Any], *, name: str, run_id: str, experiment: str, baseline: str) -> Cluster:
        from benchpipe.cloud import iam

        self.s["security_group_id"] = self._security_group_id()
        self.s["instance_profile"] = iam.role_name(run_id, name)
        doc, tags, bucket = self.render(
            spec["machines"], name=name, run_id=run_id, experiment=experiment, baseline=baseline
        )
        yaml_path, log_path = self.paths(experiment, baseline)
        yaml_path.parent.mkdir(parents=True, exist_ok=True)
        yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        cluster = Cluster(
            name=name,
            provider="ray-cluster",
            run_id=run_id,
            experiment=experiment,
            baseline=baseline,
            hosts=[],
            lock_key=f"ray-{run_id}-{name}",
            created=tags["created"],
            expires=tags["expires"],
            extra={
                "region": self.s.get("region"),
                "endpoint_url": self.s.get("endpoint_url"),
                "bucket": bucket,
                "yaml": str(yaml_path),
                "log": str(log_path),
                "ray_cli": self.ray_cli,
                "cluster_name": doc["cluster_name"],
                "storage": f"s3://{bucket}/{experiment}/{baseline}",
                "workers": doc["max_workers"],
                # What the deployer restarts Ray with before each run (restart_ray.sh).
                "ray": self.s["ray"],
                "instance_profile": self.s["instance_profile"],
            },
        )
        try:
            account = client(self.s, "sts").get_caller_identity()["Account"]
            policy = iam.ray_cluster_policy(
                account, self.s["instance_profile"], bucket, self.s.get("node_permissions", [])
            )
            iam.create_cluster_role(client(self.s, "iam"), self.s["instance_profile"], policy, tags)
            s3.create_bucket(client(self.s, "s3"), bucket, self.s.get("region", "us-east-1"), tags)
            log.info("cluster %s: ray up (%s)", name, yaml_path)
            run_ray(
                ray_yaml.up_argv(self.ray_cli, str(yaml_path)), log_path, float(self.s.get("ray_up_timeout_s", 3600))
            )
            cluster.hosts = self._hosts(cluster, spec["machines"])
        except BaseException:
            log.error("cluster %s did not come up; taking down what was started", name)
            self.teardown(cluster)
            raise
        return cluster

    def _hosts(self, cluster: Cluster, machines: list[dict[str, Any]]) -> list[Host]:
        yaml_path, log_path = cluster.extra["yaml"], Path(cluster.extra["log"])
        head_ip = run_ray([*shlex.split(self.ray_cli), "get-head-ip", yaml_path], log_path, 120).split()[-1]
        worker_ips = run_ray([*shlex.split(self.ray_cli), "get-worker-ips", yaml_path], log_path, 120).split()
        head = next(m for m in machines if m["role"] == "manager")
        workers = [m for m in machines if m["role"] != "manager"]
        user = self.s.get("ssh_user", "ubuntu")
        key = str(self._key_path())
        hosts = [
            Host(
                name=head["name"],
                address=head_ip,
                role="manager",
                user=user,
                key_file=key,
                instance_type=head.get("instance_type"),
            )
        ]
        for m, ip in zip(workers, worker_ips, strict=False):
            hosts.append(
                Host(
                    name=m["name"],
                    address=ip,
                    role=m["role"],
                    user=user,
                    key_file=key,
                    instance_type=m.get("instance_type"),
                )
            )
        return hosts

    # --- while in use ---------------------------------------------------------------------------
    def _instances(self, cluster: Cluster, states: list[str]) -> list[dict[str, Any]]:
        from benchpipe.providers.aws import _tagged_instances

        settings = {**self.s, "region": cluster.extra.get("region") or self.s.get("region")}
        return _tagged_instances(client(settings, "ec2"), {"run-id": cluster.run_id, "cluster": cluster.name}, states)

    def lost_hosts(self, cluster: Cluster) -> list[str]:
        """Nodes of the cluster no longer running (by the tags the YAML gives every node)."""
        running = self._instances(cluster, ["running"])
        missing = len(cluster.hosts) - len(running)
        return [f"{missing} of {len(cluster.hosts)} node(s) of {cluster.name} are not running"] if missing > 0 else []

    def keepalive(self, cluster: Cluster) -> None:
        """Move the expiry forward (the nodes' tags and their dead-man timers) while points still run."""
        from benchpipe.remote import run_on_hosts

        tags = resource_tags(self.s, run_id=cluster.run_id, cluster=cluster.name)
        expires = parse_iso(tags["expires"])
        assert expires is not None
        ids = [i["InstanceId"] for i in self._instances(cluster, ["pending", "running"])]
        if ids:
            settings = {**self.s, "region": cluster.extra.get("region") or self.s.get("region")}
            client(settings, "ec2").create_tags(Resources=ids, Tags=[{"Key": "expires", "Value": tags["expires"]}])
        if cluster.hosts and self.s.get("bootstrap", True):
            run_on_hosts(cluster.hosts, f"echo {int(expires.timestamp())} | sudo tee /etc/benchpipe-expires")
        cluster.expires = tags["expires"]

    # --- teardown -----------------------------------------------------------------------------
    def teardown(self, cluster: Cluster) -> None:
        """`ray down`, then any instance still tagged with the cluster, then the bucket; each step
        runs even if an earlier one failed (the first error is raised at the end)."""
        from benchpipe.providers.aws import _tagged_instances, _wait_terminated

        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it short
        errors: list[BaseException] = []
        try:
            yaml_path = cluster.extra.get("yaml")
            if yaml_path and Path(yaml_path).exists():
                try:
                    run_ray(
                        ray_yaml.down_argv(cluster.extra.get("ray_cli", self.ray_cli), yaml_path),
                        Path(cluster.extra.get("log", f"{yaml_path}.log")),
                        float(self.s.get("ray_down_timeout_s", 900)),
                    )
                except Exception as e:
                    errors.append(e)
            settings = {**self.s, "region": cluster.extra.get("region") or self.s.get("region")}
            try:
                ec2 = client(settings, "ec2")
                left = _tagged_instances(ec2, {"run-id": cluster.run_id, "cluster": cluster.name})
                ids = sorted(i["InstanceId"] for i in left)
                if ids:
                    log.warning(
                        "cluster %s: terminating %d instance(s) `ray down` left: %s", cluster.name, len(ids), ids
                    )
                    ec2.terminate_instances(InstanceIds=ids)
                    _wait_terminated(ec2, ids)
            except Exception as e:
                errors.append(e)
            if cluster.extra.get("bucket"):
                try:
                    s3.delete_bucket(client(settings, "s3"), cluster.extra["bucket"])
                except Exception as e:
                    errors.append(e)
            if cluster.extra.get("instance_profile"):  # after the instances that used it
                from benchpipe.cloud import iam

                try:
                    iam.delete_cluster_role(client(settings, "iam"), cluster.extra["instance_profile"])
                except Exception as e:
                    errors.append(e)
        finally:
            signal.signal(signal.SIGINT, previous)
        if errors:
            raise ProvisionError(
                f"teardown of {cluster.name} incomplete ({errors[0]}); run `snakemake teardown --profile aws`"
                " again, then `snakemake janitor --profile aws`"
            ) from errors[0]
