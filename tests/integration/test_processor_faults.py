"""ReusableProcessor under faults, over moto's server: S3 reads, uploads, the store, hooks.

Faults are injected with botocore hooks on the processor's own clients (the set-up and
read-back client stays clean), exactly where a network or service failure would surface.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import pytest

from data_aggregator import ReusableProcessor
from data_aggregator.config import MIB
from data_aggregator.idempotency import RecordStatus
from data_aggregator.processor import Outcome, Reason
from tests.integration._processor_env import dynamodb_error
from tests.integration._s3_hooks import error_response, inject, part_number
from tests.processor_support import (
    assert_bundled_once,
    eventbridge_body,
    failed_ids,
    redeliver,
    s3_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

    from data_aggregator.bundle import BundleSummary
    from data_aggregator.schemas import S3EventNotificationRecord
    from tests.integration._processor_env import ProcessorEnv

pytestmark = pytest.mark.integration


def test_failing_gets_fail_only_their_messages(make_env: Callable[..., ProcessorEnv]) -> None:
    """Throttled and 5xx GETs fail only their messages; a retry bundles them, once."""
    env = make_env(retries=False)
    objects = [env.put(f"get/{name}.txt") for name in ("a", "throttled", "b", "broken", "c")]
    faults = {"throttled": (503, "SlowDown"), "broken": (500, "InternalError")}

    def fault(request: AWSPreparedRequest) -> AWSResponse | None:
        for name, (status, code) in faults.items():
            if request.url.endswith(f"/get/{name}.txt"):
                return error_response(request, status, code)
        return None

    inject(env.processor_s3, "GetObject", fault)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert failed_ids(env.handle(event)) == ["message-1", "message-3"]
    assert {r.reason for r in env.last.records if r.failed} == {Reason.FETCH_FAILED}
    throttled_error = env.last.records[1].error
    assert throttled_error is not None
    assert throttled_error.error_code == "S3_THROTTLED"
    assert_bundled_once(env.bundles(), [objects[0], objects[2], objects[4]])
    faults.clear()
    assert env.handle(redeliver(event, ["message-1", "message-3"])) == {"batchItemFailures": []}
    assert_bundled_once(env.bundles(), objects)


@pytest.mark.parametrize("operation", ["UploadPart", "CompleteMultipartUpload"])
def test_upload_failure_fails_the_bundle_and_leaves_nothing(
    make_env: Callable[..., ProcessorEnv], operation: str
) -> None:
    """A failed multipart upload fails every message of its bundle, leaves no upload
    open, and once the leases have ended a redelivery bundles each object once."""
    env = make_env(retries=False)
    rng = random.Random(5)
    objects = [env.put(f"big/{i}.bin", rng.randbytes(2 * MIB)) for i in range(3)]
    failing = [True]

    def fault(request: AWSPreparedRequest) -> AWSResponse | None:
        if failing[0] and (operation != "UploadPart" or part_number(request) == 1):
            return error_response(request, 500, "InternalError")
        return None

    inject(env.processor_s3, operation, fault)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert failed_ids(env.handle(event, env.context(120))) == [
        "message-0",
        "message-1",
        "message-2",
    ]
    assert {r.reason for r in env.last.records} == {Reason.UPLOAD_FAILED}
    assert env.open_multipart_uploads() == []
    assert env.bundles() == []
    records = [env.store.get(o.idempotency_key) for o in objects]
    assert {r.status if r else None for r in records} == {RecordStatus.IN_PROGRESS}
    if operation == "CompleteMultipartUpload":  # the commit was tried: leases are kept
        assert {r.owner is not None and bool(r.pending_bundle_keys) for r in records if r} == {True}
    failing[0] = False
    env.clock.advance(200)  # past every lease (deadline + margin); SQS redelivers later still
    assert env.handle(redeliver(event, failed_ids(env.last.response))) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 3
    assert_bundled_once(env.bundles(), objects)
    assert env.open_multipart_uploads() == []


def test_throttled_store_fails_only_its_records(make_env: Callable[..., ProcessorEnv]) -> None:
    """DynamoDB throttling on one record's claim fails its message; the rest is bundled."""
    env = make_env()
    objects = [env.put(f"store/{i}.txt") for i in range(3)]
    throttled = {objects[1].idempotency_key}

    def throttle(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if any(key in body for key in throttled):
            return dynamodb_error(request, 400, "ProvisionedThroughputExceededException")
        return None

    for operation in ("PutItem", "UpdateItem"):
        env.dynamodb.meta.events.register(
            f"before-send.dynamodb.{operation}", cast("Any", throttle)
        )
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert failed_ids(env.handle(event)) == ["message-1"]
    error = env.last.records[1].error
    assert env.last.records[1].reason is Reason.STORE_ERROR
    assert error is not None
    assert error.retryable
    assert_bundled_once(env.bundles(), [objects[0], objects[2]])
    throttled.clear()
    assert env.handle(redeliver(event, ["message-1"])) == {"batchItemFailures": []}
    assert_bundled_once(env.bundles(), objects)


class _Fragile(ReusableProcessor):
    """Hooks that raise for some keys, and a notification hook that always raises."""

    def accept(self, record: S3EventNotificationRecord) -> bool:
        if "accept-raises" in record.s3.object.original_key:
            raise KeyError("accept")
        return True

    def member_name(self, record: S3EventNotificationRecord) -> str:
        if "name-raises" in record.s3.object.original_key:
            raise ValueError("member_name")
        return super().member_name(record)

    def on_bundle_written(
        self, bundle: BundleSummary, records: Sequence[S3EventNotificationRecord]
    ) -> None:
        raise RuntimeError("downstream is down")


def test_raising_hooks_fail_only_their_records(make_env: Callable[..., ProcessorEnv]) -> None:
    """accept/member_name raising fail their records only; on_bundle_written fails none."""
    env = make_env(cls=_Fragile)
    objects = [env.put(f"hooks/{n}.txt") for n in ("ok-1", "accept-raises", "name-raises", "ok-2")]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert failed_ids(env.handle(event)) == ["message-1", "message-2"]
    assert [r.reason for r in env.last.records] == [
        None,
        Reason.HOOK_FAILED,
        Reason.HOOK_FAILED,
        None,
    ]
    assert [env.store.get(o.idempotency_key) for o in objects[1:3]] == [None, None]
    assert_bundled_once(env.bundles(), [objects[0], objects[3]])


def test_eventbridge_ambiguous_keys_resolve_to_the_existing_object(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """EventBridge keys with '+' or a space resolve by size/ETag to the object in S3."""
    env = make_env()
    literal = env.put("eb/plus+sign.txt", b"literal plus")
    spaced = env.put("eb/space key.txt", b"a space, sent as '+'")
    both_literal = env.put("eb/twin+key.txt", b"the literal twin")
    both_spaced = env.put("eb/twin key.txt", b"the twin with a space, longer")
    event = sqs_batch(
        [
            eventbridge_body(literal),
            eventbridge_body(spaced, key="eb/space+key.txt"),
            eventbridge_body(both_spaced, key="eb/twin+key.txt"),
            eventbridge_body(both_literal, key=quote("eb/twin+key.txt", safe="/")),
        ]
    )
    assert env.handle(event) == {"batchItemFailures": []}
    assert [r.record.s3.object.original_key for r in env.last.records if r.record] == [
        literal.key,
        spaced.key,
        both_spaced.key,
        both_literal.key,
    ]
    assert_bundled_once(env.bundles(), [literal, spaced, both_spaced, both_literal])
