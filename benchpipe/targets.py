"""What an experiment says about the run target (`targets:` in its file): its own deployer there
(Pronghorn's remote-process deployer on a CRIU host under --profile ssh), its own provider there
(ExoFlow's Ray clusters through `ray up` under --profile aws), or that it cannot run
there (Figure 5 and Tables 4-5 locally: no CRIU, and a JVM cannot be snapshotted by fork)."""

from __future__ import annotations

from typing import Any

from benchpipe.errors import ConfigError
from benchpipe.experiment import Experiment


def deployer_for(config: dict[str, Any], exp: Experiment) -> dict[str, Any]:
    """The deployer of the experiment's points on this target: its own, else the profile's."""
    own = exp.data.get("targets", {}).get(config["target"], {}).get("deployer")
    if own:
        return {"name": own["name"], "settings": dict(own.get("settings", {}))}
    return config["deployer"]


def provider_of(config: dict[str, Any], exp: Experiment) -> dict[str, Any] | None:
    """The experiment's own provider on this target (ExoFlow's ray-cluster on aws), or None."""
    own = exp.data.get("targets", {}).get(config["target"], {}).get("provider")
    return {"name": own["name"], "settings": dict(own.get("settings", {}))} if own else None


def own_providers(config: dict[str, Any], exps: list[Experiment]) -> dict[str, dict[str, Any] | None]:
    """Per experiment, its own provider on this target (None: the profile's)."""
    return {e.name: provider_of(config, e) for e in exps}


def unsupported(config: dict[str, Any], exp: Experiment) -> str | None:
    """Why the experiment cannot run on this target (naming its file and key), or None."""
    target = config["target"]
    reason = exp.data.get("targets", {}).get(target, {}).get("unsupported")
    return f"{exp.source}: targets.{target}.unsupported: {reason}" if reason else None


def refuse_unsupported(config: dict[str, Any], exps: list[Experiment]) -> None:
    """A clear error for a run that asks for an experiment this target cannot run."""
    reasons = [r for r in (unsupported(config, e) for e in exps) if r]
    if reasons:
        raise ConfigError(f"not runnable with target {config['target']!r} (this profile):\n  " + "\n  ".join(reasons))
