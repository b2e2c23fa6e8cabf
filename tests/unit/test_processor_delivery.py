"""ReusableProcessor with an in-memory S3 and store: time, store failures, FIFO, direct."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from data_aggregator import LocalContext, ReusableProcessor
from data_aggregator.exceptions import (
    EventParseError,
    IdempotencyStoreError,
    S3ServiceError,
    S3ThrottlingError,
)
from data_aggregator.idempotency import RecordStatus
from data_aggregator.processor import BatchFailedError, Outcome, Reason
from data_aggregator.testing import sns_event
from tests.processor_fakes import SRC, make_unit_env, outcomes
from tests.processor_support import (
    CountdownContext,
    eventbridge_body,
    failed_ids,
    notification,
    redeliver,
    s3_body,
    s3_test_event_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from data_aggregator.schemas import S3EventNotificationRecord


class _AcceptRaises(ReusableProcessor):
    """``accept`` raises for keys containing ``boom``."""

    def accept(self, record: S3EventNotificationRecord) -> bool:
        if "boom" in record.s3.object.original_key:
            raise RuntimeError("accept exploded")
        return True


# ----------------------------------------------------------------------------- time


def test_no_time_left_fails_everything_before_any_call() -> None:
    """Below the guard threshold at the start, every record fails TIMEOUT untouched."""
    env = make_unit_env()
    objects = [env.put(f"t{i}.txt") for i in range(3)]
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]), env.context(2.0))
    assert {r.reason for r in result.records} == {Reason.TIMEOUT}
    assert len(failed_ids(result.response)) == 3
    assert env.store.records() == {}
    assert env.s3.gets == []


def test_timeout_guard_stops_bundling_and_releases_the_rest() -> None:
    """When time runs low mid-batch, the bundle so far is uploaded and the rest released."""
    env = make_unit_env()
    objects = [env.put(f"t{i}.txt") for i in range(5)]
    # Questions: 2 guard checks and the lease before bundling, then one per object.
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]), CountdownContext(5))
    assert [r.outcome for r in result.records] == [Outcome.BUNDLED] * 2 + [Outcome.FAILED] * 3
    assert {r.reason for r in result.records[2:]} == {Reason.TIMEOUT}
    assert failed_ids(result.response) == ["message-2", "message-3", "message-4"]
    released = [r for r in env.store.records().values() if r.status is RecordStatus.IN_PROGRESS]
    assert len(released) == 3
    assert {r.owner for r in released} == {None}


def test_process_with_timeout_guard_uses_the_threshold() -> None:
    """The seed's guard: True only while remaining time exceeds the threshold."""
    processor = make_unit_env().processor
    assert processor.process_with_timeout_guard(CountdownContext(1, plenty=5_001))
    assert not processor.process_with_timeout_guard(CountdownContext(1, plenty=5_000))


# ----------------------------------------------------------------------------- store


def test_store_errors_and_foreign_leases_fail_their_messages() -> None:
    """A claim error and a record held by another invocation fail only their messages."""
    env = make_unit_env()
    ok, throttled, held = env.put("ok.txt"), env.put("throttled.txt"), env.put("held.txt")
    result = env.run(sqs_batch([s3_body(ok.record())]))
    env.store.fail["claim"].add(throttled.idempotency_key)
    env.store.claim(
        [held.idempotency_key], owner="someone-else", lease_expires_at=env.clock() + 600
    )
    event = sqs_batch([s3_body(o.record()) for o in (throttled, held, ok)])
    result = env.run(event)
    assert outcomes(result) == [
        ("message-0", Outcome.FAILED, Reason.STORE_ERROR),
        ("message-1", Outcome.FAILED, Reason.IN_PROGRESS_ELSEWHERE),
        ("message-2", Outcome.DUPLICATE, Reason.ALREADY_COMPLETED),
    ]
    assert failed_ids(result.response) == ["message-0", "message-1"]


def test_refused_pending_mark_aborts_the_bundle_and_releases_it() -> None:
    """If mark_pending fails, nothing is uploaded and the records are claimable at once."""
    env = make_unit_env()
    objects = [env.put(f"p{i}.txt") for i in range(2)]
    env.store.fail["pending"].add(objects[1].idempotency_key)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    result = env.run(event)
    assert {(r.outcome, r.reason) for r in result.records} == {(Outcome.FAILED, Reason.STORE_ERROR)}
    assert {
        (r.error.error_code, r.error.context["cause_code"])
        for r in result.records
        if r.error is not None
    } == {("BUNDLE_COMMIT_HOOK_FAILED", "PENDING_MARK_FAILED")}
    assert env.s3.uploaded == []
    assert {r.owner for r in env.store.records().values()} == {None}
    env.store.fail["pending"].clear()
    assert env.run(event).count(Outcome.BUNDLED) == 2


def test_pending_mark_outage_aborts_the_bundle_and_releases_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If mark_pending raises, the bundle's records fail (STORE_ERROR) and are released."""
    env = make_unit_env()
    objects = [env.put(f"o{i}.txt") for i in range(2)]

    def outage(keys: Any, *, owner: str, bundle_key: str) -> NoReturn:
        raise IdempotencyStoreError("store unreachable", "IDEMPOTENCY_UNAVAILABLE")

    monkeypatch.setattr(env.store, "mark_pending", outage)
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]))
    assert [(r.outcome, r.reason) for r in result.records] == [
        (Outcome.FAILED, Reason.STORE_ERROR)
    ] * 2
    errors = [r.error for r in result.records]
    assert [(e.error_code, e.context["cause_code"]) for e in errors if e is not None] == [
        ("BUNDLE_COMMIT_HOOK_FAILED", "IDEMPOTENCY_UNAVAILABLE")
    ] * 2
    assert env.s3.uploaded == []
    assert {r.owner for r in env.store.records().values()} == {None}


def test_complete_failure_fails_messages_and_recovery_acknowledges_them() -> None:
    """Records in an uploaded bundle whose complete failed are retried and RECOVERED."""
    env = make_unit_env(lease_margin_seconds=10.0)
    objects = [env.put(f"c{i}.txt") for i in range(2)]
    env.store.fail["complete"].add(objects[0].idempotency_key)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    result = env.run(event, env.context(60))
    assert outcomes(result) == [
        ("message-0", Outcome.FAILED, Reason.COMPLETE_FAILED),
        ("message-1", Outcome.BUNDLED, None),
    ]
    bundle_key = result.bundles[0].key
    assert result.records[0].bundle_key == bundle_key
    record = env.store.records()[objects[0].idempotency_key]
    assert record.owner is not None  # never released: it is in an uploaded bundle
    assert record.pending_bundle_key == bundle_key
    env.store.fail["complete"].clear()
    env.clock.advance(71)  # past deadline + margin: SQS redelivers after the visibility timeout
    retry = env.run(redeliver(event, failed_ids(result.response)))
    assert outcomes(retry) == [("message-0", Outcome.DUPLICATE, Reason.RECOVERED)]
    assert retry.records[0].bundle_key == bundle_key
    assert len(env.s3.uploaded) == 1


def test_upload_failure_keeps_announced_leases_until_they_end() -> None:
    """A failed commit fails the bundle's messages; after the leases end, a retry bundles once."""
    env = make_unit_env()
    objects = [env.put(f"u{i}.txt") for i in range(3)]
    env.s3.put_failure = S3ServiceError("InternalError", operation="PutObject")
    event = sqs_batch([s3_body(o.record()) for o in objects])
    result = env.run(event, env.context(60))
    assert {(r.outcome, r.reason) for r in result.records} == {
        (Outcome.FAILED, Reason.UPLOAD_FAILED)
    }
    assert len(failed_ids(result.response)) == 3
    records = env.store.records().values()
    assert {r.owner is not None and r.pending_bundle_key is not None for r in records} == {True}
    env.s3.put_failure = None
    early = env.run(event)
    assert {r.reason for r in early.records} == {Reason.IN_PROGRESS_ELSEWHERE}
    env.clock.advance(71)
    retry = env.run(event)
    assert retry.response == {"batchItemFailures": []}
    assert retry.count(Outcome.BUNDLED) == 3
    assert len(env.s3.uploaded) == 1


# ----------------------------------------------------------------------------- FIFO, direct


def test_fifo_failure_fails_every_later_message_unclaimed() -> None:
    """On a FIFO queue, messages after the first failure fail and are never claimed."""
    env = make_unit_env(_AcceptRaises)
    first, later, last = env.put("first.txt"), env.put("later.txt"), env.put("last.txt")
    bad = env.put("boom-accept.txt")
    event = sqs_batch(
        [s3_body(o.record()) for o in (first, bad, later)]
        + [s3_test_event_body(SRC), s3_body(last.record())],
        queue="bundle-queue.fifo",
    )
    result = env.run(event)
    assert failed_ids(result.response) == [f"message-{i}" for i in range(1, 5)]
    assert result.records[0].outcome is Outcome.BUNDLED
    assert [r.reason for r in result.records[1:]] == [
        Reason.HOOK_FAILED,
        Reason.FIFO_BLOCKED,
        Reason.TEST_EVENT,
        Reason.FIFO_BLOCKED,
    ]
    assert list(env.store.records()) == [first.idempotency_key]


def test_direct_invocation_raises_when_something_failed() -> None:
    """A direct S3 event succeeds quietly, or raises BatchFailedError so Lambda retries."""
    env = make_unit_env()
    ok = env.put("direct.txt")
    context = LocalContext.from_timeout(60, clock=env.clock, aws_request_id="req-async")
    assert env.processor.handle(notification(ok.record()), context) == {"batchItemFailures": []}
    (key,) = env.s3.uploaded
    assert "bundle-req-async-" in key
    assert not key.endswith("bundle-req-async-1.tar.gz")  # a retry must not overwrite it
    slow = env.put("slow.txt")
    env.s3.faults[(SRC, "slow.txt")] = S3ThrottlingError("slow down")
    with pytest.raises(BatchFailedError) as raised:
        env.processor.handle(notification(ok.record(), slow.record()), context)
    assert raised.value.error_code == "BATCH_FAILED"
    assert raised.value.result.count(Outcome.FAILED, Reason.FETCH_FAILED) == 1
    assert raised.value.result.count(Outcome.DUPLICATE) == 1


def test_eventbridge_key_is_confirmed_against_s3() -> None:
    """An EventBridge key with '+' resolves to whichever reading exists in S3."""
    env = make_unit_env()
    literal = env.put("a+b.txt", b"plus")
    decoded = env.put("c d.txt", b"space")
    event = sqs_batch([eventbridge_body(literal), eventbridge_body(decoded, key="c+d.txt")])
    result = env.run(event)
    assert result.response == {"batchItemFailures": []}
    assert env.bundles()[0].by_identity() == {literal.identity: b"plus", decoded.identity: b"space"}


def test_other_direct_envelopes_and_empty_or_unknown_events() -> None:
    """Direct SNS and EventBridge events are bundled; an empty event does nothing; an
    event of no known shape raises EventParseError."""
    env = make_unit_env()
    via_sns, via_eventbridge = env.put("sns.txt"), env.put("eventbridge.txt")
    assert env.processor.handle(sns_event(s3_body(via_sns.record())), env.context()) == {
        "batchItemFailures": []
    }
    direct_eventbridge = json.loads(eventbridge_body(via_eventbridge))
    assert env.processor.handle(direct_eventbridge, env.context()) == {"batchItemFailures": []}
    assert env.processor.last_result is not None
    assert env.processor.last_result.from_sqs is False
    assert {i for b in env.bundles() for i in b.by_identity()} == {
        via_sns.identity,
        via_eventbridge.identity,
    }
    assert env.processor.handle({"Records": []}, env.context()) == {"batchItemFailures": []}
    with pytest.raises(EventParseError):
        env.processor.handle({"unexpected": True}, env.context())
