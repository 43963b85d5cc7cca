"""Managed AWS services some ExoFlow figures compare against, checked before any machine starts.

Figures 7(a)/(b) need Beldi's hotel on Lambda + DynamoDB + API Gateway (deployed by the Serverless
Framework inside the artifact's `tauta/beldi` image, `sls deploy -c hotel.yml`) and a Lambda
concurrency quota of 1000; Figure 8(a)'s bars need the two Step Functions state machines and an
MWAA (Airflow) environment, 8(b) the MWAA environment too; Figures 6 and 7(c) read datasets from S3.
The harness does not create MWAA (20-30 min, a VPC of its own) nor Beldi's `sls deploy`: the user
names them in the experiment's provider settings (`prerequisites`), and preflight says which is
missing, with what to do. The Step Functions state machines (a two-task Lambda chain) are cheap to
make with boto3: they are rendered here and created/deleted with the run's tags.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from benchpipe.cloud.session import client
from benchpipe.cloud.tags import tag_list

KINDS = (
    "lambda_function",
    "lambda_concurrency",
    "api_gateway",
    "dynamodb_table",
    "state_machine",
    "mwaa_environment",
    "s3_object",
)


def _exists(settings: dict[str, Any], kind: str, name: str) -> bool | str:
    """True if the resource is there; False if not; a string for a shortfall (quota)."""
    if kind == "lambda_function":
        try:
            client(settings, "lambda").get_function(FunctionName=name)
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
    if kind == "lambda_concurrency":
        limit = client(settings, "lambda").get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
        return True if limit >= int(name) else f"the account's Lambda concurrency limit is {limit}"
    if kind == "api_gateway":
        apis = client(settings, "apigateway").get_rest_apis(limit=500)["items"]
        return any(a["name"] == name for a in apis)
    if kind == "dynamodb_table":
        try:
            client(settings, "dynamodb").describe_table(TableName=name)
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
    if kind == "state_machine":
        sfn = client(settings, "stepfunctions")
        return any(
            m["name"] == name for p in sfn.get_paginator("list_state_machines").paginate() for m in p["stateMachines"]
        )
    if kind == "mwaa_environment":
        try:
            status = client(settings, "mwaa").get_environment(Name=name)["Environment"].get("Status")
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
        return True if status == "AVAILABLE" else f"it is {status}"
    if kind == "s3_object":
        bucket, _, key = name.removeprefix("s3://").partition("/")
        try:
            client(settings, "s3").head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "403", "NoSuchKey", "NoSuchBucket"):
                return False if e.response["Error"]["Code"] != "403" else "it is not readable with these credentials"
            raise
    raise ValueError(kind)


def check_prerequisites(settings: dict[str, Any], prerequisites: list[dict[str, Any]]) -> list[str]:
    """One sentence per missing prerequisite: what, why (the figure's series), what to do."""
    problems = []
    for i, p in enumerate(prerequisites):
        where = f"provider.settings.prerequisites[{i}]"
        kind, name = p.get("kind"), str(p.get("name") or "")
        if kind not in KINDS:
            problems.append(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
            continue
        why = f" ({p['why']})" if p.get("why") else ""
        how = f": {p['how']}" if p.get("how") else ""
        if not name:
            problems.append(f"{where}: {kind}{why} not configured: give its name{how}")
            continue
        try:
            found = _exists(settings, kind, name)
        except ClientError as e:
            problems.append(f"{where}: {kind} {name}{why}: cannot check ({e.response['Error']['Code']}){how}")
            continue
        if found is False:
            problems.append(f"{where}: {kind} {name}{why} missing{how}")
        elif found is not True:
            problems.append(f"{where}: {kind} {name}{why}: {found}{how}")
    return problems


# --- Step Functions: the two Figure 8(a) comparison bars ------------------------------------------
def state_machine_definition(producer_arn: str, consumer_arn: str) -> dict[str, Any]:
    """The two-task workflow of the data-movement microbenchmark as a state machine: the producer's
    output (the payload) is the consumer's input, so Step Functions moves it between the tasks."""
    return {
        "Comment": "benchpipe: ExoFlow Figure 8(a) data movement (producer -> consumer)",
        "StartAt": "Producer",
        "States": {
            "Producer": {"Type": "Task", "Resource": producer_arn, "Next": "Consumer"},
            "Consumer": {"Type": "Task", "Resource": consumer_arn, "End": True},
        },
    }


def render_state_machines(
    prefix: str, producer_arn: str, consumer_arn: str, role_arn: str, tags: dict[str, str]
) -> list[dict[str, Any]]:
    """create_state_machine arguments of the Standard and the Express machine ("AWS Std.SF-λ" and
    "AWS Exp.SF-λ" in the figure)."""
    definition = json.dumps(state_machine_definition(producer_arn, consumer_arn), sort_keys=True)
    return [
        {
            "name": f"{prefix}-{kind.lower()}",
            "definition": definition,
            "roleArn": role_arn,
            "type": kind,
            "tags": [{"key": t["Key"], "value": t["Value"]} for t in tag_list(tags)],
        }
        for kind in ("STANDARD", "EXPRESS")
    ]


def create_state_machines(settings: dict[str, Any], rendered: list[dict[str, Any]]) -> list[str]:
    sfn = client(settings, "stepfunctions")
    arns = []
    try:
        for args in rendered:
            arns.append(sfn.create_state_machine(**args)["stateMachineArn"])
    except BaseException:
        delete_state_machines(settings, arns)
        raise
    return arns


def delete_state_machines(settings: dict[str, Any], arns: list[str]) -> None:
    sfn = client(settings, "stepfunctions")
    for arn in arns:
        try:
            sfn.delete_state_machine(stateMachineArn=arn)
        except ClientError as e:
            if e.response["Error"]["Code"] != "StateMachineDoesNotExist":
                raise
