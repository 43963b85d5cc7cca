"""The resolved description of one point: everything its measurement needs, nothing else.

It is what the deploy stage writes (deploy.json), and its hash is the point's config hash, so an
unrelated edit (a figure title, another experiment) never changes it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from benchpipe import stackspec
from benchpipe.experiment import Experiment, Point
from benchpipe.generators.templates import data_file_refs
from benchpipe.generators.templates import resolve_data_files as resolve_mix_files
from benchpipe.targets import deployer_for, provider_of, refuse_unsupported


def canonical_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _deployer_config(config: dict[str, Any]) -> dict[str, Any]:
    """The profile's deployer; its region defaults to the provider's (services that need the AWS
    environment get AWS_REGION from it)."""
    dep = dict(config["deployer"])
    settings = dict(dep.get("settings") or {})
    region = (config.get("provider", {}).get("settings") or {}).get("region")
    if region and not settings.get("region"):
        settings["region"] = region
    dep["settings"] = settings
    return dep


def _measure_settings(config: dict[str, Any], exp: Experiment, point: Point) -> dict[str, Any]:
    """What the stages need of `measure`: the readiness limit; the stall knob, for the point it
    names. (rerun_unstable and the stability limits reach the run stage through the environment,
    benchpipe.stats.point.announce_checks: changing them must not re-measure finished points.)"""
    measure = config["measure"]
    out: dict[str, Any] = {"ready_timeout_s": measure["ready_timeout_s"]}
    stall = measure.get("stall")
    if stall and stall["point"] == f"{exp.name}/{point.baseline}/{point.name}":
        out["stall"] = {"after_s": stall.get("after_s", 1), "for_s": stall.get("for_s", 2)}
    return out


def point_spec(config: dict[str, Any], exp: Experiment, point: Point) -> dict[str, Any]:
    refuse_unsupported(config, [exp])
    base = exp.baseline(point.baseline)
    stack = stackspec.resolve_stack(exp.data, point.baseline, exp.source)
    wl = exp.data["workload"]
    env: dict[str, str] = {k: str(v) for k, v in {**exp.data["stack"].get("env", {}), **base.get("env", {})}.items()}
    for p, v in point.params.items():
        name = exp.param_meta(p).get("env")
        if name:
            env[name] = str(v)
    if stack["tables"]:
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
        **exp.settings(point.params),
    }
    for p, v in point.params.items():
        if exp.param_meta(p).get("role") == "concurrency":
            generator["settings"]["concurrency"] = v
    # Files the run configuration supplies (config data_files), named by the mix: resolved here so the
    # point's hash changes with them, and listed for the stack's data step (copied to the client).
    mix = exp.mix(point.params)
    refs = sorted({ref for m in mix for ref in data_file_refs(m.get("vars"))})
    mix = resolve_mix_files(mix, config.get("data_files") or {}, f"{exp.source}: workload")
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
            "mix": mix,
            "warmup_s": base.get("workload", {}).get("warmup_s", wl["warmup_s"]),
            "measure_s": base.get("workload", {}).get("measure_s", wl["measure_s"]),
            "pause_s": wl["pause_s"],
            "rate": float(point.params[rate_param]) if rate_param else None,
        },
        "deployment": {
            "process": exp.data["stack"].get("process", []),
            "services": stack["services"],
            "vars": {"app": exp.data["app"], "system": base["system"], **point.params},
            "tables": stack["tables"],
            "registry": stack["registry"],
            "host_files": stack["host_files"],
            "wipes": stack["wipes"],
            "data": stackspec.resolve_data_files(stack["data"], config.get("data_files") or {}, stackspec.REPO),
            "ready": stack["ready"],
            "after_ready": stack["after_ready"],
            # The profile's deployer's own section of the stack (stack.knative), if the experiment
            # has one: other deployers' points keep their hashes.
            **{k: v for k, v in exp.data["stack"].items() if k == config["deployer"]["name"]},
        },
        "env": env,
        "deployer": _deployer_config({**config, "deployer": deployer_for(config, exp)}),
        "generator": generator,
        "measure": _measure_settings(config, exp, point),
        "target": config["target"],
        "summary_metrics": exp.data["summary"]["metrics"],
    }
    own = provider_of(config, exp)
    if own:  # only where an experiment has its own provider: other points keep their hashes
        spec["provider"] = own
    if refs:  # only where used: other experiments' hashes (and finished points) stay as they were
        spec["workload"]["data_files"] = {ref: config["data_files"][ref] for ref in refs}
    spec["config_hash"] = canonical_hash(spec)
    return spec
