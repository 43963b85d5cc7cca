"""Plain data shared by every stage: hosts, clusters, request mixes, generator reports.

These are the contracts between plug-ins (providers, deployers, generators); they
serialize to JSON so that a stage can hand them to the next through files.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Host:
    """One machine of a cluster, as the deployer and the generator reach it."""

    name: str  # swarm node hostname / machine name (bokiexp-engine-1, ...)
    address: str  # what SSH and HTTP connect to (127.0.0.1 locally)
    role: str  # manager | worker | client
    labels: list[str] = field(default_factory=list)  # "engine_node=true", ...
    user: str | None = None
    key_file: str | None = None
    ssh_port: int = 22
    ssh_alias: str | None = None  # a Host entry of ~/.ssh/config
    instance_id: str | None = None
    instance_type: str | None = None
    private_address: str | None = None  # in-cluster address (swarm advertise, gateway)
    storage: str | None = None  # mount point of formatted instance storage
    # Folders placed first on PATH, and variables set, for every command run on the host over SSH
    # (the ssh provider's `path`/`env` host settings: e.g. the test bed's contract CLIs).
    path: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Host:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Cluster:
    """A provisioned cluster. Its JSON file lives exactly as long as the machines do."""

    name: str  # <experiment>-<baseline>
    provider: str
    run_id: str
    experiment: str
    baseline: str
    hosts: list[Host]
    lock_key: str  # points holding the same key never overlap (one machine, one cluster)
    created: str = ""
    expires: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # provider specifics (spot ids, ...)

    def by_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts if h.role == role]

    @property
    def manager(self) -> Host:
        managers = self.by_role("manager")
        if not managers:
            raise ValueError(f"cluster {self.name} has no host with role 'manager'")
        return managers[0]

    @property
    def client(self) -> Host:
        clients = self.by_role("client")
        return clients[0] if clients else self.manager

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cluster:
        d = dict(d)
        d["hosts"] = [Host.from_dict(h) for h in d.get("hosts", [])]
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Cluster:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class RequestKind:
    """One entry of a request mix: POST `path` with JSON `body`, chosen with `weight`; `vars` make
    the body a template drawn per request (benchpipe.generators.templates)."""

    name: str
    weight: float
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    encoding: str = "json"  # or "form": the body's fields urlencoded (a form POST, as wrk2's DSB scripts send)

    @property
    def content_type(self) -> str:
        return "application/x-www-form-urlencoded" if self.encoding == "form" else "application/json"


@dataclass
class Mix:
    """A request mix; the built-in generator samples it, and it renders wrk2's Lua script."""

    kinds: list[RequestKind]

    @classmethod
    def from_config(cls, mix: list[dict[str, Any]], default_path: str = "/") -> Mix:
        return cls(
            [
                RequestKind(
                    name=m["name"],
                    weight=float(m["weight"]),
                    path=m.get("path", default_path),
                    body=dict(m.get("body", {})),
                    vars=dict(m.get("vars", {})),
                    encoding=m.get("encoding", "json"),
                )
                for m in mix
            ]
        )

    def normalized(self) -> list[tuple[RequestKind, float]]:
        total = sum(k.weight for k in self.kinds)
        return [(k, k.weight / total) for k in self.kinds]


@dataclass
class GeneratorReport:
    """What every load generator reports for one run, whatever produced it."""

    generator: str
    target_rate: float  # requests/s asked for
    duration_s: float
    sent: int
    completed: int
    errors: int  # non-2xx answers and connection errors
    timeouts: int
    achieved_rate: float  # completed / duration
    max_send_lag_ms: float  # worst delay between intended and actual send
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    histogram: str = ""  # HdrHistogram, base64 (HISTFAAA...), latency in microseconds
    fell_behind: bool = False
    fell_behind_reason: str = ""
    per_kind: dict[str, int] = field(default_factory=dict)
    send_lag_p99_ms: float = 0.0  # built-in generator: 99th percentile of the send lag
    connections: int = 0  # built-in generator: connections open at the peak, all processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorReport:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def latency_fields(hist: Any) -> dict[str, Any]:
    """A GeneratorReport's latency fields from an HdrHistogram of microseconds (zeros when empty)."""
    if not hist.get_total_count():
        return {k: 0.0 for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")} | {"histogram": ""}
    pct = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99, "p999_ms": 99.9}
    return {k: hist.get_value_at_percentile(p) / 1e3 for k, p in pct.items()} | {
        "max_ms": hist.get_max_value() / 1e3,
        "mean_ms": hist.get_mean_value() / 1e3,
        "histogram": hist.encode().decode(),
    }


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file (a kill leaves the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
