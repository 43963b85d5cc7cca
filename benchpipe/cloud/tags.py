"""Every resource the project creates carries these tags; the janitor finds leftovers by them."""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Any

PROJECT = "benchpipe"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def resource_tags(
    settings: dict[str, Any],
    *,
    run_id: str,
    experiment: str = "",
    baseline: str = "",
    cluster: str = "",
    ttl_minutes: float | None = None,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    now = now or utcnow()
    ttl = float(ttl_minutes if ttl_minutes is not None else settings.get("ttl_minutes", 240))
    tags = {
        "project": PROJECT,
        "run-id": run_id,
        "experiment": experiment,
        "baseline": baseline,
        "cluster": cluster,
        "owner": settings.get("owner") or getpass.getuser(),
        "created": iso(now),
        "expires": iso(now + dt.timedelta(minutes=ttl)),
    }
    tags.update({str(k): str(v) for k, v in settings.get("tags", {}).items()})
    return tags


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in tags or []}
