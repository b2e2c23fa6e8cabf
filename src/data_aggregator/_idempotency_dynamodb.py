"""The DynamoDB idempotency store: one conditional write per key, run concurrently.

The table's schema and its management are in :mod:`._idempotency_dynamodb_table`.

Why single-item conditional writes rather than ``TransactWriteItems``: a transaction holds
at most 100 items and fails as a whole when any one condition fails, so one contended or
completed key would fail the batch; single-item writes give one answer per key, and run
concurrently they cost one round trip of latency per batch instead of one per record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator._idempotency_dynamodb_table import (
    DEFAULT_PARTITION_KEY,
    TABLE_ENV_VAR,
    TTL_ATTRIBUTE,
    check_table,
    configuration_error,
    create_idempotency_table,
    unreachable,
)
from data_aggregator._idempotency_store import IdempotencyStore, claim_allowed
from data_aggregator._idempotency_types import (
    DEFAULT_TTL_SECONDS,
    IdempotencyRecord,
    RecordStatus,
    WriteOutcome,
)
from data_aggregator.exceptions import (
    IdempotencyConfigurationError,
    IdempotencyError,
    IdempotencyStoreError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient

    from data_aggregator._idempotency_types import BundleLocator

__all__ = [
    "DEFAULT_PARTITION_KEY",
    "DynamoDBIdempotencyStore",
    "DynamoDBStoreSettings",
    "create_idempotency_table",
]

logger = logging.getLogger("data_aggregator.idempotency")

#: DynamoDB's limit on a partition key value; longer idempotency keys are stored hashed.
MAX_KEY_BYTES = 2048

_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_KEY_SCHEMA_MESSAGE = re.compile(
    r"key element does not match the schema|Type mismatch for key|Missing the key",
    re.IGNORECASE,
)

# Attribute names (the partition key's is configurable) and their placeholders.
_NAMES = {
    "#status": "status",
    "#owner": "owner",
    "#lease": "lease_expires_at",
    "#pending": "pending_bundle_key",
    "#bundle": "bundle_key",
    "#exp": TTL_ATTRIBUTE,
}
_IN_PROGRESS = {"S": RecordStatus.IN_PROGRESS.value}
_COMPLETED = {"S": RecordStatus.COMPLETED.value}
_HELD = "#status = :in_progress AND #owner = :owner"
# The claim condition (claim_allowed): no record, TTL passed, lease over or already ours.
_CLAIMABLE = (
    "attribute_not_exists(#pk) OR #exp <= :now"
    " OR (#status = :in_progress AND (#lease <= :now OR #owner = :owner))"
)


def _number(value: float) -> dict[str, str]:
    if isinstance(value, int):
        return {"N": str(value)}
    # repr() round-trips a float exactly; Decimal formatting avoids exponent notation.
    return {"N": format(Decimal(repr(value)), "f")}


def _names(*placeholders: str) -> dict[str, str]:
    return {p: _NAMES[p] for p in placeholders}


class DynamoDBStoreSettings(Protocol):
    """What :meth:`DynamoDBIdempotencyStore.from_config` reads (``AppConfig`` has it)."""

    @property
    def idempotency_table_name(self) -> str | None: ...

    @property
    def idempotency_partition_key(self) -> str: ...

    @property
    def idempotency_ttl_seconds(self) -> int: ...


class DynamoDBIdempotencyStore(IdempotencyStore):
    """Idempotency records in a DynamoDB table, with conditional writes.

    Each primitive is a single ``UpdateItem`` whose condition makes it atomic (two
    concurrent claimers can never both win) and which returns the item's previous state
    (``ReturnValues`` / ``ReturnValuesOnConditionCheckFailure`` = ``ALL_OLD``), so one
    round trip per key answers everything. Bulk methods run up to ``max_workers`` of them
    at a time. Throttling and 5xx answers are retried with jittered exponential backoff;
    when retries run out, only the keys concerned get an ``ERROR`` result.

    Args:
        table_name: The table; defaults to ``$IDEMPOTENCY_TABLE_NAME``.
        partition_key: The table's string partition key attribute (``object_key``).
        client: A boto3 DynamoDB client. By default one is created with a connection pool
            of at least ``max_workers`` and short timeouts; boto3 itself honours
            ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_DYNAMODB``. Give your own client a
            pool of ``max_workers`` connections too (``Config(max_pool_connections=...)``).
        ttl_seconds: See :class:`IdempotencyStore`.
        bundle_locator: See :class:`IdempotencyStore`.
        clock: See :class:`IdempotencyStore`.
        max_workers: Concurrent requests per bulk call.
        max_retries: Extra attempts on throttling/5xx, on top of botocore's own retries.
        backoff_base_seconds: First backoff ceiling; doubles per attempt (full jitter).
        backoff_max_seconds: Backoff ceiling.
        sleep: A ``time.sleep``-like callable (tests inject one).

    Raises:
        IdempotencyConfigurationError: No table name was given or configured, or no
            default client could be made (no region).
    """

    def __init__(
        self,
        table_name: str | None = None,
        *,
        partition_key: str = DEFAULT_PARTITION_KEY,
        client: DynamoDBClient | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        bundle_locator: BundleLocator | None = None,
        clock: Callable[[], float] = time.time,
        max_workers: int = 32,
        max_retries: int = 4,
        backoff_base_seconds: float = 0.05,
        backoff_max_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            ttl_seconds=ttl_seconds,
            bundle_locator=bundle_locator,
            clock=clock,
            max_workers=max_workers,
        )
        name = table_name or os.environ.get(TABLE_ENV_VAR)
        if not name:
            msg = f"no idempotency table name: pass table_name or set {TABLE_ENV_VAR}"
            raise IdempotencyConfigurationError(
                msg, "IDEMPOTENCY_TABLE_NOT_CONFIGURED", {"variable": TABLE_ENV_VAR}
            )
        if not partition_key:
            msg = "partition_key must be a non-empty attribute name"
            raise IdempotencyConfigurationError(msg, context={"partition_key": partition_key})
        self.table_name = name
        self.partition_key = partition_key
        self.client: DynamoDBClient = client or _default_client(self._max_workers)
        self._max_retries = max(0, max_retries)
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self._schema_verified = False
        self._schema_lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: DynamoDBStoreSettings,
        *,
        client: DynamoDBClient | None = None,
        bundle_locator: BundleLocator | None = None,
        **kwargs: Any,
    ) -> DynamoDBIdempotencyStore:
        """Build the store from an ``AppConfig`` (table, partition key, TTL)."""
        return cls(
            config.idempotency_table_name,
            partition_key=config.idempotency_partition_key,
            ttl_seconds=config.idempotency_ttl_seconds,
            client=client,
            bundle_locator=bundle_locator,
            **kwargs,
        )

    # ------------------------------------------------------------------ primitives

    def _claim_record(
        self, key: str, *, owner: str, now: float, lease_expires_at: float, expiration: int
    ) -> WriteOutcome:
        values = {
            ":in_progress": _IN_PROGRESS,
            ":owner": {"S": owner},
            ":now": _number(now),
        }
        # Common case, one PutItem: the new record is fully known when there is no pending
        # announcement to carry over (attribute_not_exists(#pending) makes sure of it).
        outcome = self._put(
            key,
            item={
                "status": _IN_PROGRESS,
                "owner": {"S": owner},
                "lease_expires_at": _number(lease_expires_at),
                TTL_ATTRIBUTE: _number(expiration),
            },
            condition=f"({_CLAIMABLE}) AND attribute_not_exists(#pending)",
            names=_names("#status", "#owner", "#lease", "#exp", "#pending"),
            values=values,
        )
        if outcome.applied or not (
            outcome.record is not None
            and outcome.record.pending_bundle_key is not None
            and claim_allowed(outcome.record, owner, now)
        ):
            return outcome
        # Recovery path: claimable but announced as pending in a bundle. UpdateItem keeps
        # the announcement (never lost, even if we crash before checking the bundle).
        return self._update(
            key,
            update="SET #status = :in_progress, #owner = :owner, #lease = :lease, #exp = :exp"
            " REMOVE #bundle",
            condition=_CLAIMABLE,
            names=_names("#status", "#owner", "#lease", "#exp", "#bundle"),
            values={**values, ":lease": _number(lease_expires_at), ":exp": _number(expiration)},
        )

    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        return self._update(
            key,
            update="SET #pending = :bundle",
            condition=_HELD,
            names=_names("#status", "#owner", "#pending"),
            values={
                ":in_progress": _IN_PROGRESS,
                ":owner": {"S": owner},
                ":bundle": {"S": bundle_key},
            },
        )

    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        # The completed record is fully known: one conditional PutItem replaces it.
        return self._put(
            key,
            item={
                "status": _COMPLETED,
                "owner": {"S": owner},
                "bundle_key": {"S": bundle_key},
                TTL_ATTRIBUTE: _number(expiration),
            },
            condition=_HELD,
            names=_names("#status", "#owner"),
            values={":in_progress": _IN_PROGRESS, ":owner": {"S": owner}},
        )

    def _release_record(self, key: str, *, owner: str) -> WriteOutcome:
        return self._update(
            key,
            update="SET #lease = :zero REMOVE #owner",
            condition=_HELD,
            names=_names("#status", "#owner", "#lease"),
            values={":in_progress": _IN_PROGRESS, ":owner": {"S": owner}, ":zero": {"N": "0"}},
        )

    def _get_record(self, key: str) -> IdempotencyRecord | None:
        response = self._call(
            key,
            lambda: self.client.get_item(
                TableName=self.table_name, Key=self._key(key), ConsistentRead=True
            ),
        )
        return self._parse(key, response.get("Item"))

    # ------------------------------------------------------------------ table checks

    def verify_table(self) -> None:
        """Check that the table exists with a single string partition key of our name.

        Call it once at start-up for a clear error before the first batch (it costs one
        ``DescribeTable``). The store also runs it by itself when DynamoDB rejects a
        request as invalid.

        Raises:
            IdempotencyConfigurationError: The table is missing, its key schema differs,
                or access is denied.
            IdempotencyStoreError: DynamoDB could not be reached.
        """
        check_table(self.client, self.table_name, self.partition_key)
        self._schema_verified = True

    # ------------------------------------------------------------------ internals

    def _key(self, key: str) -> dict[str, Any]:
        raw = key.encode("utf-8")
        if len(raw) > MAX_KEY_BYTES:
            # make_idempotency_key() output starts with "%7B", so no real key looks like this.
            key = "sha256:" + hashlib.sha256(raw).hexdigest()
        return {self.partition_key: {"S": key}}

    def _update(
        self,
        key: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> WriteOutcome:
        if "#pk" in condition:
            names = {**names, "#pk": self.partition_key}

        def send() -> Any:
            return self.client.update_item(
                TableName=self.table_name,
                Key=self._key(key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )

        try:
            response = self._call(key, send)
        except _ConditionFailed as failed:
            return WriteOutcome(applied=False, record=self._parse(key, failed.item))
        return WriteOutcome(applied=True, record=self._parse(key, response.get("Attributes")))

    def _put(
        self,
        key: str,
        *,
        item: dict[str, Any],
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> WriteOutcome:
        if "#pk" in condition:
            names = {**names, "#pk": self.partition_key}

        def send() -> Any:
            return self.client.put_item(
                TableName=self.table_name,
                Item={**self._key(key), **item},
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )

        try:
            response = self._call(key, send)
        except _ConditionFailed as failed:
            return WriteOutcome(applied=False, record=self._parse(key, failed.item))
        return WriteOutcome(applied=True, record=self._parse(key, response.get("Attributes")))

    def _call(self, key: str, send: Callable[[], Any]) -> Any:
        """Send one request, retrying throttling/5xx with full-jitter exponential backoff."""
        attempt = 0
        while True:
            try:
                return send()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    raise _ConditionFailed(exc.response.get("Item")) from None  # type: ignore[arg-type]
                if code in _RETRYABLE_CODES and attempt < self._max_retries:
                    ceiling = min(self._backoff_max, self._backoff_base * 2**attempt)
                    self._sleep(self._random.uniform(0, ceiling))
                    attempt += 1
                    continue
                raise self._translate(exc, key) from exc
            except BotoCoreError as exc:
                raise unreachable(exc, key) from exc

    def _translate(self, exc: ClientError, key: str | None) -> IdempotencyError:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = error.get("Message", "")
        context: dict[str, Any] = {"table_name": self.table_name, "aws_error_code": code}
        if key is not None:
            context["idempotency_key"] = key
        misconfigured = configuration_error(code, self.table_name, context)
        if misconfigured is not None:
            return misconfigured
        if code == "ValidationException":
            context["aws_message"] = message
            if _KEY_SCHEMA_MESSAGE.search(message):
                return IdempotencyConfigurationError(
                    f"idempotency table {self.table_name!r} does not have a string partition "
                    f"key named {self.partition_key!r} (and no sort key)",
                    "IDEMPOTENCY_KEY_SCHEMA_MISMATCH",
                    context,
                )
            if key is not None and not self._schema_verified:
                with self._schema_lock:
                    if not self._schema_verified:
                        self.verify_table()  # raises when the schema is the problem
            return IdempotencyError(
                "DynamoDB rejected the request", "IDEMPOTENCY_INVALID_REQUEST", context
            )
        if code in _RETRYABLE_CODES:
            return IdempotencyStoreError(
                "DynamoDB throttled or failed the request after retries",
                "IDEMPOTENCY_THROTTLED",
                context,
            )
        return IdempotencyStoreError("DynamoDB request failed", context=context)

    def _parse(self, key: str, item: Mapping[str, Any] | None) -> IdempotencyRecord | None:
        if not item:
            return None

        def text(name: str) -> str | None:
            value = item.get(name)
            return value.get("S") if isinstance(value, Mapping) else None

        def number(name: str) -> Decimal | None:
            value = item.get(name)
            raw = value.get("N") if isinstance(value, Mapping) else None
            return Decimal(raw) if raw is not None else None

        # An item without a known status (e.g. written by an older tool) counts as done.
        status = (
            RecordStatus.IN_PROGRESS
            if text("status") == RecordStatus.IN_PROGRESS.value
            else RecordStatus.COMPLETED
        )
        lease = number("lease_expires_at")
        expiration = number(TTL_ATTRIBUTE)
        return IdempotencyRecord(
            key=key,
            status=status,
            owner=text("owner"),
            lease_expires_at=float(lease) if lease is not None else None,
            pending_bundle_key=text("pending_bundle_key"),
            bundle_key=text("bundle_key"),
            expiration=int(expiration) if expiration is not None else None,
        )


class _ConditionFailed(Exception):  # noqa: N818 - internal control flow, never escapes
    def __init__(self, item: Mapping[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


def _default_client(max_workers: int) -> DynamoDBClient:
    import boto3  # noqa: PLC0415 - deferred so that importing the package stays cheap
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        max_pool_connections=max(10, max_workers),
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=10,
    )
    try:
        client: DynamoDBClient = boto3.client("dynamodb", config=config)
    except BotoCoreError as exc:
        msg = "cannot create a DynamoDB client (is AWS_REGION / AWS_DEFAULT_REGION set?)"
        raise IdempotencyConfigurationError(
            msg, "IDEMPOTENCY_CLIENT_UNAVAILABLE", {"error_type": type(exc).__name__}
        ) from exc
    return client
