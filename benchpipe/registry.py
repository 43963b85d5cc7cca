"""Plug-ins registered by name, so that config can say `provider: aws` or `generator: wrk2`."""

from __future__ import annotations

import importlib
from typing import Any

# kind -> name -> "module:attribute"; imported lazily so that the local path never imports boto3.
_PLUGINS: dict[str, dict[str, str]] = {
    "provider": {
        "local": "benchpipe.providers.local:LocalProvider",
        "ssh": "benchpipe.providers.ssh:SshProvider",
        "aws": "benchpipe.providers.aws:AwsProvider",
        "ray-cluster": "benchpipe.providers.ray_cluster:RayClusterProvider",
    },
    "deployer": {
        "process": "benchpipe.deployers.process:ProcessDeployer",
        "swarm": "benchpipe.deployers.swarm:SwarmDeployer",
        "remote-process": "benchpipe.deployers.remote_process:RemoteProcessDeployer",
        "knative": "benchpipe.deployers.knative:KnativeDeployer",
        "ray-cluster": "benchpipe.deployers.ray_cluster:RayClusterDeployer",
        "ray": "benchpipe.deployers.ray_local:RayDeployer",
    },
    "generator": {
        "openloop": "benchpipe.generators.openloop:OpenLoopGenerator",
        "wrk2": "benchpipe.generators.wrk2:Wrk2Generator",
        "closedloop": "benchpipe.generators.closedloop:ClosedLoopGenerator",
        "sequential": "benchpipe.generators.sequential:SequentialGenerator",
        "job": "benchpipe.generators.job:JobGenerator",
    },
    # Summary metric families: f(raw_dir, summary_cfg, params) -> a row's columns or several rows.
    "metric": {
        "latency": "benchpipe.summaries.latency:point_latency",
        "singleop": "benchpipe.summaries.singleop:point_singleop",
        "logsize": "benchpipe.summaries.logsize:point_logsize",
        "switching": "benchpipe.summaries.switching:point_switching",
        "loadgen": "benchpipe.summaries.loadgen:point_loadgen",
        "consistency": "benchpipe.summaries.consistency:point_consistency",
        "requests": "benchpipe.summaries.requests:point_requests",
        "convergence": "benchpipe.summaries.convergence:point_convergence",
        "snapshot_costs": "benchpipe.summaries.snapshot_costs:point_snapshot_costs",
        "job": "benchpipe.summaries.job:point_job",
    },
    # Figure kinds: f(summary_df, figure_cfg) -> an altair chart.
    "figure": {
        "lines": "benchpipe.plots.figures:lines",
        "bars": "benchpipe.plots.figures:bars",
        "timeline": "benchpipe.plots.timeline:timeline",
        "consistency_window": "benchpipe.plots.consistency:consistency_window",
        "ecdf": "benchpipe.plots.ecdf:ecdf",
        "grouped_bars": "benchpipe.plots.grouped:grouped_bars",
        "mean_lines": "benchpipe.plots.grouped:mean_lines",
    },
}


def names(kind: str) -> list[str]:
    return sorted(_PLUGINS[kind])


def load(kind: str, name: str) -> Any:
    """The class registered as `name` for `kind`; a clear error for an unknown name."""
    try:
        target = _PLUGINS[kind][name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; expected one of {', '.join(names(kind))}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
