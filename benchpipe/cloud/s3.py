"""S3 buckets a run creates for workflow storage (ExoFlow's `--storage=s3://...`): tagged like every
other resource of the project, private, and removed with everything in them."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from botocore.exceptions import ClientError

from benchpipe.cloud.tags import tag_dict, tag_list


def bucket_name(run_id: str, cluster: str) -> str:
    """Globally unique enough (the run id is random), valid (3-63 chars, lowercase, digits, '-')."""
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9-]+", "-", cluster.lower()).strip("-")[:30].strip("-")
    return f"benchpipe-{run_id}-{stem}-{digest}"[:63].strip("-")


def create_bucket(s3: Any, name: str, region: str, tags: dict[str, str]) -> str:
    """Create (or keep, if this account already owns it) a private, tagged bucket in `region`."""
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # us-east-1 is the one region that refuses its own constraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)})
    return name


def delete_bucket(s3: Any, name: str) -> bool:
    """Empty the bucket (every object version and delete marker) and delete it; False if it was gone."""
    try:
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            doomed = [
                {"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for i in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=name, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})
        s3.delete_bucket(Bucket=name)
        return True
    except ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchBucket", "404"):
            return False
        raise


def project_buckets(s3: Any) -> dict[str, dict[str, str]]:
    """Buckets tagged project=benchpipe, with their tags (for the janitor)."""
    out = {}
    for b in s3.list_buckets().get("Buckets", []):
        if not b["Name"].startswith("benchpipe-"):
            continue
        try:
            tags = tag_dict(s3.get_bucket_tagging(Bucket=b["Name"]).get("TagSet"))
        except ClientError:
            continue  # untagged: not created by this project
        if tags.get("project") == "benchpipe":
            out[b["Name"]] = tags
    return out
