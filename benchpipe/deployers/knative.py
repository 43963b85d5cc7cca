"""The knative deployer: one host running minikube + Knative Serving (Kourier) and, optionally,
FoundationDB (the platform the mu2sls artifact sets up), each point's services created with
`kn service create` over SSH.

The platform comes from the profile's settings (versions, minikube size); what runs on it from the
experiment's `stack.knative`: per app the services, their images and scales and a populate command,
a reset command, the experiment's own node setup script and the folder its commands run in. Per
point, as the mu2sls artifact's eval scripts do (reference/seed-mu2sls.md section 4): reset (delete
every Knative service, the experiment's reset, wait for 0 pods), create the services with the
point's env, wait until the expected pods exist, populate; wrk2 runs on the same host against the
Kourier ClusterIP, each request with its service's Host header. Stopping a stack is the reset. Each
step runs as a script written into the point's folder on the host, so the commands run in the
rendered order and a failure names its command (bash -x trace).
"""

from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchpipe import remote
from benchpipe.errors import StackError
from benchpipe.model import Cluster, Host, write_json_atomic

# Knative's defaults; the versions the mu2sls artifact pins (scripts/knative/setup2.sh,
# start-cluster.sh) are the profile's (profiles/mu2sls-node/node.yaml).
DEFAULTS: dict[str, Any] = {
    "namespace": "default",
    "domain": "example.com",
    "knative_version": "knative-v1.0.0",
    # FoundationDB server on the host, made public (LOAD_BALANCER_IP's sibling FDB_CLUSTER_DATA is
    # given to every service); null: none.
    "foundationdb_version": None,
    "minikube_cpus": 12,
    "minikube_memory": "20g",
    # The artifact took the latest minikube of 2022 (Kubernetes 1.23/1.24). Knative Serving v1.0
    # predates Kubernetes 1.25, so the cluster's version is pinned here (not tested on a host).
    "kubernetes_version": "v1.23.17",
    "knative_serving_pods": 7,
    "wrk2_dir": "~/wrk2",
    "pods_timeout_s": 600,
    "install": True,
    "remote_dir_template": "/tmp/benchpipe/{run_id}/{experiment}/{baseline}/{point}",
}
FDB_CLUSTER_FILE = "/etc/foundationdb/fdb.cluster"
REPO = Path(__file__).resolve().parents[2]


def _repo_file(path: str, key: str) -> str:
    """A file named relative to the repository (as choice_file is), its text."""
    try:
        return (REPO / path).read_text()
    except OSError:
        raise StackError(f"{key}: expected a readable file of the repository, got {path}") from None


@dataclass
class KnativeStack:
    endpoint: str  # http://<Kourier ClusterIP>, reachable from the host only
    cluster: Cluster
    node: Host
    point_dir: str
    app: str
    services: list[str]
    pods: int
    host_from_path: str
    reset_script: str
    images: list[str] = field(default_factory=list)
    # The experiment's sequential client on the host (mu2sls: the artifact's seq.py), run in workdir.
    sequential: str = ""
    workdir: str = "~"


def _q(s: str) -> str:
    # A remote path may start with ~ (the SSH user's home): leave that to the shell.
    if s.startswith("~/"):
        return "~/" + shlex.quote(s[2:])
    return shlex.quote(s)


def wait_pods(count: int, timeout_s: float) -> list[str]:
    """The artifact's wait_until_pods (every pod of the namespace counted), with a time limit."""
    return [
        f"deadline=$((SECONDS + {int(timeout_s)}))",
        f'until [ "$(kubectl get pods --no-headers 2>/dev/null | wc -l)" -eq {count} ]; do',
        f'  if [ "$SECONDS" -ge "$deadline" ]; then echo "pods: $(kubectl get pods --no-headers 2>/dev/null'
        f' | wc -l) of {count} after {int(timeout_s)} s" >&2; exit 1; fi',
        "  sleep 2",
        "done",
    ]


def check_lines(app: str, check: str | None, workdir: str) -> list[str]:
    """The app's functional check after its pods are up (mu2sls: test_services.py's test of the app,
    as the artifact runs it after deploying): its output kept in the point's folder (check.log) and,
    when it fails, printed on stderr, so the failed deploy shows it."""
    if not check:
        return []
    log = '"$(dirname "$0")/check.log"'
    quiet = "{ set +x; } 2>/dev/null"  # the check's own output, without the script's trace in it
    return [
        f"if ! ({quiet}; cd {workdir} && {check}) > {log} 2>&1; then",
        f'  {quiet}; {{ echo "functional check of {app} failed:"; tail -c 1500 {log}; }} >&2',
        "  exit 1",
        "fi",
    ]


def _script(lines: list[str]) -> str:
    return "\n".join(
        ["#!/bin/bash", "# rendered by benchpipe (knative deployer); runs on the node", "set -ex", *lines, ""]
    )


class KnativeDeployer:
    """settings: see DEFAULTS (namespace, domain, versions, minikube size, wrk2's folder, install...)."""

    # The services keep no per-request records for the controller to count (wrk2 reports them).
    records_calls = False

    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = {**DEFAULTS, **settings}
        self.remote_dir_template = self.s["remote_dir_template"]

    # --- rendering (pure: golden-tested) ------------------------------------------------------
    def host_from_path(self) -> str:
        return "{service}." + f"{self.s['namespace']}.{self.s['domain']}"

    def env_lines(self) -> list[str]:
        """LOAD_BALANCER_IP (and FDB_CLUSTER_DATA) as the mu2sls artifact's setup_env_vars.sh sets them."""
        lines = [
            'export LOAD_BALANCER_IP="$(kubectl --namespace kourier-system get service kourier'
            " -o jsonpath='{.spec.clusterIP}')\"",
            'test -n "$LOAD_BALANCER_IP"',
        ]
        if self.s["foundationdb_version"]:
            lines += [f'export FDB_CLUSTER_DATA="$(cat {FDB_CLUSTER_FILE})"', 'test -n "$FDB_CLUSTER_DATA"']
        return lines

    def reset_lines(self, kn: dict[str, Any]) -> list[str]:
        """Between points: kn service delete --all, the experiment's reset (mu2sls: clear_db.py), 0 pods."""
        reset = [f"(cd {_q(kn.get('workdir', '~'))} && {kn['reset']})"] if kn.get("reset") else []
        return [
            # As in the artifact, whatever it says (none left is fine): the pods are counted next.
            "kn service delete --all || true",
            *reset,
            *wait_pods(0, self.s["pods_timeout_s"]),
        ]

    def render(self, cluster: Cluster, deployment: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        kn = deployment.get("knative")
        if not kn:
            raise StackError("stack.knative: the experiment does not say how its services are deployed with kn")
        app = str(deployment.get("vars", {}).get("app", ""))
        spec = (kn.get("apps") or {}).get(app)
        if not spec:
            raise StackError(f"stack.knative.apps: expected an entry for app {app!r} ({', '.join(kn.get('apps', {}))})")
        scale = int(kn.get("scale", 1))
        annotations = [f"{k}={v}" for k, v in (kn.get("annotations") or {}).items()]
        ann = "".join(f" --annotation {shlex.quote(a)}" for a in annotations)
        envs = ' --env "LOAD_BALANCER_IP=${LOAD_BALANCER_IP}"'
        if self.s["foundationdb_version"]:
            envs += ' --env "FDB_CLUSTER_DATA=${FDB_CLUSTER_DATA}"'
        envs += "".join(f" --env {shlex.quote(f'{k}={v}')}" for k, v in sorted(env.items()))
        create, update, names, images, pods = [], [], [], [], 0
        for svc in spec["services"]:
            module = svc["module"]
            # Knative service name: the module without underscores; image: <csv name>-<module>.
            name = module.replace("_", "")
            image = f"{kn['image_prefix']}{spec['image_namespace']}-{module}"
            names.append(name)
            images.append(image)
            create.append(
                f"kn service create {name} --image {image}"
                f" --scale-init {scale} --scale-min {scale} --scale-max {scale}{ann}{envs}"
            )
            own = int(svc.get("scale", scale))
            if own != scale:
                # As the artifact's eval_media.sh does for composereview after the deploy.
                update.append(f"kn service update {name} --scale-min {own} --scale-max {own}{ann}")
            pods += own
        workdir = _q(kn.get("workdir", "~"))
        populate = [f"(cd {workdir} && {spec['populate']})"] if spec.get("populate") else []
        deploy = [
            *self.env_lines(),
            *self.reset_lines(kn),
            *create,
            *update,
            *wait_pods(pods, self.s["pods_timeout_s"]),
            *check_lines(app, spec.get("check"), workdir),
            *populate,
            'echo "$LOAD_BALANCER_IP" > "$(dirname "$0")/lb_ip"',  # read back by start()
        ]
        return {
            "kind": "knative",
            "app": app,
            "services": names,
            "images": images,
            "pods": pods,
            "host_from_path": self.host_from_path(),
            "deploy_script": _script(deploy),
            "reset_script": _script(self.reset_lines(kn)),
            # The experiment's own preparation of the node (a file of the repository, sent as text).
            "setup_script": _repo_file(kn["setup_script"], "stack.knative.setup_script")
            if kn.get("setup_script")
            else "",
            "workdir": kn.get("workdir", "~"),
            "sequential": kn["sequential"].format(image_namespace=spec["image_namespace"], app=app)
            if kn.get("sequential")
            else "",
        }

    def install_scripts(self) -> list[str]:
        """The artifact's node setup (setup1.sh; setup2.sh; start-cluster.sh), each step guarded so
        that a prepared node is left as it is and the cluster is restarted after a reboot. Three
        scripts, each over its own SSH login: the later ones need the docker group the first adds
        (the artifact logs in again in between)."""
        s = self.s
        kv, fdb = s["knative_version"], s["foundationdb_version"]
        rel = f"https://github.com/apple/foundationdb/releases/download/{fdb}"
        debs = f"foundationdb-clients_{fdb}-1_amd64.deb foundationdb-server_{fdb}-1_amd64.deb"
        wrk2 = _q(s["wrk2_dir"])
        fdb_lines = [
            # FoundationDB server + client on the host, listening on its public address.
            "if ! command -v fdbcli >/dev/null; then",
            f"  (cd /tmp && for d in {debs}; do wget -q {rel}/$d; done && sudo dpkg -i {debs})",
            "  sudo python3 /usr/lib/foundationdb/make_public.py",
            "fi",
        ]
        packages = "curl wget git build-essential libssl-dev zlib1g-dev python3-pip"
        first = [
            "export DEBIAN_FRONTEND=noninteractive",
            f"if ! dpkg -s {packages} >/dev/null 2>&1; then",
            f"  sudo apt-get update && sudo apt-get install -y {packages}",
            "fi",
            # setup1.sh: Docker (minikube's driver; the distribution's package where none is there).
            "command -v docker >/dev/null || sudo apt-get install -y docker.io",
            'id -nG "$USER" | grep -qw docker || sudo usermod -aG docker "$USER"',
        ]
        tools = [
            # setup2.sh: kubectl (apt.kubernetes.io is gone: the release binary), minikube, kn v1.0.0.
            "if ! command -v kubectl >/dev/null; then",
            f'  curl -fsSLo /tmp/kubectl "https://dl.k8s.io/release/{s["kubernetes_version"]}/bin/linux/amd64/kubectl"',
            "  sudo install /tmp/kubectl /usr/local/bin/kubectl",
            "fi",
            "if ! command -v minikube >/dev/null; then",
            "  curl -fsSLo /tmp/minikube https://storage.googleapis.com/minikube/releases/latest/minikube-linux-amd64",
            "  sudo install /tmp/minikube /usr/local/bin/minikube",
            "fi",
            "if ! command -v kn >/dev/null; then",
            f"  curl -fsSLo /tmp/kn https://github.com/knative/client/releases/download/{kv}/kn-linux-amd64",
            "  sudo install /tmp/kn /usr/local/bin/kn",
            "fi",
            *(fdb_lines if fdb else []),
            # wrk2 built from source. benchpipe's Lua script needs no rocks (the artifact's load json,
            # socket and uuid; benchpipe renders the bodies in plain Lua).
            f"if [ ! -x {wrk2}/wrk ]; then",
            f"  rm -rf {wrk2} && git clone https://github.com/giltene/wrk2.git {wrk2} && make -C {wrk2} -j",
            "fi",
        ]
        cluster = [
            # start-cluster.sh: minikube with Knative Serving and Kourier, then the tunnel.
            "if ! minikube status >/dev/null 2>&1; then",
            f"  minikube start --cpus={s['minikube_cpus']} --memory={s['minikube_memory']}"
            f" --kubernetes-version={s['kubernetes_version']}",
            f"  kubectl apply -f https://github.com/knative/serving/releases/download/{kv}/serving-crds.yaml",
            f"  kubectl apply -f https://github.com/knative/serving/releases/download/{kv}/serving-core.yaml",
            f"  kubectl apply -f https://github.com/knative/net-kourier/releases/download/{kv}/kourier.yaml",
            "  kubectl patch configmap/config-network --namespace knative-serving --type merge"
            ' --patch \'{"data":{"ingress.class":"kourier.ingress.networking.knative.dev"}}\'',
            "fi",
            # Detached from this SSH session, as the artifact's `minikube tunnel -c > /dev/null &`.
            'pgrep -f "minikube tunnel" >/dev/null || (setsid nohup minikube tunnel -c </dev/null >/dev/null 2>&1 &)',
            f'until [ "$(kubectl get pods -n knative-serving | grep -c Running)" -ge {s["knative_serving_pods"]} ]; do',
            "  sleep 2",
            "done",
        ]
        return [_script(first), _script(tools), _script(cluster)]

    def _install_steps(self) -> list[tuple[int, str]]:
        """The install scripts this deployer runs before a point: `install: true` all three (packages,
        tools, cluster), `install: cluster` only the cluster's start (the tools already on the
        host: the test bed's contract CLIs), `install: false` none."""
        scripts = list(enumerate(self.install_scripts(), 1))  # install-<n>.sh on the host
        mode = self.s["install"]
        if mode is True:
            return scripts
        if mode == "cluster":
            return scripts[2:]
        if mode is False:
            return []
        raise StackError(f"deployer.settings.install: expected true, false or 'cluster', got {mode!r}")

    # --- running on the node ------------------------------------------------------------------
    def _run_script(self, node: Host, text: str, path: str, timeout_s: float, *args: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
            f.write(text)
            f.flush()
            remote.put(node, f.name, path)
        folder = path.rsplit("/", 1)[0] or "/"
        argv = "".join(f" {_q(a)}" for a in args)
        try:
            return remote.run(node, f"cd {shlex.quote(folder)} && bash {shlex.quote(path)}{argv}", timeout_s=timeout_s)
        except remote.RemoteError as e:
            # The trace's last lines name the failing command; the script stays on the host.
            raise remote.RemoteError(f"{path} failed: {e}") from None

    def start(self, cluster: Cluster, rendered: dict[str, Any], remote_dir: str) -> KnativeStack:
        node = cluster.manager
        remote.run(node, f"rm -rf {shlex.quote(remote_dir)} && mkdir -p {shlex.quote(remote_dir)}")
        for i, text in self._install_steps():
            self._run_script(node, text, f"{remote_dir}/install-{i}.sh", 3600)
        if rendered.get("setup_script"):
            # The experiment's preparation (mu2sls: the artifact's scripts in its folder), idempotent.
            self._run_script(node, rendered["setup_script"], f"{remote_dir}/setup.sh", 1800, rendered["workdir"])
        self._run_script(node, rendered["deploy_script"], f"{remote_dir}/deploy.sh", 2 * self.s["pods_timeout_s"] + 600)
        lb_ip = remote.run(node, f"cat {shlex.quote(remote_dir)}/lb_ip").strip()
        return KnativeStack(
            endpoint=f"http://{lb_ip}",
            cluster=cluster,
            node=node,
            point_dir=remote_dir,
            app=rendered["app"],
            services=list(rendered["services"]),
            pods=int(rendered["pods"]),
            host_from_path=rendered["host_from_path"],
            reset_script=rendered["reset_script"],
            images=list(rendered["images"]),
            sequential=rendered.get("sequential", ""),
            workdir=rendered.get("workdir", "~"),
        )

    def handle(self, stack: KnativeStack, lease: str) -> dict[str, Any]:
        return asdict(stack)

    def attach(self, handle: dict[str, Any]) -> KnativeStack:
        h = dict(handle)
        h["cluster"] = Cluster.from_dict(h["cluster"])
        h["node"] = Host.from_dict(h["node"])
        return KnativeStack(**h)

    def _pods(self, stack: KnativeStack) -> int:
        return int(remote.run(stack.node, "kubectl get pods --no-headers 2>/dev/null | wc -l").strip() or 0)

    def wait_ready(self, stack: KnativeStack, timeout_s: float) -> None:
        # deploy.sh already waited for the pods (kn create itself waits for each service's Ready).
        deadline = time.monotonic() + timeout_s
        while (n := self._pods(stack)) != stack.pods:
            if time.monotonic() > deadline:
                raise StackError(f"{stack.node.name}: {n} pods, expected {stack.pods} ({', '.join(stack.services)})")
            time.sleep(2)

    def check_healthy(self, stack: KnativeStack) -> None:
        out = remote.run(stack.node, "kubectl get pods --no-headers 2>/dev/null || true")
        bad = [line for line in out.splitlines() if line.split()[2:3] and line.split()[2] != "Running"]
        if bad:
            raise StackError(f"{stack.node.name}: pods not running: " + "; ".join(bad[:5]))

    def load_context(self, stack: KnativeStack) -> dict[str, Any]:
        """wrk2 on the node itself (the artifact's setup), at the Kourier ClusterIP, Host per service."""
        ctx: dict[str, Any] = {
            "client": stack.node,
            "target": stack.endpoint,
            "work_dir": stack.point_dir,
            "generator_settings": {"host_from_path": stack.host_from_path},
        }
        if stack.sequential:
            # The sequential reference on the host too (the artifact's seq.py; the controller cannot
            # reach the ClusterIP), with setup_env_vars.sh's LOAD_BALANCER_IP; its output kept there.
            lb_ip = stack.endpoint.removeprefix("http://")
            ctx["sequential_command"] = (
                f"set -o pipefail; cd {_q(stack.workdir)} && LOAD_BALANCER_IP={shlex.quote(lb_ip)}"
                f" {stack.sequential} 2>&1 | tee {shlex.quote(stack.point_dir)}/seq.log"
            )
        return ctx

    def fetch(self, stack: KnativeStack, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / "services.txt"
        out.write_text(remote.run(stack.node, "kn service list 2>&1 || true"))
        self._fetch_check(stack, dest)
        # Provenance: the image digests the pods ran.
        ids = remote.run(
            stack.node,
            "kubectl get pods -o jsonpath="
            "'{range .items[*].status.containerStatuses[*]}{.image} {.imageID}{\"\\n\"}{end}' 2>/dev/null || true",
        )
        write_json_atomic(
            dest / "images.json",
            {
                i: next(
                    (line.split()[1] for line in ids.splitlines() if line.startswith(i) and len(line.split()) > 1), ""
                )
                for i in stack.images
            },
        )
        return [out]

    def _fetch_check(self, stack: KnativeStack, dest: Path) -> None:
        """The functional check's output (apps that have one), whole (a failure shows its tail)."""
        check = remote.run(stack.node, f"cat {shlex.quote(stack.point_dir)}/check.log 2>/dev/null || true")
        if check:
            (dest / "check.log").write_text(check)

    def collect_logs(self, stack: KnativeStack, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "pods.txt").write_text(remote.run(stack.node, "kubectl get pods -o wide 2>&1 || true"))
        self._fetch_check(stack, dest)
        for svc in stack.services:
            sel = shlex.quote(f"serving.knative.dev/service={svc}")
            text = remote.run(stack.node, f"kubectl logs -l {sel} -c user-container --tail=-1 2>&1 || true")
            (dest / f"{svc}.log").write_text(text)

    def stop(self, stack: KnativeStack) -> None:
        self._run_script(stack.node, stack.reset_script, f"{stack.point_dir}/reset.sh", self.s["pods_timeout_s"] + 300)
