"""The real ReusableProcessor under injected faults, in memory: the in-memory store and an
in-process S3 (``tests/processor_fakes.py``), wrapped by ``tests/faults.py``.

Each test delivers SQS messages like SQS does (``tests/redelivery.py``): at least once,
failed and crashed batches again after the visibility timeout. Every acknowledgement is
checked against the bundles read back from S3 and against the store; at the end every
object is in exactly one bundle. ``tests/integration/test_idempotency_fault_injection.py``
runs the same scenarios over moto's S3 and DynamoDB.
"""

from __future__ import annotations

import pytest

from data_aggregator.idempotency import RecordStatus
from data_aggregator.processor import Outcome, Reason
from tests.faults import Fault, Rule
from tests.processor_fakes import unit_config
from tests.redelivery import (
    SCENARIOS,
    assert_exactly_once,
    check_concurrent_duplicate_waits,
    check_duplicate_window,
    check_every_fault_at_once,
    check_overlapping_batches,
    deliver_until_done,
    in_process_world,
    messages_for,
)

#: Scenarios whose crashed or unanswered commit leaves a bundle that a redelivery must
#: recover rather than bundle again.
RECOVERING = {
    "crash-after-upload",
    "upload-answer-lost",
    "crash-before-complete",
    "crash-during-complete",
    "complete-fails",
    "complete-raises",
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_fault_then_redelivery_bundles_every_object_once(scenario: str) -> None:
    """A fault at any step in the first two invocations loses nothing and bundles
    nothing twice; each fault did fire."""
    world = in_process_world()
    objects = world.objects(12)
    function = world.function(*SCENARIOS[scenario])
    delivery = deliver_until_done(
        [function], messages_for(objects, 3), world.shelf, world.store, batch_size=5
    )
    assert_exactly_once(world.shelf, objects, world.store)
    fired = {(rule.operation, rule.fault) for rule in SCENARIOS[scenario]}
    assert set(function.plan.faults()) == fired
    assert {f.invocation for f in function.plan.fired} == {1, 2}
    if scenario in RECOVERING:
        assert delivery.outcomes[Outcome.DUPLICATE, Reason.RECOVERED] > 0
    if scenario == "slow-fetch-trips-the-guard":
        assert delivery.outcomes[Outcome.FAILED, Reason.TIMEOUT] > 0


def test_every_fault_at_once_across_invocations() -> None:
    """Each scenario in its own invocation, one after the other: still exactly once."""
    _, function = check_every_fault_at_once(in_process_world(), count=20, batch_size=3)
    assert len({f.invocation for f in function.plan.fired}) >= len(SCENARIOS) // 2


def test_failed_fetch_releases_the_lease_for_an_immediate_retry() -> None:
    """A record that could not be fetched is released: a redelivery at once (before
    its lease would have ended) bundles it."""
    world = in_process_world()
    objects = world.objects(3)
    function = world.function(Rule("GetObject", Fault.FAIL, invocations=frozenset({1})))
    sent = messages_for(objects)
    first = function.invoke(sent)
    assert first is not None
    (failed,) = first.failed_message_ids
    assert [r.reason for r in first.records if r.failed] == [Reason.FETCH_FAILED]
    retry = [m for m in sent if m.message_id == failed]
    record = world.store.get(retry[0].source.idempotency_key)
    assert record is not None
    assert record.owner is None
    second = function.invoke(retry)
    assert second is not None
    assert [r.outcome for r in second.records] == [Outcome.BUNDLED]
    assert_exactly_once(world.shelf, objects, world.store)


def test_commit_without_answer_keeps_the_leases_then_is_recovered() -> None:
    """A commit whose answer is lost may have stored the bundle (here it did): its
    records keep their leases and pending mark; once the leases end, the redelivery
    finds them in that bundle instead of bundling them again."""
    world = in_process_world()
    objects = world.objects(3)
    function = world.function(Rule("PutObject", Fault.LOSE_ANSWER, invocations=frozenset({1})))
    sent = messages_for(objects)
    first = function.invoke(sent)
    assert first is not None
    assert {r.reason for r in first.records} == {Reason.UPLOAD_FAILED}
    (stored,) = world.shelf.bundles()
    for obj in objects:
        record = world.store.get(obj.idempotency_key)
        assert record is not None
        assert record.status is RecordStatus.IN_PROGRESS
        assert record.owner is not None
        assert record.pending_bundle_keys == {stored.key}
    early = function.invoke(sent)
    assert early is not None
    assert {r.reason for r in early.records} == {Reason.IN_PROGRESS_ELSEWHERE}
    world.clock.advance(71)  # the 60 s deadline and the 10 s margin have passed
    late = function.invoke(sent)
    assert late is not None
    assert {(r.outcome, r.reason, r.bundle_key) for r in late.records} == {
        (Outcome.DUPLICATE, Reason.RECOVERED, stored.key)
    }
    assert_exactly_once(world.shelf, objects, world.store)


def test_crash_after_the_first_of_several_bundles() -> None:
    """Killed after the first bundle's commit, with more to write: the redelivery recovers
    the first bundle's records and bundles the rest once."""
    world = in_process_world()
    objects = [world.put(f"big/{i}.bin", bytes([i]) * 400_000) for i in range(6)]
    function = world.function(
        Rule("PutObject", Fault.CRASH_AFTER, invocations=frozenset({1})),
        config=unit_config(max_bundle_size_mb=1),
    )
    delivery = deliver_until_done([function], messages_for(objects), world.shelf, world.store)
    assert function.crashes == 1
    assert delivery.outcomes[Outcome.DUPLICATE, Reason.RECOVERED] == 2
    assert len(world.shelf.bundles()) == 3
    assert_exactly_once(world.shelf, objects, world.store)


def test_concurrent_duplicate_waits_for_the_live_lease() -> None:
    """A duplicate met by a live lease fails, then is acknowledged as already completed."""
    check_concurrent_duplicate_waits(in_process_world())


def test_commit_after_the_lease_ended_is_the_duplicate_window() -> None:
    """A commit after its lease ended duplicates the object; the late invocation does not
    acknowledge it, and a redelivery finds it completed in the taker's bundle."""
    check_duplicate_window(in_process_world())


#: Fault scenarios of three function instances running at once; the first one's claim
#: fault fires whatever the interleaving (its first batch always has records to claim).
CONCURRENT = [
    ("crash-after-claim", "crash-after-upload", "crash-during-complete"),
    ("claim-answer-lost", "upload-answer-lost", "crash-during-fetch"),
    ("crash-midway-claim", "crash-during-release", "complete-fails"),
]


@pytest.mark.parametrize("scenarios", CONCURRENT, ids="+".join)
def test_concurrent_overlapping_batches_with_crashes(scenarios: tuple[str, ...]) -> None:
    """Three function instances at once on overlapping batches, each failing somewhere in
    its first invocations: still exactly once."""
    check_overlapping_batches(in_process_world(), scenarios, count=18)
