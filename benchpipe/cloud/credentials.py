"""How DynamoDB credentials reach a stack's containers and data step where no instance profile does
(`--profile ssh`): deployer.settings.dynamodb.credentials, one of two routes.

- `role_arn` (preferred): per point, the controller assumes the role (STS AssumeRole, its own
  credentials, optionally a named profile of its own: `source_profile`) with a session policy that
  allows DynamoDB on the point's tables only, for `duration_s`. The temporary credentials become a
  shared credentials file that reaches the function containers as a Docker secret (tmpfs under
  /run/secrets, only on the nodes that run them, removed with the point) and the data step as a
  0600 file in a 0700 folder, deleted when `init` ends. Nothing long-lived leaves the controller.
- `profile` + `file`: a named profile in a shared credentials file that already exists on every
  engine host and the client (a user you made for this, limited to the project's tables), mounted
  read-only into the function containers.

Either way the containers find the credentials as aws-sdk-go v1's default chain looks for them:
AWS_SHARED_CREDENTIALS_FILE at profile AWS_PROFILE (else `default`), and AWS_EC2_METADATA_DISABLED
so that a host's own instance role is never used instead.
"""

from __future__ import annotations

import re
from typing import Any

from benchpipe.cloud.iam import table_policy
from benchpipe.errors import ConfigError

SECRET_TARGET = "aws_credentials"  # /run/secrets/aws_credentials in the containers
MOUNTED_FILE = "/run/benchpipe/aws/credentials"
ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]+$")
KEYS = {"role_arn", "duration_s", "source_profile", "sts_endpoint_url", "profile", "file"}


def route(settings: dict[str, Any]) -> dict[str, Any] | None:
    """deployer.settings.dynamodb.credentials, checked: {kind: role|profile, ...} or None (not set)."""
    creds = (settings.get("dynamodb") or {}).get("credentials")
    if creds is None:
        return None
    where = "deployer.settings.dynamodb.credentials"
    if not isinstance(creds, dict) or set(creds) - KEYS:
        extra = sorted(set(creds) - KEYS) if isinstance(creds, dict) else creds
        raise ConfigError(
            f"{where}: expected {{role_arn, duration_s, source_profile}} or {{profile, file}}, got {extra}"
        )
    if "role_arn" in creds:
        m = ROLE_ARN.match(str(creds["role_arn"]))
        if not m:
            raise ConfigError(
                f"{where}.role_arn: expected arn:aws:iam::<account>:role/<name>, got {creds['role_arn']!r}"
            )
        duration = int(creds.get("duration_s", 3600))
        if not 900 <= duration <= 43200:
            raise ConfigError(f"{where}.duration_s: expected 900 to 43200 (STS's limits), got {duration}")
        return {**creds, "kind": "role", "account": m.group("account"), "duration_s": duration}
    if creds.get("profile") and str(creds.get("file", "")).startswith("/"):
        return {**creds, "kind": "profile"}
    raise ConfigError(
        f"{where}: expected role_arn (temporary credentials per point), or profile with file (the absolute "
        f"path of a shared credentials file on the hosts), got {sorted(creds)}"
    )


def container_access(r: dict[str, Any]) -> dict[str, Any]:
    """What a service that reaches DynamoDB gets: environment, volumes and secrets (compose)."""
    env = {"AWS_EC2_METADATA_DISABLED": "true"}
    if r["kind"] == "role":
        env["AWS_SHARED_CREDENTIALS_FILE"] = f"/run/secrets/{SECRET_TARGET}"
        secret = {"source": SECRET_TARGET, "target": SECRET_TARGET, "mode": 0o400}
        return {"environment": env, "volumes": [], "secrets": [secret]}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": MOUNTED_FILE, "AWS_PROFILE": str(r["profile"])})
    return {"environment": env, "volumes": [f"{r['file']}:{MOUNTED_FILE}:ro"], "secrets": []}


def session_policy(r: dict[str, Any], region: str, prefix: str) -> dict[str, Any]:
    """The point's tables only: what the temporary credentials may do, whatever the role allows."""
    return table_policy(region, r["account"], prefix)


def assume_role(r: dict[str, Any], region: str, prefix: str, session_name: str) -> dict[str, str]:
    """Temporary credentials for the point's tables (AccessKeyId, SecretAccessKey, SessionToken, Expiration)."""
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(profile_name=r.get("source_profile") or None)
    sts = session.client("sts", region_name=region, endpoint_url=r.get("sts_endpoint_url") or None)
    try:
        resp = sts.assume_role(
            RoleArn=r["role_arn"],
            RoleSessionName=re.sub(r"[^\w+=,.@-]", "-", session_name)[:64],
            DurationSeconds=r["duration_s"],
            Policy=json.dumps(session_policy(r, region, prefix)),
        )
    except (BotoCoreError, ClientError) as e:
        raise ConfigError(
            f"deployer.settings.dynamodb.credentials.role_arn: cannot assume {r['role_arn']} with the "
            f"controller's credentials: {e}"
        ) from None
    c = resp["Credentials"]
    return {k: str(c[k]) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")}


def shared_credentials_file(creds: dict[str, str]) -> str:
    """The shared credentials file format aws-sdk-go v1 reads, profile `default`."""
    return (
        "[default]\n"
        f"aws_access_key_id = {creds['AccessKeyId']}\n"
        f"aws_secret_access_key = {creds['SecretAccessKey']}\n"
        f"aws_session_token = {creds['SessionToken']}\n"
    )
