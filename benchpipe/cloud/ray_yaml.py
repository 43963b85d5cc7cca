"""Ray cluster-launcher YAMLs for the ExoFlow suite, and the `ray` commands that drive them.

The artifact (suquark/ExoFlow, clusters/*.yaml) starts one Ray cluster per experiment with
`ray up`; its YAMLs hard-code the authors' AMI, security groups, EFS file system and S3 bucket.
Here the same cluster shapes (head and worker instance types, disks, Ray resources, placement)
are rendered with the project's own settings: the profile's region, key pair and security group
(SSH from the controller only, never 0.0.0.0/0), an AMI the user names, the run's own tagged S3
bucket for workflow storage, every instance and volume tagged like the other providers' machines,
and the project's dead-man timer on every node (power-off at expiry = termination). The nodes
get ExoFlow as the artifact installs it: a Python 3.9 environment, ray==2.0.1, the checkout at the
artifact commit, its requirements and `setup/patch.sh`.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from typing import Any

from benchpipe.cloud.spot import user_data
from benchpipe.cloud.tags import tag_list
from benchpipe.errors import ConfigError

# The artifact commit the seed README sends evaluators to, and the versions it pins.
EXOFLOW_REPO = "https://github.com/suquark/ExoFlow"
EXOFLOW_COMMIT = "179e1fb754ee42ddbb73db1b7b89d31d8a263b37"
RAY_VERSION = "2.0.1"
PYTHON_VERSION = "3.9"
# Where the nodes keep things (the artifact: EFS at /exoflow, conda env exoflow-dev).
CONDA_DIR = "~/miniconda3"
ENV_NAME = "exoflow-dev"
CHECKOUT = "~/ExoFlow"
MINICONDA = "https://repo.anaconda.com/miniconda/Miniconda3-latest-Linux-x86_64.sh"
HEAD_TYPE = "ray.head.default"
WORKER_TYPE = "ray.worker.default"
BOOTSTRAP = "~/ray_bootstrap_config.yaml"  # written on the head by `ray up`
BOOTSTRAP_KEY = "~/ray_bootstrap_key.pem"  # the key the head reaches the workers with
RAY_PORT = 6379
IPV4 = "'([0-9]{1,3}\\.){3}[0-9]{1,3}'"
OBJECT_MANAGER_PORT = 8076


def cluster_name(run_id: str, experiment: str, baseline: str) -> str:
    """Ray tags every node with it (ray-cluster-name); one cluster per run, experiment and baseline."""
    return f"benchpipe-{run_id}-{experiment}-{baseline}".replace("_", "-")


def _resources(res: dict[str, Any]) -> str:
    return shlex.quote(json.dumps(res, separators=(", ", ": ")))


def start_commands(ray: dict[str, Any], storage: str, role: str) -> list[str]:
    """The artifact's head/worker start commands (its YAMLs' *_start_ray_commands and
    restart_ray.sh): fixed ports, the custom resources its tasks are placed by, the workflow
    storage and the CPU count; PYTHONPATH is the experiment's folder of the checkout."""
    pythonpath = f"PYTHONPATH={CHECKOUT}/{ray['experiment_dir']}"
    common = [f"--object-manager-port={OBJECT_MANAGER_PORT}", "--disable-usage-stats"]
    if role == "head":
        args = ["--head", f"--port={RAY_PORT}", *common, f"--autoscaling-config={BOOTSTRAP}"]
        res = ray.get("head_resources", {"machine": 1})
    else:
        args = [f"--address=$RAY_HEAD_IP:{RAY_PORT}", *common]
        res = ray.get("worker_resources", {"machine": 1})
    args.append(f"--resources={_resources(res)}")
    if ray.get("storage", True):
        args.append(f"--storage={storage}")
    if ray.get("num_cpus"):
        args.append(f"--num-cpus={int(ray['num_cpus'])}")
    return ["ray stop", f"ulimit -n 65536; {pythonpath} ray start {' '.join(args)}"]


def setup_commands(ray: dict[str, Any], bucket: str) -> list[str]:
    """Idempotent node setup (`ray up` runs it again on a re-run): Miniconda with a Python 3.9 env,
    ray==2.0.1, the ExoFlow checkout at the artifact commit with its requirements, installed as a
    package and patched into Ray (setup/patch.sh), the artifact's hard-coded bucket replaced by the
    run's own (its README-full's search-and-replace), and the experiment's own extra steps."""
    py = f"{CONDA_DIR}/envs/{ENV_NAME}/bin"
    commit = ray.get("exoflow_commit", EXOFLOW_COMMIT)
    cmds = [
        f"test -x {CONDA_DIR}/bin/conda || (wget -q -O /tmp/miniconda.sh {MINICONDA}"
        f" && bash /tmp/miniconda.sh -b -p {CONDA_DIR})",
        f"test -x {py}/python || {CONDA_DIR}/bin/conda create -y -q -n {ENV_NAME} python={PYTHON_VERSION}",
        # Every later command finds the env's python and ray first: `ray exec` (an interactive
        # login shell: ~/.bashrc) and the restart's ssh to the workers (a login shell: ~/.profile).
        f"for f in ~/.bashrc ~/.profile; do grep -q 'envs/{ENV_NAME}/bin' $f"
        f" || echo 'export PATH={py}:$PATH' >> $f; done",
        f"{py}/pip install -q 'ray[default]=={RAY_VERSION}' boto3",
        f"test -d {CHECKOUT}/.git || git clone -q {ray.get('exoflow_repo', EXOFLOW_REPO)} {CHECKOUT}",
        f"git -C {CHECKOUT} fetch -q origin {commit} || true",
        f"git -C {CHECKOUT} checkout -q -f {commit}",
        f"{py}/pip install -q -r {CHECKOUT}/setup/requirements.txt",
        f"{py}/pip install -q -e {CHECKOUT}",
        f"PATH={py}:$PATH bash {CHECKOUT}/setup/patch.sh",
        # s3://exoflow (the artifact's bucket) -> the run's bucket; s3://exoflow-dataset stays.
        f"grep -rlE 's3://exoflow([^-a-zA-Z0-9_]|$)' {CHECKOUT}/experiments | xargs -r sed -i -E "
        f"'s#s3://exoflow([^-a-zA-Z0-9_]|$)#s3://{bucket}\\1#g'",
    ]
    return cmds + list(ray.get("extra_setup", []))


def _node_config(
    settings: dict[str, Any],
    instance_type: str,
    tags: dict[str, str],
    volume_gb: int,
    placement: str | None,
    expires_epoch: int,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "InstanceType": instance_type,
        "ImageId": settings["ami"],
        "KeyName": settings.get("key_name", "benchpipe"),
        "SecurityGroupIds": [settings["security_group_id"]],
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": volume_gb}}],
        # The project's dead-man timer (the aws provider's): the node powers off at the cluster's
        # expiry unless the controller moves it forward, and power-off means termination.
        "InstanceInitiatedShutdownBehavior": "terminate",
        "UserData": user_data(expires_epoch),
        # Ray adds its own ray-* tags to these.
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tag_list(tags)},
            {"ResourceType": "volume", "Tags": tag_list(tags)},
        ],
    }
    if placement:
        cfg["Placement"] = {"GroupName": placement}
    if settings.get("instance_profile"):
        # The cluster's own tagged role (benchpipe/cloud/iam.py), on the workers too: without it
        # Ray makes an untagged, account-wide ray-autoscaler-v1 for the head only, and the
        # workers could not reach the workflow storage.
        cfg["IamInstanceProfile"] = {"Name": settings["instance_profile"]}
    return cfg


def render_cluster_yaml(
    settings: dict[str, Any],
    ray: dict[str, Any],
    machines: list[dict[str, Any]],
    *,
    name: str,
    bucket: str,
    storage_prefix: str,
    tags: dict[str, str],
    expires_epoch: int,
) -> dict[str, Any]:
    """The cluster-launcher YAML (as a mapping) of one ExoFlow cluster.

    `machines` is the experiment's cluster shape: the manager is Ray's head, the other machines its
    workers (one instance type; Ray starts them after the head, min = max = their count)."""
    for key in ("ami", "security_group_id", "region"):
        if not settings.get(key):
            raise ConfigError(
                f"provider.settings.{key}: expected a value for the Ray cluster (see docs/exoflow-aws.md)"
            )
    head = [m for m in machines if m["role"] == "manager"]
    workers = [m for m in machines if m["role"] != "manager"]
    kinds = Counter(m.get("instance_type") for m in workers)
    if len(head) != 1 or len(kinds) > 1:
        raise ConfigError(
            f"cluster {name}: expected one manager (Ray's head) and workers of one instance type, got "
            f"{len(head)} manager(s) and worker types {sorted(kinds)}"
        )
    volume = int(ray.get("volume_gb", 200))
    storage = f"s3://{bucket}/{storage_prefix}"
    n_workers = len(workers)
    node_types: dict[str, Any] = {
        HEAD_TYPE: {
            "resources": {},
            "node_config": _node_config(settings, head[0]["instance_type"], tags, volume, None, expires_epoch),
        }
    }
    if n_workers:
        placement = settings.get("placement_group") if ray.get("worker_placement_group") else None
        node_types[WORKER_TYPE] = {
            "resources": {},
            "min_workers": n_workers,
            "max_workers": n_workers,
            "node_config": _node_config(settings, workers[0]["instance_type"], tags, volume, placement, expires_epoch),
        }
    provider: dict[str, Any] = {
        "type": "aws",
        "region": settings["region"],
        # Stopped nodes would outlive `ray down` (and bill for their disks): always terminate.
        "cache_stopped_nodes": False,
    }
    if settings.get("zones"):
        provider["availability_zone"] = ",".join(settings["zones"])
    auth = {"ssh_user": settings.get("ssh_user", "ubuntu"), "ssh_private_key": settings["key_path"]}
    return {
        "cluster_name": name,
        "max_workers": n_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 60 * 24,  # the workers are the experiment's: never scaled down mid-run
        "provider": provider,
        "auth": auth,
        "available_node_types": node_types,
        "head_node_type": HEAD_TYPE,
        # No ~/.aws mount (the artifact copies the user's credentials): nodes use Ray's instance
        # profile for the bucket.
        "file_mounts": {},
        "initialization_commands": [],
        "setup_commands": setup_commands(ray, bucket),
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": start_commands(ray, storage, "head"),
        "worker_start_ray_commands": start_commands(ray, storage, "worker"),
    }


# --- the `ray` commands benchpipe's stages run (argv lists; the controller's ray CLI) -----------
def up_argv(ray_cli: str, yaml_path: str) -> list[str]:
    """provision: launch or update the cluster, no prompt, no usage stats, no cached config."""
    return [*shlex.split(ray_cli), "up", "-y", "--disable-usage-stats", "--no-config-cache", yaml_path]


def down_argv(ray_cli: str, yaml_path: str) -> list[str]:
    """teardown: terminate every node of the cluster (workers first, then the head)."""
    return [*shlex.split(ray_cli), "down", "-y", yaml_path]


def exec_argv(ray_cli: str, yaml_path: str, command: str) -> list[str]:
    """Run `command` on the head node (in a login shell, so the env's ray and python come first)."""
    return [*shlex.split(ray_cli), "exec", yaml_path, command]


def rsync_down_argv(ray_cli: str, yaml_path: str, source: str, target: str) -> list[str]:
    return [*shlex.split(ray_cli), "rsync-down", yaml_path, source, target]


def restart_script(ray: dict[str, Any], storage: str, n_workers: int, timeout_s: int = 600) -> str:
    """Ray restarted on every node before a run, as the artifact's restart_ray.sh does (stop with
    --force on the head and, over SSH, on each worker; start the head, then the workers), then
    polled until all nodes are back (the artifact sleeps 10 s instead)."""
    head = start_commands(ray, storage, "head")[1]
    worker = start_commands(ray, storage, "worker")[1]
    ssh = f"ssh -o StrictHostKeyChecking=no -i {BOOTSTRAP_KEY}"
    nodes = n_workers + 1
    return "\n".join(
        [
            "set -eu",
            "export RAY_HEAD_IP=$(hostname -i | awk '{print $1}')",
            f"WORKERS=$(ray get-worker-ips {BOOTSTRAP} 2>/dev/null | grep -oE {IPV4} || true)",
            "ray stop --force",
            f"for ip in $WORKERS; do {ssh} $ip 'bash -lc \"ray stop --force\"'; done",
            head,
            # The head's address is filled in here (an unquoted here-document), as the artifact's
            # double-quoted ssh command does.
            f"for ip in $WORKERS; do {ssh} $ip bash -l -s <<EOF\n{worker}\nEOF\ndone",
            f"deadline=$(( $(date +%s) + {timeout_s} ))",
            'until python -c \'import ray; ray.init(address="auto"); '
            f'import sys; sys.exit(0 if len([n for n in ray.nodes() if n["Alive"]]) >= {nodes} else 1)\' '
            ">/dev/null 2>&1; do",
            f'  if [ $(date +%s) -gt $deadline ]; then echo "Ray did not come back on {nodes} nodes" >&2; exit 1; fi',
            "  sleep 2",
            "done",
        ]
    )
