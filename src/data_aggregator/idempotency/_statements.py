"""The ``"statements"`` batch mode's writes: PartiQL statements, 25 per ``BatchExecuteStatement``.

A ``BatchExecuteStatement`` is not a transaction: each statement succeeds or fails alone
and answers in its own ``Responses`` entry (same order), with an ``Error`` ``Code`` when it
failed, and each costs what the same single-item write costs (one write capacity unit per
KB, a refused one too). What each step sends, and how an answer settles its key:

* claim: ``INSERT`` of the new record, which DynamoDB applies only when no item has the key
  (the common, fresh claim: applied, no previous record). ``DuplicateItem`` (the item
  exists; DynamoDB does not return it) sends the key to the single-item claim, whose wider
  condition (TTL passed, lease over or ours) and returned item settle it as always.
* complete, release, mark_pending: ``UPDATE ... WHERE <key> AND status AND owner``, the
  held-lease condition. ``ConditionalCheckFailed`` with the item
  (``ReturnValuesOnConditionCheckFailure=ALL_OLD``) is settled from it; without an item (no
  record, or an answer without it) the key goes to the single-item write.
* throttling, 5xx and conflicts of one statement: that statement alone is sent again in
  the next round, after a backoff; anything else unclear (validation ...): single write.
* ``AccessDenied`` (the role lacks the statement's IAM action; per statement, or
  ``AccessDeniedException`` for the whole request): nothing was applied; the store writes
  the key the ``"hybrid"`` way, and every later write too (`DynamoDBIdempotencyStore`).

The IAM actions are `PARTIQL_ACTIONS`, ``dynamodb:PartiQLInsert`` and
``dynamodb:PartiQLUpdate`` (and the single-item ``PutItem``/``UpdateItem`` for the keys
written alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from data_aggregator.exceptions import ErrorCode, IdempotencyStoreError
from data_aggregator.idempotency._table import TTL_ATTRIBUTE, configuration_error
from data_aggregator.idempotency._types import RecordStatus, WriteOutcome

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from data_aggregator.idempotency._base import Outcomes
    from data_aggregator.idempotency._types import IdempotencyRecord

__all__ = [
    "MAX_STATEMENTS",
    "PARTIQL_ACTIONS",
    "Statement",
    "StatementReport",
    "claim_insert",
    "complete_update",
    "pending_update",
    "release_update",
    "sort_answers",
    "throttled",
]

#: DynamoDB's limit on statements per ``BatchExecuteStatement``.
MAX_STATEMENTS = 25

# The IAM action of each kind of statement (IAM authorises each statement of a batch).
_INSERT_ACTION = "dynamodb:PartiQLInsert"
_UPDATE_ACTION = "dynamodb:PartiQLUpdate"
#: The IAM actions the statements mode needs on the table, besides the single-item ones.
PARTIQL_ACTIONS = (_INSERT_ACTION, _UPDATE_ACTION)

# Per-statement codes (``BatchStatementError.Code``) worth another round: nothing applied.
_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceeded",
        "ThrottlingError",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)
# A statement refused because the table is missing, and the single-item API's code for it.
_TABLE_NOT_FOUND = "ResourceNotFound"
_TABLE_NOT_FOUND_EXCEPTION = "ResourceNotFoundException"
# A statement refused because the role lacks its IAM action.
_ACCESS_DENIED = "AccessDenied"


def _name(attribute: str) -> str:
    """An attribute name as a PartiQL quoted identifier."""
    return '"' + attribute.replace('"', '""') + '"'


def _literal(attribute: str) -> str:
    """An attribute name as a PartiQL string literal (the keys of a ``VALUE`` tuple)."""
    return "'" + attribute.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Statement:
    """One write, the same for every key of a bulk call: ``text`` with ``?`` placeholders,
    filled by the key (at ``key_at`` among ``values``) and ``values``; ``action`` is the
    IAM action that allows it."""

    text: str
    values: tuple[dict[str, Any], ...]
    key_at: int
    action: str

    def request(self, stored_key: dict[str, Any]) -> dict[str, Any]:
        """The ``BatchStatementRequest`` for the key (as ``_key`` stores it)."""
        values = list(self.values)
        values.insert(self.key_at, stored_key)
        return {
            "Statement": self.text,
            "Parameters": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


@dataclass(slots=True)
class StatementReport:
    """What one ``BatchExecuteStatement`` settled, and which keys still need a write."""

    settled: Outcomes = field(default_factory=dict)
    #: Throttled, failed with a 5xx or met a transaction: not applied, send again.
    retry: dict[str, str] = field(default_factory=dict)  # key -> per-statement code
    #: To be written one by one (exists, no item returned, validation, unclear answer).
    single: list[str] = field(default_factory=list)
    #: Refused for lack of permission (IAM), or not sent because the store no longer
    #: writes in ``"statements"`` mode: not applied, to be written the hybrid way.
    denied: list[str] = field(default_factory=list)
    #: AWS's message for an IAM refusal (it names the denied action and the resource).
    denial_message: str = ""
    #: The exception of an endpoint that could not run PartiQL at all (an emulator): the
    #: keys are ``denied``.
    unsupported: Exception | None = None


def claim_insert(table: str, partition_key: str, item: Mapping[str, Any]) -> Statement:
    """The claim of an absent key: ``INSERT`` of the new record (``item`` without the key)."""
    names = [partition_key, *item]
    pairs = ", ".join(f"{_literal(name)}: ?" for name in names)
    return Statement(
        f"INSERT INTO {_name(table)} VALUE {{{pairs}}}", tuple(item.values()), 0, _INSERT_ACTION
    )


def _held_update(
    table: str,
    partition_key: str,
    owner: str,
    sets: list[tuple[str, str, dict[str, Any]]],
    removes: tuple[str, ...] = (),
) -> Statement:
    """``UPDATE`` applying ``sets`` (attribute, expression over ``?``, value) and
    ``removes`` where ``owner`` holds the record (the held-lease condition)."""
    clauses = [f"SET {_name(name)} = {expression}" for name, expression, _ in sets]
    clauses += [f"REMOVE {_name(name)}" for name in removes]
    where = f"WHERE {_name(partition_key)} = ? AND {_name('status')} = ? AND {_name('owner')} = ?"
    values = [value for _, _, value in sets]
    key_at = len(values)
    values += [{"S": RecordStatus.IN_PROGRESS.value}, {"S": owner}]
    return Statement(
        f"UPDATE {_name(table)} {' '.join(clauses)} {where}", tuple(values), key_at, _UPDATE_ACTION
    )


def complete_update(
    table: str, partition_key: str, owner: str, bundle_key: str, expiration: dict[str, Any]
) -> Statement:
    """The completion: the same record the single-item ``PutItem`` writes (announcements,
    lease and 0.1.0's announcement dropped)."""
    sets: list[tuple[str, str, dict[str, Any]]] = [
        ("status", "?", {"S": RecordStatus.COMPLETED.value}),
        ("bundle_key", "?", {"S": bundle_key}),
        (TTL_ATTRIBUTE, "?", expiration),
    ]
    removes = ("lease_expires_at", "pending_bundles", "pending_bundle_key")
    return _held_update(table, partition_key, owner, sets, removes)


def release_update(table: str, partition_key: str, owner: str, bundle_key: str | None) -> Statement:
    """The release: lease ended, owner removed, and ``bundle_key``'s announcement withdrawn
    (``set_delete`` of the last element removes the attribute, as ``DELETE`` does)."""
    sets: list[tuple[str, str, dict[str, Any]]] = [("lease_expires_at", "?", {"N": "0"})]
    if bundle_key is not None:
        sets.append(("pending_bundles", 'set_delete("pending_bundles", ?)', {"SS": [bundle_key]}))
    return _held_update(table, partition_key, owner, sets, ("owner",))


def pending_update(table: str, partition_key: str, owner: str, bundle_key: str) -> Statement:
    """The announcement: ``bundle_key`` added to the record's set (created if absent)."""
    sets = [("pending_bundles", 'set_add("pending_bundles", ?)', {"SS": [bundle_key]})]
    return _held_update(table, partition_key, owner, sets)


def sort_answers(
    keys: list[str],
    responses: list[Mapping[str, Any]],
    parse: Callable[[str, Mapping[str, Any] | None], IdempotencyRecord | None],
    *,
    table_name: str,
) -> StatementReport:
    """Sort one batch's answers (``Responses``, in the order of ``keys``) into a report.

    Raises:
        IdempotencyConfigurationError: A statement failed because the table is missing:
            every key would.
    """
    report = StatementReport()
    if len(responses) != len(keys):  # no usable answer: write each key alone
        report.single.extend(keys)
        return report
    for key, response in zip(keys, responses, strict=True):
        error = response.get("Error")
        if not error:
            report.settled[key] = WriteOutcome(applied=True)
            continue
        code = str(error.get("Code") or "")
        item = error.get("Item")
        if code == "ConditionalCheckFailed" and item:
            report.settled[key] = WriteOutcome(applied=False, record=parse(key, item))
        elif code in _RETRYABLE:
            report.retry[key] = code
        elif code == _ACCESS_DENIED:
            report.denied.append(key)
            report.denial_message = report.denial_message or str(error.get("Message") or "")
        elif code == _TABLE_NOT_FOUND:
            context = {"table_name": table_name, "aws_error_code": code, "idempotency_key": key}
            missing = configuration_error(_TABLE_NOT_FOUND_EXCEPTION, table_name, context)
            if missing is not None:
                raise missing
            report.single.append(key)
        else:  # DuplicateItem, a refusal without its item, validation ...
            report.single.append(key)
    return report


def throttled(key: str, code: str, table_name: str) -> IdempotencyStoreError:
    """The error of a key whose statement was still throttled after the last round."""
    return IdempotencyStoreError(
        "DynamoDB throttled or failed the request after retries",
        ErrorCode.IDEMPOTENCY_THROTTLED,
        {"table_name": table_name, "aws_error_code": code, "idempotency_key": key},
    )
