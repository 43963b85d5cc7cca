"""boto3 clients built from the profile's settings (region, and an endpoint for a local moto server)."""

from __future__ import annotations

from typing import Any

DEFAULT_REGION = "ap-southeast-1"


def client(settings: dict[str, Any], service: str, attempts: int = 8) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        region_name=settings.get("region", DEFAULT_REGION),
        endpoint_url=settings.get("endpoint_url") or None,
        config=Config(retries={"mode": "adaptive", "max_attempts": attempts}, connect_timeout=10, read_timeout=60),
    )
