"""`python -m benchpipe <command>`: the thin entry points the rules call, and the maintenance commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from benchpipe.errors import ConfigError, RawDataError, StackError

log = logging.getLogger("benchpipe")
REPO = Path(__file__).resolve().parent.parent


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return json.loads(args.config_json)


def _final(args: argparse.Namespace) -> bool:
    """Is this the job's last attempt (Snakemake's `attempt` against the rule's `retries`)?"""
    return args.attempt > args.retries


def cmd_provision(args: argparse.Namespace) -> None:
    from benchpipe.stages import provision

    provision(_config(args), json.loads(args.spec_json), Path(args.out))


def cmd_deploy(args: argparse.Namespace) -> None:
    from benchpipe.stages import deploy

    deploy(_config(args), Path(args.provision), Path(args.out), Path(args.log_dir), _final(args))


def cmd_warmup(args: argparse.Namespace) -> None:
    from benchpipe.stages import warmup

    warmup(_config(args), Path(args.deploy), Path(args.out), Path(args.log_dir), _final(args))


def cmd_run(args: argparse.Namespace) -> None:
    from benchpipe.stages import run

    run(_config(args), Path(args.deploy), Path(args.warmup), Path(args.out), Path(args.log_dir), _final(args))


def cmd_collect(args: argparse.Namespace) -> None:
    from benchpipe.stages import collect

    collect(
        _config(args),
        Path(args.deploy),
        Path(args.measured),
        Path(args.raw),
        Path(args.manifest),
        Path(args.log_dir),
        args.siblings,
    )


def cmd_summarize(args: argparse.Namespace) -> None:
    import polars as pl

    from benchpipe.summarize import summarize, write_summary

    config = _config(args)
    exp = load_configured_experiment(config, args.experiment)
    points = None
    if args.figure:
        # Only the points that figure draws of this experiment (the figure's own summary of it).
        from benchpipe.experiment import drawn_points, figure_experiments

        if not args.owner:
            raise ConfigError("summarize --figure: expected --owner, the experiment whose file holds the figure")
        owner = load_configured_experiment(config, args.owner)
        fig = next((f for f in owner.data["figures"] if f["name"] == args.figure), None)
        if fig is None:
            raise ConfigError(f"{owner.source}: figures: no figure named {args.figure!r}")
        exps = {n: load_configured_experiment(config, n) for n in figure_experiments(fig, owner.name)}
        points = drawn_points(fig, owner.name, exps, config["repetitions"]).get(exp.name, [])
    from benchpipe.stats.stability import Thresholds

    stability = config.get("stability") or {}
    df = summarize(
        exp,
        Path(config["results_dir"]),
        config["repetitions"],
        points,
        Thresholds.from_config(stability),
        float(stability.get("confidence", 0.95)),
    )
    write_summary(df, Path(args.parquet), Path(args.csv) if args.csv else None)
    for row in df.filter(pl.col("flags") != "").iter_rows(named=True) if "flags" in df.columns else []:
        log.warning("%s/%s flagged: %s", row["baseline"], row["point"], row["flag_detail"])
    behind = df.filter(df["fell_behind"]) if "fell_behind" in df.columns else df.clear()
    for row in behind.iter_rows(named=True):
        log.warning("%s/%s: generator fell behind (%s)", row["baseline"], row["point"], row["fell_behind_reason"])
    log.info("summary of %d points written to %s", df.height, args.parquet)


def cmd_plot(args: argparse.Namespace) -> None:
    import polars as pl

    from benchpipe.plots.figures import render

    config = _config(args)
    exp = load_configured_experiment(config, args.experiment)
    fig = next((f for f in exp.data["figures"] if f["name"] == args.figure), None)
    if fig is None:
        raise ConfigError(f"{exp.source}: figures: no figure named {args.figure!r}")
    # A figure may draw several experiments' summaries (panels, reference lines): one table, and
    # every panel names its experiment (its own by default).
    df = pl.concat([pl.read_parquet(p) for p in args.summary], how="diagonal_relaxed")
    if len(args.summary) > 1:
        fig = {**fig, "panels": [{"experiment": exp.name, **p} for p in fig["panels"]]}
    try:
        render(df, fig, Path(args.png), Path(args.html))
    except ValueError as e:
        raise ConfigError(f"{exp.source}: {e}") from None


def cmd_teardown(args: argparse.Namespace) -> None:
    from benchpipe.clusters import teardown_all

    done = teardown_all(_config(args))
    print(f"tore down {len(done)} cluster(s)" + "".join(f"\n  {d}" for d in done))


def cmd_preflight(args: argparse.Namespace) -> None:
    from benchpipe.clusters import provider_for

    config = _config(args)
    problems = provider_for(config).preflight()
    if problems:
        name = config["provider"]["name"]
        raise ConfigError(
            f"preflight for provider {name}: {len(problems)} problem(s), nothing was launched:\n  "
            + "\n  ".join(problems)
        )
    print(f"preflight: provider {config['provider']['name']} is ready")


def cmd_setup(args: argparse.Namespace) -> None:
    config = _config(args)
    if config["provider"]["name"] != "aws":
        print(f"setup: nothing to do for provider {config['provider']['name']}")
        return
    from benchpipe.cloud.setup import setup

    done = setup({**config["provider"]["settings"], "results_dir": config["results_dir"]})
    for k, v in done.items():
        print(f"{k}: {v}")


def cmd_janitor(args: argparse.Namespace) -> None:
    from benchpipe.model import Cluster

    config = _config(args)
    if config["provider"]["name"] != "aws":
        from benchpipe.deployers.process import reap_stale

        print(f"janitor: reaped {len(reap_stale())} stale local stack process(es)")
        return
    from benchpipe.providers.aws import janitor

    live = {Cluster.load(p).run_id for p in Path(config["results_dir"]).glob(".clusters/*/*.json")}
    removed = janitor({**config["provider"]["settings"], "results_dir": config["results_dir"]}, live)
    print(f"janitor: removed {len(removed)} resource(s)" + "".join(f"\n  {r}" for r in removed))


def load_configured_experiment(config: dict[str, Any], name: str) -> Any:
    from benchpipe.experiment import experiment_files, load_experiment

    files = experiment_files(config["experiments_dir"])
    if name not in files:
        raise ConfigError(f"{config['experiments_dir']}: expected an experiment named {name!r} in some suite")
    return load_experiment(files[name], config["scale"], config["repetitions"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchpipe")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Any, *opts: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        if config:
            p.add_argument("--config-json", required=True)
        for o in opts:
            p.add_argument(f"--{o}", required=True)
        return p

    add("provision", cmd_provision, "spec-json", "out")
    for stage in (
        add("deploy", cmd_deploy, "provision", "out", "log-dir"),
        add("warmup", cmd_warmup, "deploy", "out", "log-dir"),
        add("run", cmd_run, "deploy", "warmup", "out", "log-dir"),
    ):
        stage.add_argument("--attempt", type=int, default=1)
        stage.add_argument("--retries", type=int, default=0)
    add("collect", cmd_collect, "deploy", "measured", "raw", "manifest", "log-dir").add_argument(
        "--siblings", nargs="*", default=[]
    )
    summ = add("summarize", cmd_summarize, "experiment", "parquet")
    summ.add_argument("--csv", default=None)
    summ.add_argument("--figure", default=None, help="summarize only the points this figure draws")
    summ.add_argument("--owner", default=None, help="the experiment whose file holds --figure")
    add("plot", cmd_plot, "experiment", "figure", "png", "html").add_argument("--summary", nargs="+", required=True)
    add("teardown", cmd_teardown)
    add("preflight", cmd_preflight)
    add("setup", cmd_setup)
    add("janitor", cmd_janitor)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    try:
        args.fn(args)
    except (ConfigError, RawDataError, StackError) as e:
        # The message says what is wrong and where; a traceback would only hide it.
        log.error("%s: %s", e.__class__.__name__, e)
        return 2
    except OSError as e:
        from benchpipe.diskspace import FULL

        if e.errno not in FULL:
            raise
        # This log may be on the full disk too; the run's onerror says it again on the terminal.
        log.error("the disk is full writing %s (%s); free space and run the same command again", e.filename, e)
        return 2
    return 0
