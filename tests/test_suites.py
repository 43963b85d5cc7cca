"""Several papers side by side: every suite's figure is a target, `suite` chooses what rule all builds."""

from __future__ import annotations

import shutil

import pytest
import yaml

from benchpipe.errors import ConfigError
from benchpipe.experiment import chosen_experiments, experiment_files, suite_experiments
from tests.test_pipeline_e2e import REPO, job_counts, make_workdir, snakemake


def _second_suite(workdir, name="other_hotel", figure="other_fig"):
    """A second suite whose one experiment is the Halfmoon hotel under another name."""
    halfmoon = workdir / "config" / "experiments" / "halfmoon"
    other = workdir / "config" / "experiments" / "other"
    other.mkdir()
    shutil.copy(halfmoon / "_halfmoon.yaml", other)
    exp = yaml.safe_load((halfmoon / "hotel.yaml").read_text())
    exp["name"] = name
    exp["figures"][0]["name"] = figure
    (other / f"{name}.yaml").write_text(yaml.safe_dump(exp))
    return other


def test_names_are_unique_across_suites(tmp_path):
    root = tmp_path / "experiments"
    for suite in ("a", "b"):
        (root / suite).mkdir(parents=True)
        (root / suite / "x.yaml").write_text("name: x\n")
    (root / "a" / "_shared.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"b/x.yaml: name: expected an experiment name unique across suites"):
        experiment_files(root)
    (root / "b" / "x.yaml").rename(root / "b" / "y.yaml")
    assert sorted(experiment_files(root)) == ["x", "y"]
    assert suite_experiments(root, "b") == ["y"]
    with pytest.raises(ConfigError, match=r"config: suite: expected one of the folders of .* \(a, b\), got 'c'"):
        suite_experiments(root, "c")


@pytest.mark.slow
def test_any_suites_figure_is_a_target_and_suite_chooses_rule_all(tmp_path):
    wd = make_workdir(tmp_path, baselines=("unsafe",), rates=(20,))
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg.pop("experiments")
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    _second_suite(wd)
    # The other suite's figure with the default suite (halfmoon): its own points only.
    counts = job_counts(snakemake(wd, "-n", "figures/other_fig.png").stdout)
    assert counts.get("plot") == 1 and counts.get("summarize") == 1
    assert counts.get("collect") == 1
    # rule all follows `suite`: halfmoon's figure by default, the other suite's with --config.
    default = snakemake(wd, "-n").stdout
    assert "figures/hotel.png" in default and "other_fig" not in default
    other = snakemake(wd, "-n", "--config", "suite=other").stdout
    assert "figures/other_fig.png" in other and "figures/hotel.png" not in other
    bad = snakemake(wd, "-n", "--config", "suite=nope", check=False)
    assert bad.returncode != 0
    assert "config: suite: expected one of the folders" in bad.stdout + bad.stderr


def test_repository_suites_load():
    files = experiment_files(REPO / "config" / "experiments")
    assert set(suite_experiments(REPO / "config" / "experiments", "halfmoon")) <= set(files)


@pytest.mark.parametrize(
    "profile_file", ["profiles/ssh/hosts.yaml", "profiles/aws/aws.yaml", "profiles/mu2sls-node/node.yaml"]
)
def test_remote_profiles_run_every_experiment_at_the_papers_values(profile_file):
    """Snakemake merges a profile's configfile over config.yaml key by key, so a per-experiment local
    factor would survive a profile that only resets the global ones: every experiment of every suite
    must come out of the merged scale exactly as its file says."""
    from benchpipe.experiment import experiment_files, load_experiment
    from benchpipe.merge import deep_merge
    from benchpipe.validation import validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    local = validate(cfg, "config.schema.yaml", "config.yaml")
    assert local["scale"]["experiments"], "the local run scales some experiments by name"
    merged = validate(deep_merge(cfg, yaml.safe_load((REPO / profile_file).read_text())), "config.schema.yaml", "t")
    files = experiment_files(REPO / "config" / "experiments")
    scaled_locally = 0
    for name, path in files.items():
        paper = load_experiment(path)
        assert load_experiment(path, merged["scale"]).data == paper.data, f"{profile_file}: {name} is scaled"
        scaled_locally += load_experiment(path, local["scale"]).data != paper.data
    assert scaled_locally >= len(local["scale"]["experiments"])


def test_a_profiles_experiments_per_suite_do_not_leak_into_another_suite():
    # profiles/aws lists Halfmoon's experiments per suite: `--config suite=exoflow` gets ExoFlow's.
    per_suite = {"halfmoon": ["singleop", "hotel"]}
    assert chosen_experiments(per_suite, "halfmoon") == ["singleop", "hotel"]
    assert chosen_experiments(per_suite, "exoflow") is None  # every experiment of the suite
    assert chosen_experiments(["hotel"], "halfmoon") == ["hotel"]
    assert chosen_experiments(None, "halfmoon") is None
    aws = yaml.safe_load((REPO / "profiles" / "aws" / "aws.yaml").read_text())
    assert chosen_experiments(aws.get("experiments"), "exoflow") is None
    assert chosen_experiments(aws.get("experiments"), "halfmoon")
