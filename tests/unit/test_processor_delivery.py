"""ReusableProcessor with an in-memory S3 and store: time, store failures, FIFO, direct."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from data_aggregator import LocalContext, ReusableProcessor
from data_aggregator.exceptions import (
    EventParseError,
    IdempotencyStoreError,
    S3ServiceError,
    S3ThrottlingError,
)
from data_aggregator.processor import BatchFailedError, Outcome, Reason
from data_aggregator.testing import sns_event
from tests.processor_fakes import SRC, make_unit_env, outcomes
from tests.processor_support import (
    CountdownContext,
    assert_bundled_once,
    eventbridge_body,
    failed_ids,
    notification,
    redeliver,
    s3_body,
    s3_test_event_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from data_aggregator.context import InvocationContext
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
    """When time runs low mid-batch, the bundle so far is uploaded, the rest fails TIMEOUT
    and holds no lease (released, or never claimed), and a retry bundles the rest once."""
    env = make_unit_env(fetch_concurrency=1)
    objects = [env.put(f"t{i}.txt") for i in range(8)]

    def late(key: str) -> None:
        if key == "t3.txt":  # the 4th read: 56 s pass, below the 5 s guard of a 60 s call
            env.clock.advance(56)

    env.s3.on_get = late
    event = sqs_batch([s3_body(o.record()) for o in objects])
    result = env.run(event, env.context(60))
    bundled = result.count(Outcome.BUNDLED)
    assert bundled < len(objects)
    # Members are written in input order: the bundled records are a prefix.
    assert [r.outcome for r in result.records] == (
        [Outcome.BUNDLED] * bundled + [Outcome.FAILED] * (len(objects) - bundled)
    )
    assert {r.reason for r in result.records[bundled:]} == {Reason.TIMEOUT}
    records = env.store.records()
    for entry in result.records[bundled:]:
        record = records.get(entry.idempotency_key or "")
        assert record is None or (record.owner is None and not record.pending_bundle_keys)
    env.s3.on_get = None
    retry = env.run(redeliver(event, failed_ids(result.response)))
    assert retry.count(Outcome.BUNDLED) == len(objects) - bundled
    assert_bundled_once(env.bundles(), objects)


def test_no_claim_is_started_that_would_answer_after_the_guard() -> None:
    """A claim that took 30 s with 25 s of work left: nothing more is claimed (it would
    answer after the guard, bundle nothing and leave leases for the next delivery); what
    was claimed is bundled, the rest fails TIMEOUT without a store record, and the
    redelivery bundles it once."""
    env = make_unit_env(fetch_concurrency=2)  # chunks of 2 records
    objects = [env.put(f"slow/{i:02d}.txt") for i in range(20)]
    claims: list[int] = []
    claim = env.store.claim

    def slow_first_claim(keys: Any, **kwargs: Any) -> Any:
        keys = list(keys)
        claims.append(len(keys))
        if len(claims) == 1:
            env.clock.advance(30)  # a 60 s call with a 5 s guard: 25 s of work left
        return claim(keys, **kwargs)

    env.store.claim = slow_first_claim  # type: ignore[method-assign]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    result = env.run(event, env.context(60))
    # The lanes may have sent a few chunks before the first answer; none is sent after it.
    assert 1 <= len(claims) <= 4, claims
    bundled = result.count(Outcome.BUNDLED)
    assert 0 < bundled <= 2 * len(claims) < len(objects)
    unclaimed = [r for r in result.records if r.outcome is Outcome.FAILED]
    assert {r.reason for r in unclaimed} == {Reason.TIMEOUT}
    records = env.store.records()
    never_claimed = [r for r in unclaimed if r.idempotency_key not in records]
    assert len(never_claimed) >= len(objects) - 2 * len(claims)
    env.store.claim = claim  # type: ignore[method-assign]
    retry = env.run(redeliver(event, failed_ids(result.response)))
    assert retry.count(Outcome.BUNDLED) == len(objects) - bundled
    assert_bundled_once(env.bundles(), objects)


def test_a_lane_that_comes_free_late_sends_nothing_more() -> None:
    """Three claims in flight at once answer after 30 s of a 55 s work budget: the chunk
    that was waiting for a free lane meanwhile is not sent (measured again first)."""
    env = make_unit_env(fetch_concurrency=2)  # chunks of 2 records, 3 lanes
    objects = [env.put(f"lanes/{i:02d}.txt") for i in range(20)]
    claims: list[int] = []
    all_sent = threading.Barrier(3, timeout=5)
    claim = env.store.claim

    def slow_claims(keys: Any, **kwargs: Any) -> Any:
        keys = list(keys)
        claims.append(len(keys))
        if len(claims) <= 3:
            if all_sent.wait() == 0:  # one of the three moves the clock
                time.sleep(0.2)  # the claimer thread meanwhile waits for a lane
                env.clock.advance(30)
            all_sent.wait()
        return claim(keys, **kwargs)

    env.store.claim = slow_claims  # type: ignore[method-assign]
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]), env.context(60))
    assert claims == [2, 2, 2]
    assert result.count(Outcome.BUNDLED) == 6


class _LooseGuard(ReusableProcessor):
    """A guard overridden to allow work down to 1 s left (the configured one says 5 s)."""

    def process_with_timeout_guard(self, context: InvocationContext) -> bool:
        return bool(context.get_remaining_time_in_millis() > 1_000)


def test_an_overridden_guard_is_in_charge_of_the_claims() -> None:
    """With 4 s left and the guard overridden to go on until 1 s, the records are claimed
    and bundled: the claimer's own time check, computed against the configured 5 s
    threshold, does not hold them back."""
    env = make_unit_env(_LooseGuard, fetch_concurrency=2)
    objects = [env.put(f"loose/{i}.txt") for i in range(6)]
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]), env.context(4.0))
    assert result.count(Outcome.BUNDLED) == len(objects)


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


def test_commit_refused_after_the_deadline_aborts_and_releases() -> None:
    """A bundle whose commit would start after the deadline is never committed: its
    records fail TIMEOUT, their leases are released with the announcement withdrawn, and a
    retry bundles them once."""
    env = make_unit_env(in_flight_bytes_mb=1)
    # p1 is larger than the prefetch budget: the writer opens it itself, after writing p0,
    # and the clock passes the deadline right then, before the commit.
    objects = [env.put("p0.txt"), env.put("p1.txt", b"x" * (1024 * 1024 + 1))]

    def past_deadline(key: str) -> None:
        if key == "p1.txt":
            env.clock.advance(61)  # the 60 s context has ended by the time of the commit

    env.s3.on_get = past_deadline
    event = sqs_batch([s3_body(o.record()) for o in objects])
    result = env.run(event, env.context(60))
    assert {(r.outcome, r.reason) for r in result.records} == {(Outcome.FAILED, Reason.TIMEOUT)}
    causes = {r.error.context.get("cause_code") for r in result.records if r.error is not None}
    assert causes == {"DEADLINE_EXCEEDED"}
    assert env.s3.uploaded == []
    records = env.store.records().values()
    assert {(r.owner, r.pending_bundle_keys) for r in records} == {(None, frozenset())}
    env.s3.on_get = None
    assert env.run(event).count(Outcome.BUNDLED) == 2
    assert_bundled_once(env.bundles(), objects)


def test_claim_outage_fails_every_record_and_touches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the claim raises, every record fails (STORE_ERROR): no read, no upload."""
    env = make_unit_env()
    objects = [env.put(f"o{i}.txt") for i in range(2)]

    def outage(keys: Any, **_: Any) -> NoReturn:
        raise IdempotencyStoreError("store unreachable", "IDEMPOTENCY_UNAVAILABLE")

    monkeypatch.setattr(env.store, "claim", outage)
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]))
    assert [(r.outcome, r.reason) for r in result.records] == [
        (Outcome.FAILED, Reason.STORE_ERROR)
    ] * 2
    assert [r.error.error_code for r in result.records if r.error is not None] == [
        "IDEMPOTENCY_UNAVAILABLE"
    ] * 2
    assert env.s3.gets == []
    assert env.s3.uploaded == []


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
    assert record.pending_bundle_keys == {bundle_key}  # announced by the claim
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
    assert {r.owner is not None and bool(r.pending_bundle_keys) for r in records} == {True}
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


@pytest.mark.parametrize("slow_claim", [False, True])
def test_fifo_claim_failure_stops_the_claiming(
    monkeypatch: pytest.MonkeyPatch, slow_claim: bool
) -> None:
    """On a FIFO queue, a record whose claim fails stops the claiming: no later message is
    claimed or bundled, even when the failing claim is slow to answer (one chunk per
    object here, so a second chunk would be ready to go meanwhile)."""
    env = make_unit_env(fetch_concurrency=1)
    objects = [env.put(f"f{i}.txt") for i in range(3)]
    failing = objects[0].idempotency_key
    env.store.fail["claim"].add(failing)
    if slow_claim:
        check = type(env.store)._check

        def slow(store: Any, operation: str, key: str) -> None:
            if operation == "claim" and key == failing:
                time.sleep(0.3)
            check(store, operation, key)

        monkeypatch.setattr(type(env.store), "_check", slow)
    event = sqs_batch([s3_body(o.record()) for o in objects], queue="bundle-queue.fifo")
    result = env.run(event)
    assert [(r.outcome, r.reason) for r in result.records] == [
        (Outcome.FAILED, Reason.STORE_ERROR),
        (Outcome.FAILED, Reason.FIFO_BLOCKED),
        (Outcome.FAILED, Reason.FIFO_BLOCKED),
    ]
    assert env.s3.uploaded == []
    assert env.store.records() == {}


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
