"""Launching a whole cluster on EC2, all or nothing, and taking it down again.

Spot, one-time, one launch group per cluster (AWS fulfils all requests of the group or none) in one
availability zone. Capacity refusals, at request time or in a request's status, move on to the next
zone, then to the configured fallback instance types, then (if allowed) to on-demand. Whatever was
created by a failed or interrupted attempt is cancelled and terminated before going on. Every id is
written to an append-only ledger before anything waits on it, so that a killed controller's
resources can still be found (also by their tags).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from benchpipe.cloud.tags import tag_list

log = logging.getLogger("benchpipe.aws")

CAPACITY_ERRORS = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "Unsupported",  # the type is not offered in this zone
}
CAPACITY_STATUSES = {
    "capacity-not-available",
    "capacity-oversubscribed",
    "price-too-low",
    "launch-group-constraint",
    "az-group-constraint",
    "placement-group-constraint",
    "constraint-not-fulfillable",
}
FAILED_STATUSES = {"bad-parameters", "system-error", "schedule-expired", "canceled-before-fulfillment"}


class CapacityError(RuntimeError):
    """No capacity for this attempt (zone, types, market): the caller tries the next one."""


class ProvisionError(RuntimeError):
    """Provisioning failed for good; the message says what was tried and what to change."""


@dataclass
class Attempt:
    zone: str
    market: str  # spot | on-demand
    types: dict[str, str]  # machine name -> instance type


@dataclass
class Launched:
    instances: dict[str, str] = field(default_factory=dict)  # machine name -> instance id
    requests: list[str] = field(default_factory=list)


class Ledger:
    """Append-only JSON lines of every resource id, written before waiting on it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def record(self, **entry: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"ts": time.time(), **entry}, sort_keys=True) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a kill: the tags still find that resource
        return out


def user_data(expires_epoch: int) -> str:
    """A dead-man timer: the machine powers itself off (and so terminates) at expiry unless the
    controller moves the expiry forward (it rewrites /etc/benchpipe-expires over SSH)."""
    return f"""#!/bin/bash
echo {expires_epoch} > /etc/benchpipe-expires
cat > /usr/local/sbin/benchpipe-deadman <<'EOS'
#!/bin/bash
while sleep 60; do
  exp=$(cat /etc/benchpipe-expires 2>/dev/null || echo 0)
  if [ "$(date +%s)" -ge "$exp" ]; then logger benchpipe: expired, powering off; shutdown -P now; fi
done
EOS
chmod +x /usr/local/sbin/benchpipe-deadman
nohup /usr/local/sbin/benchpipe-deadman >/dev/null 2>&1 &
"""


class ClusterLauncher:
    def __init__(
        self, ec2: Any, settings: dict[str, Any], ledger: Ledger, *, sleep: Callable[[float], None] = time.sleep
    ):
        self.ec2 = ec2
        self.s = settings
        self.ledger = ledger
        self.sleep = sleep

    # --- attempts -------------------------------------------------------------------------
    def attempts(self, machines: list[dict[str, Any]]) -> list[Attempt]:
        zones = self.s.get("zones") or [self.s.get("region", "ap-southeast-1") + z for z in ("a", "b", "c")]
        base = {m["name"]: m["instance_type"] for m in machines}
        type_sets = [base]
        fallbacks: dict[str, list[str]] = self.s.get("fallback_instance_types", {})
        for i in range(max((len(v) for v in fallbacks.values()), default=0)):
            alt = {n: (fallbacks.get(t, [])[i] if i < len(fallbacks.get(t, [])) else t) for n, t in base.items()}
            if alt != base:
                type_sets.append(alt)
        out = [Attempt(z, "spot", ts) for ts in type_sets for z in zones]
        if self.s.get("on_demand_fallback", False):
            out += [Attempt(z, "on-demand", base) for z in zones]
        return out

    def launch(
        self, machines: list[dict[str, Any]], tags: dict[str, str], expires_epoch: int
    ) -> tuple[Attempt, Launched]:
        tried = []
        for attempt in self.attempts(machines):
            launched = Launched()
            try:
                if attempt.market == "spot":
                    self._spot(machines, attempt, tags, expires_epoch, launched)
                else:
                    self._on_demand(machines, attempt, tags, expires_epoch, launched)
                return attempt, launched
            except CapacityError as e:
                tried.append(f"{attempt.market} in {attempt.zone} ({e})")
                log.warning("no capacity: %s in %s: %s; trying the next option", attempt.market, attempt.zone, e)
                self.release(launched)
            except BaseException:
                # Ctrl-C or any other failure half-way: nothing of this attempt may stay up.
                self.release(launched)
                raise
        raise ProvisionError(
            "no capacity for the cluster anywhere it may go; tried: "
            + "; ".join(tried)
            + ". Try other zones (provider.settings.zones), fallback_instance_types, or on_demand_fallback: true."
        )

    def _send(self, call: Callable[[], Any]) -> Any:
        """One launch call: refused capacity becomes CapacityError; a just-created instance profile
        that EC2 does not see yet (IAM is eventually consistent) is waited for, a few times."""
        waits = iter((2.0, 4.0, 8.0, 16.0))
        while True:
            try:
                return call()
            except ClientError as e:
                code, message = e.response["Error"]["Code"], e.response["Error"].get("Message", "")
                if code in CAPACITY_ERRORS:
                    raise CapacityError(code) from None
                profile_unseen = code == "InvalidParameterValue" and "instance profile" in message.lower()
                wait = next(waits, None) if profile_unseen else None
                if wait is None:
                    raise
                log.info("the cluster's instance profile is not visible to EC2 yet; retrying in %g s", wait)
                self.sleep(wait)

    # --- spot -----------------------------------------------------------------------------
    def _spec(self, m: dict[str, Any], itype: str, zone: str, expires_epoch: int) -> dict[str, Any]:
        # c5d's NVMe instance storage comes with the instance (no block device mapping on Nitro);
        # it is formatted and mounted over SSH by the bootstrap of the roles that ask for it.
        spec: dict[str, Any] = {
            "ImageId": self.s.get("ami", "ami-0cfb31bd9b06138c7"),
            "InstanceType": itype,
            "Placement": {"AvailabilityZone": zone},
            "UserData": base64.b64encode(user_data(expires_epoch).encode()).decode(),
        }
        if self.s.get("placement_group"):
            spec["Placement"]["GroupName"] = self.s["placement_group"]
        if self.s.get("key_name"):
            spec["KeyName"] = self.s["key_name"]
        if self.s.get("security_group_id"):
            spec["SecurityGroupIds"] = [self.s["security_group_id"]]
        if self.s.get("instance_profile"):
            spec["IamInstanceProfile"] = {"Name": self.s["instance_profile"]}
        return spec

    def _spot(
        self, machines: list[dict[str, Any]], a: Attempt, tags: dict[str, str], expires: int, out: Launched
    ) -> None:
        group = "benchpipe-" + secrets.token_hex(5)
        by_request: dict[str, str] = {}
        for m in machines:
            resp = self._send(
                lambda m=m: self.ec2.request_spot_instances(
                    InstanceCount=1,
                    Type="one-time",
                    LaunchGroup=group,
                    AvailabilityZoneGroup=group,
                    LaunchSpecification=self._spec(m, a.types[m["name"]], a.zone, expires),
                    TagSpecifications=[
                        {"ResourceType": "spot-instances-request", "Tags": tag_list({**tags, "Name": m["name"]})}
                    ],
                )
            )
            rid = resp["SpotInstanceRequests"][0]["SpotInstanceRequestId"]
            out.requests.append(rid)
            by_request[rid] = m["name"]
            self.ledger.record(kind="spot-request", id=rid, run_id=tags["run-id"], cluster=tags["cluster"])
        self._await_fulfilment(by_request, tags, out)

    def _await_fulfilment(self, by_request: dict[str, str], tags: dict[str, str], out: Launched) -> None:
        deadline = time.monotonic() + float(self.s.get("fulfil_timeout_s", 300))
        delay = 1.0
        while True:
            reqs = self.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=list(by_request))
            for r in reqs["SpotInstanceRequests"]:
                iid = r.get("InstanceId")
                if iid and by_request[r["SpotInstanceRequestId"]] not in out.instances:
                    out.instances[by_request[r["SpotInstanceRequestId"]]] = iid
                    self.ledger.record(kind="instance", id=iid, run_id=tags["run-id"], cluster=tags["cluster"])
                code = (r.get("Status") or {}).get("Code", "")
                if code in CAPACITY_STATUSES or (r.get("State") == "failed" and code not in FAILED_STATUSES):
                    raise CapacityError(code or "failed")
                if code in FAILED_STATUSES or (r.get("State") in ("cancelled", "closed") and not iid):
                    raise ProvisionError(f"spot request {r['SpotInstanceRequestId']} failed: {code} {r.get('Status')}")
            if len(out.instances) == len(by_request):
                return
            if time.monotonic() > deadline:
                raise CapacityError(f"not fulfilled within {self.s.get('fulfil_timeout_s', 300)} s")
            self.sleep(delay)
            delay = min(delay * 1.5, 10.0)

    # --- on-demand ------------------------------------------------------------------------
    def _on_demand(
        self, machines: list[dict[str, Any]], a: Attempt, tags: dict[str, str], expires: int, out: Launched
    ) -> None:
        for m in machines:
            spec = self._spec(m, a.types[m["name"]], a.zone, expires)
            resp = self._send(
                lambda m=m, spec=spec: self.ec2.run_instances(
                    MinCount=1,
                    MaxCount=1,
                    InstanceInitiatedShutdownBehavior="terminate",
                    TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list({**tags, "Name": m["name"]})}],
                    **spec,
                )
            )
            iid = resp["Instances"][0]["InstanceId"]
            out.instances[m["name"]] = iid
            self.ledger.record(kind="instance", id=iid, run_id=tags["run-id"], cluster=tags["cluster"])

    # --- after launch ---------------------------------------------------------------------
    def tag_instances(self, launched: Launched, tags: dict[str, str]) -> None:
        # Spot-request tags do not reach the instances: tag them one by one (with their names).
        for name, iid in launched.instances.items():
            self.ec2.create_tags(Resources=[iid], Tags=tag_list({**tags, "Name": name}))

    def wait_running(self, launched: Launched) -> dict[str, dict[str, Any]]:
        ids = list(launched.instances.values())
        deadline = time.monotonic() + float(self.s.get("running_timeout_s", 300))
        while True:
            found = {}
            for res in self.ec2.describe_instances(InstanceIds=ids)["Reservations"]:
                for inst in res["Instances"]:
                    found[inst["InstanceId"]] = inst
            states = {i: found.get(i, {}).get("State", {}).get("Name") for i in ids}
            if all(s == "running" for s in states.values()):
                return found
            if any(s in ("terminated", "shutting-down") for s in states.values()):
                raise ProvisionError(f"instances ended before running: {states}")
            if time.monotonic() > deadline:
                raise ProvisionError(f"instances not running within the timeout: {states}")
            self.sleep(2.0)

    def release(self, launched: Launched) -> None:
        """Cancel the requests and terminate the instances of `launched`; safe to repeat."""
        if launched.requests:
            try:
                reqs = self.ec2.describe_spot_instance_requests(SpotInstanceRequestIds=launched.requests)
                for r in reqs["SpotInstanceRequests"]:
                    if r.get("InstanceId") and r["InstanceId"] not in launched.instances.values():
                        launched.instances[r["SpotInstanceRequestId"]] = r["InstanceId"]
            except (ClientError, BotoCoreError, ResponseParserError):
                pass  # already gone (moto even answers 500 for a cancelled id): cancelling below is harmless
            _ignore_missing(lambda: self.ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=launched.requests))
        ids = sorted(set(launched.instances.values()))
        if ids:
            _ignore_missing(lambda: self.ec2.terminate_instances(InstanceIds=ids))


def _ignore_missing(call: Callable[[], Any]) -> None:
    try:
        call()
    except ClientError as e:
        if "NotFound" not in e.response["Error"]["Code"]:
            raise
    except (BotoCoreError, ResponseParserError):
        pass  # a request id the endpoint no longer knows (moto answers 500 for a cancelled one)
