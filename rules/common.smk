# Configuration, experiments and the input functions of every rule.
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from benchpipe.clusters import cluster_file, teardown_all, teardown_cluster
from benchpipe.cost import machines_vcpus
from benchpipe.diskspace import shortage
from benchpipe.failures import why_failed
from benchpipe.experiment import (
    check_figure_references,
    chosen_experiments,
    drawn_points,
    experiment_files,
    figure_experiments,
    load_experiment,
    suite_experiments,
)
from benchpipe.lease import announce_scheduler, watch_for_stop
from benchpipe.plan import (
    STACK_STAGES,
    experiments_for_targets,
    invocation,
    parked_points,
    plan_text,
    remove_stale_products,
    stale_drawn,
    stale_experiments,
    tables_only,
)
from benchpipe.pointspec import point_spec
from benchpipe.stats.point import announce_checks
from benchpipe.targets import refuse_unsupported, unsupported
from benchpipe.claimspec import claims_of_figure
from benchpipe.report_text import figure_caption, measured_facts, summary_caption
from benchpipe.verdict import figure_verdict, report_section
from benchpipe.resume import pending, remove, void_stage_files
from benchpipe.errors import ConfigError
from benchpipe.validation import validate as validate_config

try:
    # Defaults filled by snakemake.utils.validate; messages name the file and the key.
    validate_config(config, "config.schema.yaml", "config (config/config.yaml + profile)")
    # Every suite's experiments are loaded, so that any paper's figure is a target whatever
    # `suite` says; `suite` (and `experiments`, default: all of it) choose what rule all builds.
    SUITE_NAMES = suite_experiments(config["experiments_dir"], config["suite"])
    EXPERIMENTS = {
        name: load_experiment(path, config["scale"], config["repetitions"], config["target"])
        for name, path in experiment_files(config["experiments_dir"]).items()
    }
    # Rule all leaves out what this target cannot run (named once); asked for by name, it is refused.
    _CHOSEN = chosen_experiments(config.get("experiments"), config["suite"])
    _ASKED = bool(_CHOSEN)
    config["experiments"] = _CHOSEN or SUITE_NAMES
    if not _ASKED:
        _SKIPPED = [n for n in config["experiments"] if unsupported(config, EXPERIMENTS[n])]
        for _name in _SKIPPED:
            print(f"benchpipe: {unsupported(config, EXPERIMENTS[_name])} (left out of rule all)", file=sys.stderr)
        config["experiments"] = [n for n in config["experiments"] if n not in _SKIPPED]
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
    TABLES_ONLY = tables_only(EXPERIMENTS)
    DRYRUN, TARGETS, UNTIL = invocation()
    # The experiments this run's targets reach (a figure, a summary table, or rule all's).
    REACHED = experiments_for_targets(
        TARGETS,
        {
            name: [
                EXPERIMENTS[e]
                for e in figure_experiments(next(f for f in exp.data["figures"] if f["name"] == name), exp.name)
            ]
            for name, exp in FIGURES.items()
        },
        [EXPERIMENTS[e] for e in config["experiments"]],
        EXPERIMENTS,
    )
    refuse_unsupported(config, REACHED)
    # Per figure, per experiment it reads: the points it draws.
    DRAWN = {
        name: drawn_points(
            next(f for f in exp.data["figures"] if f["name"] == name), exp.name, EXPERIMENTS, config["repetitions"]
        )
        for name, exp in FIGURES.items()
    }
except ConfigError as e:
    raise WorkflowError(f"Invalid configuration:\n{e}") from None

# A deploy waiting for its cluster stops waiting once this Snakemake is gone.
announce_scheduler()
# The run stage's re-measuring of unstable points (measure.rerun_unstable, stability limits).
announce_checks(config)

R = config["results_dir"]
F = config["figures_dir"]
REPS = config["repetitions"]
# What summaries and figures need: not `suite` / `experiments`, which only choose what rule all
# builds (switching suites must not redo another suite's summaries and figures).
CONFIG_JSON = json.dumps(
    {k: v for k, v in config.items() if k not in ("suite", "experiments", "compare_with")}, sort_keys=True
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


def point_dir(exp, baseline, point):
    return f"{R}/{exp}/{baseline}/{point}"


POINTS = {
    (p.experiment, p.baseline, p.name): p
    for exp in EXPERIMENTS.values()
    for p in exp.all_points(REPS)
}


if "--report" in sys.argv:
    # For the captions only (after CONFIG_JSON: it changes no job's params): what measured each
    # experiment, from its manifests.
    config["report_facts"] = {n: measured_facts(Path(R), e, REPS) for n, e in EXPERIMENTS.items()}
# A summary that misses a point (its folder deleted) is stale: a real run deletes it and its
# figures so that Snakemake rebuilds the point, the summary and the figures; a dry run must not
# touch files, so there a params change shows the same plan.
STALE = [e.name for e in stale_experiments(list(EXPERIMENTS.values()), Path(R), REPS)]
if not DRYRUN:
    for _name in STALE:
        for _p in remove_stale_products(EXPERIMENTS[_name], Path(R), Path(F)):
            print(f"benchpipe: {_p} is stale (a point of {_name} has no result); rebuilding it", file=sys.stderr)
STALE_DRAWN = stale_drawn(DRAWN, Path(R))
if not DRYRUN:
    for _fig, _name in STALE_DRAWN:
        for _p in [Path(R, _name, f"drawn-{_fig}.parquet"), Path(F, f"{_fig}.png"), Path(F, f"{_fig}.html")]:
            if _p.exists():
                _p.unlink()
                print(f"benchpipe: {_p} is stale (a point of {_name} has no result); rebuilding it", file=sys.stderr)
# Stage files of unfinished points whose stack or cluster is gone (a teardown, a reboot) are void:
# a real run removes them so that those stages run again; a dry run marks them (get_restack_mark).
VOID = {}
for _key in POINTS:
    _void = void_stage_files(Path(point_dir(*_key)), cluster_file(Path(R), _key[0], _key[1]))
    if _void:
        VOID[_key] = _void
if not DRYRUN:
    for _key, _void in VOID.items():
        print(f"benchpipe: {point_dir(*_key)}: its stack or cluster is gone; redoing from {_void[0].name}", file=sys.stderr)
        remove(_void)


def targeted_points(targets):
    """The points a run's targets measure: of figures, those they draw; of rule all, every point of
    the chosen experiments; None when the targets are something else."""
    if not targets or list(targets) == ["all"]:
        return {k for k in POINTS if k[0] in config["experiments"]}
    stems = [Path(str(t)).stem for t in targets]
    if any(s not in FIGURES for s in stems):
        return None
    return {(p.experiment, p.baseline, p.name) for s in stems for pts in DRAWN[s].values() for p in pts}


ONLY = targeted_points(TARGETS)
# A run stopping with stacks up (--until deploy, warmup or run) takes one point per cluster that
# far (a cluster holds one stack at a time); the others' stages wait for the next run. Only for
# such runs, the summaries (which they never build) ask for just those points.
PARKED = None
if set(UNTIL) & set(STACK_STAGES):
    from benchpipe import registry

    _shared = registry.load("provider", config["provider"]["name"]).shared_machines
    PARKED = set(
        parked_points(
            [
                k
                for k in POINTS
                if not Path(point_dir(*k), "manifest.json").exists()
                and (ONLY is None or k in ONLY)  # a point the targets measure (not another suite's)
            ],
            group=lambda k: "machines" if _shared else f"{k[0]}/{k[1]}",
            holds=lambda k: Path(point_dir(*k), "deploy.json").exists() and k not in VOID,
        )
    )


if DRYRUN:
    # The plan, before anything is spent (a dry run runs no rule and no hook).
    print(plan_text(REACHED, Path(R), REPS, config["target"], config["provider"], ONLY), file=sys.stderr)


wildcard_constraints:
    exp="[a-z0-9][a-z0-9_-]*",
    baseline="[a-z0-9][a-z0-9_-]*",
    point="[A-Za-z0-9_.,-]+",
    figure="|".join(FIGURES) or "no-figures",


def get_final_figures():
    # An experiment that only makes a table (no figure draws it) ends in its summary.
    return [
        f"{F}/{f['name']}.{ext}"
        for name in config["experiments"]
        for f in EXPERIMENTS[name].data["figures"]
        for ext in ("png", "html")
    ] + [f"{R}/{name}/summary.csv" for name in config["experiments"] if name in TABLES_ONLY]


def get_final_summaries():
    # Every experiment's table, also of experiments whose figures draw only some of their points.
    return [f"{R}/{name}/summary.csv" for name in config["experiments"]]


def _point(wildcards):
    key = (wildcards.exp, wildcards.baseline, wildcards.point)
    if key not in POINTS:
        raise WorkflowError(f"{point_dir(*key)} is not a point of the configured sweeps")
    return POINTS[key]


PLAN_WARNINGS = set()


def get_point_spec(wildcards):
    point = _point(wildcards)
    try:
        return json.dumps(point_spec(config, EXPERIMENTS[point.experiment], point), sort_keys=True)
    except ConfigError as e:
        # A plan still shows every point; a point the run would refuse for a missing input file
        # (config data_files) is said once, and a real run stops here, before any machine starts.
        if not (DRYRUN and "data_files." in str(e)):
            raise
        if str(e) not in PLAN_WARNINGS:
            PLAN_WARNINGS.add(str(e))
            print(f"plan: a run would stop here: {e}", file=sys.stderr)
        return "{}"


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
        if PARKED is None
        or (p.experiment, p.baseline, p.name) in PARKED
        or Path(point_dir(p.experiment, p.baseline, p.name), "manifest.json").exists()
    ]


def get_priority(wildcards):
    # Snakemake starts ready jobs of higher priority first: earlier repetitions first.
    return 100 - _point(wildcards).repetition


def get_attempt(wildcards, attempt):
    # Snakemake's attempt number, for the job to know whether a retry follows its failure.
    return attempt


def get_restack_mark(wildcards):
    key = (wildcards.exp, wildcards.baseline, wildcards.point)
    return "redeploy: stack gone" if DRYRUN and key in VOID else ""


def get_stale_mark(wildcards):
    return "rebuild: points missing" if DRYRUN and wildcards.exp in STALE else ""


def get_drawn_stale_mark(wildcards):
    return "rebuild: points missing" if DRYRUN and (wildcards.figure, wildcards.exp) in STALE_DRAWN else ""


def figure_summaries(figure):
    """The summaries a figure draws: its experiment's first, then its panels' and reference lines'.
    Of an experiment it draws only some points of (some baselines, one app), the figure reads its
    own summary of those points, so it needs only what it draws measured."""
    out = []
    for name, points in DRAWN[figure].items():
        whole = len(points) == len(EXPERIMENTS[name].all_points(REPS))
        out.append(f"{R}/{name}/summary.parquet" if whole else f"{R}/{name}/drawn-{figure}.parquet")
    return out


def get_figure_summary(wildcards):
    return figure_summaries(wildcards.figure)


def figure_claims(figure):
    """A figure's claims file, next to its experiment's summary; judged on what the figure draws."""
    return f"{R}/{FIGURES[figure].name}/claims-{figure}.csv"


def get_figure_claims(wildcards):
    return figure_claims(wildcards.figure)


def get_claims_summaries(wildcards):
    if FIGURES[wildcards.figure].name != wildcards.exp:
        raise WorkflowError(
            f"{R}/{wildcards.exp}/claims-{wildcards.figure}.csv: figure {wildcards.figure} is defined in "
            f"experiment {FIGURES[wildcards.figure].name}; its claims are {figure_claims(wildcards.figure)}"
        )
    return figure_summaries(wildcards.figure)


def get_claims_json(wildcards):
    # The claims as written in the experiment file: editing them judges the figure again.
    return json.dumps(claims_of_figure(FIGURES[wildcards.figure], wildcards.figure), sort_keys=True)


def compare_other():
    other = config.get("compare_with")
    if not other:
        raise WorkflowError("compare: expected the other run's results folder: --config compare_with=<folder>")
    if not Path(other).is_dir():
        raise WorkflowError(f"config: compare_with: expected a results folder, got {other!r} (no such folder)")
    return other


def get_results_dir(wildcards):
    # The new side of a comparison: this run's results folder.
    return R


def get_compare_other(wildcards):
    return compare_other()


def get_compare_summaries(wildcards):
    """This run's summaries of the experiments the other folder has one of too (those that exist:
    comparing measures nothing)."""
    other = Path(compare_other())
    return [
        f"{R}/{n}/summary.parquet"
        for n in EXPERIMENTS
        if Path(R, n, "summary.parquet").exists() and Path(other, n, "summary.parquet").exists()
    ]


def get_compare_stamp(wildcards):
    # The other run's summaries as of now: a new measurement there compares again.
    other = Path(compare_other())
    return {p.parent.name: p.stat().st_mtime_ns for p in sorted(other.glob("*/summary.parquet"))}


def verdict_figures():
    """The figures this run's targets build: named ones, or rule all's."""
    if not TARGETS or list(TARGETS) == ["all"]:
        return [f["name"] for n in config["experiments"] for f in EXPERIMENTS[n].data["figures"]]
    return list(dict.fromkeys(Path(str(t)).stem for t in TARGETS if Path(str(t)).stem in FIGURES))


def print_verdicts():
    """After every successful run: per figure built, the unstable points and the claims' verdicts."""
    texts = [
        figure_verdict(f, [Path(p) for p in figure_summaries(f)], Path(figure_claims(f)))
        for f in verdict_figures()
        if Path(figure_claims(f)).exists()
    ]
    if texts:
        print("benchpipe verdict (claims judged with 95% intervals; details in the claims-<figure>.csv files):")
        print("\n".join(texts))


if "--report" in sys.argv:
    # Per figure: its flagged points, the intervals, claims and verdicts (the caption's last part).
    config["report_verdicts"] = {
        f: report_section(
            f,
            [Path(p) for p in figure_summaries(f)],
            Path(figure_claims(f)),
            [p["y"] for p in next(g for g in e.data["figures"] if g["name"] == f).get("panels", [])],
        )
        for f, e in FIGURES.items()
    }


def get_drawn_manifests(wildcards):
    """The manifests of the points of experiment `exp` that figure `figure` draws."""
    drawn = DRAWN[wildcards.figure]
    if wildcards.exp not in drawn:
        raise WorkflowError(f"figure {wildcards.figure} draws nothing of experiment {wildcards.exp}")
    return [
        f"{point_dir(p.experiment, p.baseline, p.name)}/manifest.json"
        for p in drawn[wildcards.exp]
        if PARKED is None
        or (p.experiment, p.baseline, p.name) in PARKED
        or Path(point_dir(p.experiment, p.baseline, p.name), "manifest.json").exists()
    ]


def get_figure_owner(wildcards):
    return FIGURES[wildcards.figure].name


def get_figure_caption(wildcards):
    exp = FIGURES[wildcards.figure]
    return figure_caption(exp, next(f for f in exp.data["figures"] if f["name"] == wildcards.figure))


def get_summary_caption(wildcards):
    return summary_caption(EXPERIMENTS[wildcards.exp])


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
    watch_for_stop()
    maintenance = {"setup", "preflight", "teardown", "janitor"}
    if TARGETS and set(TARGETS) <= maintenance:
        return
    short = shortage(R, config["results_min_free_mb"])
    if short:
        raise WorkflowError(f"preflight: nothing was started: {short}")
    if config["target"] == "local":
        return
    from benchpipe.clusters import provider_for
    from benchpipe.targets import own_providers

    # Experiments with their own provider on this target (ExoFlow's Ray clusters) are checked by
    # it; the profile's provider is checked when some reached experiment uses it.
    own = own_providers(config, REACHED)
    problems = [] if own and all(own.values()) else provider_for(config).preflight()
    for prov in {json.dumps(p, sort_keys=True): p for p in own.values() if p}.values():
        problems += provider_for(config, prov).preflight()
    if problems:
        raise WorkflowError(
            "preflight: nothing was launched; fix these first:\n  " + "\n  ".join(problems)
        )


def teardown_everything():
    teardown_all(config)


def teardown_finished():
    """After a successful run: clusters go unless a point on them stopped between stages (--until);
    those stay up, stack and all, for the next run to continue."""
    kept = []
    for path in sorted(Path(R, ".clusters").glob("*/*.json")):
        exp, baseline = path.parent.name, path.stem
        points = [Path(point_dir(*k)) for k in POINTS if k[0] == exp and k[1] == baseline]
        if any(pending(p) for p in points):
            kept.append(f"{exp}/{baseline}")
        else:
            teardown_cluster(config, path)
    if kept:
        print(
            f"benchpipe: {len(kept)} cluster(s) left up for points stopped between stages: {', '.join(kept)}."
            " The same command without --until continues them; `snakemake teardown` takes them down.",
            file=sys.stderr,
        )


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
        lines = []
        for d in missing:
            why = why_failed(Path(R, "logs", Path(d).relative_to(R)))
            lines.append(f"{d}" + (f"\n      {why}" if why else ""))
        print(
            f"benchpipe: {len(missing)} point(s) have no result (their logs are under {R}/logs/):",
            *lines,
            "Run the same command again to measure only these.",
            sep="\n  ",
        )
