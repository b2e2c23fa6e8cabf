"""The DynamoDB idempotency store: conditional writes, one per key or up to 100 per request.

The table's schema and its management are in `_idempotency_dynamodb_table`.

Four batch modes, with the same conditions and the same per-key results (``"auto"``, the
``IDEMPOTENCY_BATCH_MODE`` default, picks one from the client's endpoint: `auto_batch_mode`):

* ``"hybrid"`` (the constructor's default): claims as in ``"single"`` (a refused claim
  costs one request and settles one key, and most claims of a redelivered batch are
  refused), completions and releases as in ``"transact"`` (their conditions almost never
  fail). About two requests per bundled object: its claim and its ``GetObject``.
* ``"single"``: one conditional ``PutItem``/``UpdateItem`` per key, run
  concurrently. One write capacity unit per key and step.
* ``"transact"``: optimistic chunks of up to 100 keys in one ``TransactWriteItems``, each
  action carrying the single-item condition and ``ReturnValuesOnConditionCheckFailure``.
  A transaction fails as a whole when one condition fails; its ``CancellationReasons``
  tell which keys failed (settled from the returned item, as a single write would be) and
  which were only cancelled (retried once as a smaller transaction, then one by one).
  Anything else (``TransactionConflict``, throttling inside the transaction, validation)
  sends the chunk's unsettled keys to the single-item path. Two write capacity units per
  key and step (DynamoDB bills transactional writes double), about 100 times fewer requests.
* ``"statements"``: up to 25 keys per PartiQL ``BatchExecuteStatement``, not a transaction:
  each statement succeeds or fails alone, at a single write's cost (one write capacity unit
  per key and step), about 25 times fewer requests. A claim is an ``INSERT`` (a fresh key);
  the keys it cannot settle (the item exists, no item returned, validation) take the
  single-item path, a throttled statement is sent again after a backoff (`_statements`).
  A statement refused for lack of permission (the role lacks ``dynamodb:PartiQLInsert``
  or ``dynamodb:PartiQLUpdate``), or a first request the endpoint cannot run at all,
  switches the store to ``"hybrid"`` for good, with one warning; the refused keys, and
  those of the batches not sent yet, are written that way in the same call, and no
  statement is sent after the switch (`_send_statements`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator import _deadline
from data_aggregator.clients import add_deadline_hooks
from data_aggregator.clients._s3 import new_client
from data_aggregator.exceptions import (
    DataAggregatorError,
    DeadlineExceededError,
    ErrorCode,
    IdempotencyConfigurationError,
    IdempotencyError,
    IdempotencyKeySchemaError,
    IdempotencyStoreError,
)
from data_aggregator.idempotency._base import (
    IdempotencyStore,
    Outcomes,
    claim_allowed,
    deadline_error,
)
from data_aggregator.idempotency._statements import (
    MAX_STATEMENTS,
    PARTIQL_ACTIONS,
    Statement,
    StatementReport,
    claim_insert,
    complete_update,
    pending_update,
    release_update,
    sort_answers,
    throttled,
)
from data_aggregator.idempotency._table import (
    DEFAULT_PARTITION_KEY,
    TABLE_ENV_VAR,
    TTL_ATTRIBUTE,
    check_table,
    configuration_error,
    create_idempotency_table,
    unreachable,
)
from data_aggregator.idempotency._types import (
    DEFAULT_TTL_SECONDS,
    BatchMode,
    IdempotencyRecord,
    RecordStatus,
    WriteOutcome,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from boto3.session import Session
    from botocore.session import Session as BotocoreSession
    from mypy_boto3_dynamodb import DynamoDBClient

    from data_aggregator.config import IdempotencyBatchMode
    from data_aggregator.idempotency._types import BundleLocator

__all__ = [
    "DEFAULT_PARTITION_KEY",
    "MAX_TRANSACT_ITEMS",
    "BatchMode",
    "DynamoDBIdempotencyStore",
    "DynamoDBStoreSettings",
    "auto_batch_mode",
    "create_idempotency_table",
]

logger = logging.getLogger("data_aggregator.idempotency")

#: DynamoDB's limit on a partition key value; longer idempotency keys are stored hashed.
MAX_KEY_BYTES = 2048
#: DynamoDB's limit on actions per ``TransactWriteItems`` (100 since September 2022).
MAX_TRANSACT_ITEMS = 100
_BATCH_MODES: tuple[BatchMode, ...] = ("hybrid", "single", "transact", "statements")
#: Host suffixes of AWS's own DynamoDB endpoints: regional and FIPS
#: (``dynamodb.us-east-1.amazonaws.com``, GovCloud too), VPC endpoints, China
#: (``dynamodb.cn-north-1.amazonaws.com.cn``) and dual-stack (``dynamodb.us-east-1.api.aws``,
#: China's ``dynamodb.cn-north-1.api.amazonwebservices.com.cn``). Any other host (the
#: isolated partitions' among them) resolves to ``"hybrid"``, the mode every endpoint runs.
_AWS_ENDPOINT_SUFFIXES = (
    ".amazonaws.com",
    ".amazonaws.com.cn",
    ".api.aws",
    ".api.amazonwebservices.com.cn",
)
_FALLBACK_WARNING = (
    "DynamoDB refused a PartiQL statement for lack of permission: this idempotency store "
    "writes in hybrid mode from now on; grant "
    + " and ".join(PARTIQL_ACTIONS)
    + " on the table, or set IDEMPOTENCY_BATCH_MODE=hybrid"
)
_UNSUPPORTED_WARNING = (
    "The DynamoDB endpoint could not run a PartiQL BatchExecuteStatement (an emulator such "
    "as moto's mock_aws cannot): this idempotency store writes in hybrid mode from now on; "
    "set IDEMPOTENCY_BATCH_MODE=hybrid for this endpoint"
)
# A transaction's items may total at most 4 MB (4,194,304 bytes) and each at most 400 KB.
# Actions are measured by their JSON text, which is longer than the item it writes.
_TRANSACT_MAX_BYTES = 4_000_000
_ITEM_MAX_BYTES = 400 * 1024
# Transactions per chunk: the first, then one retry of the keys only cancelled with it.
_TRANSACT_ROUNDS = 2

_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        # A write that met a transaction in flight on the same item, and a retried
        # transaction whose first attempt is still running: both were not applied.
        "TransactionConflictException",
        "TransactionInProgressException",
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
    "#pending": "pending_bundle_key",  # 0.1.0's single announcement, still read
    "#pendings": "pending_bundles",
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


def auto_batch_mode(endpoint_url: object) -> BatchMode:
    """The batch mode ``"auto"`` means for a DynamoDB client of ``endpoint_url``.

    ``"statements"`` on AWS's own endpoints (a host ending in ``.amazonaws.com``,
    ``.amazonaws.com.cn``, ``.api.aws`` or ``.api.amazonwebservices.com.cn``);
    ``"hybrid"`` on any other, which is an emulator (moto, DynamoDB Local, LocalStack), a
    proxy or an endpoint of a partition not listed, and for anything but a string (a
    mocked client's): emulators' PartiQL differs from DynamoDB's, and moto's cannot run
    the statements mode.
    """
    if not isinstance(endpoint_url, str):
        return "hybrid"
    host = (urlsplit(endpoint_url).hostname or "").rstrip(".")
    return "statements" if host.endswith(_AWS_ENDPOINT_SUFFIXES) else "hybrid"


def _number(value: float) -> dict[str, str]:
    if isinstance(value, int):
        return {"N": str(value)}
    # repr() round-trips a float exactly; Decimal formatting avoids exponent notation.
    return {"N": format(Decimal(repr(value)), "f")}


def _names(*placeholders: str) -> dict[str, str]:
    return {p: _NAMES[p] for p in placeholders}


@dataclass(frozen=True, slots=True)
class _Write:
    """One conditional write, the same for every key of a bulk call: a ``PutItem`` of
    ``item`` (plus the key) or an ``UpdateItem`` applying ``update``."""

    condition: str
    names: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] | None = None
    update: str | None = None


@dataclass(slots=True)
class _ChunkReport:
    """What one transaction settled, and which of its keys still need a write."""

    settled: Outcomes = field(default_factory=dict)
    #: Cancelled only because another action failed: worth another transaction.
    retry: list[str] = field(default_factory=list)
    #: To be written one by one (conflict, throttling, validation, unclear answer).
    single: list[str] = field(default_factory=list)


class DynamoDBStoreSettings(Protocol):
    """What the store's
    [`from_config`][data_aggregator.idempotency.DynamoDBIdempotencyStore.from_config] reads
    (``AppConfig`` has it). It also reads ``idempotency_batch_mode`` when the object has
    one (``AppConfig``'s ``IDEMPOTENCY_BATCH_MODE``), else uses ``"auto"``."""

    @property
    def idempotency_table_name(self) -> str | None: ...

    @property
    def idempotency_partition_key(self) -> str: ...

    @property
    def idempotency_ttl_seconds(self) -> int: ...


class DynamoDBIdempotencyStore(IdempotencyStore):
    """Idempotency records in a DynamoDB table, with conditional writes.

    Each primitive is a single ``PutItem`` or ``UpdateItem`` whose condition makes it
    atomic (two concurrent claimers can never both win). A refused write returns the
    item that refused it (``ReturnValuesOnConditionCheckFailure=ALL_OLD``) and a claim
    also returns the item it replaced (``ReturnValues=ALL_OLD``), so one round trip per
    key answers everything. Bulk methods run up to ``max_workers`` of them at a time;
    with ``batch_mode="transact"`` they send the same conditional writes up to 100 keys
    per ``TransactWriteItems`` instead, and fall back to single writes for the keys a
    transaction cannot settle; the default ``batch_mode="hybrid"`` does so for
    completions and releases only; ``batch_mode="statements"`` sends them up to 25 per
    PartiQL ``BatchExecuteStatement``, each applied or refused on its own;
    ``batch_mode="auto"`` (what ``IDEMPOTENCY_BATCH_MODE`` defaults to) is
    ``"statements"`` on AWS's own endpoints and ``"hybrid"`` on any other
    (`auto_batch_mode`). Throttling and 5xx answers are retried with jittered exponential
    backoff; when retries run out, only the keys concerned get an ``ERROR`` result.

    Args:
        table_name: The table; defaults to ``$IDEMPOTENCY_TABLE_NAME``.
        partition_key: The table's string partition key attribute (``object_key``).
        client: A boto3 DynamoDB client. By default one is created with a connection pool
            of at least ``max_workers`` and short timeouts; boto3 itself honours
            ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_DYNAMODB``. Give your own client a
            pool of ``max_workers`` connections too (``Config(max_pool_connections=...)``).
        session: The boto3 (or botocore) session to build the default client from
            (default: boto3's default session). Clients of one session share its loaded
            service data, so a second client from the same session costs a fraction of
            the first.
        ttl_seconds: See [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore].
        bundle_locator: See [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore].
        clock: See [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore].
        max_workers: Concurrent requests per bulk call.
        max_retries: Extra attempts on throttling/5xx, on top of botocore's own retries.
        backoff_base_seconds: First backoff ceiling; doubles per attempt (full jitter).
        backoff_max_seconds: Backoff ceiling.
        sleep: A ``time.sleep``-like callable (tests inject one).
        batch_mode: ``"hybrid"`` (default): one conditional write per claim, completions
            and releases up to ``transact_max_items`` keys per ``TransactWriteItems``.
            ``"single"``: one conditional write per key, one write capacity unit each.
            ``"transact"``: up to ``transact_max_items`` keys per ``TransactWriteItems``
            for every step, with the same conditions and results, about 100 times fewer
            requests for twice the write capacity (``docs/delivery-semantics.md``).
            ``"statements"``: up to 25 keys per PartiQL ``BatchExecuteStatement`` for
            every step (not a transaction: one write capacity unit per key, as
            ``"single"``), the keys it cannot settle written one by one; needs
            ``dynamodb:PartiQLInsert`` and ``dynamodb:PartiQLUpdate`` too: when a statement
            is refused for lack of them, the store logs one warning and writes in
            ``"hybrid"`` mode from then on (the refused keys too, in the same call).
            ``"auto"``: ``"statements"`` when the client's endpoint is AWS's own, else
            ``"hybrid"`` (`auto_batch_mode`). The mode in use is
            [`batch_mode`][data_aggregator.idempotency.DynamoDBIdempotencyStore.batch_mode].
        transact_max_items: Largest transaction (1 to 100); chunks are
            evened out (250 keys: 84 + 83 + 83) and kept under the 4 MB request limit.

    Raises:
        IdempotencyConfigurationError: No table name was given or configured, no default
            client could be made (no region), or ``batch_mode`` /
            ``transact_max_items`` is not valid.
    """

    def __init__(
        self,
        table_name: str | None = None,
        *,
        partition_key: str = DEFAULT_PARTITION_KEY,
        client: DynamoDBClient | None = None,
        session: Session | BotocoreSession | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        bundle_locator: BundleLocator | None = None,
        clock: Callable[[], float] = time.time,
        max_workers: int = 32,
        max_retries: int = 4,
        backoff_base_seconds: float = 0.05,
        backoff_max_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        batch_mode: IdempotencyBatchMode = "hybrid",
        transact_max_items: int = MAX_TRANSACT_ITEMS,
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
                msg, ErrorCode.IDEMPOTENCY_TABLE_NOT_CONFIGURED, {"variable": TABLE_ENV_VAR}
            )
        if not partition_key:
            msg = "partition_key must be a non-empty attribute name"
            raise IdempotencyConfigurationError(msg, context={"partition_key": partition_key})
        if batch_mode != "auto" and batch_mode not in _BATCH_MODES:
            msg = f"batch_mode must be one of auto, {', '.join(_BATCH_MODES)}"
            raise IdempotencyConfigurationError(msg, context={"batch_mode": batch_mode})
        if not 1 <= transact_max_items <= MAX_TRANSACT_ITEMS:
            msg = f"transact_max_items must be between 1 and {MAX_TRANSACT_ITEMS}"
            raise IdempotencyConfigurationError(
                msg, context={"transact_max_items": transact_max_items}
            )
        self.transact_max_items = int(transact_max_items)
        self.table_name = name
        self.partition_key = partition_key
        self.client: DynamoDBClient = client or _default_client(self._max_workers, session)
        self._batch_mode: BatchMode = (
            auto_batch_mode(self.client.meta.endpoint_url) if batch_mode == "auto" else batch_mode
        )
        self._mode_lock = threading.Lock()
        # A BatchExecuteStatement has been answered: the endpoint runs PartiQL.
        self._statements_answered = False
        add_deadline_hooks(self.client)  # no request or retry past the invocation's deadline
        self._max_retries = max(0, max_retries)
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self._schema_verified = False
        self._schema_check_failed = False  # tried once after a rejection, and could not tell
        self._schema_lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: DynamoDBStoreSettings,
        *,
        client: DynamoDBClient | None = None,
        bundle_locator: BundleLocator | None = None,
        batch_mode: IdempotencyBatchMode | None = None,
        **kwargs: Any,
    ) -> DynamoDBIdempotencyStore:
        """Build the store from an ``AppConfig`` (table, partition key, TTL, batch mode).

        ``batch_mode`` defaults to the configuration's ``IDEMPOTENCY_BATCH_MODE``
        (``"auto"`` unless set, or when ``config`` has no ``idempotency_batch_mode``
        attribute); a value given here wins.
        """
        mode: IdempotencyBatchMode = (
            getattr(config, "idempotency_batch_mode", "auto") if batch_mode is None else batch_mode
        )
        return cls(
            config.idempotency_table_name,
            partition_key=config.idempotency_partition_key,
            ttl_seconds=config.idempotency_ttl_seconds,
            client=client,
            bundle_locator=bundle_locator,
            batch_mode=mode,
            **kwargs,
        )

    @property
    def batch_mode(self) -> BatchMode:
        """How the store sends its writes now: ``"auto"`` resolved, and ``"hybrid"`` once a
        ``"statements"`` store has been refused a PartiQL statement for lack of permission."""
        return self._batch_mode

    # ------------------------------------------------------------------ primitives

    def _claim_record(
        self,
        key: str,
        *,
        owner: str,
        now: float,
        lease_expires_at: float,
        expiration: int,
        bundle_key: str | None,
    ) -> WriteOutcome:
        # Common case, one PutItem: the new record is fully known when there is no pending
        # announcement to carry over (attribute_not_exists on both attributes makes sure).
        outcome = self._send(
            key, _claim_put(owner, now, lease_expires_at, expiration, bundle_key), previous=True
        )
        if outcome.applied or not (
            outcome.record is not None and claim_allowed(outcome.record, owner, now)
        ):
            return outcome
        # Recovery path: claimable, so refused only for an announcement attribute (one that
        # `_announcements` may even read as empty, such as a blank 0.1.0 string). UpdateItem
        # keeps the announcements (never lost, even if we crash before checking the bundles).
        return self._send(
            key,
            _claim_update(owner, now, lease_expires_at, expiration, bundle_key),
            previous=True,
        )

    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        return self._send(key, _pending_write(owner, bundle_key))

    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        return self._send(key, _complete_write(owner, bundle_key, expiration))

    def _release_record(self, key: str, *, owner: str, bundle_key: str | None) -> WriteOutcome:
        return self._send(key, _release_write(owner, bundle_key))

    def _get_record(self, key: str) -> IdempotencyRecord | None:
        response = self._call(
            key,
            lambda: self.client.get_item(
                TableName=self.table_name, Key=self._key(key), ConsistentRead=True
            ),
        )
        return self._parse(key, response.get("Item"))

    # ------------------------------------------------------------------ bulk hooks

    # A "statements" hook writes through `_statements`, which hands back the keys refused
    # for lack of permission (never applied): the hook writes them the hybrid way, as the
    # store now does (`_fall_back`).

    def _claim_records(
        self,
        keys: list[str],
        *,
        owner: str,
        now: float,
        lease_expires_at: float,
        expiration: int,
        bundle_key: str | None,
    ) -> Outcomes:
        def single(key: str) -> WriteOutcome:
            return self._claim_record(
                key,
                owner=owner,
                now=now,
                lease_expires_at=lease_expires_at,
                expiration=expiration,
                bundle_key=bundle_key,
            )

        mode = self.batch_mode
        settled: Outcomes = {}
        if mode == "statements":
            item = _claim_item(owner, lease_expires_at, expiration, bundle_key)
            insert = claim_insert(self.table_name, self.partition_key, item)
            settled, keys = self._statements(keys, insert, single)
            mode = "hybrid"  # for the keys refused PartiQL: the store's mode from now on
        if not keys:
            return settled
        if mode != "transact":
            hybrid = super()._claim_records(
                keys,
                owner=owner,
                now=now,
                lease_expires_at=lease_expires_at,
                expiration=expiration,
                bundle_key=bundle_key,
            )
            return {**settled, **hybrid}

        def refused(record: IdempotencyRecord | None) -> WriteOutcome | None:
            # The transaction only writes absent keys (so that an applied action's previous
            # record is known: none). A key it refused is either refused by the claim
            # condition too, or claimable in another way (expired lease, own lease, TTL
            # passed): the single-item claim then takes it, with its previous record.
            if claim_allowed(record, owner, now):
                return None
            return WriteOutcome(applied=False, record=record)

        return self._transact(
            keys, _fresh_claim_put(owner, lease_expires_at, expiration, bundle_key), single, refused
        )

    def _set_pending_records(self, keys: list[str], *, owner: str, bundle_key: str) -> Outcomes:
        if self.batch_mode == "single":
            return super()._set_pending_records(keys, owner=owner, bundle_key=bundle_key)

        def single(key: str) -> WriteOutcome:
            return self._set_pending(key, owner=owner, bundle_key=bundle_key)

        return self._updates(
            keys,
            pending_update(self.table_name, self.partition_key, owner, bundle_key),
            _pending_write(owner, bundle_key),
            single,
        )

    def _complete_records(
        self, keys: list[str], *, owner: str, bundle_key: str, expiration: int
    ) -> Outcomes:
        if self.batch_mode == "single":
            return super()._complete_records(
                keys, owner=owner, bundle_key=bundle_key, expiration=expiration
            )

        def single(key: str) -> WriteOutcome:
            return self._complete_record(
                key, owner=owner, bundle_key=bundle_key, expiration=expiration
            )

        return self._updates(
            keys,
            complete_update(
                self.table_name, self.partition_key, owner, bundle_key, _number(expiration)
            ),
            _complete_write(owner, bundle_key, expiration),
            single,
        )

    def _release_records(self, keys: list[str], *, owner: str, bundle_key: str | None) -> Outcomes:
        if self.batch_mode == "single":
            return super()._release_records(keys, owner=owner, bundle_key=bundle_key)

        def single(key: str) -> WriteOutcome:
            return self._release_record(key, owner=owner, bundle_key=bundle_key)

        return self._updates(
            keys,
            release_update(self.table_name, self.partition_key, owner, bundle_key),
            _release_write(owner, bundle_key),
            single,
        )

    def _updates(
        self,
        keys: list[str],
        statement: Statement,
        write: _Write,
        single: Callable[[str], WriteOutcome],
    ) -> Outcomes:
        """A held-lease step (mark_pending, complete, release) in every mode but
        ``"single"``: ``statement`` in ``"statements"`` mode, else (and for the keys a
        statement was refused for lack of permission) ``write`` in transactions;
        ``single`` for the keys neither settles."""
        settled: Outcomes = {}
        if self.batch_mode == "statements":
            settled, keys = self._statements(keys, statement, single)
        if not keys:
            return settled
        return {**settled, **self._transact(keys, write, single, _refused)}

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

    def _expression(self, write: _Write) -> dict[str, Any]:
        """The condition and its placeholders, as PutItem, UpdateItem and actions take them."""
        names = write.names
        if "#pk" in write.condition:
            names = {**names, "#pk": self.partition_key}
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "ConditionExpression": write.condition,
            "ExpressionAttributeNames": names,
        }
        if write.values:  # DynamoDB rejects an empty ExpressionAttributeValues
            request["ExpressionAttributeValues"] = write.values
        return request

    def _send(self, key: str, write: _Write, *, previous: bool = False) -> WriteOutcome:
        """One conditional single-item write.

        A refused write answers with the item that refused it. An applied one answers
        with the item as it was only when ``previous`` is set (a claim, which reports a
        takeover): mark_pending, complete and release use only a refusal's item, so they
        do not ask DynamoDB to send back the whole record on every success.
        """
        request = {**self._expression(write), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if previous:
            request["ReturnValues"] = "ALL_OLD"
        if write.item is not None:
            request["Item"] = {**self._key(key), **write.item}
            send: Callable[[], Any] = lambda: self.client.put_item(**request)  # noqa: E731
        else:
            request["Key"] = self._key(key)
            request["UpdateExpression"] = write.update
            send = lambda: self.client.update_item(**request)  # noqa: E731
        try:
            response = self._call(key, send)
        except _ConditionFailed as failed:
            return WriteOutcome(applied=False, record=self._parse(key, failed.item))
        return WriteOutcome(applied=True, record=self._parse(key, response.get("Attributes")))

    def _action(self, key: str, write: _Write) -> dict[str, Any]:
        """``write`` on ``key`` as one action of a ``TransactWriteItems``."""
        action = {**self._expression(write), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        if write.item is not None:
            action["Item"] = {**self._key(key), **write.item}
            return {"Put": action}
        action["Key"] = self._key(key)
        action["UpdateExpression"] = write.update
        return {"Update": action}

    def _transact(
        self,
        keys: list[str],
        write: _Write,
        single: Callable[[str], WriteOutcome],
        refused: Callable[[IdempotencyRecord | None], WriteOutcome | None],
    ) -> Outcomes:
        """Apply ``write`` to ``keys`` in transactions of up to ``transact_max_items``.

        ``refused`` settles a key whose action failed its condition, from the item the
        transaction returned; ``None`` means that the key still needs ``single``, the
        single-item write (also used for every key a transaction could not settle).
        Chunks run concurrently; then the keys only cancelled with a failing neighbour
        run as new transactions, once; every key left runs through ``single``.
        """
        chunks, leftovers = self._chunks(keys, write)
        results: Outcomes = {}
        for round_number in range(_TRANSACT_ROUNDS):
            if not chunks:
                break
            reports = self._run_all(
                chunks,
                lambda chunk: self._send_chunk(chunk, refused),
                late=lambda chunk: _ChunkReport(
                    settled={key: deadline_error() for key, _ in chunk}
                ),
            )
            retry: list[str] = []
            for report in reports:
                results.update(report.settled)
                retry.extend(report.retry)
                leftovers.extend(report.single)
            if round_number + 1 < _TRANSACT_ROUNDS:
                chunks, more = self._chunks(retry, write)
                leftovers.extend(more)
            else:
                leftovers.extend(retry)
        if leftovers:
            results.update(self._map(leftovers, single))
        return results

    def _chunks(
        self, keys: list[str], write: _Write
    ) -> tuple[list[list[tuple[str, dict[str, Any]]]], list[str]]:
        """Even chunks of ``(key, action)`` within the count and size limits, and the keys
        that cannot go in a transaction (oversized, or sharing a stored item)."""
        # Actions differ only in the key, which appears once in each: measure one.
        base_size = len(json.dumps(self._action("", write))) - len('""')
        candidates: list[tuple[str, int]] = []
        alone: list[str] = []
        seen: set[str] = set()
        for key in keys:
            stored: str = self._key(key)[self.partition_key]["S"]
            size = base_size + len(json.dumps(stored))
            if stored in seen or size > _ITEM_MAX_BYTES:
                alone.append(key)  # a transaction may not touch one item twice
                continue
            seen.add(stored)
            candidates.append((key, size))
        chunks: list[list[tuple[str, dict[str, Any]]]] = []
        if not candidates:
            return chunks, alone
        count = math.ceil(len(candidates) / self.transact_max_items)
        small, bigger = divmod(len(candidates), count)  # 250 keys: 84 + 83 + 83
        chunk: list[tuple[str, dict[str, Any]]] = []
        chunk_bytes = 0
        for key, size in candidates:
            target = small + (1 if len(chunks) < bigger else 0)
            if chunk and (len(chunk) >= target or chunk_bytes + size > _TRANSACT_MAX_BYTES):
                chunks.append(chunk)
                chunk, chunk_bytes = [], 0
            chunk.append((key, self._action(key, write)))
            chunk_bytes += size
        chunks.append(chunk)
        return chunks, alone

    def _send_chunk(
        self,
        chunk: list[tuple[str, dict[str, Any]]],
        refused: Callable[[IdempotencyRecord | None], WriteOutcome | None],
    ) -> _ChunkReport:
        """Send one transaction and sort its keys: settled, to retry, to write alone."""
        keys = [key for key, _ in chunk]
        actions: list[Any] = [action for _, action in chunk]
        report = _ChunkReport()
        try:
            # No ClientRequestToken of our own: botocore adds one and reuses it across its
            # own retries. A retry of ours is a new request, which is safe: if the first
            # attempt committed, each action meets our own write and is settled as a
            # repeated single write is (a claim goes to the single-item claim of our own
            # lease, a complete or release counts as done, a mark_pending sets it again).
            self._call(None, lambda: self.client.transact_write_items(TransactItems=actions))
        except _Cancelled as cancelled:
            reasons = cancelled.reasons
            if len(reasons) != len(keys):  # no usable answer: write each key alone
                report.single.extend(keys)
                return report
            conditions_only = True
            for key, reason in zip(keys, reasons, strict=True):
                code = reason.get("Code") or "None"
                if code == "None":
                    report.retry.append(key)
                elif code == "ConditionalCheckFailed":
                    outcome = refused(self._parse(key, reason.get("Item")))
                    if outcome is None:
                        report.single.append(key)
                    else:
                        report.settled[key] = outcome
                else:  # TransactionConflict, throttling, validation ...
                    report.single.append(key)
                    conditions_only = False
            if not conditions_only:  # contention or trouble: no second transaction
                report.single.extend(report.retry)
                report.retry.clear()
            return report
        except IdempotencyConfigurationError:
            raise
        except IdempotencyError as error:
            if isinstance(error.__cause__, BotoCoreError):
                # Unreachable: the outcome is unknown, and one by one would fare no better.
                report.settled = dict.fromkeys(keys, error)
            else:  # throttled past the retries, rejected as invalid ...: find the key
                report.single.extend(keys)
            return report
        report.settled = {key: WriteOutcome(applied=True) for key in keys}
        return report

    def _statements(
        self, keys: list[str], statement: Statement, single: Callable[[str], WriteOutcome]
    ) -> tuple[Outcomes, list[str]]:
        """Apply ``statement`` to ``keys``, up to 25 per ``BatchExecuteStatement``.

        Batches run concurrently. The statements that were throttled (or failed with a
        5xx, or met a transaction) run again as new batches after a jittered backoff, up to
        ``max_retries`` times and never past the deadline; then such a key fails as a
        throttled single write would. Every key a batch could not settle runs through
        ``single``, the single-item write.

        Returns the outcomes, and the keys left for the caller to write the ``"hybrid"``
        way: none, unless the store left ``"statements"`` mode (a statement refused for
        lack of permission, in this call or another: `_fall_back`); then the refused keys,
        those of the batches not sent yet and those waiting for another round are handed
        back (none of them was applied), and this call sends no more statements.
        """
        batches, leftovers = self._statement_batches(keys)
        results: Outcomes = {}
        denied: list[str] = []
        attempt = 0
        while batches:
            if self._batch_mode != "statements":  # another call switched the store
                denied.extend(key for batch in batches for key in batch)
                break
            reports = self._run_all(
                batches,
                lambda batch: self._send_statements(batch, statement),
                late=lambda batch: StatementReport(settled={k: deadline_error() for k in batch}),
            )
            retry: dict[str, str] = {}
            for report in reports:
                results.update(report.settled)
                retry.update(report.retry)
                leftovers.extend(report.single)
                denied.extend(report.denied)
            if denied:  # the store writes in hybrid mode now (`_send_statements`)
                denied.extend(retry)
                break
            if not retry:
                break
            delay = self._random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))
            if attempt >= self._max_retries or _deadline.remaining(math.inf) <= delay:
                out_of_time = attempt < self._max_retries
                for key, code in retry.items():
                    results[key] = (
                        self._out_of_time(key, code)
                        if out_of_time
                        else throttled(key, code, self.table_name)
                    )
                break
            self._sleep(delay)
            attempt += 1
            batches, more = self._statement_batches(list(retry))
            leftovers.extend(more)
        if leftovers:
            results.update(self._map(leftovers, single))
        return results, denied

    def _fall_back(self, statement: Statement, report: StatementReport) -> None:
        """After a statement refused for lack of permission (or a request the endpoint
        could not run at all, ``report.unsupported``): write in ``"hybrid"`` mode from now
        on, and say so once (the store's threads may all meet the refusal)."""
        with self._mode_lock:
            if self._batch_mode != "statements":
                return
            self._batch_mode = "hybrid"
        if report.unsupported is not None:
            kind = type(report.unsupported).__qualname__
            logger.warning(
                "%s (%s: %s)",
                _UNSUPPORTED_WARNING,
                kind,
                report.unsupported,
                exc_info=report.unsupported,
                extra={
                    "table_name": self.table_name,
                    "exception_type": kind,
                    "batch_mode": "hybrid",
                },
            )
            return
        logger.warning(
            "%s (DynamoDB: %s)",
            _FALLBACK_WARNING,
            report.denial_message or "access denied",
            extra={
                "table_name": self.table_name,
                "denied_action": statement.action,
                "iam_actions": list(PARTIQL_ACTIONS),
                "aws_error_message": report.denial_message,
                "batch_mode": "hybrid",
            },
        )

    def _statement_batches(self, keys: list[str]) -> tuple[list[list[str]], list[str]]:
        """Even batches of up to 25 keys, and the keys that must be written alone (a batch
        may not touch one item twice)."""
        seen: set[str] = set()
        candidates: list[str] = []
        alone: list[str] = []
        for key in keys:
            stored: str = self._key(key)[self.partition_key]["S"]
            if stored in seen:
                alone.append(key)
                continue
            seen.add(stored)
            candidates.append(key)
        if not candidates:
            return [], alone
        count = math.ceil(len(candidates) / MAX_STATEMENTS)
        small, bigger = divmod(len(candidates), count)  # 64 keys: 22 + 21 + 21
        batches: list[list[str]] = []
        start = 0
        for index in range(count):
            end = start + small + (1 if index < bigger else 0)
            batches.append(candidates[start:end])
            start = end
        return batches, alone

    def _send_statements(self, batch: list[str], statement: Statement) -> StatementReport:
        """Send one ``BatchExecuteStatement`` and sort its keys: settled, again, alone, or
        denied (then the store switches to ``"hybrid"``: `_fall_back`). Nothing is sent
        once the store no longer writes in ``"statements"`` mode: the keys are denied."""
        if self._batch_mode != "statements":
            return StatementReport(denied=list(batch))
        requests: list[Any] = [
            statement.request(self._key(key)[self.partition_key]) for key in batch
        ]

        def send() -> Any:
            try:
                response = self.client.batch_execute_statement(Statements=requests)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "AccessDeniedException":
                    raise _Denied from exc  # the role may not run this statement
                raise
            except (BotoCoreError, DataAggregatorError):
                raise
            except Exception as exc:
                if self._statements_answered:
                    # This endpoint runs PartiQL: the exception is not about PartiQL (a
                    # parser error after an answer, a wrapper's bug) and the batch may have
                    # been applied. It propagates, as any write's would in hybrid mode.
                    raise
                # Not an answer of DynamoDB's at all, from an endpoint that never answered
                # one: it cannot run the request (moto's in-process mock raises its PartiQL
                # parser's TypeError on a parameter, before applying any statement).
                raise _Unsupported from exc
            self._statements_answered = True
            return response

        report: StatementReport | None = None
        try:
            response = self._call(None, send)
        except _Denied as denied:
            error = denied.__cause__
            message = (
                error.response.get("Error", {}).get("Message", "")
                if isinstance(error, ClientError)
                else ""
            )
            report = StatementReport(denied=list(batch), denial_message=str(message))
        except _Unsupported as unsupported:
            cause = unsupported.__cause__
            report = StatementReport(
                denied=list(batch),
                unsupported=cause if isinstance(cause, Exception) else unsupported,
            )
        except IdempotencyConfigurationError:
            raise
        except IdempotencyError as error:
            if isinstance(error.__cause__, BotoCoreError | DeadlineExceededError):
                # Unreachable or out of time: one by one would fare no better.
                return StatementReport(settled=dict.fromkeys(batch, error))
            # Throttled past the retries, rejected as invalid ...: find the key.
            return StatementReport(single=list(batch))
        if report is None:
            report = sort_answers(
                batch, response.get("Responses") or [], self._parse, table_name=self.table_name
            )
        if report.denied:
            self._fall_back(statement, report)
        return report

    def _call(self, key: str | None, send: Callable[[], Any]) -> Any:
        """Send one request, retrying throttling/5xx with full-jitter exponential backoff.

        Neither a request nor a backoff sleep goes past the current deadline: the key
        then fails with a retryable ``IdempotencyStoreError`` coded ``DEADLINE_EXCEEDED``.
        """
        attempt = 0
        while True:
            try:
                return send()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    raise _ConditionFailed(exc.response.get("Item")) from None  # type: ignore[arg-type]
                if code == "TransactionCanceledException":
                    reasons: Any = exc.response.get("CancellationReasons")
                    raise _Cancelled(reasons if isinstance(reasons, list) else []) from None
                if code in _RETRYABLE_CODES and attempt < self._max_retries:
                    ceiling = min(self._backoff_max, self._backoff_base * 2**attempt)
                    delay = self._random.uniform(0, ceiling)
                    if _deadline.remaining(math.inf) <= delay:
                        raise self._out_of_time(key, code) from exc
                    self._sleep(delay)
                    attempt += 1
                    continue
                raise self._translate(exc, key) from exc
            except BotoCoreError as exc:
                raise unreachable(exc, key) from exc
            except DeadlineExceededError as exc:  # from the client's deadline hooks
                raise self._out_of_time(key, exc.context.get("last_error")) from exc

    def _out_of_time(self, key: str | None, last_error: object) -> IdempotencyStoreError:
        """The error of a key whose request could not be sent or retried in time."""
        context: dict[str, Any] = {"table_name": self.table_name, "last_error": last_error}
        if key is not None:
            context["idempotency_key"] = key
        return IdempotencyStoreError(
            "no time left before the invocation's deadline for this DynamoDB request",
            ErrorCode.DEADLINE_EXCEEDED,
            context,
        )

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
                return IdempotencyKeySchemaError(
                    f"idempotency table {self.table_name!r} does not have a string partition "
                    f"key named {self.partition_key!r} (and no sort key)",
                    context=context,
                )
            if key is not None and not self._schema_verified:
                self._raise_if_schema_mismatch()
            return IdempotencyError(
                "DynamoDB rejected the request", ErrorCode.IDEMPOTENCY_INVALID_REQUEST, context
            )
        if code in _RETRYABLE_CODES:
            return IdempotencyStoreError(
                "DynamoDB throttled or failed the request after retries",
                ErrorCode.IDEMPOTENCY_THROTTLED,
                context,
            )
        return IdempotencyStoreError("DynamoDB request failed", context=context)

    def _raise_if_schema_mismatch(self) -> None:
        """After a request rejected as invalid: raise when the table's key schema is why.

        Only a schema mismatch is raised (it fails every key alike). When the check itself
        fails (no ``dynamodb:DescribeTable`` permission, DynamoDB unreachable), the cause
        stays unknown and the rejected key keeps its own error; the check is then not
        tried again by this store, so that a batch of rejected keys costs one
        ``DescribeTable``, not one each (`verify_table` can still be called).
        """
        with self._schema_lock:
            if self._schema_verified or self._schema_check_failed:
                return
            try:
                self.verify_table()
            except IdempotencyKeySchemaError:
                raise
            except IdempotencyError as error:
                self._schema_check_failed = True
                logger.warning(
                    "cannot check the idempotency table's key schema",
                    extra={"table_name": self.table_name, "error": error.to_dict()},
                )

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
            pending_bundle_keys=_announcements(item),
            bundle_key=text("bundle_key"),
            expiration=int(expiration) if expiration is not None else None,
        )


class _ConditionFailed(Exception):  # noqa: N818 - internal control flow, never escapes
    def __init__(self, item: Mapping[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


class _Denied(Exception):  # noqa: N818 - internal control flow, never escapes
    """A whole ``BatchExecuteStatement`` refused by IAM (``AccessDeniedException``)."""


class _Unsupported(Exception):  # noqa: N818 - internal control flow, never escapes
    """A ``BatchExecuteStatement`` the endpoint could not run at all (an emulator)."""


class _Cancelled(Exception):  # noqa: N818 - internal control flow, never escapes
    def __init__(self, reasons: list[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons


def _refused(record: IdempotencyRecord | None) -> WriteOutcome:
    """A held-lease write refused by its condition: settled, as the single write is."""
    return WriteOutcome(applied=False, record=record)


# The writes. Each is the same for every key of a bulk call.


def _announcements(item: Mapping[str, Any]) -> frozenset[str]:
    """The bundles announced on an item: the string set, plus 0.1.0's single string."""
    announced: set[str] = set()
    pending = item.get("pending_bundles")
    if isinstance(pending, Mapping):
        announced.update(str(value) for value in pending.get("SS", ()))
    legacy = item.get("pending_bundle_key")
    if isinstance(legacy, Mapping) and legacy.get("S"):
        announced.add(str(legacy["S"]))
    return frozenset(announced)


def _claim_put(
    owner: str, now: float, lease_expires_at: float, expiration: int, bundle_key: str | None
) -> _Write:
    """The claim, when there is no pending announcement to keep: a PutItem."""
    return _Write(
        condition=f"({_CLAIMABLE}) AND attribute_not_exists(#pendings)"
        " AND attribute_not_exists(#pending)",
        names=_names("#status", "#owner", "#lease", "#exp", "#pendings", "#pending"),
        values={":in_progress": _IN_PROGRESS, ":owner": {"S": owner}, ":now": _number(now)},
        item=_claim_item(owner, lease_expires_at, expiration, bundle_key),
    )


def _fresh_claim_put(
    owner: str, lease_expires_at: float, expiration: int, bundle_key: str | None
) -> _Write:
    """The claim of an absent key (the transactional fast path): a PutItem."""
    return _Write(
        condition="attribute_not_exists(#pk)",
        names={},
        item=_claim_item(owner, lease_expires_at, expiration, bundle_key),
    )


def _claim_item(
    owner: str, lease_expires_at: float, expiration: int, bundle_key: str | None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "status": _IN_PROGRESS,
        "owner": {"S": owner},
        "lease_expires_at": _number(lease_expires_at),
        TTL_ATTRIBUTE: _number(expiration),
    }
    if bundle_key is not None:
        item["pending_bundles"] = {"SS": [bundle_key]}
    return item


def _claim_update(
    owner: str, now: float, lease_expires_at: float, expiration: int, bundle_key: str | None
) -> _Write:
    """The claim that keeps the pending announcements (and adds ours): an UpdateItem."""
    values: dict[str, Any] = {
        ":in_progress": _IN_PROGRESS,
        ":owner": {"S": owner},
        ":now": _number(now),
        ":lease": _number(lease_expires_at),
        ":exp": _number(expiration),
    }
    update = "SET #status = :in_progress, #owner = :owner, #lease = :lease, #exp = :exp"
    names = _names("#status", "#owner", "#lease", "#exp", "#bundle")
    if bundle_key is not None:
        values[":mine"] = {"SS": [bundle_key]}
        names["#pendings"] = _NAMES["#pendings"]
        update += " ADD #pendings :mine"
    return _Write(
        condition=_CLAIMABLE, names=names, values=values, update=update + " REMOVE #bundle"
    )


def _pending_write(owner: str, bundle_key: str) -> _Write:
    return _Write(
        condition=_HELD,
        names=_names("#status", "#owner", "#pendings"),
        values={
            ":in_progress": _IN_PROGRESS,
            ":owner": {"S": owner},
            ":bundle": {"SS": [bundle_key]},
        },
        update="ADD #pendings :bundle",
    )


def _complete_write(owner: str, bundle_key: str, expiration: int) -> _Write:
    # The completed record is fully known: one conditional PutItem replaces it (and drops
    # every announcement).
    return _Write(
        condition=_HELD,
        names=_names("#status", "#owner"),
        values={":in_progress": _IN_PROGRESS, ":owner": {"S": owner}},
        item={
            "status": _COMPLETED,
            "owner": {"S": owner},
            "bundle_key": {"S": bundle_key},
            TTL_ATTRIBUTE: _number(expiration),
        },
    )


def _release_write(owner: str, bundle_key: str | None) -> _Write:
    values: dict[str, Any] = {
        ":in_progress": _IN_PROGRESS,
        ":owner": {"S": owner},
        ":zero": {"N": "0"},
    }
    names = _names("#status", "#owner", "#lease")
    update = "SET #lease = :zero REMOVE #owner"
    if bundle_key is not None:
        # Deleting the last element of a set removes the attribute: a released record
        # with no other announcement is claimed again by the one-PutItem fast path.
        values[":mine"] = {"SS": [bundle_key]}
        names["#pendings"] = _NAMES["#pendings"]
        update += " DELETE #pendings :mine"
    return _Write(condition=_HELD, names=names, values=values, update=update)


def _default_client(max_workers: int, session: Session | BotocoreSession | None) -> DynamoDBClient:
    from botocore.config import Config  # noqa: PLC0415 - deferred: keeps the package cheap

    config = Config(
        max_pool_connections=max(10, max_workers),
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=10,
    )
    try:
        if session is None:
            import boto3  # noqa: PLC0415 - deferred so that importing the package stays cheap

            client: DynamoDBClient = boto3.client("dynamodb", config=config)
        else:
            client = new_client(session, "dynamodb", config)
    except BotoCoreError as exc:
        msg = "cannot create a DynamoDB client (is AWS_REGION / AWS_DEFAULT_REGION set?)"
        raise IdempotencyConfigurationError(
            msg, ErrorCode.IDEMPOTENCY_CLIENT_UNAVAILABLE, {"error_type": type(exc).__name__}
        ) from exc
    return client
