"""The price of a plan: instance-hours, dollars, wall time, and the vCPU quota check.

Per cluster: provisioning and bootstrap, then every point to run (warm-up, measurement and the
per-point overhead: fresh stack, readiness, collect), then teardown; all machines of the cluster
bill for all of it. Clusters run one after another unless `max_concurrent_clusters` allows more
(within the vCPU quota).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRICES = Path(__file__).resolve().parent.parent / "config" / "prices.yaml"
PROVISION_S = 240.0  # spot fulfilment, boot, SSH, swarm bootstrap
TEARDOWN_S = 60.0
POINT_OVERHEAD_S = 90.0  # image pull cache hit, stack deploy and readiness, tables, collect


@dataclass
class ClusterPlan:
    name: str
    machines: dict[str, int]  # instance type -> count
    points: int
    point_s: float  # warm-up + measurement of one point
    # A provider's own figures (a Ray cluster's `ray up` installs its software; it runs on-demand).
    market: str | None = None
    provision_s: float = PROVISION_S
    point_overhead_s: float = POINT_OVERHEAD_S

    def seconds(self) -> float:
        if not self.points:
            return 0.0
        return self.provision_s + self.points * (self.point_s + self.point_overhead_s) + TEARDOWN_S

    def vcpus(self, prices: dict[str, Any]) -> int:
        return sum(prices["vcpus"].get(t, 8) * n for t, n in self.machines.items())


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def live_spot_prices(settings: dict[str, Any], types: list[str]) -> dict[str, float]:
    from benchpipe.cloud.session import client

    ec2 = client(settings, "ec2")
    resp = ec2.describe_spot_price_history(InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], MaxResults=100)
    out: dict[str, float] = {}
    for p in resp["SpotPriceHistory"]:
        out[p["InstanceType"]] = max(out.get(p["InstanceType"], 0.0), float(p["SpotPrice"]))
    return out


def plan_cost(
    clusters: list[ClusterPlan],
    prices: dict[str, Any],
    *,
    market: str = "spot",
    quota_vcpus: int | None = None,
    max_concurrent: int = 1,
) -> dict[str, Any]:
    hours = dollars = 0.0
    rows = []
    for c in clusters:
        m = market if market == "owned" else c.market or market
        table = {} if m == "owned" else prices["spot" if m == "spot" else "on_demand"]
        h = c.seconds() / 3600
        n = sum(c.machines.values())
        d = sum(h * k * table.get(t, prices["on_demand"].get(t, 0.0)) for t, k in c.machines.items()) if table else 0.0
        hours += h * n
        dollars += d
        rows.append({"cluster": c.name, "machines": n, "hours": h, "instance_hours": h * n, "dollars": d, "market": m})
    busy = [c for c in clusters if c.points]
    largest = max((c.vcpus(prices) for c in busy), default=0)
    concurrent = max(1, min(max_concurrent, len(busy)))
    peak = sum(sorted((c.vcpus(prices) for c in busy), reverse=True)[:concurrent])
    wall = sum(c.seconds() for c in busy) / concurrent
    return {
        "rows": rows,
        "instance_hours": hours,
        "dollars": dollars,
        "wall_s": wall,
        "peak_vcpus": peak,
        "largest_vcpus": largest,
        "quota_vcpus": quota_vcpus,
        "quota_ok": None if quota_vcpus is None else peak <= quota_vcpus,
    }


def cost_text(cost: dict[str, Any], market: str) -> str:
    priced = market != "owned"  # existing hosts cost time, not money
    # Clusters of a provider that says its own market (Ray clusters: on-demand) are named so.
    markets = sorted({r.get("market") or market for r in cost["rows"] if r["hours"]}) or [market]
    lines = [f"  machines ({', '.join(markets)}):"]
    for r in cost["rows"]:
        if r["hours"]:
            money = f", ${r['dollars']:.2f}" if priced else ""
            if priced and len(markets) > 1:
                money += f" ({r['market']})"
            lines.append(
                f"    {r['cluster']}: {r['machines']} machines x {r['hours']:.2f} h = "
                f"{r['instance_hours']:.1f} instance-hours{money}"
            )
    money = f", about ${cost['dollars']:.2f}" if priced else ""
    lines.append(
        f"  total: {cost['instance_hours']:.1f} instance-hours{money}; wall time about {cost['wall_s'] / 3600:.1f} h"
    )
    if not priced:
        pass  # existing hosts: no quota to fit in
    elif cost["quota_vcpus"] is None:
        lines.append(f"  vCPU: {cost['peak_vcpus']} at once (set provider.settings.vcpu_quota to check it)")
    else:
        verdict = "fits" if cost["quota_ok"] else "EXCEEDS"
        lines.append(f"  vCPU: {cost['peak_vcpus']} at once, quota {cost['quota_vcpus']}: {verdict}")
    return "\n".join(lines)


def machines_vcpus(machines: list[dict[str, Any]], prices: dict[str, Any] | None = None) -> int:
    """vCPUs of a cluster shape (unknown types count as 8)."""
    table = (prices or load_prices())["vcpus"]
    return sum(int(table.get(m.get("instance_type", ""), 8)) for m in machines)
