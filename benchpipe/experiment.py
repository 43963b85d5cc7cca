"""Experiment files: loading, checks beyond the schema, scaling, and the sweep's points."""

from __future__ import annotations

import copy
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchpipe.errors import ConfigError
from benchpipe.generators.templates import compile_kind
from benchpipe.merge import deep_merge
from benchpipe.validation import read_yaml, validate

log = logging.getLogger("benchpipe.experiment")

RATE_PARAM_DEFAULT = "qps"
SETTINGS_DURATIONS = ("cycle_s", "prewarm_cycle_s")
# Sequential-load pauses (Pronghorn's think time), scaled like durations; 0 is allowed.
SETTINGS_PAUSES = ("gap_s", "retry_delay_s")


def format_value(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class Point:
    """One cell of a sweep: one folder results/<experiment>/<baseline>/<name>/."""

    experiment: str
    baseline: str
    name: str
    params: dict[str, Any] = field(hash=False, compare=False)
    repetition: int = 1


@dataclass
class Experiment:
    name: str
    source: str
    data: dict[str, Any]

    @property
    def suite(self) -> str:
        """The paper this experiment belongs to: the folder its file is in."""
        return Path(self.source).parent.name

    @property
    def baselines(self) -> list[str]:
        return list(self.data["baselines"])

    def baseline(self, name: str) -> dict[str, Any]:
        return self.data["baselines"][name]

    def sweep(self, baseline: str) -> dict[str, list[Any]]:
        return {**self.data["sweep"], **self.baseline(baseline).get("sweep", {})}

    def param_meta(self, param: str) -> dict[str, Any]:
        return self.data["parameters"].get(param, {})

    @property
    def rate_param(self) -> str | None:
        for p, meta in self.data["parameters"].items():
            if meta.get("role") == "rate":
                return p
        return RATE_PARAM_DEFAULT if RATE_PARAM_DEFAULT in self.data["sweep"] else None

    def point_name(self, params: dict[str, Any], repetition: int = 1) -> str:
        """The point's folder name: its parameters, and `_r<k>` from the second repetition on.
        Repetition 1 keeps the plain name, so raising `repetitions` keeps every point measured
        before and only adds repetitions 2..N."""
        parts = [f"{self.param_meta(p).get('short', p)}{format_value(v)}" for p, v in params.items()]
        name = "_".join(parts)
        return f"{name}_r{repetition}" if repetition > 1 else name

    def repetitions(self, configured: int = 1) -> int:
        """How many times each point is measured: the experiment's own `repetitions` (the paper's
        rounds) if its file sets one, else the configured number."""
        return int(self.data.get("repetitions") or configured)

    def points(self, baseline: str, repetitions: int = 1) -> list[Point]:
        sweep = self.sweep(baseline)
        out = []
        for values in itertools.product(*sweep.values()):
            params = dict(zip(sweep, values, strict=True))
            for rep in range(1, self.repetitions(repetitions) + 1):
                out.append(Point(self.name, baseline, self.point_name(params, rep), params, rep))
        return out

    def matches(self, when: dict[str, Any], params: dict[str, Any]) -> bool:
        """Whether a mix or settings entry's `when` holds for the app and a point's parameters."""
        facts = {"app": self.data["app"], **params}
        return all(facts.get(k) == v for k, v in when.items())

    def mix(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The request mix of a point: entries whose `when` matches the app and the point's parameters."""
        return [m for m in self.data["workload"]["mix"] if self.matches(m.get("when", {}), params)]

    def settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """The workload settings of a point: `settings`, then those of every `settings_when` entry
        whose `when` matches the app and the point's parameters (later entries win)."""
        out = dict(self.data["workload"]["settings"])
        for entry in self.data["workload"].get("settings_when", []):
            if self.matches(entry["when"], params):
                out.update(entry["settings"])
        return out

    def unknown_keys(self, when: dict[str, Any]) -> str:
        """Why a `when` names something that is neither the app nor a sweep parameter ('' if not)."""
        for k in when:
            if k != "app" and k not in self.data["sweep"]:
                return f"expected the app or a sweep parameter ({', '.join(self.data['sweep'])}), got {k!r}"
        return ""

    def unmatched(self, when: dict[str, Any]) -> str:
        """Why a `when` matches no point of the sweep ('' when some point matches)."""
        unknown = self.unknown_keys(when)
        if unknown:
            return unknown
        if not any(self.matches(when, p.params) for p in self.all_points()):
            return f"expected values of points of the sweep, got {when}, which no point has"
        return ""

    def all_points(self, repetitions: int = 1) -> list[Point]:
        return [p for b in self.baselines for p in self.points(b, repetitions)]

    def machines(self, shape: str) -> list[dict[str, Any]]:
        """The cluster shape with `count` expanded into name-1 .. name-N."""
        out = []
        for m in self.data["clusters"][shape]["machines"]:
            m = dict(m)
            count = m.pop("count", 1)
            names = [m["name"]] if count == 1 else [f"{m['name']}-{i}" for i in range(1, count + 1)]
            out.extend({**m, "name": n} for n in names)
        return out


def apply_scale(data: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    """The local version of an experiment: durations and rates multiplied by the profile's scale."""
    data = copy.deepcopy(data)
    if scale.get("paper"):
        return data
    scale = {**scale, **scale.get("experiments", {}).get(data["name"], {})}
    d, r = scale.get("duration", 1), scale.get("rate", 1)
    floor = scale.get("min_duration_s", 0)
    for wl in [data["workload"]] + [b["workload"] for b in data["baselines"].values() if "workload" in b]:
        for key in ("warmup_s", "measure_s"):
            if wl.get(key, 0) > 0:
                wl[key] = round(max(wl[key] * d, floor), 3)
        if wl.get("pause_s", 0) > 0:
            wl["pause_s"] = round(wl["pause_s"] * d, 3)  # a quiet gap is a duration too
    wl = data["workload"]
    q = scale.get("requests", 1)
    for settings in [wl["settings"]] + [e["settings"] for e in wl.get("settings_when", [])]:
        for key in SETTINGS_DURATIONS + SETTINGS_PAUSES:
            # Closed-loop settings (switching) and sequential pauses are durations too.
            if key in settings:
                settings[key] = round(settings[key] * d, 3)
        if q != 1 and "requests" in settings:
            # Sequential runs are counted in requests (Pronghorn's 500 per cell).
            settings["requests"] = max(1, round(settings["requests"] * q))
    # Local values of workload settings that no factor expresses (Pronghorn's retry delay).
    wl["settings"].update(scale.get("settings", {}))
    # Local sweeps and rounds where the paper's would not fit the local budget (ExoFlow: a fresh Ray
    # runtime per point costs seconds that no duration factor shortens).
    for p, values in scale.get("sweep", {}).items():
        if p not in data["sweep"]:
            raise ConfigError(
                f"config: scale.experiments.{data['name']}.sweep.{p}: expected a parameter of the "
                f"experiment's sweep ({', '.join(data['sweep'])})"
            )
        data["sweep"][p] = list(values)
    if scale.get("repetitions"):
        data["repetitions"] = int(scale["repetitions"])
    if r != 1:
        rate_params = [p for p, m in data.get("parameters", {}).items() if m.get("role") == "rate"]
        if not rate_params and RATE_PARAM_DEFAULT in data["sweep"]:
            rate_params = [RATE_PARAM_DEFAULT]
        sweeps = [data["sweep"]] + [b["sweep"] for b in data["baselines"].values() if "sweep" in b]
        for sweep in sweeps:
            for p in rate_params:
                if p in sweep:
                    sweep[p] = sorted({max(1, round(v * r)) for v in sweep[p]})
    # Local values for some points only (Pronghorn's request count per benchmark), after the factors.
    own = scale.get("settings_when", [])
    if own:
        exp = Experiment(data["name"], "", data)
        for i, entry in enumerate(own):
            why = exp.unknown_keys(entry["when"])
            if why:
                raise ConfigError(f"config: scale.experiments.{data['name']}.settings_when[{i}].when: {why}")
        # The local scale is written for the experiment's full sweep: values a narrowed sweep left
        # out (a tiny test, a user's own cut) are no error, but a typo should not pass unseen.
        kept = []
        for i, entry in enumerate(own):
            why = exp.unmatched(entry["when"])
            if why:
                log.warning("config: scale.experiments.%s.settings_when[%d].when: %s", data["name"], i, why)
            else:
                kept.append(entry)
        wl["settings_when"] = [*wl.get("settings_when", []), *copy.deepcopy(kept)]
    return data


def _check(exp: Experiment, repetitions: int) -> None:
    src, data = exp.source, exp.data
    for b, spec in data["baselines"].items():
        if spec["cluster"] not in data["clusters"]:
            raise ConfigError(
                f"{src}: baselines.{b}.cluster: expected one of the shapes under clusters "
                f"({', '.join(data['clusters'])}), got {spec['cluster']!r}"
            )
        extra = set(spec.get("sweep", {})) - set(data["sweep"])
        if extra:
            raise ConfigError(
                f"{src}: baselines.{b}.sweep: expected only parameters of the top-level sweep "
                f"({', '.join(data['sweep'])}), got {', '.join(sorted(extra))}"
            )
    for p in data["parameters"]:
        if p not in data["sweep"]:
            raise ConfigError(f"{src}: parameters.{p}: expected a parameter of sweep ({', '.join(data['sweep'])})")
    for shape, spec in data["clusters"].items():
        managers = [m["name"] for m in spec["machines"] if m["role"] == "manager"]
        if len(managers) != 1 or any(m.get("count", 1) != 1 for m in spec["machines"] if m["role"] == "manager"):
            raise ConfigError(f"{src}: clusters.{shape}.machines: expected exactly one machine with role manager")
        names = [m["name"] for m in exp.machines(shape)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(
                f"{src}: clusters.{shape}.machines: expected distinct machine names, got {dup[0]!r} twice"
            )
    rate = exp.rate_param
    sweeps = [("sweep", data["sweep"])] + [
        (f"baselines.{b}.sweep", v.get("sweep", {})) for b, v in data["baselines"].items()
    ]
    for where, sweep in sweeps:
        for i, v in enumerate(sweep.get(rate, []) if rate else []):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"{src}: {where}.{rate}[{i}]: expected a number > 0 (a request rate), got {v!r}")
    wl = data["workload"]
    for i, entry in enumerate(wl.get("settings_when", [])):
        why = exp.unmatched(entry["when"])
        if why:
            raise ConfigError(f"{src}: workload.settings_when[{i}].when: {why}")
    each = [("workload.settings", wl["settings"])]
    each += [
        (f"workload.settings_when[{i}].settings", e["settings"]) for i, e in enumerate(wl.get("settings_when", []))
    ]
    for where, settings in each:
        for key in SETTINGS_DURATIONS:
            v = settings.get(key, 1)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{src}: {where}.{key}: expected a number of seconds > 0, got {v!r}")
        for key in SETTINGS_PAUSES:
            v = settings.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"{src}: {where}.{key}: expected a number of seconds >= 0, got {v!r}")
    generator = wl.get("generator", "openloop")
    if generator in ("openloop", "wrk2"):
        if not wl["mix"]:
            raise ConfigError(f"{src}: workload.mix: expected at least one request kind for generator {generator}")
        if exp.rate_param is None:
            raise ConfigError(
                f"{src}: parameters: expected one sweep parameter with role: rate (or a sweep parameter named qps)"
            )
    names = [m["name"] for m in wl["mix"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"{src}: workload.mix: expected distinct request names, got {names}")
    for m in wl["mix"]:
        try:
            compile_kind(m["name"], m.get("body", {}), m.get("vars", {}), check_only=True)
        except ConfigError as e:
            raise ConfigError(f"{src}: {e}") from None
    if generator in ("openloop", "wrk2", "sequential"):
        for p in exp.all_points():
            if not exp.mix(p.params):
                raise ConfigError(
                    f"{src}: workload.mix: no entry's `when` matches point {p.baseline}/{p.name} "
                    f"(app {data['app']!r}); expected at least one request kind per point"
                )
    from benchpipe.stackspec import check_point_env, resolve_stack

    for b in exp.baselines:
        check_point_env(data, resolve_stack(data, b, src), f"{src}: baselines.{b}")
    for i, fig in enumerate(data["figures"]):
        if fig["kind"] in ("lines", "bars", "consistency_window") and ("panels" not in fig or "x" not in fig):
            raise ConfigError(f"{src}: figures[{i}]: expected keys x and panels for a {fig['kind']} figure")
        if fig["kind"] == "ecdf" and not {"x", "rows", "columns"} <= set(fig):
            raise ConfigError(f"{src}: figures[{i}]: expected keys x, rows and columns for an ecdf figure")
    from benchpipe.claimspec import check_claims

    check_claims(exp)
    for b in exp.baselines:
        pts = exp.points(b, repetitions)
        seen = [p.name for p in pts]
        if len(set(seen)) != len(seen):
            raise ConfigError(
                f"{src}: sweep: two points of baseline {b} get the same folder name; give parameters `short`"
            )
        for p in pts:
            if not re.fullmatch(r"[A-Za-z0-9_.,-]+", p.name):
                raise ConfigError(f"{src}: sweep: point name {p.name!r} has characters not allowed in a folder name")


def _baselines_from(raw: dict[str, Any], base: dict[str, Any], path: Path) -> dict[str, Any]:
    """Baselines given as `from: <another baseline>` plus what differs (switching's one Halfmoon
    series is a copy of halfmoon-write), resolved against `base` (the extended file, or this one)."""
    baselines = raw.get("baselines")
    if not isinstance(baselines, dict):
        return raw
    out = dict(baselines)
    for name, b in baselines.items():
        if isinstance(b, dict) and "from" in b:
            src = (base.get("baselines") or {}).get(b["from"])
            if not isinstance(src, dict) or "from" in src:
                known = ", ".join(n for n, v in (base.get("baselines") or {}).items() if isinstance(v, dict))
                raise ConfigError(f"{path}: baselines.{name}.from: expected one of {known}, got {b['from']!r}")
            out[name] = deep_merge(src, {k: v for k, v in b.items() if k != "from"})
    return {**raw, "baselines": out}


TARGETS = ("local", "ssh", "aws")


def _with_target_files(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The suite's per-target settings kept apart from the experiment files: `_<target>.yaml` next
    to them (config/experiments/exoflow/_aws.yaml) gives `targets.<target>` of the experiments it
    lists under `experiments:` (its `defaults:` under each), over the file's own."""
    name = path.stem
    for target in TARGETS:
        side = path.parent / f"_{target}.yaml"
        if not side.exists():
            continue
        data = read_yaml(side)
        if not isinstance(data, dict) or not isinstance(data.get("experiments", {}), dict):
            raise ConfigError(
                f"{side}: experiments: expected a mapping of experiment names to targets.{target} settings"
            )
        own = data.get("experiments", {}).get(name)
        if own is None:
            continue
        if not isinstance(own, dict):
            raise ConfigError(f"{side}: experiments.{name}: expected a mapping, got {type(own).__name__}")
        targets = dict(raw.get("targets") or {})
        targets[target] = deep_merge(deep_merge(data.get("defaults") or {}, targets.get(target) or {}), own)
        raw = {**raw, "targets": targets}
    return raw


def for_target(raw: dict[str, Any], target: str | None) -> dict[str, Any]:
    """The experiment as it runs on `target`: `targets.<target>.experiment` (cluster shapes, sweep,
    durations of the paper's machines) merged over the file."""
    own = ((raw.get("targets") or {}).get(target) or {}).get("experiment") if target else None
    return deep_merge(raw, own) if isinstance(own, dict) else raw


def load_experiment(
    path: str | Path, scale: dict[str, Any] | None = None, repetitions: int = 1, target: str | None = None
) -> Experiment:
    """Read, merge `extends` and the suite's per-target files, apply the target's own settings,
    validate (defaults filled), check and scale an experiment file."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of keys, got {type(raw).__name__}")
    if "extends" in raw:
        base_name = raw.pop("extends")
        if not isinstance(base_name, str):
            raise ConfigError(f"{path}: extends: expected a file name next to this one, got {base_name!r}")
        base = read_yaml(path.parent / base_name)
        if not isinstance(base, dict):
            raise ConfigError(f"{path.parent / base_name}: (top level): expected a mapping of keys")
        raw = deep_merge(base, _baselines_from(raw, base, path))
    raw = _baselines_from(raw, raw, path)
    raw = for_target(_with_target_files(raw, path), target)
    data = validate(raw, "experiment.schema.yaml", str(path))
    if data["name"] != path.stem:
        raise ConfigError(f"{path}: name: expected {path.stem!r} (the file name), got {data['name']!r}")
    exp = Experiment(data["name"], str(path), data)
    _check(exp, repetitions)
    if scale:
        exp = Experiment(exp.name, exp.source, apply_scale(exp.data, scale))
        _check(exp, repetitions)
    return exp


def experiment_files(experiments_dir: str | Path) -> dict[str, Path]:
    """Every suite's experiment files by experiment name (files starting with _ are shared parts).

    Names are unique across suites, because results/<name>/ and figures are not per suite."""
    found: dict[str, Path] = {}
    for path in sorted(Path(experiments_dir).glob("*/[!_]*.yaml")):
        if path.stem in found:
            raise ConfigError(
                f"{path}: name: expected an experiment name unique across suites "
                f"({found[path.stem]} has it too); prefix it with the suite"
            )
        found[path.stem] = path
    return found


def suite_experiments(experiments_dir: str | Path, suite: str) -> list[str]:
    """The experiment names of one suite; a clear error for a suite that does not exist."""
    root = Path(experiments_dir)
    suites = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if suite not in suites:
        raise ConfigError(
            f"config: suite: expected one of the folders of {experiments_dir} ({', '.join(suites)}), got {suite!r}"
        )
    return [p.stem for p in sorted((Path(experiments_dir) / suite).glob("[!_]*.yaml"))]


def chosen_experiments(configured: list[str] | dict[str, list[str]] | None, suite: str) -> list[str] | None:
    """The experiments rule all builds as configured: a list (the chosen suite's), or a list per suite
    (a profile's choice: `--config suite=other` must not inherit the default suite's names); None
    when nothing is chosen for `suite` (then every experiment of it)."""
    if isinstance(configured, dict):
        return configured.get(suite) or None
    return configured or None


def figure_experiments(fig: dict[str, Any], owner: str) -> list[str]:
    """The experiments whose summaries a figure draws: its own, its panels', its reference lines'."""
    names = [owner]
    for panel in fig.get("panels", []):
        for name in (panel.get("experiment"), (panel.get("reference") or {}).get("experiment")):
            if name and name not in names:
                names.append(name)
    return names


def drawn_points(
    fig: dict[str, Any], owner: str, experiments: dict[str, Experiment], repetitions: int = 1
) -> dict[str, list[Point]]:
    """Per experiment a figure reads (figure_experiments), the points it draws: for `lines` figures
    those its panels (experiment, baselines, filter) and reference lines (experiment, filter)
    select; every point for other kinds. A filter on a column that is not a point's own (a metric)
    keeps the point: only its summary can tell."""
    names = figure_experiments(fig, owner)
    panels = fig.get("panels") or []
    if fig.get("kind") != "lines" or not panels:
        return {n: experiments[n].all_points(repetitions) for n in names}
    selectors: list[tuple[str, list[str] | None, dict[str, Any]]] = []
    for panel in panels:
        selectors.append((panel.get("experiment") or owner, panel.get("baselines"), panel.get("filter") or {}))
        ref = panel.get("reference")
        if ref:
            selectors.append((ref.get("experiment") or owner, None, ref.get("filter") or {}))
    out = {}
    for name in names:
        exp = experiments[name]
        out[name] = [
            p for p in exp.all_points(repetitions) if any(e == name and _selects(exp, p, b, f) for e, b, f in selectors)
        ]
    return out


def _selects(exp: Experiment, point: Point, baselines: list[str] | None, filt: dict[str, Any]) -> bool:
    if baselines and point.baseline not in baselines:
        return False
    facts = {
        "experiment": exp.name,
        "baseline": point.baseline,
        "label": exp.baseline(point.baseline)["label"],
        "point": point.name,
        "repetition": point.repetition,
        **point.params,
    }
    return all(k not in facts or facts[k] == v or str(facts[k]) == str(v) for k, v in filt.items())


def check_figure_references(experiments: dict[str, Experiment]) -> None:
    """Every experiment a figure (or a claim about it) draws from exists (in some suite)."""
    from benchpipe.claimspec import check_claims

    for exp in experiments.values():
        check_claims(exp, experiments)
        for i, fig in enumerate(exp.data["figures"]):
            for j, panel in enumerate(fig.get("panels", [])):
                refs = [("experiment", panel.get("experiment"))]
                refs.append(("reference.experiment", (panel.get("reference") or {}).get("experiment")))
                for key, name in refs:
                    if name and name not in experiments:
                        raise ConfigError(
                            f"{exp.source}: figures[{i}].panels[{j}].{key}: expected the name of an experiment "
                            f"({', '.join(sorted(experiments))}), got {name!r}"
                        )
