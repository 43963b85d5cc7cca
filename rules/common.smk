# Configuration, experiments and the input functions of every rule.
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from benchpipe.clusters import teardown_all
from benchpipe.cost import machines_vcpus
from benchpipe.diskspace import shortage
from benchpipe.experiment import (
    check_figure_references,
    experiment_files,
    figure_experiments,
    load_experiment,
    suite_experiments,
)
from benchpipe.plan import (
    experiments_for_targets,
    invocation,
    plan_text,
    remove_stale_products,
    stale_experiments,
)
from benchpipe.pointspec import point_spec
from benchpipe.errors import ConfigError
from benchpipe.validation import validate as validate_config

try:
    # Defaults filled by snakemake.utils.validate; messages name the file and the key.
    validate_config(config, "config.schema.yaml", "config (config/config.yaml + profile)")
    # Every suite's experiments are loaded, so that any paper's figure is a target whatever
    # `suite` says; `suite` (and `experiments`, default: all of it) choose what rule all builds.
    SUITE_NAMES = suite_experiments(config["experiments_dir"], config["suite"])
    EXPERIMENTS = {
        name: load_experiment(path, config["scale"], config["repetitions"])
        for name, path in experiment_files(config["experiments_dir"]).items()
    }
    config["experiments"] = config.get("experiments") or SUITE_NAMES
    for name in config["experiments"]:
        if name not in SUITE_NAMES:
            raise ConfigError(
                f"config: experiments: expected names of files in "
                f"{Path(config['experiments_dir']) / config['suite']} ({', '.join(SUITE_NAMES)}), got {name!r}"
            )
    FIGURES = {}
    for _exp in EXPERIMENTS.values():
        for _f in _exp.data["figures"]:
            if _f["name"] in FIGURES:
                raise ConfigError(
                    f"{_exp.source}: figures: expected a figure name unique across suites, "
                    f"got {_f['name']!r} (also in {FIGURES[_f['name']].source})"
                )
            FIGURES[_f["name"]] = _exp
    check_figure_references(EXPERIMENTS)
except ConfigError as e:
    raise WorkflowError(f"Invalid configuration:\n{e}") from None

R = config["results_dir"]
F = config["figures_dir"]
REPS = config["repetitions"]
# What summaries and figures need: not `suite` / `experiments`, which only choose what rule all
# builds (switching suites must not redo another suite's summaries and figures).
CONFIG_JSON = json.dumps(
    {k: v for k, v in config.items() if k not in ("suite", "experiments")}, sort_keys=True
)
# What point jobs need of the configuration: a change elsewhere must not re-measure them.
CLUSTER_CONFIG_JSON = json.dumps(
    {k: config[k] for k in ("provider", "results_dir", "run_id", "experiments_dir")},
    sort_keys=True,
)


def get_config_json(wildcards):
    # A function, so that braces in the configuration are not taken for wildcards.
    return CONFIG_JSON


def get_cluster_config_json(wildcards):
    return CLUSTER_CONFIG_JSON


POINTS = {
    (p.experiment, p.baseline, p.name): p
    for exp in EXPERIMENTS.values()
    for p in exp.all_points(REPS)
}


DRYRUN, TARGETS = invocation()
# A summary that misses a point (its folder deleted) is stale: a real run deletes it and its
# figures so that Snakemake rebuilds the point, the summary and the figures; a dry run must not
# touch files, so there a params change shows the same plan.
STALE = [e.name for e in stale_experiments(list(EXPERIMENTS.values()), Path(R), REPS)]
if not DRYRUN:
    for _name in STALE:
        for _p in remove_stale_products(EXPERIMENTS[_name], Path(R), Path(F)):
            print(f"benchpipe: {_p} is stale (a point of {_name} has no result); rebuilding it", file=sys.stderr)
if DRYRUN:
    # The plan, before anything is spent (a dry run runs no rule and no hook).
    print(
        plan_text(
            experiments_for_targets(
                TARGETS,
                {
                    name: [
                        EXPERIMENTS[e]
                        for e in figure_experiments(
                            next(f for f in exp.data["figures"] if f["name"] == name), exp.name
                        )
                    ]
                    for name, exp in FIGURES.items()
                },
                [EXPERIMENTS[e] for e in config["experiments"]],
            ),
            Path(R),
            REPS,
            config["target"],
            config["provider"],
        ),
        file=sys.stderr,
    )


wildcard_constraints:
    exp="[a-z0-9][a-z0-9_-]*",
    baseline="[a-z0-9][a-z0-9_-]*",
    point="[A-Za-z0-9_.,-]+",
    figure="|".join(FIGURES) or "no-figures",


def point_dir(exp, baseline, point):
    return f"{R}/{exp}/{baseline}/{point}"


def get_final_figures():
    return [
        f"{F}/{f['name']}.{ext}"
        for name in config["experiments"]
        for f in EXPERIMENTS[name].data["figures"]
        for ext in ("png", "html")
    ]


def _point(wildcards):
    key = (wildcards.exp, wildcards.baseline, wildcards.point)
    if key not in POINTS:
        raise WorkflowError(f"{point_dir(*key)} is not a point of the configured sweeps")
    return POINTS[key]


def get_point_spec(wildcards):
    point = _point(wildcards)
    return json.dumps(point_spec(config, EXPERIMENTS[point.experiment], point), sort_keys=True)


def get_sibling_manifests(wildcards):
    """The manifests of every point on the same cluster: the last one to finish tears it down."""
    exp = EXPERIMENTS[wildcards.exp]
    return [
        f"{point_dir(p.experiment, p.baseline, p.name)}/manifest.json"
        for p in exp.points(wildcards.baseline, REPS)
    ]


def get_experiment_manifests(wildcards):
    return [
        f"{point_dir(p.experiment, p.baseline, p.name)}/manifest.json"
        for p in EXPERIMENTS[wildcards.exp].all_points(REPS)
    ]


def get_stale_mark(wildcards):
    return "rebuild: points missing" if DRYRUN and wildcards.exp in STALE else ""


def get_figure_summary(wildcards):
    """The summaries a figure draws: its experiment's first, then its panels' and reference lines'."""
    exp = FIGURES[wildcards.figure]
    fig = next(f for f in exp.data["figures"] if f["name"] == wildcards.figure)
    return [f"{R}/{name}/summary.parquet" for name in figure_experiments(fig, exp.name)]


def get_figure_experiment(wildcards):
    return FIGURES[wildcards.figure].name


def get_point_vcpus(wildcards):
    """The vCPUs of the point's cluster: with `resources: {vcpus: N}` in a profile, measuring jobs
    run concurrently only while their clusters fit in N (the account's quota, say)."""
    if config["target"] != "aws":
        return 0
    point = _point(wildcards)
    exp = EXPERIMENTS[point.experiment]
    return machines_vcpus(exp.machines(exp.baseline(point.baseline)["cluster"]))


def get_measure_threads():
    # Measuring takes the whole machine when it is the machine under test (local profile).
    return workflow.cores if config["measure"]["exclusive"] else 1


def preflight_or_stop():
    maintenance = {"setup", "preflight", "teardown", "janitor"}
    if TARGETS and set(TARGETS) <= maintenance:
        return
    short = shortage(R, config["results_min_free_mb"])
    if short:
        raise WorkflowError(f"preflight: nothing was started: {short}")
    if config["target"] == "local":
        return
    from benchpipe.clusters import provider_for

    problems = provider_for(config).preflight()
    if problems:
        raise WorkflowError(
            "preflight: nothing was launched; fix these first:\n  " + "\n  ".join(problems)
        )


def teardown_everything():
    teardown_all(config)


def report_unfinished():
    missing = [
        point_dir(*key)
        for key in POINTS
        if key[0] in config["experiments"]
        and not Path(point_dir(*key), "manifest.json").exists()
    ]
    # A full results disk also silences the jobs' logs: say it here, where it reaches the user.
    short = shortage(R, config["results_min_free_mb"])
    if short:
        print(f"benchpipe: {short}")
    if missing:
        print(
            f"benchpipe: {len(missing)} point(s) have no result (their logs are under {R}/logs/):",
            *missing,
            "Run the same command again to measure only these.",
            sep="\n  ",
        )
