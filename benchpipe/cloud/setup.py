"""`snakemake setup --profile aws`: the account-level resources, created idempotently; and preflight.

- a key pair of the project (private key saved 0600 in ~/.ssh, never in the repository);
- a security group: SSH from the controller's own address /32 only, all traffic inside the group;
- the placement group (cluster strategy).
The machines' instance role is not here: each cluster gets its own, limited to its run's tables
(benchpipe/cloud/iam.py).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from benchpipe.cloud.session import DEFAULT_REGION, client
from benchpipe.cloud.tags import resource_tags, tag_list

log = logging.getLogger("benchpipe.aws")
OPEN_WORLD = {"0.0.0.0/0", "::/0"}


def known_regions() -> set[str]:
    """EC2's regions in every partition, from botocore's own endpoint data (no network)."""
    import boto3

    sess = boto3.session.Session()
    return {r for p in sess.get_available_partitions() for r in sess.get_available_regions("ec2", partition_name=p)}


def key_path(settings: dict[str, Any]) -> Path:
    region = settings.get("region", "ap-southeast-1")
    return Path(os.path.expanduser(settings.get("key_path") or f"~/.ssh/benchpipe-{region}.pem"))


def controller_cidr(settings: dict[str, Any]) -> str:
    cidr = settings.get("controller_cidr")
    if not cidr:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as r:
            cidr = r.read().decode().strip() + "/32"
    net = ipaddress.ip_network(cidr, strict=False)
    if str(net) in OPEN_WORLD or net.prefixlen < 24:
        raise ValueError(f"provider.settings.controller_cidr: expected this controller's address (/32), got {cidr}")
    return str(net)


def ensure_key_pair(ec2: Any, settings: dict[str, Any], tags: dict[str, str]) -> str:
    name = settings.get("key_name", "benchpipe")
    path = key_path(settings)
    try:
        ec2.describe_key_pairs(KeyNames=[name])
        if not path.exists():
            raise RuntimeError(
                f"key pair {name} exists in AWS but {path} does not: delete the key pair or restore the file"
            )
        return name
    except ClientError as e:
        if "NotFound" not in e.response["Error"]["Code"]:
            raise
    resp = ec2.create_key_pair(KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list(tags)}])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(resp["KeyMaterial"])
    os.chmod(path, 0o600)
    return name


def ensure_security_group(ec2: Any, settings: dict[str, Any], tags: dict[str, str]) -> str:
    name = settings.get("security_group", "benchpipe")
    cidr = controller_cidr(settings)
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if found:
        gid = found[0]["GroupId"]
    else:
        gid = ec2.create_security_group(
            GroupName=name,
            Description="benchpipe clusters",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
        )["GroupId"]
        found = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"]
    perms = found[0].get("IpPermissions", [])
    have_ssh = any(
        p.get("FromPort") == 22 and any(r.get("CidrIp") == cidr for r in p.get("IpRanges", [])) for p in perms
    )
    have_self = any(any(g.get("GroupId") == gid for g in p.get("UserIdGroupPairs", [])) for p in perms)
    wanted = []
    if not have_ssh:
        wanted.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]})
    if not have_self:
        wanted.append({"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": gid}]})
    for rule in wanted:
        assert not any(r["CidrIp"] in OPEN_WORLD for r in rule.get("IpRanges", []))
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[rule])
    return gid


def ensure_placement_group(ec2: Any, settings: dict[str, Any]) -> str | None:
    name = settings.get("placement_group")
    if not name:
        return None
    try:
        ec2.create_placement_group(GroupName=name, Strategy="cluster")
    except ClientError as e:
        if e.response["Error"]["Code"] != "InvalidPlacementGroup.Duplicate":
            if settings.get("endpoint_url"):
                log.warning("placement groups are not available at %s: %s", settings["endpoint_url"], e)
                return None
            raise
    return name


def setup(settings: dict[str, Any]) -> dict[str, Any]:
    ec2 = client(settings, "ec2")
    tags = resource_tags(settings, run_id="setup", ttl_minutes=60 * 24 * 365 * 10)
    return {
        "key_pair": ensure_key_pair(ec2, settings, tags),
        "key_path": str(key_path(settings)),
        "security_group_id": ensure_security_group(ec2, settings, tags),
        "placement_group": ensure_placement_group(ec2, settings),
    }


def preflight(settings: dict[str, Any], check_ami: bool = True) -> list[str]:
    """What is missing before anything may be launched, each with what to do (check_ami: False
    where the caller has said already that no AMI is given)."""
    problems: list[str] = []
    region = settings.get("region", DEFAULT_REGION)
    known = known_regions()
    if region not in known:
        # Checked first: a wrong region otherwise shows up as "credentials do not work".
        near = sorted(r for r in known if r.split("-")[0] == str(region).split("-")[0]) or sorted(known)
        return [f"provider.settings.region: {region!r} is not an EC2 region; expected one of {', '.join(near[:12])}"]
    try:
        # One quick try: a wrong endpoint or missing credentials should not take minutes to say so.
        client(settings, "sts", attempts=1).get_caller_identity()
    except Exception as e:  # no credentials, wrong endpoint, expired token...
        return [f"AWS credentials do not work ({e.__class__.__name__}); configure them (aws configure, AWS_PROFILE)"]
    ec2 = client(settings, "ec2")
    try:
        status = {
            r["RegionName"]: r.get("OptInStatus", "opt-in-not-required")
            for r in ec2.describe_regions(AllRegions=True)["Regions"]
        }
        if status.get(region) == "not-opted-in":
            problems.append(
                f"provider.settings.region: {region} is not enabled for this account (opt in, or pick another)"
            )
    except ClientError as e:
        problems.append(f"provider.settings.region: {e.response['Error']['Message']}")
    try:
        ec2.describe_availability_zones(ZoneNames=settings.get("zones") or [])
    except ClientError as e:
        problems.append(f"provider.settings.zones/region: {e.response['Error']['Message']}")
    try:
        if check_ami and not ec2.describe_images(ImageIds=[settings.get("ami", "ami-0cfb31bd9b06138c7")])["Images"]:
            problems.append(f"provider.settings.ami: {settings.get('ami')} not found in {settings.get('region')}")
    except ClientError as e:
        problems.append(f"provider.settings.ami: {e.response['Error']['Message']}")
    name = settings.get("key_name", "benchpipe")
    try:
        ec2.describe_key_pairs(KeyNames=[name])
    except ClientError:
        problems.append(f"key pair {name} missing: run `snakemake setup --profile aws`")
    path = key_path(settings)
    if not path.exists():
        problems.append(f"private key {path} missing: run `snakemake setup --profile aws`")
    elif path.stat().st_mode & 0o077:
        problems.append(f"private key {path} is readable by others: chmod 600 {path}")
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [settings.get("security_group", "benchpipe")]}]
    )
    if not groups["SecurityGroups"]:
        problems.append("security group missing: run `snakemake setup --profile aws`")
    else:
        for p in groups["SecurityGroups"][0].get("IpPermissions", []):
            if any(r.get("CidrIp") in OPEN_WORLD for r in p.get("IpRanges", [])):
                problems.append("the security group admits 0.0.0.0/0: remove that rule (SSH only from this controller)")
    return problems
