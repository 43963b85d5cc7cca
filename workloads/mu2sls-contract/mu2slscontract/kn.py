"""`kn` (Knative client v1.0): the `service create | update | delete | list` forms the knative
deployer runs, with their flags as kn defines them; anything else refused as kn refuses it."""

from __future__ import annotations

import sys
import time

from mu2slscontract import pods
from mu2slscontract.flags import Flag, Parsed, integer, key_values, parse
from mu2slscontract.state import DOMAIN, NAMESPACE, alive, fail, load, locked, not_running

COMMON = [Flag("namespace", "n"), Flag("help", "h", value=False)]
CONFIG = [
    Flag("image"),
    Flag("scale-init"),
    Flag("scale-min"),
    Flag("scale-max"),
    Flag("annotation", "a", repeat=True),
    Flag("env", "e", repeat=True),
]
SUBCOMMANDS = ("create", "update", "delete", "list")
KOURIER_CLASS = "kourier.ingress.networking.knative.dev"


def _unknown(cmd: str) -> str:
    return "Error: unknown flag: {flag}\nRun 'kn service " + cmd + " --help' for usage."


def _scales(flags: dict, current: dict | None = None) -> dict[str, int]:
    cur = dict(current or {"init": 1, "min": 0, "max": 0})
    for key in ("init", "min", "max"):
        if f"scale-{key}" in flags:
            cur[key] = integer(flags[f"scale-{key}"], f"scale-{key}", "kn")
            if cur[key] < 0:
                fail(f"Error: --scale-{key} must be a non-negative integer")
    if cur["max"] and cur["min"] > cur["max"]:
        fail(f"Error: max-scale={cur['max']} must be greater than or equal to min-scale={cur['min']}")
    return cur


def _annotations(flags: dict) -> dict[str, str]:
    ann = key_values(flags.get("annotation", []), "annotation")
    for k, v in ann.items():
        if k == "autoscaling.knative.dev/target" and not v.isdigit():
            fail(
                f'Error: admission webhook "validation.webhook.serving.knative.dev" denied the request: '
                f"validation failed: invalid value: {v}: metadata.annotations.{k}"
            )
    return ann


def _pod_count(scale: dict[str, int]) -> int:
    n = max(scale["init"], scale["min"], 1)
    return min(n, scale["max"]) if scale["max"] else n


def _run_revision(name: str, svc: dict) -> None:
    svc["pods"] = pods.start(name, svc, _pod_count(svc["scale"]))
    why = pods.wait_ready(svc["pods"])
    if why:
        pods.stop(svc["pods"])
        fail(f'Error: RevisionFailed: Revision "{name}-{svc["revision"]:05d}" failed with message: {why}.')


def _one_service(argv: list[str], cmd: str) -> tuple[Parsed, str]:
    """create/update: their flags, one service name, in the one namespace there is."""
    p = parse(argv, COMMON + CONFIG, _unknown(cmd))
    if len(p.args) != 1:
        fail(f"Error: 'service {cmd}' requires the service name given as single argument")
    if p.flags.get("namespace", NAMESPACE) != NAMESPACE:
        fail(f'Error: namespaces "{p.flags["namespace"]}" not found')
    return p, p.args[0]


def create(argv: list[str]) -> None:
    p, name = _one_service(argv, "create")
    if "image" not in p.flags:
        fail("Error: 'service create' requires the image name to run provided with the --image option")
    image = p.flags["image"]
    found = pods.image_service(image)
    scale = _scales(p.flags)
    ann = _annotations(p.flags)
    env = key_values(p.flags.get("env", []), "env")
    with locked() as st:
        if not st["running"]:
            not_running()
        if "serving-core.yaml" not in st["applied"]:
            fail("Error: no or newer Knative Serving API found on the backend, please verify the installation")
        if not any(p.get("data", {}).get("ingress.class") == KOURIER_CLASS for p in st["patches"]):
            # config-network still names no installed ingress: the route is never reconciled.
            fail(f"Error: timeout: service '{name}' not ready after 600 seconds: Ingress has not yet been reconciled.")
        if name in st["services"]:
            fail(
                f"Error: cannot create service '{name}' in namespace '{NAMESPACE}' because the service already "
                "exists and no --force option was given"
            )
        print(f"Creating service '{name}' in namespace '{NAMESPACE}':\n")
        if found is None:
            # The registry has no such image: the revision never becomes ready.
            fail(
                f'Error: RevisionFailed: Revision "{name}-00001" failed with message: Unable to fetch image '
                f'"{image}": failed to resolve image to digest: GET https://index.docker.io/v2/: '
                "MANIFEST_UNKNOWN: manifest unknown."
            )
        app, service = found
        svc = {
            "image": image,
            "app": app,
            "service": service,
            "scale": scale,
            "annotations": ann,
            "env": env,
            "revision": 1,
            "created": time.time(),
            "pods": [],
        }
        st["services"][name] = svc
        _run_revision(name, svc)
    print(f"  0.05s Ready to serve.\n\nService '{name}' created to latest revision '{name}-00001' is available at URL:")
    print(f"http://{name}.{NAMESPACE}.{DOMAIN}")


def update(argv: list[str]) -> None:
    p, name = _one_service(argv, "update")
    with locked() as st:
        if not st["running"]:
            not_running()
        svc = st["services"].get(name)
        if svc is None:
            fail(f'Error: services.serving.knative.dev "{name}" not found')
        if "image" in p.flags:
            if pods.image_service(p.flags["image"]) != (svc["app"], svc["service"]):
                fail(f'Error: RevisionFailed: Unable to fetch image "{p.flags["image"]}"')
            svc["image"] = p.flags["image"]
        svc["scale"] = _scales(p.flags, svc["scale"])
        svc["annotations"].update(_annotations(p.flags))
        svc["env"].update(key_values(p.flags.get("env", []), "env"))
        old = svc["pods"]
        svc["revision"] += 1
        print(f"Updating Service '{name}' in namespace '{NAMESPACE}':\n")
        _run_revision(name, svc)  # the new revision's pods are ready before the old ones go
        pods.stop(old)
    print(f"Service '{name}' updated to latest revision '{name}-{svc['revision']:05d}' is available at URL:")
    print(f"http://{name}.{NAMESPACE}.{DOMAIN}")


def delete(argv: list[str]) -> None:
    p = parse(argv, [*COMMON, Flag("all", value=False)], _unknown("delete"))
    with locked() as st:
        if not st["running"]:
            not_running()
        if p.flags.get("all"):
            if p.args:
                fail("Error: 'service delete' with --all flag requires no arguments")
            names = sorted(st["services"])
            if not names:
                print("No services found.")
        else:
            if not p.args:
                fail("Error: 'service delete' requires the service name(s)")
            names = p.args
        for name in names:
            svc = st["services"].pop(name, None)
            if svc is None:
                fail(f'Error: services.serving.knative.dev "{name}" not found.')
            pods.stop(svc["pods"])
            print(f"Service '{name}' successfully deleted in namespace '{NAMESPACE}'.")


def list_(argv: list[str]) -> None:
    parse(argv, COMMON, _unknown("list"))
    st = load()
    if not st["running"]:
        not_running()
    if not st["services"]:
        print("No services found.")
        return
    rows = [["NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON"]]
    for name, svc in sorted(st["services"].items()):
        ready = all(alive(p["pid"]) for p in svc["pods"])
        age = f"{int(time.time() - svc['created'])}s"
        url = f"http://{name}.{NAMESPACE}.{DOMAIN}"
        latest = f"{name}-{svc['revision']:05d}"
        rows.append([name, url, latest, age, "3 OK / 3" if ready else "1 OK / 3", str(ready), ""])
    # Columns padded with spaces, as kn's table printer does (the artifact greps `^<name> `).
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("service", "services", "ksvc"):
        what = argv[0] if argv else ""
        fail(f'Error: unknown command "{what}" for "kn"\nRun \'kn --help\' for usage.')
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        fail(
            f"Error: unknown subcommand '{argv[1] if len(argv) > 1 else ''}' for 'kn service'. "
            "Available subcommands: apply, create, delete, describe, export, import, list, update"
        )
    {"create": create, "update": update, "delete": delete, "list": list_}[argv[1]](argv[2:])
