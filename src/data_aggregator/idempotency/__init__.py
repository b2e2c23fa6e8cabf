"""Idempotency: per-record leases so that nothing is lost and nothing is bundled twice.

S3 and SQS both deliver at least once, so one object can reach the Lambda several times,
and a backfill or a Step Functions Map run may announce it again. Each record is
identified by
[`record_idempotency_key`][data_aggregator.idempotency.record_idempotency_key]: its
content key ([`make_content_key`][data_aggregator.idempotency.make_content_key]: bucket,
exact key, ETag, size), the same whichever path announced the object, or, for a record
without an ETag or size, the user's own formula from the project conventions
([`make_idempotency_key`][data_aggregator.idempotency.make_idempotency_key], kept
exactly). Each goes through a store:

```text
claim(bundle_key=K) ──► upload bundle K ──► complete(K)
  └── not in K ──► release(bundle_key=K)
```

The claim takes the lease and announces ``K`` in one write, so each bundled record costs
two writes; after a crash, the next claimer asks a
[`BundleLocator`][data_aggregator.idempotency.BundleLocator] whether an announced bundle
holds the record before bundling it again.

* [`IdempotencyStore`][data_aggregator.idempotency.IdempotencyStore]: the bulk API and the base
  class of every store;
* [`InMemoryIdempotencyStore`][data_aggregator.idempotency.InMemoryIdempotencyStore]: for tests
  and local runs;
* [`DynamoDBIdempotencyStore`][data_aggregator.idempotency.DynamoDBIdempotencyStore] and
  [`create_idempotency_table`][data_aggregator.idempotency.create_idempotency_table]: production
  (imported on first use, so that importing this module does not import boto3), with
  ``batch_mode="hybrid"`` (the constructor's default: claims one request per key,
  completions batched), ``"single"``, ``"transact"`` or ``"statements"`` (`BatchMode`);
  ``from_config`` reads ``IDEMPOTENCY_BATCH_MODE``, whose default ``"auto"`` is
  ``"statements"`` on AWS's own endpoints and ``"hybrid"`` on any other;
* [`BundleLocator`][data_aggregator.idempotency.BundleLocator] (protocol),
  [`InMemoryBundleLocator`][data_aggregator.idempotency.InMemoryBundleLocator] and
  [`S3ManifestBundleLocator`][data_aggregator.idempotency.S3ManifestBundleLocator]: crash
  recovery, "is this record already in bundle K?";
* [`lease_expiry`][data_aggregator.idempotency.lease_expiry] /
  [`lease_expiry_from_context`][data_aggregator.idempotency.lease_expiry_from_context]: a lease
  that ends when the invocation can no longer finish.

``docs/delivery-semantics.md`` states what is guaranteed. Create a local table with:

```bash
python -m data_aggregator.idempotency create-table --table-name my-table
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_aggregator import _lazy
from data_aggregator.idempotency._base import IdempotencyStore, claim_allowed, held_by
from data_aggregator.idempotency._keys import (
    CONTENT_KEY_MAX_BYTES,
    make_content_key,
    make_idempotency_key,
    member_idempotency_keys,
    object_idempotency_key,
    record_idempotency_key,
)
from data_aggregator.idempotency._types import (
    DEFAULT_LEASE_MARGIN_SECONDS,
    DEFAULT_TTL_SECONDS,
    BatchMode,
    BundleLocator,
    ClaimResult,
    ClaimStatus,
    IdempotencyRecord,
    InMemoryBundleLocator,
    RecordStatus,
    UpdateResult,
    UpdateStatus,
    WriteOutcome,
    lease_expiry,
    lease_expiry_from_context,
)

if TYPE_CHECKING:
    from data_aggregator.idempotency._dynamodb import (
        DynamoDBIdempotencyStore,
        DynamoDBStoreSettings,
    )
    from data_aggregator.idempotency._memory import InMemoryIdempotencyStore
    from data_aggregator.idempotency._recovery import LocatorSettings, S3ManifestBundleLocator
    from data_aggregator.idempotency._table import create_idempotency_table, main

__all__ = [
    "CONTENT_KEY_MAX_BYTES",
    "DEFAULT_LEASE_MARGIN_SECONDS",
    "DEFAULT_TTL_SECONDS",
    "BatchMode",
    "BundleLocator",
    "ClaimResult",
    "ClaimStatus",
    "DynamoDBIdempotencyStore",
    "DynamoDBStoreSettings",
    "IdempotencyRecord",
    "IdempotencyStore",
    "InMemoryBundleLocator",
    "InMemoryIdempotencyStore",
    "LocatorSettings",
    "RecordStatus",
    "S3ManifestBundleLocator",
    "UpdateResult",
    "UpdateStatus",
    "WriteOutcome",
    "claim_allowed",
    "create_idempotency_table",
    "held_by",
    "lease_expiry",
    "lease_expiry_from_context",
    "main",
    "make_content_key",
    "make_idempotency_key",
    "member_idempotency_keys",
    "object_idempotency_key",
    "record_idempotency_key",
]

# Names whose modules import botocore, or that a Lambda's first invocation does not use:
# loaded on first attribute access (``main`` is ``python -m data_aggregator.idempotency``).
_LAZY: dict[str, str] = {
    "InMemoryIdempotencyStore": "data_aggregator.idempotency._memory",
    "DynamoDBIdempotencyStore": "data_aggregator.idempotency._dynamodb",
    "DynamoDBStoreSettings": "data_aggregator.idempotency._dynamodb",
    "create_idempotency_table": "data_aggregator.idempotency._table",
    "main": "data_aggregator.idempotency._table",
    "S3ManifestBundleLocator": "data_aggregator.idempotency._recovery",
    "LocatorSettings": "data_aggregator.idempotency._recovery",
}

__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _LAZY)
