"""`kubectl`: the get / apply / patch / logs forms the knative deployer and the artifact's scripts
run, with kubectl's flags; the cluster's objects are the contract's state (Knative's releases as
applied, the services' pods as kn started them)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from mu2slscontract.flags import Flag, first_arg, parse
from mu2slscontract.jsonpath import JsonPathError, render
from mu2slscontract.state import SERVING_PODS, alive, cluster_ip, fail, load, locked, not_running

FLAGS = [
    Flag("namespace", "n"),
    Flag("no-headers", value=False),
    Flag("output", "o"),
    Flag("selector", "l"),
    Flag("container", "c"),
    Flag("tail"),
    Flag("filename", "f"),
    Flag("type"),
    Flag("patch", "p"),
]
# Per command, the flags kubectl defines for it (the global --namespace everywhere).
ALLOWED = {
    "get": {"namespace", "no-headers", "output", "selector"},
    "logs": {"namespace", "selector", "container", "tail"},
    "apply": {"namespace", "filename"},
    "patch": {"namespace", "type", "patch"},
}
RELEASE = re.compile(
    r"^https://github\.com/knative/(?P<repo>serving|net-kourier)/releases/download/knative-v\d+\.\d+\.\d+/"
    r"(?P<file>[a-z-]+\.yaml)$"
)
ORDER = {"serving-crds.yaml": "serving", "serving-core.yaml": "serving", "kourier.yaml": "net-kourier"}
KOURIER_CLASS = "kourier.ingress.networking.knative.dev"


def _digest(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def pods(st: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The namespace's pods as Kubernetes objects (name, labels, phase, containers)."""
    out = []
    now = time.time()
    if namespace == "default":
        for name, svc in sorted(st["services"].items()):
            for p in svc["pods"]:
                running = alive(p["pid"])
                out.append(
                    {
                        "metadata": {
                            "name": p["name"],
                            "namespace": namespace,
                            "labels": {"serving.knative.dev/service": name},
                        },
                        "status": {
                            "phase": "Running" if running else "Failed",
                            "podIP": "127.0.0.1",
                            "age": now - p["started"],
                            "log": p["log"],
                            "containerStatuses": [
                                {
                                    "name": "queue-proxy",
                                    "ready": running,
                                    "image": "gcr.io/knative-releases/knative.dev/serving/cmd/queue",
                                    "imageID": "gcr.io/knative-releases/knative.dev/serving/cmd/queue@"
                                    + _digest("queue"),
                                },
                                {
                                    "name": "user-container",
                                    "ready": running,
                                    "image": svc["image"],
                                    "imageID": f"{svc['image']}@{_digest(svc['image'])}",
                                },
                            ],
                        },
                    }
                )
    elif namespace == "knative-serving":
        for release, names in SERVING_PODS.items():
            if release in st["applied"]:
                for n in names:
                    out.append(
                        {
                            "metadata": {"name": f"{n}-6d5c8b4f7-x2x4z", "namespace": namespace, "labels": {}},
                            "status": {"phase": "Running", "age": 60.0, "containerStatuses": [{"ready": True}]},
                        }
                    )
    elif namespace == "kourier-system" and "kourier.yaml" in st["applied"]:
        out.append(
            {
                "metadata": {"name": "3scale-kourier-gateway-7f8d5b9c6-k9q2w", "namespace": namespace, "labels": {}},
                "status": {"phase": "Running", "age": 60.0, "containerStatuses": [{"ready": True}]},
            }
        )
    return out


def _row(pod: dict[str, Any], wide: bool) -> str:
    cs = pod["status"]["containerStatuses"]
    ready = f"{sum(c['ready'] for c in cs)}/{len(cs)}"
    status = "Running" if pod["status"]["phase"] == "Running" else "Error"
    cols = [pod["metadata"]["name"], ready, status, "0", f"{int(pod['status']['age'])}s"]
    if wide:
        cols += [pod["status"].get("podIP", "10.244.0.5"), "minikube", "<none>", "<none>"]
    return "   ".join(cols)


def _output(doc: Any, items: list[Any], output: str | None, header: str, rows: list[str], no_headers: bool) -> None:
    if output and output.startswith("jsonpath="):
        try:
            sys.stdout.write(render(output[len("jsonpath=") :], doc))
        except JsonPathError as e:
            fail(f"error: error parsing jsonpath {output[9:]}, {e}")
    elif output == "json":
        print(json.dumps(doc, indent=4))
    elif output in (None, "wide"):
        if not rows:
            fail(f"No resources found in {doc.get('namespace', 'default')} namespace.", 0)
        if not no_headers:
            print(header)
        print("\n".join(rows))
    else:
        fail(
            f'error: unable to match a printer suitable for the output format "{output}", allowed formats are: '
            "custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,"
            "jsonpath-file,name,template,templatefile,wide,yaml"
        )


def get(args: list[str], flags: dict[str, Any], st: dict[str, Any]) -> None:
    ns = flags.get("namespace", "default")
    if not args:
        fail(
            'You must specify the type of resource to get. Use "kubectl api-resources" for a complete list '
            "of supported resources.\n\nerror: Required resource not specified."
        )
    kind = args[0].split("/")[0]
    if kind in ("pods", "pod", "po"):
        items = pods(st, ns)
        if flags.get("selector"):
            k, _, v = flags["selector"].partition("=")
            items = [p for p in items if p["metadata"]["labels"].get(k) == v]
        wide = flags.get("output") == "wide"
        header = "NAME   READY   STATUS   RESTARTS   AGE" + (
            "   IP   NODE   NOMINATED NODE   READINESS GATES" if wide else ""
        )
        doc = {"apiVersion": "v1", "kind": "List", "items": items, "namespace": ns}
        _output(doc, items, flags.get("output"), header, [_row(p, wide) for p in items], flags.get("no-headers", False))
    elif kind in ("services", "service", "svc"):
        name = args[1] if len(args) > 1 else (args[0].split("/", 1)[1] if "/" in args[0] else "")
        if name != "kourier" or ns != "kourier-system" or "kourier.yaml" not in st["applied"]:
            fail(f'Error from server (NotFound): services "{name}" not found')
        doc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kourier", "namespace": ns},
            "spec": {"type": "LoadBalancer", "clusterIP": cluster_ip(), "ports": [{"name": "http2", "port": 80}]},
        }
        row = f"kourier   LoadBalancer   {cluster_ip()}   {cluster_ip()}   80:31080/TCP,443:31443/TCP   60s"
        _output(
            doc,
            [doc],
            flags.get("output"),
            "NAME   TYPE   CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE",
            [row],
            flags.get("no-headers", False),
        )
    else:
        fail(f'error: the server doesn\'t have a resource type "{kind}"')


def logs(args: list[str], flags: dict[str, Any], st: dict[str, Any]) -> None:
    ns = flags.get("namespace", "default")
    if args or not flags.get("selector"):
        fail("error: the contract kubectl emulates `kubectl logs -l <selector>` only")
    k, _, v = flags["selector"].partition("=")
    items = [p for p in pods(st, ns) if p["metadata"]["labels"].get(k) == v]
    if not items:
        fail(f"No resources found in {ns} namespace.", 0)
    container = flags.get("container")
    if container not in (None, "user-container", "queue-proxy"):
        fail(f"error: container {container} is not valid for pod {items[0]['metadata']['name']}")
    tail = int(flags.get("tail", "-1"))
    for p in items:
        lines = Path(p["status"]["log"]).read_text(errors="replace").splitlines() if container != "queue-proxy" else []
        print("\n".join(lines if tail < 0 else lines[-tail:] if tail else []))


def apply(args: list[str], flags: dict[str, Any], st: dict[str, Any]) -> None:
    url = flags.get("filename")
    if args or not url:
        fail("error: must specify one of -f and -k")
    m = RELEASE.match(url)
    if not m or ORDER.get(m["file"]) != m["repo"]:
        if url.startswith(("http://", "https://")):
            fail(f'error: unable to read URL "{url}", server reported 404 Not Found, status code=404')
        fail(f'error: the path "{url}" does not exist')
    need = {"serving-core.yaml": "serving-crds.yaml", "kourier.yaml": "serving-core.yaml"}.get(m["file"])
    if need and need not in st["applied"]:
        fail(
            f'error: resource mapping not found for "{m["file"]}": ensure CRDs are installed first '
            f"(apply {need} before {m['file']})"
        )
    if m["file"] not in st["applied"]:
        st["applied"].append(m["file"])
    print(
        {
            "serving-crds.yaml": "customresourcedefinition.apiextensions.k8s.io/services.serving.knative.dev created",
            "serving-core.yaml": "namespace/knative-serving created\nconfigmap/config-network created",
            "kourier.yaml": "namespace/kourier-system created\nservice/kourier created",
        }[m["file"]]
    )


def patch(args: list[str], flags: dict[str, Any], st: dict[str, Any]) -> None:
    target = args[0] if len(args) == 1 else "/".join(args[:2])
    if target not in ("configmap/config-network", "cm/config-network", "configmaps/config-network"):
        fail(f"Error from server (NotFound): {target} not found")
    if flags.get("namespace") != "knative-serving" or "serving-core.yaml" not in st["applied"]:
        fail('Error from server (NotFound): configmaps "config-network" not found')
    if flags.get("type", "strategic") not in ("json", "merge", "strategic"):
        fail(f'error: --type must be one of [json merge strategic], not "{flags["type"]}"')
    try:
        doc = json.loads(flags.get("patch", ""))
    except json.JSONDecodeError:
        fail(f'error: unable to parse "{flags.get("patch", "")}": yaml: did not find expected node content')
    st["patches"].append(doc)
    print("configmap/config-network patched")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"get": get, "logs": logs, "apply": apply, "patch": patch}
    cmd = first_arg(argv, FLAGS)
    if cmd not in commands:
        fail(f'error: unknown command "{cmd}" for "kubectl"' if cmd else "error: the contract kubectl needs a command")
    p = parse(argv, FLAGS, "error: unknown flag: {flag}\nSee 'kubectl " + cmd + " --help' for usage.")
    extra = set(p.flags) - ALLOWED[cmd]
    if extra:
        fail(f"error: unknown flag: --{sorted(extra)[0]}\nSee 'kubectl {cmd} --help' for usage.")
    args = p.args[p.args.index(cmd) + 1 :]
    if cmd in ("get", "logs"):
        st = load()
        if not st["running"]:
            not_running()
        commands[cmd](args, p.flags, st)
        return
    with locked() as st:
        if not st["running"]:
            not_running()
        commands[cmd](args, p.flags, st)
