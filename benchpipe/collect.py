"""Collect: check a point's raw files and write its manifest, the mark of a complete point."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchpipe.errors import ConfigError, RawDataError
from benchpipe.model import Cluster, write_json_atomic

PACKAGES = ["snakemake", "polars", "altair", "hdrhistogram", "boto3", "fabric", "docker", "jsonschema", "aiohttp"]
ASYNC_FIELDS = ("recvTs", "dispatchTs", "finishedTs")


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def json_lines(
    path: Path, check: Callable[[dict[str, Any]], bool], expected: str, missing: str, empty: str
) -> Iterator[dict[str, Any]]:
    """The JSON objects of a line-per-record file, each passing `check`; errors name the file and
    the line (missing file, a line that is not JSON or not what is `expected`, no record at all)."""
    if not path.exists():
        raise RawDataError(f"{path}: missing ({missing})")
    n = 0
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise RawDataError(f"{path}: line {i} is not JSON (truncated or corrupt file)") from None
            if not isinstance(rec, dict) or not check(rec):
                raise RawDataError(f"{path}: line {i}: expected {expected}")
            n += 1
            yield rec
    if n == 0:
        raise RawDataError(f"{path}: empty: {empty}")


def check_async_results(path: Path) -> int:
    """Every line a JSON object with the timestamps; returns the count of entries."""
    recs = json_lines(
        path,
        lambda rec: all(isinstance(rec.get(k), int) for k in ASYNC_FIELDS),
        f"integer fields {', '.join(ASYNC_FIELDS)}",
        "the stack wrote no async_results",
        "no call finished during the point",
    )
    return sum(1 for _ in recs)


def check_report(
    path: Path, keys: tuple[str, ...] = ("target_rate", "achieved_rate", "sent", "fell_behind")
) -> dict[str, Any]:
    """The load generator's report, holding `keys`."""
    try:
        rep = json.loads(path.read_text())
    except FileNotFoundError:
        raise RawDataError(f"{path}: missing (the load generator wrote no report)") from None
    except ValueError:
        raise RawDataError(f"{path}: not valid JSON (truncated or corrupt file)") from None
    for key in keys:
        if key not in rep:
            raise RawDataError(f"{path}: key {key!r} missing from the generator report")
    return rep


def _records_calls(spec: dict[str, Any]) -> bool:
    """Does the point's stack record every call (async_results)? Not the real mu2sls services."""
    from benchpipe import registry

    name = (spec.get("deployer") or {}).get("name")
    own = (spec.get("deployment") or {}).get(name or "") or {}
    if isinstance(own, dict) and own.get("finished_from") == "generator":
        return False  # DeathStarBench's nginx writes no per-call records: wrk2's count instead
    return not name or bool(getattr(registry.load("deployer", name), "records_calls", True))


def check_raw(spec: dict[str, Any], raw: Path) -> dict[str, Any]:
    """What a complete point's raw folder must hold; returns facts for the manifest."""
    facts: dict[str, Any] = {}
    metrics = spec.get("summary_metrics", ["latency"])
    if "switching" in metrics:
        trace = raw / "trace.txt"
        if not trace.exists() or trace.stat().st_size == 0:
            raise RawDataError(f"{trace}: missing or empty")
    elif _records_calls(spec):
        facts["async_results_entries"] = check_async_results(raw / "async_results")
    if "consistency" in metrics:
        trace = raw / "traces.jsonl"
        if not trace.exists() or trace.stat().st_size == 0:
            raise RawDataError(f"{trace}: missing or empty (the reader consumed no notification)")
    rep = check_report(raw / "measure.json")
    facts["generator"] = {"name": spec["generator"]["name"], **{k: v for k, v in rep.items() if k != "histogram"}}
    try:
        facts["timing"] = json.loads((raw / "timing.json").read_text())
    except (FileNotFoundError, ValueError):
        raise RawDataError(f"{raw / 'timing.json'}: missing or corrupt") from None
    return facts


def write_manifest(
    spec: dict[str, Any],
    cluster: Cluster | None,
    raw: Path,
    out: Path,
    repo: Path,
    collect_timing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    facts = check_raw(spec, raw)
    timing = {**facts.pop("timing"), **(collect_timing or {})}

    def iso(t: float | None) -> str | None:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds") if t else None

    manifest = {
        "experiment": spec["experiment"],
        "baseline": spec["baseline"],
        "label": spec["label"],
        "point": spec["point"],
        "repetition": spec["repetition"],
        "parameters": spec["params"],
        "config_hash": spec["config_hash"],
        "git": git_state(repo),
        "packages": package_versions(),
        "controller": {"host": platform.node(), "platform": platform.platform()},
        "cluster": None
        if cluster is None
        else {
            "name": cluster.name,
            "provider": cluster.provider,
            "run_id": cluster.run_id,
            "machines": [
                {"name": h.name, "role": h.role, "instance_type": h.instance_type, "instance_id": h.instance_id}
                for h in cluster.hosts
            ],
        },
        "deployer": spec["deployer"]["name"],
        "start": iso(timing.get("deploy_start")),
        "end": iso(timing.get("stopped")),
        "timing": timing,
        **facts,
        "fell_behind": bool(facts.get("generator", {}).get("fell_behind", False)),
        "images": json.loads((raw / "images.json").read_text()) if (raw / "images.json").exists() else {},
        # What the stack ran (swarm): the compose file as deployed, each service's command line, the
        # data step's commands, the host files and wipes, the tables.
        "stack": json.loads((raw / "stack.json").read_text()) if (raw / "stack.json").exists() else None,
        "files": sorted(p.name for p in raw.iterdir()),
    }
    write_json_atomic(out, manifest)
    return manifest


def load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing ({what})") from None
    except ValueError:
        raise ConfigError(f"{path}: not valid JSON ({what}); delete it to rebuild it") from None
