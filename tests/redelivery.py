"""SQS-style delivery to real `ReusableProcessor` functions, and the exactly-once checks.

`Lambda` plays one function instance (a process, started again after a `Crash`);
`deliver_until_done` sends messages in batches, at least once, to one or more of them
(concurrently when several) and redelivers whatever was not acknowledged, until every
message is. After each round it checks, from the bundles read back from S3
(`BundleShelf`), that each acknowledged record is in the bundle its result names, and the
store agrees; `assert_exactly_once` checks the end state: every object in exactly one
bundle, with its bytes, and its record completed in that bundle.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_aggregator import ReusableProcessor
from data_aggregator.idempotency import InMemoryIdempotencyStore, RecordStatus
from data_aggregator.metrics import NullMetrics
from data_aggregator.processor import Outcome, Reason
from data_aggregator.testing import (
    FakeClock,
    local_context,
    s3_notification,
    sqs_event,
    sqs_message,
)
from tests.faults import Crash, Fault, FaultPlan, FaultyS3Client, FaultyStore, Rule
from tests.processor_fakes import DEST, SRC, FakeLocator, FakeS3Client, unit_config
from tests.processor_support import assert_bundled_once, occurrences, read_bundle

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from data_aggregator.clients import S3Client
    from data_aggregator.config import AppConfig
    from data_aggregator.idempotency import IdempotencyStore
    from data_aggregator.processor import BatchResult
    from data_aggregator.schemas import SQSRecord
    from tests.processor_support import ReadBundle, SourceObject

__all__ = [
    "SCENARIOS",
    "BundleShelf",
    "Delivery",
    "Lambda",
    "Message",
    "World",
    "assert_exactly_once",
    "check_concurrent_duplicate_waits",
    "check_duplicate_window",
    "check_every_fault_at_once",
    "check_late_commit_refused",
    "check_overlapping_batches",
    "deliver_until_done",
    "in_process_world",
    "messages_for",
]

#: Invocations hit by the faults of a scenario: the first two (so one redelivery meets
#: the fault again).
FIRST_TWO = frozenset({1, 2})


def _twice(operation: str, fault: Fault, seconds: float = 0.0) -> Rule:
    return Rule(operation, fault, invocations=FIRST_TWO, seconds=seconds)


#: Named fault schedules, each hitting the first two invocations of a function:
#: ``{name: rules}``. A release happens only for records that were not bundled, so the
#: release faults come with a failed ``GetObject``.
SCENARIOS: dict[str, tuple[Rule, ...]] = {
    # claim
    "crash-after-claim": (_twice("claim", Fault.CRASH_AFTER),),
    "crash-midway-claim": (_twice("claim", Fault.CRASH_MIDWAY),),
    "claim-fails": (_twice("claim", Fault.FAIL),),
    "claim-raises": (_twice("claim", Fault.RAISE),),
    "claim-answer-lost": (_twice("claim", Fault.LOSE_ANSWER),),
    # fetch
    "crash-during-fetch": (_twice("GetObject", Fault.CRASH),),
    "fetch-fails": (_twice("GetObject", Fault.FAIL),),
    "fetch-answer-lost": (_twice("GetObject", Fault.LOSE_ANSWER),),
    # 56 s of a 60 s timeout leave less than the 5 s timeout guard threshold
    "slow-fetch-trips-the-guard": (_twice("GetObject", Fault.DELAY, seconds=56.0),),
    # the upload's commit (one part: PutObject)
    "crash-before-upload": (_twice("PutObject", Fault.CRASH),),
    "upload-fails": (_twice("PutObject", Fault.FAIL),),
    "crash-after-upload": (_twice("PutObject", Fault.CRASH_AFTER),),
    "upload-answer-lost": (_twice("PutObject", Fault.LOSE_ANSWER),),
    "slow-upload": (_twice("PutObject", Fault.DELAY, seconds=30.0),),
    # complete
    "crash-before-complete": (_twice("complete", Fault.CRASH),),
    "crash-during-complete": (_twice("complete", Fault.CRASH_MIDWAY),),
    "crash-after-complete": (_twice("complete", Fault.CRASH_AFTER),),
    "complete-fails": (_twice("complete", Fault.FAIL),),
    "complete-raises": (_twice("complete", Fault.RAISE),),
    "complete-answer-lost": (_twice("complete", Fault.LOSE_ANSWER),),
    # release
    "crash-during-release": (
        _twice("GetObject", Fault.FAIL),
        _twice("release", Fault.CRASH_MIDWAY),
    ),
    "release-fails": (_twice("GetObject", Fault.FAIL), _twice("release", Fault.FAIL)),
    "release-raises": (_twice("GetObject", Fault.FAIL), _twice("release", Fault.RAISE)),
    "release-answer-lost": (
        _twice("GetObject", Fault.FAIL),
        _twice("release", Fault.LOSE_ANSWER),
    ),
}


@dataclass(frozen=True)
class Message:
    """One SQS message: an S3 notification of one object."""

    message_id: str
    source: SourceObject

    def sqs_record(self, receive_count: int = 1) -> SQSRecord:
        """The message as the Lambda event carries it."""
        body = s3_notification([self.source.record()])
        return sqs_message(body, message_id=self.message_id, receive_count=receive_count)


def messages_for(objects: Sequence[SourceObject], duplicates: int = 0) -> list[Message]:
    """One message per object, then ``duplicates`` second notifications of objects spread
    over the list (S3 and SQS deliver some twice, in other batches)."""
    sent = [Message(f"m{index}", obj) for index, obj in enumerate(objects)]
    step = max(1, len(objects) // max(1, duplicates))
    sent += [
        Message(f"dup{index}", objects[(index * step) % len(objects)])
        for index in range(duplicates)
    ]
    return sent


class Lambda:
    """One function instance: ``build()`` makes its processor (around the plan's
    wrappers); after a crash the next invocation runs in a new one, as after a restart.

    Args:
        build: Makes a processor.
        plan: The faults of this instance (`FaultPlan.begin_invocation` is called here).
        clock: The fake clock of the contexts.
        timeout: The function timeout, in seconds.
    """

    def __init__(
        self,
        build: Callable[[], ReusableProcessor],
        plan: FaultPlan,
        clock: FakeClock,
        *,
        timeout: float = 60.0,
    ) -> None:
        self.build = build
        self.plan = plan
        self.clock = clock
        self.timeout = timeout
        self.processor: ReusableProcessor | None = None
        self.crashes = 0

    def invoke(self, messages: Sequence[Message], receive_count: int = 1) -> BatchResult | None:
        """One invocation; its result, or ``None`` if it crashed (nothing acknowledged)."""
        self.plan.begin_invocation()
        if self.processor is None:
            self.processor = self.build()
        event = sqs_event([m.sqs_record(receive_count) for m in messages])
        try:
            return self.processor.process(event, local_context(self.timeout, self.clock))
        except Crash:
            self.processor = None
            self.crashes += 1
            return None


class BundleShelf:
    """The bundles in the destination, read back from S3 and verified.

    Each is read once: bundle keys never repeat, and a stored bundle never changes.

    Args:
        list_keys: The object keys in the destination bucket.
        read: The bytes of one of them.
    """

    def __init__(
        self, list_keys: Callable[[], Iterable[str]], read: Callable[[str], bytes]
    ) -> None:
        self._list_keys = list_keys
        self._read = read
        self._bundles: dict[str, ReadBundle] = {}
        self._lock = threading.Lock()

    def bundles(self) -> list[ReadBundle]:
        """Every bundle stored so far, by key."""
        with self._lock:
            for key in self._list_keys():
                if key not in self._bundles:
                    self._bundles[key] = read_bundle(key, self._read(key))
            return [self._bundles[key] for key in sorted(self._bundles)]

    def holds(self, bundle_key: str, obj: SourceObject) -> bool:
        """Whether bundle ``bundle_key`` is stored and lists ``obj`` in its manifest."""
        found = {bundle.key: bundle for bundle in self.bundles()}.get(bundle_key)
        return found is not None and obj.identity in found.by_identity()


@dataclass
class Delivery:
    """What happened while delivering."""

    invocations: int = 0
    crashes: int = 0
    #: ``(outcome, reason)`` of every record result.
    outcomes: Counter[tuple[Outcome, Reason | None]] = field(default_factory=Counter)


def _check_acknowledged(
    result: BatchResult,
    batch: Sequence[Message],
    shelf: BundleShelf,
    store: IdempotencyStore,
) -> None:
    """Every record of an acknowledged message is in the bundle its result names, and
    completed there in the store."""
    failed = set(result.failed_message_ids)
    by_id = {message.message_id: message for message in batch}
    for record in result.records:
        if record.message_id in failed:
            continue
        message = by_id[record.message_id]
        where = f"{record.message_id}: {record.outcome} {record.reason}"
        assert record.outcome in (Outcome.BUNDLED, Outcome.DUPLICATE), where
        assert record.bundle_key is not None, where
        assert shelf.holds(record.bundle_key, message.source), where
        stored = store.get(message.source.idempotency_key)
        assert stored is not None, where
        assert stored.status is RecordStatus.COMPLETED, (where, stored)
        assert stored.bundle_key == record.bundle_key, (where, stored)


def deliver_until_done(
    functions: Sequence[Lambda],
    messages: Sequence[Message],
    shelf: BundleShelf,
    store: IdempotencyStore,
    *,
    batch_size: int = 10,
    visibility_timeout: float = 360.0,
    max_rounds: int = 50,
) -> Delivery:
    """Deliver ``messages`` like SQS (at least once) until every one is acknowledged.

    Each round splits the queue into batches and deals them round-robin to
    ``functions``, which run at the same time (each its batches in turn); crashed batches
    and failed messages come back after ``visibility_timeout`` seconds of the shared
    clock. Checks every acknowledgement (see the module doc) against ``store``.
    """
    clock = functions[0].clock
    queue = list(messages)
    delivery = Delivery()
    receive_count = 1
    for _ in range(max_rounds):
        if not queue:
            return delivery
        batches = [queue[start : start + batch_size] for start in range(0, len(queue), batch_size)]
        dealt = [batches[index :: len(functions)] for index in range(len(functions))]

        def run(
            function: Lambda, mine: list[list[Message]], count: int
        ) -> list[tuple[list[Message], BatchResult | None]]:
            return [(batch, function.invoke(batch, count)) for batch in mine]

        if len(functions) == 1:
            done = run(functions[0], dealt[0], receive_count)
        else:
            with ThreadPoolExecutor(len(functions)) as pool:
                futures = [
                    pool.submit(run, function, mine, receive_count)
                    for function, mine in zip(functions, dealt, strict=True)
                ]
                done = [pair for future in futures for pair in future.result()]
        queue = []
        for batch, result in done:
            delivery.invocations += 1
            if result is None:
                delivery.crashes += 1
                queue.extend(batch)
                continue
            delivery.outcomes.update((r.outcome, r.reason) for r in result.records)
            _check_acknowledged(result, batch, shelf, store)
            failed = set(result.failed_message_ids)
            queue.extend(m for m in batch if m.message_id in failed)
        clock.advance(visibility_timeout)
        receive_count += 1
    msg = f"messages still unacknowledged after {max_rounds} rounds: {len(queue)}"
    raise AssertionError(msg)


def assert_exactly_once(
    shelf: BundleShelf, objects: Iterable[SourceObject], store: IdempotencyStore
) -> None:
    """Every object is in exactly one stored bundle, with its bytes, nothing else is; its
    record is completed in that bundle."""
    wanted = list(objects)
    bundles = shelf.bundles()
    assert_bundled_once(bundles, wanted)
    for obj in wanted:
        record = store.get(obj.idempotency_key)
        assert record is not None, obj
        assert record.status is RecordStatus.COMPLETED, (obj, record)
        assert record.bundle_key is not None
        assert shelf.holds(record.bundle_key, obj), (obj, record)


@dataclass
class World:
    """The shared side of one test: S3, a store, the bundles, one clock; and functions
    whose processors reach S3 and the store through their own fault plans.

    Attributes:
        config: The processors' configuration.
        s3: The client the `FaultyS3Client` wrappers go around.
        store: The store the `FaultyStore` wrappers go around.
        shelf: The destination's bundles.
        clock: Shared by the processors, the store and the contexts.
        put: Stores a source object (``key``, ``bytes``) and describes it.
    """

    config: AppConfig
    s3: S3Client
    store: IdempotencyStore
    shelf: BundleShelf
    clock: FakeClock
    put: Callable[[str, bytes], SourceObject]

    def function(self, *rules: Rule, config: AppConfig | None = None) -> Lambda:
        """A function instance whose calls go through a new plan of ``rules``
        (``config`` replaces the world's)."""
        plan = FaultPlan(*rules, clock=self.clock)

        def build() -> ReusableProcessor:
            return ReusableProcessor(
                config or self.config,
                s3_client=FaultyS3Client(self.s3, plan),
                store=FaultyStore(self.store, plan),
                metrics=NullMetrics(),
                clock=self.clock,
            )

        return Lambda(build, plan, self.clock)

    def objects(self, count: int, prefix: str = "in") -> list[SourceObject]:
        """``count`` new source objects of a few dozen bytes."""
        return [
            self.put(f"{prefix}/{index}.log", f"line {index}\n".encode() * (index + 1))
            for index in range(count)
        ]


def in_process_world() -> World:
    """A `World` in memory: the in-memory store and an in-process S3 (`FakeS3Client`)."""
    clock = FakeClock()
    s3 = FakeS3Client()
    store = InMemoryIdempotencyStore(clock=clock, bundle_locator=FakeLocator(s3, DEST))
    shelf = BundleShelf(lambda: list(s3.uploaded), lambda key: s3.versions[(DEST, key)][-1].data)
    return World(
        unit_config(),
        s3,
        store,
        shelf,
        clock,
        lambda key, data: s3.put(SRC, key, data),
    )


# ----------------------------------------------------------- scenarios run on every world
# Each runs on any `World` (in memory, or over HTTP with each store kind) and asserts.


def check_every_fault_at_once(world: World, count: int, batch_size: int) -> tuple[Delivery, Lambda]:
    """Each scenario in its own invocation, one after the other: still exactly once."""
    rules = [
        Rule(rule.operation, rule.fault, invocations=frozenset({number}), seconds=rule.seconds)
        for number, scenario in enumerate(sorted(SCENARIOS), start=1)
        for rule in SCENARIOS[scenario]
    ]
    objects = world.objects(count)
    function = world.function(*rules)
    delivery = deliver_until_done(
        [function],
        messages_for(objects, count // 4),
        world.shelf,
        world.store,
        batch_size=batch_size,
    )
    assert_exactly_once(world.shelf, objects, world.store)
    assert delivery.crashes >= 5
    return delivery, function


def check_concurrent_duplicate_waits(world: World) -> None:
    """A duplicate delivered while the first invocation holds the lease is failed, then
    acknowledged as already completed once redelivered."""
    objects = world.objects(4)
    duplicate = [Message("again", objects[0])]
    other = world.function()
    seen: list[BatchResult | None] = []
    function = world.function(
        Rule("claim", Fault.DELAY_ANSWER, meanwhile=lambda: seen.append(other.invoke(duplicate)))
    )
    first = function.invoke(messages_for(objects))
    assert first is not None
    assert first.failed_message_ids == ()
    (during,) = seen
    assert during is not None
    assert [(r.message_id, r.reason) for r in during.records] == [
        ("again", Reason.IN_PROGRESS_ELSEWHERE)
    ]
    world.clock.advance(360)
    retried = other.invoke(duplicate)
    assert retried is not None
    assert [(r.outcome, r.reason) for r in retried.records] == [
        (Outcome.DUPLICATE, Reason.ALREADY_COMPLETED)
    ]
    assert_exactly_once(world.shelf, objects, world.store)


def _upload_stalls_past_the_lease(
    world: World, fault: Fault
) -> tuple[SourceObject, Lambda, BatchResult, BatchResult]:
    """One object; an invocation whose ``PutObject`` is stalled 71 s by ``fault`` (past
    the 60 s deadline and the 10 s margin) while another invocation takes the record over
    and bundles it. Returns the object, the taker, its result and the stalled one's."""
    (obj,) = world.objects(1)
    taker = world.function()
    taken: list[BatchResult | None] = []
    stalled = world.function(
        Rule(
            "PutObject",
            fault,
            seconds=71.0,
            meanwhile=lambda: taken.append(taker.invoke([Message("taker", obj)])),
        )
    )
    late = stalled.invoke([Message("stalled", obj)])
    assert late is not None
    (taker_result,) = taken
    assert taker_result is not None
    assert [r.outcome for r in taker_result.records] == [Outcome.BUNDLED]
    return obj, taker, taker_result, late


def check_duplicate_window(world: World) -> None:
    """A commit sent before the deadline that S3 applies after the lease ended, once
    another invocation took over, duplicates the object (the one window left: a request
    already on the wire); the late invocation's complete is refused, so it does not
    acknowledge its message, and a redelivery finds the record completed in the taker's
    bundle."""
    obj, taker, taker_result, late = _upload_stalls_past_the_lease(world, Fault.LAND_LATE)
    assert [(r.outcome, r.reason) for r in late.records] == [
        (Outcome.FAILED, Reason.COMPLETE_FAILED)
    ]
    bundles = world.shelf.bundles()
    assert occurrences(bundles)[obj.identity] == 2
    holders = sorted(b.key for b in bundles if obj.identity in b.by_identity())
    assert holders == sorted(
        {taker_result.records[0].bundle_key or "", late.records[0].bundle_key or ""}
    )
    record = world.store.get(obj.idempotency_key)
    assert record is not None
    assert record.status is RecordStatus.COMPLETED
    assert record.bundle_key == taker_result.records[0].bundle_key
    world.clock.advance(360)
    redelivered = taker.invoke([Message("stalled", obj)])
    assert redelivered is not None
    assert [(r.reason, r.bundle_key) for r in redelivered.records] == [
        (Reason.ALREADY_COMPLETED, record.bundle_key)
    ]


def check_late_commit_refused(world: World) -> None:
    """See ``test_a_commit_that_would_start_after_the_deadline_is_never_sent``: the
    ``DELAY`` passes before the request would be sent, and the deadline refuses it."""
    obj, _, _, late = _upload_stalls_past_the_lease(world, Fault.DELAY)
    assert [(r.outcome, r.reason) for r in late.records] == [(Outcome.FAILED, Reason.TIMEOUT)]
    assert late.bundles == ()
    assert_exactly_once(world.shelf, [obj], world.store)


def check_overlapping_batches(world: World, scenarios: Sequence[str], count: int) -> None:
    """Function instances at once on overlapping batches (every object announced twice),
    each failing as ``scenarios`` says in its first invocations: still exactly once."""
    objects = world.objects(count)
    functions = [world.function(*SCENARIOS[name]) for name in scenarios]
    sent = messages_for(objects, len(objects))
    deliver_until_done(functions, sent, world.shelf, world.store, batch_size=4)
    assert_exactly_once(world.shelf, objects, world.store)
    assert functions[0].plan.fired
