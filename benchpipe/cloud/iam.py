"""Per-cluster instance roles: a cluster's machines reach only their own run's DynamoDB tables.

Each cluster gets a role and instance profile under the IAM path /benchpipe/, tagged like every
other resource, whose one inline policy names the run's table prefix; teardown deletes both, and
the janitor deletes those whose run is over.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from benchpipe.cloud.tags import tag_list

PATH = "/benchpipe/"
POLICY = "benchpipe-run-tables"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def table_policy(region: str, account: str, prefix: str) -> dict[str, Any]:
    """Every DynamoDB action, on the tables (and their indexes) whose names start with `prefix`."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["dynamodb:*"],
                "Resource": [
                    f"arn:aws:dynamodb:{region}:{account}:table/{prefix}*",
                    f"arn:aws:dynamodb:{region}:{account}:table/{prefix}*/index/*",
                ],
            }
        ],
    }


def ray_cluster_policy(
    account: str, role: str, bucket: str, extra_actions: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """A Ray cluster's nodes (ray-cluster provider): the head's autoscaler launches and ends the
    workers with this same profile; every node reads and writes the run's bucket (workflow
    storage) and reads datasets; `extra_actions` are what the figure's driver calls (Lambda, Step
    Functions, MWAA...), which the artifact reached with the user's own credentials copied over."""
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": [
                "ec2:RunInstances",
                "ec2:TerminateInstances",
                "ec2:StartInstances",
                "ec2:StopInstances",
                "ec2:CreateTags",
                "ec2:Describe*",
            ],
            "Resource": "*",
        },
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{account}:role{PATH}{role}"},
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
    ]
    if extra_actions:
        statements.append({"Effect": "Allow", "Action": sorted(extra_actions), "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def role_name(run_id: str, cluster: str) -> str:
    return f"benchpipe-{run_id}-{cluster}"[:64]  # IAM's limit for role names


def create_cluster_role(iam: Any, name: str, policy: dict[str, Any], tags: dict[str, str]) -> str:
    """The role and its instance profile (same name); returns the profile's name."""
    # The name is the run's and the cluster's: one left by a provisioning that was killed is ours.
    delete_cluster_role(iam, name)
    iam.create_role(
        Path=PATH,
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(TRUST),
        Tags=tag_list(tags),
        MaxSessionDuration=43200,
    )
    iam.put_role_policy(RoleName=name, PolicyName=POLICY, PolicyDocument=json.dumps(policy))
    iam.create_instance_profile(Path=PATH, InstanceProfileName=name, Tags=tag_list(tags))
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def delete_cluster_role(iam: Any, name: str) -> None:
    """Idempotent: whatever part of the role and profile exists goes."""
    steps = (
        lambda: iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=name),
        lambda: iam.delete_instance_profile(InstanceProfileName=name),
        lambda: iam.delete_role_policy(RoleName=name, PolicyName=POLICY),
        lambda: iam.delete_role(RoleName=name),
    )
    for step in steps:
        try:
            step()
        except ClientError as e:
            if e.response["Error"]["Code"] != "NoSuchEntity":
                raise


def project_roles(iam: Any) -> dict[str, dict[str, str]]:
    """The project's cluster roles with their tags."""
    out = {}
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=PATH):
        for role in page["Roles"]:
            tags = iam.list_role_tags(RoleName=role["RoleName"])["Tags"]
            out[role["RoleName"]] = {t["Key"]: t["Value"] for t in tags}
    return out
