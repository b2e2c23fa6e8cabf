"""ReusableProcessor over moto's server: the timeout guard, redelivery loops, crashes.

Time is a fake clock shared by the processor, the store and the contexts: a hook on the
processor's ``GetObject`` requests advances it, and tests let leases run out by moving it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.processor import Outcome, Reason
from tests.integration._processor_env import Crash, CrashOnComplete
from tests.processor_support import (
    assert_bundled_once,
    failed_ids,
    occurrences,
    redeliver,
    s3_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from botocore.awsrequest import AWSPreparedRequest

    from tests.integration._processor_env import ProcessorEnv

pytestmark = pytest.mark.integration


def _slow_gets(env: ProcessorEnv, seconds: float) -> None:
    """Every GetObject of the processor takes ``seconds`` of fake time."""

    def advance(request: AWSPreparedRequest, **_: Any) -> None:
        env.clock.advance(seconds)

    env.processor_s3.meta.events.register("before-send.s3.GetObject", advance)


def test_timeout_guard_returns_in_time_and_redelivery_converges(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Slow fetches trip the guard: handle() returns before the deadline with the rest
    failed and released; redelivering the failures converges, each object bundled once."""
    # One fetch at a time, so the fake clock moves 5 s per object whatever the server's
    # speed: with more, every fetch in the prefetch window starts (and moves the clock)
    # before the guard is first checked.
    env = make_env(timeout_guard_threshold_seconds=30.0, fetch_concurrency=1)
    objects = [env.put(f"slow/{i}.txt") for i in range(8)]
    _slow_gets(env, 5.0)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    deadline = env.clock() + 60
    context = env.context(60)
    failed = failed_ids(env.handle(event, context))
    assert env.clock() < deadline
    assert context.get_remaining_time_in_millis() > 0
    timed_out = [r for r in env.last.records if r.reason is Reason.TIMEOUT]
    assert timed_out  # the last object is never reached: 7 fetches leave <= 25 s
    assert env.last.count(Outcome.BUNDLED) >= 1
    assert failed == [r.message_id for r in timed_out]
    for result in timed_out:
        record = env.store.get(result.idempotency_key or "")
        assert record is None or record.owner is None  # unclaimed or released
    for _ in range(10):
        if not failed:
            break
        failed = failed_ids(env.handle(redeliver(event, failed), env.context(60)))
    assert failed == []
    assert_bundled_once(env.bundles(), objects)
    assert env.handle(event) == {"batchItemFailures": []}  # and a late duplicate adds nothing
    assert_bundled_once(env.bundles(), objects)


def test_crash_after_upload_is_recovered_without_a_second_copy(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Killed after the upload, before complete: after the leases end, the redelivery
    finds the records in the crashed bundle (RECOVERED) and bundles nothing again."""
    env = make_env(store_class=CrashOnComplete, lease_margin_seconds=10.0)
    assert isinstance(env.store, CrashOnComplete)
    objects = [env.put(f"crash/{i}.txt") for i in range(3)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    with pytest.raises(Crash):
        env.processor.handle(event, env.context(60))
    (crashed,) = env.bundles()
    assert_bundled_once([crashed], objects)
    env.store.crash = False
    assert len(failed_ids(env.handle(event))) == 3  # leases still live: retried later
    assert {r.reason for r in env.last.records} == {Reason.IN_PROGRESS_ELSEWHERE}
    env.clock.advance(71)  # deadline + margin have passed
    assert env.handle(event) == {"batchItemFailures": []}
    assert {(r.outcome, r.reason) for r in env.last.records} == {
        (Outcome.DUPLICATE, Reason.RECOVERED)
    }
    assert {r.bundle_key for r in env.last.records} == {crashed.key}
    assert_bundled_once(env.bundles(), objects)


def test_crash_during_upload_is_bundled_once_after_the_leases_end(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Killed while uploading (pending mark set, no bundle): the redelivery after the
    leases end checks the announced bundle, finds nothing and bundles each object once."""
    env = make_env(lease_margin_seconds=10.0)
    objects = [env.put(f"dying/{i}.txt") for i in range(3)]
    dying = [True]

    def kill(request: AWSPreparedRequest, **_: Any) -> None:
        if dying[0]:
            raise Crash

    env.processor_s3.meta.events.register("before-send.s3.PutObject", kill)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    with pytest.raises(Crash):
        env.processor.handle(event, env.context(60))
    assert env.bundles() == []
    records = [env.store.get(o.idempotency_key) for o in objects]
    pending = {record.pending_bundle_keys if record else None for record in records}
    assert len(pending) == 1
    assert None not in pending
    assert frozenset() not in pending
    dying[0] = False
    env.clock.advance(71)
    assert env.handle(event) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 3
    assert_bundled_once(env.bundles(), objects)
    assert max(occurrences(env.bundles()).values()) == 1
