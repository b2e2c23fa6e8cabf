"""The DynamoDB idempotency table: its schema, creation, verification and ``create-table``.

Schema (``docs/delivery-semantics.md`` has the full description):

```text
object_key          S   partition key (name configurable), no sort key
status              S   IN_PROGRESS | COMPLETED
owner               S   lease holder's token (kept once completed)
lease_expires_at    N   epoch seconds, 0 once released
pending_bundles     SS  bundles announced by holders (in progress); 0.1.0 wrote
                        one as pending_bundle_key (S), still read
bundle_key          S   bundle holding the record (completed)
expiration          N   TTL, epoch seconds (enable DynamoDB TTL on it)
```
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator.exceptions import (
    ErrorCode,
    IdempotencyConfigurationError,
    IdempotencyKeySchemaError,
    IdempotencyStoreError,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DEFAULT_PARTITION_KEY",
    "TABLE_ENV_VAR",
    "TTL_ATTRIBUTE",
    "add_create_table_command",
    "check_table",
    "configuration_error",
    "create_idempotency_table",
    "main",
    "run_create_table",
    "unreachable",
]

logger = logging.getLogger("data_aggregator.idempotency")

DEFAULT_PARTITION_KEY = "object_key"
TTL_ATTRIBUTE = "expiration"
TABLE_ENV_VAR = "IDEMPOTENCY_TABLE_NAME"

_ACCESS_CODES = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)


def configuration_error(
    code: str, table_name: str, context: Mapping[str, Any]
) -> IdempotencyConfigurationError | None:
    """The configuration error an AWS error code means for the table, if any."""
    if code == "ResourceNotFoundException":
        return IdempotencyConfigurationError(
            f"idempotency table {table_name!r} does not exist (or is not ACTIVE)",
            ErrorCode.IDEMPOTENCY_TABLE_NOT_FOUND,
            context,
        )
    if code in _ACCESS_CODES:
        return IdempotencyConfigurationError(
            f"access to idempotency table {table_name!r} denied",
            ErrorCode.IDEMPOTENCY_ACCESS_DENIED,
            context,
        )
    return None


def unreachable(exc: BotoCoreError, key: str | None) -> IdempotencyStoreError:
    """A connection-level failure (after botocore's retries) as a retryable store error."""
    context: dict[str, Any] = {"error_type": type(exc).__name__}
    if key is not None:
        context["idempotency_key"] = key
    return IdempotencyStoreError("could not reach DynamoDB", context=context)


def check_table(client: DynamoDBClient, table_name: str, partition_key: str) -> None:
    """Raise unless ``table_name`` exists with exactly one key: string ``partition_key``.

    Raises:
        IdempotencyConfigurationError: Missing table, other key schema, access denied.
        IdempotencyStoreError: DynamoDB could not be reached or failed.
    """
    context: dict[str, Any] = {"table_name": table_name}
    try:
        table = client.describe_table(TableName=table_name)["Table"]
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        context["aws_error_code"] = code
        misconfigured = configuration_error(code, table_name, context)
        if misconfigured is not None:
            raise misconfigured from exc
        msg = "cannot describe the idempotency table"
        raise IdempotencyStoreError(msg, context=context) from exc
    except BotoCoreError as exc:
        raise unreachable(exc, None) from exc
    schema = [(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])]
    types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])}
    if schema != [(partition_key, "HASH")] or types.get(partition_key) != "S":
        msg = (
            f"idempotency table {table_name!r} must have exactly one key, a string "
            f"partition key named {partition_key!r}"
        )
        raise IdempotencyKeySchemaError(
            msg,
            None,
            {
                **context,
                "expected_partition_key": partition_key,
                "key_schema": [f"{n}:{t}:{types.get(n, '?')}" for n, t in schema],
            },
        )


def create_idempotency_table(
    client: DynamoDBClient,
    table_name: str,
    partition_key: str = DEFAULT_PARTITION_KEY,
    *,
    exist_ok: bool = False,
    enable_ttl: bool = True,
) -> None:
    """Create the idempotency table (on-demand billing) and enable TTL on ``expiration``.

    For local runs, tests and bootstrap scripts; production tables usually come from
    infrastructure as code with the same schema (string partition key ``partition_key``,
    no sort key, TTL on ``expiration``). Waits until the table is active.

    Args:
        client: A boto3 DynamoDB client.
        table_name: The table to create.
        partition_key: Its partition key attribute name.
        exist_ok: Do not fail if the table exists (its key schema is still checked).
        enable_ttl: Turn on TTL on the ``expiration`` attribute.

    Raises:
        IdempotencyConfigurationError: The table exists and ``exist_ok`` is false, or it
            exists with another key schema.
    """
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": partition_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": partition_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        if not exist_ok:
            msg = f"table {table_name!r} already exists"
            raise IdempotencyConfigurationError(
                msg, ErrorCode.IDEMPOTENCY_TABLE_EXISTS, {"table_name": table_name}
            ) from exc
        check_table(client, table_name, partition_key)
        return
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    if enable_ttl:
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    logger.info("created idempotency table", extra={"table_name": table_name})


def add_create_table_command(
    commands: Any, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add the ``create-table`` command to ``commands`` (an ``add_subparsers()`` result).

    The one definition of the command: ``data-aggregator create-table`` and
    ``python -m data_aggregator.idempotency create-table`` both parse and run it through
    here. ``parents`` adds options every command of the caller takes.
    """
    create: argparse.ArgumentParser = commands.add_parser(
        "create-table",
        parents=list(parents),
        help="create the DynamoDB idempotency table",
        description=(
            "Create the idempotency table: a string partition key, no sort key, on-demand "
            f'billing, TTL on {TTL_ATTRIBUTE!r} (documentation: "Delivery semantics"). '
            "Waits until it is active. Credentials come from the usual AWS configuration."
        ),
    )
    create.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help=f"the table's name (or --table-name; default: ${TABLE_ENV_VAR})",
    )
    create.add_argument(
        "--table-name", metavar="NAME", default=None, help="the table's name, as NAME"
    )
    create.add_argument(
        "--partition-key",
        default=DEFAULT_PARTITION_KEY,
        metavar="NAME",
        help="name of the string partition key attribute (default: %(default)s)",
    )
    create.add_argument(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="DynamoDB endpoint, e.g. http://127.0.0.1:5000 for moto or DynamoDB Local "
        "(default: AWS, or AWS_ENDPOINT_URL_DYNAMODB, or AWS_ENDPOINT_URL)",
    )
    create.add_argument(
        "--region", default=None, help="AWS region (default: the usual AWS configuration)"
    )
    create.add_argument(
        "--exist-ok",
        action="store_true",
        help="succeed if the table already exists with the right key schema",
    )
    create.set_defaults(run=run_create_table, usage_error=create.error)
    return create


def run_create_table(args: argparse.Namespace) -> int:
    """Run ``create-table`` as parsed into ``args``; report the table on stdout."""
    import os  # noqa: PLC0415 - command line only
    import sys  # noqa: PLC0415

    import boto3  # noqa: PLC0415

    given = {name for name in (args.name, args.table_name) if name}
    if len(given) > 1:
        args.usage_error("NAME and --table-name name different tables")
    table_name = given.pop() if given else os.environ.get(TABLE_ENV_VAR, "").strip()
    if not table_name:
        args.usage_error(f"the table's name is required: NAME, --table-name or ${TABLE_ENV_VAR}")
    client = boto3.client("dynamodb", endpoint_url=args.endpoint_url, region_name=args.region)
    create_idempotency_table(client, table_name, args.partition_key, exist_ok=args.exist_ok)
    sys.stdout.write(
        f"table {table_name} ready (partition key {args.partition_key}, TTL on {TTL_ATTRIBUTE})\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m data_aggregator.idempotency create-table``: make a table for local use.

    The same command as ``data-aggregator create-table``, with the same arguments.
    """
    import argparse  # noqa: PLC0415 - the store imports this module; only the command needs it

    parser = argparse.ArgumentParser(prog="python -m data_aggregator.idempotency")
    add_create_table_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)
