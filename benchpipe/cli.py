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


def cmd_claims(args: argparse.Namespace) -> None:
    """A figure's claims judged on the summaries it draws: results/<owner>/claims-<figure>.csv."""
    import polars as pl

    from benchpipe.claims import judge_figure

    config = _config(args)
    exp = load_configured_experiment(config, args.experiment)
    if not any(f["name"] == args.figure for f in exp.data["figures"]):
        raise ConfigError(f"{exp.source}: figures: no figure named {args.figure!r}")
    df = pl.concat([pl.read_parquet(p) for p in args.summary], how="diagonal_relaxed")
    table = judge_figure(exp, args.figure, df, config["target"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(args.out)
    for row in table.iter_rows(named=True):
        log.info("%s: %s (%s): %s", row["claim"], row["verdict"], row["basis"], row["detail"])


def cmd_verdict(args: argparse.Namespace) -> None:
    """The end-of-run verdict again (a run with nothing to do prints none): per figure judged in
    the results folder, or only the figures named."""
    from benchpipe.verdict import figure_verdict

    results = Path(args.results)
    found = sorted(results.glob("*/claims-*.csv"))
    if not found:
        raise ConfigError(f"verdict: {results}: no claims-<figure>.csv yet (build a figure first)")
    for csv in found:
        figure = csv.stem.removeprefix("claims-")
        if args.figures and figure not in args.figures:
            continue
        own = csv.parent / "summary.parquet"
        summaries = [own] if own.exists() else []
        summaries += sorted(results.glob(f"*/drawn-{figure}.parquet"))
        print(figure_verdict(figure, summaries, csv))


def _figure_metrics(experiments: dict[str, Any]) -> dict[str, list[str]]:
    """Per experiment, the columns its figures draw (y, error bars, a measured x): what compare
    reports by default."""
    from benchpipe.experiment import figure_experiments

    out: dict[str, list[str]] = {}
    for exp in experiments.values():
        for fig in exp.data["figures"]:
            for name in figure_experiments(fig, exp.name):
                if name not in experiments:
                    continue
                panels = [p for p in fig.get("panels", []) if p.get("experiment", exp.name) == name] or fig.get(
                    "panels", []
                )
                fields = [f for p in panels for f in (p.get("y"), p.get("error")) if f]
                x = (fig.get("x") or {}).get("field")
                if x and x not in experiments[name].data["sweep"] and x != "label":
                    fields.append(x)
                out.setdefault(name, [])
                out[name] += [f for f in fields if f not in out[name]]
    return out


def cmd_compare(args: argparse.Namespace) -> None:
    """Two results folders compared (benchstat's model); the table on stdout, files under --out."""
    import polars as pl

    from benchpipe.experiment import experiment_files, figure_experiments, load_experiment
    from benchpipe.stats import compare

    old, new = Path(args.old), Path(args.new)
    for d in (old, new):
        if not d.is_dir():
            raise ConfigError(f"compare: {d}: expected a results folder (results/, results-ssh/, results-aws/)")
    experiments = {n: load_experiment(p) for n, p in experiment_files(args.experiments_dir).items()}
    params = {n: list(e.data["sweep"]) for n, e in experiments.items()}
    metrics = None if args.all_metrics else _figure_metrics(experiments)
    rows, notes = compare.compare_dirs(old, new, params, metrics, args.alpha)
    text = compare.format_table(rows, str(old), str(new), notes)
    print(text)
    if not args.out:
        return
    out = Path(args.out)
    compare.write(rows, out, text)
    from benchpipe.plots.figures import render

    a, b = compare.summaries(old), compare.summaries(new)
    for exp in experiments.values():
        for fig in exp.data["figures"]:
            names = figure_experiments(fig, exp.name)
            if not all(n in a and n in b for n in names):
                continue
            df = pl.concat(
                [compare.overlay(pl.read_parquet(a[n]), pl.read_parquet(b[n]), old.name, new.name) for n in names],
                how="diagonal_relaxed",
            )
            spec = compare.relabel(fig, old.name, new.name)
            if len(names) > 1:
                spec = {**spec, "panels": [{"experiment": exp.name, **p} for p in spec.get("panels", [])]}
            try:
                render(df, spec, out / f"{fig['name']}.png", out / f"{fig['name']}.html")
            except (ValueError, KeyError) as e:
                log.warning("compare: no overlay of figure %s: %s", fig["name"], e)


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
    claims = add("claims", cmd_claims, "experiment", "figure", "out")
    claims.add_argument("--summary", nargs="+", required=True)
    verdict = sub.add_parser("verdict", help="print the verdict per figure of a results folder again")
    verdict.set_defaults(fn=cmd_verdict)
    verdict.add_argument("figures", nargs="*", help="only these figures")
    verdict.add_argument("--results", default="results")
    comp = sub.add_parser("compare", help="compare two results folders (old, new), as benchstat does")
    comp.set_defaults(fn=cmd_compare)
    comp.add_argument("old")
    comp.add_argument("new")
    comp.add_argument("--out", default=None, help="folder for compare.csv, compare.txt and overlay figures")
    comp.add_argument("--experiments-dir", default=str(REPO / "config" / "experiments"))
    comp.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    comp.add_argument("--all-metrics", action="store_true", help="every numeric column, not only what figures draw")
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
