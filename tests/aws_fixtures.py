"""A real moto server on 127.0.0.1 for the aws provider's tests, and a boto3-boundary fault injector."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

import benchpipe.cloud.session as session_mod
from benchpipe.cloud.iam import project_roles

REGION = "ap-southeast-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch, tmp_path) -> dict[str, Any]:
    """Settings of the aws provider against a freshly reset moto server (fake credentials)."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-that-must-never-be-written-anywhere")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return {
        "endpoint_url": moto_endpoint,
        "region": REGION,
        "zones": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
        "bootstrap": False,  # moto's instances are not machines: no SSH to probe
        "ttl_minutes": 60,
        "owner": "tester",
        "fulfil_timeout_s": 20,
        "results_dir": str(tmp_path / "results"),
        "key_path": str(tmp_path / "ssh" / "benchpipe.pem"),
        "controller_cidr": "203.0.113.7/32",
    }


@pytest.fixture
def inject(monkeypatch) -> Callable[[str, Callable[..., None]], None]:
    """inject('ec2.RequestSpotInstances', handler): handler(params) may raise, before the call is sent."""
    handlers: list[tuple[str, Callable[..., None]]] = []
    real = session_mod.client

    def client(settings: dict[str, Any], service: str, **kw: Any) -> Any:
        c = real(settings, service, **kw)
        for event, fn in handlers:
            c.meta.events.register(f"before-parameter-build.{event}", lambda params, fn=fn, **kw: fn(params))
        return c

    monkeypatch.setattr(session_mod, "client", client)
    import benchpipe.providers.aws as aws_mod

    monkeypatch.setattr(aws_mod, "client", client)
    return lambda event, fn: handlers.append((event, fn))


def capacity_error(op: str = "RequestSpotInstances") -> ClientError:
    return ClientError({"Error": {"Code": "InsufficientInstanceCapacity", "Message": "no capacity (injected)"}}, op)


# What count_live reports once everything of the project is gone.
NOTHING_LEFT = {"instances": 0, "all_instances": 0, "spot_requests": 0, "tables": 0, "roles": 0}


def count_live(settings: dict[str, Any]) -> dict[str, int]:
    """Resources of the project still alive, counted through the API."""
    ec2 = session_mod.client(settings, "ec2")
    running = sum(
        len(r["Instances"])
        for r in ec2.describe_instances(
            Filters=[
                {"Name": "tag:project", "Values": ["benchpipe"]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
            ]
        )["Reservations"]
    )
    all_running = sum(
        len(r["Instances"])
        for r in ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])[
            "Reservations"
        ]
    )
    reqs = ec2.describe_spot_instance_requests(Filters=[{"Name": "state", "Values": ["open", "active"]}])
    tables = session_mod.client(settings, "dynamodb").list_tables()["TableNames"]
    return {
        "instances": running,
        "all_instances": all_running,
        "spot_requests": len(reqs["SpotInstanceRequests"]),
        "roles": len(project_roles(session_mod.client(settings, "iam"))),
        "tables": len(tables),
    }
