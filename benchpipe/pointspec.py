"""The resolved description of one point: everything its measurement needs, nothing else.

It is what the deploy stage writes (deploy.json), and its hash is the point's config hash, so an
unrelated edit (a figure title, another experiment) never changes it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from benchpipe.experiment import Experiment, Point


def canonical_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def point_spec(config: dict[str, Any], exp: Experiment, point: Point) -> dict[str, Any]:
    base = exp.baseline(point.baseline)
    wl = exp.data["workload"]
    env: dict[str, str] = {k: str(v) for k, v in {**exp.data["stack"].get("env", {}), **base.get("env", {})}.items()}
    for p, v in point.params.items():
        name = exp.param_meta(p).get("env")
        if name:
            env[name] = str(v)
    if exp.data["stack"].get("tables"):
        # Filled in when the point starts (the prefix names the run and the point).
        env["TABLE_PREFIX"] = "{table_prefix}"
    rate_param = exp.rate_param
    generator = dict(config["generator"])
    if wl.get("generator") and wl["generator"] != "openloop":
        # An experiment that needs a particular generator (closed loop) names it; open-loop
        # experiments take the profile's choice (built-in locally, wrk2 on clusters).
        generator = {"name": wl["generator"], "settings": {**generator.get("settings", {})}}
    generator["settings"] = {
        "max_send_lag_ms": config["measure"]["max_send_lag_ms"],
        "min_achieved_fraction": config["measure"]["min_achieved_fraction"],
        **generator.get("settings", {}),
        **wl.get("settings", {}),
    }
    for p, v in point.params.items():
        if exp.param_meta(p).get("role") == "concurrency":
            generator["settings"]["concurrency"] = v
    spec = {
        "experiment": exp.name,
        "suite": exp.suite,
        "baseline": point.baseline,
        "label": base["label"],
        "point": point.name,
        "repetition": point.repetition,
        "params": point.params,
        "app": exp.data["app"],
        "system": base["system"],
        "cluster_shape": base["cluster"],
        "machines": exp.machines(base["cluster"]),
        "workload": {
            "path": wl["path"],
            "mix": exp.mix(point.params),
            "warmup_s": base.get("workload", {}).get("warmup_s", wl["warmup_s"]),
            "measure_s": base.get("workload", {}).get("measure_s", wl["measure_s"]),
            "pause_s": wl["pause_s"],
            "rate": float(point.params[rate_param]) if rate_param else None,
        },
        "deployment": {
            "process": exp.data["stack"].get("process", []),
            "services": base.get("services", {}),
            "vars": {"app": exp.data["app"], "system": base["system"], **point.params},
            "tables": exp.data["stack"].get("tables", []),
            # The profile's deployer's own section of the stack (stack.knative), if the experiment
            # has one: other deployers' points keep their hashes.
            **{k: v for k, v in exp.data["stack"].items() if k == config["deployer"]["name"]},
        },
        "env": env,
        "deployer": config["deployer"],
        "generator": generator,
        "measure": {k: config["measure"][k] for k in ("ready_timeout_s",)},
        "target": config["target"],
        "summary_metrics": exp.data["summary"]["metrics"],
    }
    spec["config_hash"] = canonical_hash(spec)
    return spec
