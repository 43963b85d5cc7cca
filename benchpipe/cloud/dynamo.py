"""DynamoDB tables of a point: created under a run-specific prefix, deleted by prefix, both waited for.

Throttling and "resource not found" (DynamoDB's eventual consistency right after a create or a
delete) are retried with exponential backoff, then reported clearly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")
RETRYABLE = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "ResourceNotFoundException",
    "LimitExceededException",
    "RequestLimitExceeded",
    "ResourceInUseException",
}


class TableError(RuntimeError):
    pass


def with_backoff(
    what: str,
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    for i in range(attempts):
        try:
            return call()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code not in RETRYABLE or i == attempts - 1:
                raise TableError(
                    f"{what}: {code} after {i + 1} attempt(s): {e.response['Error'].get('Message', '')}"
                ) from None
            sleep(base_s * 2**i)
    raise AssertionError("unreachable")


def create_tables(ddb: Any, prefix: str, names: list[str], tags: dict[str, str], timeout_s: float = 300) -> list[str]:
    created = []
    for name in names:
        table = prefix + name
        with_backoff(
            f"create table {table}",
            lambda t=table: ddb.create_table(
                TableName=t,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "K", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "K", "KeyType": "HASH"}],
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            ),
        )
        created.append(table)
    for table in created:
        ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": int(timeout_s)})
    return created


def tables_with_prefix(ddb: Any, prefix: str) -> list[str]:
    out, start = [], None
    while True:
        kw = {"ExclusiveStartTableName": start} if start else {}
        resp = ddb.list_tables(**kw)
        out += [t for t in resp.get("TableNames", []) if t.startswith(prefix)]
        start = resp.get("LastEvaluatedTableName")
        if not start:
            return out


def delete_tables_by_prefix(ddb: Any, prefix: str, timeout_s: float = 300) -> list[str]:
    if not prefix:
        raise TableError("refusing to delete tables with an empty prefix")
    tables = tables_with_prefix(ddb, prefix)
    for t in tables:
        try:
            with_backoff(f"delete table {t}", lambda t=t: ddb.delete_table(TableName=t))
        except TableError as e:
            if "ResourceNotFoundException" not in str(e):
                raise
    for t in tables:
        ddb.get_waiter("table_not_exists").wait(TableName=t, WaiterConfig={"Delay": 1, "MaxAttempts": int(timeout_s)})
    return tables


@contextlib.contextmanager
def point_tables(ddb: Any, prefix: str, names: list[str], tags: dict[str, str]) -> Iterator[list[str]]:
    """The point's tables exist (ACTIVE) inside the block and are gone (waited for) after it, whatever happens."""
    try:
        yield create_tables(ddb, prefix, names, tags) if names else []
    finally:
        if names:
            delete_tables_by_prefix(ddb, prefix)
