"""Bad configuration fails before anything runs, with the file, the key and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from benchpipe.errors import ConfigError
from benchpipe.experiment import load_experiment
from benchpipe.validation import validate

REPO = Path(__file__).resolve().parent.parent
HOTEL = REPO / "config" / "experiments" / "halfmoon" / "hotel.yaml"


def write_experiment(tmp_path: Path, mutate) -> Path:
    """A copy of the Halfmoon experiment files with one change to hotel.yaml."""
    for f in HOTEL.parent.glob("_*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    data = yaml.safe_load(HOTEL.read_text())
    mutate(data)
    path = tmp_path / "hotel.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_are_filled():
    cfg = validate({"experiments": ["hotel"]}, "config.schema.yaml", "config.yaml")
    assert cfg["provider"] == {"name": "local", "settings": {}}
    assert cfg["measure"]["retries"] == 1
    assert cfg["scale"]["duration"] == 1
    assert cfg["results_min_free_mb"] == 200


CONFIG_CASES = [
    ({"experimentz": ["hotel"]}, "config.yaml: (top level): unknown key 'experimentz'"),
    ({"repetitions": 0}, "config.yaml: repetitions: expected a number >= 1, got 0"),
    ({"repetitions": "3"}, "config.yaml: repetitions: expected integer, got str '3'"),
    ({"scale": {"rate": 2}}, "config.yaml: scale.rate: expected a number <= 1, got 2"),
    ({"scale": {"durations": 0.1}}, "config.yaml: scale: unknown key 'durations'"),
    ({"provider": {"name": "gcp"}}, "config.yaml: provider.name: expected one of local, ssh, aws, got 'gcp'"),
    ({"experiments": []}, "config.yaml: experiments: expected at least 1 entry, got 0"),
    # A per-suite choice (oneOf list / mapping): the error names the branch it fits and the key.
    ({"experiments": {"halfmoon": []}}, "config.yaml: experiments.halfmoon: expected at least 1 entry, got 0"),
    ({"experiments": 3}, "config.yaml: experiments: expected array, got int 3"),
    ({"measure": {"min_achieved_fraction": 0}}, "config.yaml: measure.min_achieved_fraction: expected a number > 0"),
    ({"results_min_free_mb": -5}, "config.yaml: results_min_free_mb: expected a number >= 0, got -5"),
]


@pytest.mark.parametrize(("config", "message"), CONFIG_CASES)
def test_bad_config_names_key(config, message):
    with pytest.raises(ConfigError) as e:
        validate(copy.deepcopy(config), "config.schema.yaml", "config.yaml")
    assert message in str(e.value)


def _set(path: list, value):
    def mutate(d):
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return mutate


def _del(path: list):
    def mutate(d):
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]

    return mutate


EXPERIMENT_CASES = [
    (_set(["sweep", "qps"], [100, "fast"]), "sweep.qps[1]: expected a number > 0 (a request rate), got 'fast'"),
    (_set(["sweep", "qps"], []), "sweep.qps: expected at least 1 entry, got 0"),
    (_set(["workload", "warmup_s"], -1), "workload.warmup_s: expected a number >= 0, got -1"),
    (_set(["workload", "measure_s"], 0), "workload.measure_s: expected a number > 0, got 0"),
    (_set(["workload", "mixx"], []), "workload: unknown key 'mixx'"),
    (_del(["workload", "measure_s"]), "workload: 'measure_s' is missing (required)"),
    (_set(["workload", "mix"], [{"name": "a", "weight": 0}]), "workload.mix[0].weight: expected a number > 0, got 0"),
    (_set(["workload", "mix"], []), "workload.mix: expected at least one request kind"),
    (_set(["name"], "movie"), "name: expected 'hotel' (the file name), got 'movie'"),
    (_set(["baselines"], {"x": {"label": "X", "cluster": "nowhere", "system": "unsafe"}}), "baselines.x.cluster"),
    (_set(["figures"], [{"name": "hotel", "kind": "pie"}]), "figures[0].kind: expected one of lines, bars, timeline"),
    (
        _set(["workload", "mix"], [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]),
        "workload.mix: expected distinct request names",
    ),
    (_set(["sweep", "rr"], [0.5]), ""),  # not an error by itself: a second parameter
]


@pytest.mark.parametrize(("mutate", "message"), EXPERIMENT_CASES)
def test_bad_experiment_names_file_and_key(tmp_path, mutate, message):
    path = write_experiment(tmp_path, mutate)
    if not message:
        exp = load_experiment(path)
        assert {p.name for p in exp.points("boki")} >= {"qps100_rr0.5"}
        return
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "hotel.yaml"
    path.write_text("name: hotel\nsweep: [1, 2\n")
    with pytest.raises(ConfigError, match=r"hotel.yaml: not valid YAML at line \d+"):
        load_experiment(path)


def test_label_mapping_is_explicit():
    """LoggingMode names the logged operation; the label names the fast one (the seed's trap)."""
    exp = load_experiment(HOTEL)
    assert exp.baseline("halfmoon-read")["env"]["LoggingMode"] == "write"
    assert exp.baseline("halfmoon-write")["env"]["LoggingMode"] == "read"
    assert exp.baseline("halfmoon-read")["label"] == "Halfmoon-read"


def test_scale_makes_local_version_and_names_points():
    exp = load_experiment(HOTEL, {"duration": 1 / 15, "rate": 0.5, "min_duration_s": 0})
    assert [p.name for p in exp.points("boki")] == ["qps50", "qps150", "qps250", "qps350"]
    assert exp.data["workload"]["warmup_s"] == 2.0
    assert exp.data["workload"]["measure_s"] == 10.0
    paper = load_experiment(HOTEL)
    assert [p.name for p in paper.points("unsafe")] == ["qps100", "qps300", "qps500", "qps700"]
    assert len(paper.all_points()) == 16
    assert len(paper.machines("shared_log")) == 16 and len(paper.machines("baseline")) == 10


def test_defaults_as_snakemake_validate_fills_them_and_never_shared(tmp_path):
    # validate() loads a schema once per process and fills defaults itself (snakemake's validate
    # re-read the schema file per call): the same result as snakemake.utils.validate on the real
    # configuration, and a default ({} or []) is a fresh copy each time, never the schema's own.
    from snakemake.utils import validate as snakemake_validate

    from benchpipe.validation import SCHEMA_DIR

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    ours = validate(copy.deepcopy(cfg), "config.schema.yaml", "config.yaml")
    theirs = copy.deepcopy(cfg)
    snakemake_validate(theirs, str(SCHEMA_DIR / "config.schema.yaml"), set_default=True)
    assert ours == theirs
    first = validate({}, "config.schema.yaml", "a.yaml")
    first["stability"]["drift_min_change"] = 9
    first["data_files"]["x"] = "y"
    second = validate({}, "config.schema.yaml", "b.yaml")
    assert second["stability"]["drift_min_change"] == 0.5 and "x" not in second["data_files"]
