"""ReusableProcessor with an in-memory S3 and store: outcomes, hooks, metrics, logs."""

from __future__ import annotations

import json
import logging
import random
from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator import LocalContext, ReusableProcessor
from data_aggregator.exceptions import (
    ConfigurationError,
    HookError,
    S3AccessDeniedError,
    S3ThrottlingError,
)
from data_aggregator.idempotency import InMemoryIdempotencyStore, RecordStatus
from data_aggregator.metrics import EmfMetrics, NullMetrics
from data_aggregator.processor import Outcome, Reason
from data_aggregator.testing import FakeClock
from tests.processor_fakes import (
    DEST,
    SRC,
    FakeS3Client,
    LineCapture,
    make_unit_env,
    outcomes,
    unit_config,
)
from tests.processor_support import (
    SourceObject,
    failed_ids,
    redeliver,
    s3_body,
    s3_test_event_body,
    sqs_batch,
)
from tests.typing.processor_api import PartnerDropBundler

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from data_aggregator.bundle import BundleSummary
    from data_aggregator.config import AppConfig
    from data_aggregator.schemas import S3EventNotificationRecord


# ----------------------------------------------------------------------------- basics


def test_bundles_every_record_and_reports_no_failure() -> None:
    """Objects of every message land in one bundle with their exact bytes; nothing fails."""
    env = make_unit_env()
    objects = [env.put(key) for key in ("a b.txt", "c+d.txt", "e%f.txt", "日本/x.json")]
    result = env.run(sqs_batch([s3_body(obj.record()) for obj in objects]))
    assert result.response == {"batchItemFailures": []}
    assert result.count(Outcome.BUNDLED) == 4
    (bundle,) = env.bundles()
    assert bundle.by_identity() == {obj.identity: obj.data for obj in objects}
    assert [r.member_name for r in result.records] == [m.name for m in bundle.manifest.members]
    assert env.processor.last_result is result


def test_message_level_outcomes_and_exact_failures() -> None:
    """Test events and other event types are acknowledged; bad bodies and buckets fail."""
    env = make_unit_env(source_bucket_allowlist=frozenset({SRC}))
    good = env.put("good.txt")
    foreign = SourceObject("other-bucket", "x.txt", b"x", "0" * 32)
    deleted = {**good.record(), "eventName": "ObjectRemoved:Delete"}
    event = sqs_batch(
        [
            s3_body(good.record()),
            s3_test_event_body(SRC),
            "{not json",
            s3_body(deleted),
            s3_body(foreign.record()),
        ]
    )
    result = env.run(event)
    assert outcomes(result) == [
        ("message-0", Outcome.BUNDLED, None),
        ("message-1", Outcome.SKIPPED, Reason.TEST_EVENT),
        ("message-2", Outcome.FAILED, Reason.INVALID_MESSAGE),
        ("message-3", Outcome.SKIPPED, Reason.IGNORED_EVENT_TYPE),
        ("message-4", Outcome.FAILED, Reason.BUCKET_NOT_ALLOWED),
    ]
    assert failed_ids(result.response) == ["message-2", "message-4"]
    assert result.records[4].error is not None
    assert result.records[4].error.error_code == "BUCKET_NOT_ALLOWED"


def test_same_record_twice_in_a_batch_is_bundled_once() -> None:
    """A record repeated in a batch is bundled once; the copy is a DUPLICATE_IN_BATCH."""
    env = make_unit_env()
    obj = env.put("twice.txt")
    result = env.run(sqs_batch([s3_body(obj.record()), s3_body(obj.record())]))
    assert outcomes(result) == [
        ("message-0", Outcome.BUNDLED, None),
        ("message-1", Outcome.DUPLICATE, Reason.DUPLICATE_IN_BATCH),
    ]
    assert result.records[1].bundle_key == result.records[0].bundle_key
    assert len(env.bundles()[0].members) == 1


def test_redelivery_is_all_duplicates_and_uploads_nothing() -> None:
    """A batch delivered again is acknowledged as ALREADY_COMPLETED without a new bundle."""
    env = make_unit_env()
    objects = [env.put(f"k{i}.txt") for i in range(3)]
    event = sqs_batch([s3_body(obj.record()) for obj in objects])
    first = env.run(event)
    second = env.run(event)
    assert second.response == {"batchItemFailures": []}
    assert {r.reason for r in second.records} == {Reason.ALREADY_COMPLETED}
    assert {r.bundle_key for r in second.records} == {first.bundles[0].key}
    assert len(env.s3.uploaded) == 1
    assert second.bundles == ()


def test_deleted_and_overwritten_objects_are_skipped() -> None:
    """A deleted object and one overwritten since its event are skipped, not failed."""
    env = make_unit_env()
    gone = env.put("gone.txt")
    env.s3.delete(SRC, "gone.txt")
    old = env.put("changed.txt", b"old")
    env.put("changed.txt", b"new contents")
    result = env.run(sqs_batch([s3_body(gone.record()), s3_body(old.record())]))
    assert outcomes(result) == [
        ("message-0", Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND),
        ("message-1", Outcome.SKIPPED, Reason.OBJECT_SUPERSEDED),
    ]
    assert result.response == {"batchItemFailures": []}
    assert env.s3.uploaded == []
    assert all(r.owner is None for r in env.store.records().values())  # released


def test_fetch_errors_fail_only_their_messages_and_release_them() -> None:
    """Throttling and access denied fail their own messages; the retry bundles them."""
    env = make_unit_env()
    ok, slow, denied = env.put("ok.txt"), env.put("slow.txt"), env.put("denied.txt")
    env.s3.faults[(SRC, "slow.txt")] = S3ThrottlingError("slow down")
    env.s3.faults[(SRC, "denied.txt")] = S3AccessDeniedError("no")
    event = sqs_batch([s3_body(o.record()) for o in (ok, slow, denied)])
    result = env.run(event)
    assert outcomes(result) == [
        ("message-0", Outcome.BUNDLED, None),
        ("message-1", Outcome.FAILED, Reason.FETCH_FAILED),
        ("message-2", Outcome.FAILED, Reason.REFUSED),
    ]
    assert failed_ids(result.response) == ["message-1", "message-2"]
    assert all(
        r.owner is None for r in env.store.records().values() if r.status.value != "COMPLETED"
    )
    env.s3.faults.clear()
    retry = env.run(redeliver(event, failed_ids(result.response)))
    assert retry.response == {"batchItemFailures": []}
    assert retry.count(Outcome.BUNDLED) == 2


# ----------------------------------------------------------------------------- hooks


class _Hooked(ReusableProcessor):
    """A processor whose hooks misbehave for chosen keys."""

    reject = "skip"
    explode = "boom"

    def accept(self, record: S3EventNotificationRecord) -> bool:
        key = record.s3.object.original_key
        if self.explode in key and "accept" in key:
            raise RuntimeError("accept exploded")
        return self.reject not in key

    def member_name(self, record: S3EventNotificationRecord) -> str:
        key = record.s3.object.original_key
        if self.explode in key and "name" in key:
            raise ValueError("member_name exploded")
        if "unsafe" in key:
            return "../escape.txt"
        return f"renamed/{record.s3.object.key}"


def test_accept_and_member_name_hooks_fail_only_their_records() -> None:
    """A hook that raises or names unsafely fails its record; its neighbours are bundled."""
    env = make_unit_env(_Hooked)
    keys = ["fine.txt", "skip.txt", "boom-accept.txt", "boom-name.txt", "unsafe.txt"]
    objects = [env.put(key) for key in keys]
    event = sqs_batch(
        [s3_body(objects[0].record(), objects[2].record())]
        + [s3_body(o.record()) for o in objects[1:2] + objects[3:]]
    )
    result = env.run(event)
    assert outcomes(result) == [
        ("message-0", Outcome.BUNDLED, None),
        ("message-0", Outcome.FAILED, Reason.HOOK_FAILED),
        ("message-1", Outcome.SKIPPED, Reason.NOT_ACCEPTED),
        ("message-2", Outcome.FAILED, Reason.HOOK_FAILED),
        ("message-3", Outcome.FAILED, Reason.HOOK_FAILED),
    ]
    assert failed_ids(result.response) == ["message-0", "message-2", "message-3"]
    assert result.records[0].member_name == "renamed/fine.txt"
    errors = [r.error for r in result.records if r.error is not None]
    assert [e.context["hook"] for e in errors] == ["accept", "member_name", "member_name"]
    assert {e.error_code for e in errors} == {"HOOK_FAILED"}
    assert all(isinstance(e, HookError) for e in errors)
    assert [(e.hook, e.detail, e.context["cause"]) for e in errors if isinstance(e, HookError)] == [
        ("accept", "raised", "RuntimeError"),
        ("member_name", "raised", "ValueError"),
        ("member_name", "unusable member name", "ValidationError"),
    ]
    assert len(env.store.records()) == 1  # only the bundled record was ever claimed


class _KeyHook(ReusableProcessor):
    """A ``bundle_key`` hook that fails for bundle 2, or repeats itself."""

    mode = "raise"

    def bundle_key(self, number: int, *, request_id: str, now: datetime) -> str:
        if self.mode == "repeat":
            return "always-the-same.tar.gz"
        if number == 2:
            raise RuntimeError("no key for you")
        return super().bundle_key(number, request_id=request_id, now=now)


@pytest.mark.parametrize("mode", ["raise", "repeat"])
def test_bundle_key_hook_failure_keeps_earlier_bundles(mode: str) -> None:
    """A failing or repeated bundle key fails that bundle's records; bundle 1 is kept."""
    env = make_unit_env(_KeyHook, max_bundle_size_mb=1)
    _KeyHook.mode = mode
    rng = random.Random(7)
    objects = [env.put(f"big-{i}.bin", rng.randbytes(700_000)) for i in range(3)]
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]))
    assert outcomes(result) == [
        ("message-0", Outcome.BUNDLED, None),
        ("message-1", Outcome.FAILED, Reason.HOOK_FAILED),
        ("message-2", Outcome.FAILED, Reason.HOOK_FAILED),
    ]
    assert len(env.s3.uploaded) == 1
    held = {
        k: r.owner for k, r in env.store.records().items() if r.status is RecordStatus.IN_PROGRESS
    }
    # The key is asked for before the claim that announces it: the records of the bundle
    # it fails (and of every later one) are never claimed, so nothing holds them.
    assert held == {}
    assert len(env.store.records()) == 1
    detail = {"raise": "raised", "repeat": "returned a key already used in this invocation"}
    for entry in result.records[1:]:
        assert isinstance(entry.error, HookError)
        assert (entry.error.hook, entry.error.detail) == ("bundle_key", detail[mode])
        assert entry.error.error_code == "HOOK_FAILED"


class _Notifying(ReusableProcessor):
    """Records each ``on_bundle_written`` call; raises when asked to."""

    explode = False

    def __init__(self, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.calls: list[tuple[str, list[str]]] = []

    def on_bundle_written(
        self, bundle: BundleSummary, records: Sequence[S3EventNotificationRecord]
    ) -> None:
        self.calls.append((bundle.key, [r.s3.object.original_key for r in records]))
        if self.explode:
            raise RuntimeError("downstream queue is down")


@pytest.mark.parametrize("explode", [False, True])
def test_on_bundle_written_never_fails_records(explode: bool) -> None:
    """The hook sees the bundle's records; if it raises, records stay bundled and it counts."""
    env = make_unit_env(_Notifying)
    processor = env.processor
    assert isinstance(processor, _Notifying)
    processor.explode = explode
    objects = [env.put(f"n{i}.txt") for i in range(2)]
    result = env.run(sqs_batch([s3_body(o.record()) for o in objects]))
    assert result.response == {"batchItemFailures": []}
    assert processor.calls == [(result.bundles[0].key, ["n0.txt", "n1.txt"])]
    assert env.metric("BundleHookFailures") == (1 if explode else 0)


def test_user_subclass_overriding_every_hook_runs() -> None:
    """The typed example subclass (tests/typing/processor_api.py) works at runtime."""
    clock = FakeClock(1_700_000_000.0)  # 2023-11-14T22:13:20Z: the folder below
    s3 = FakeS3Client()
    processor = PartnerDropBundler(
        unit_config(), s3_client=s3, store=InMemoryIdempotencyStore(clock=clock), clock=clock
    )
    csv, txt = s3.put(SRC, "drop/a b.csv", b"1,2\n"), s3.put(SRC, "drop/readme.txt", b"hi")
    context = LocalContext.from_timeout(60, clock=clock, aws_request_id="req-1")
    response = processor.handle(sqs_batch([s3_body(csv.record()), s3_body(txt.record())]), context)
    assert response == {"batchItemFailures": []}
    assert processor.written == [("partners/2023-11-14/req-1-1.tar.gz", 1)]
    bundle = s3.bundle(DEST, "partners/2023-11-14/req-1-1.tar.gz")
    assert list(bundle.members) == [f"{SRC}/drop/a b.csv"]
    assert processor.last_result is not None
    assert processor.last_result.records[1].reason is Reason.NOT_ACCEPTED


# ----------------------------------------------------------------------------- metrics, logs


def test_emf_line_carries_counts_by_reason() -> None:
    """One EMF document per invocation with counts, bytes, reasons, seconds and time left."""
    capture = LineCapture()
    clock = FakeClock()
    s3 = FakeS3Client()
    metrics = EmfMetrics("Bundles", {"service": "svc"}, writer=capture, clock=clock)
    processor = ReusableProcessor(
        unit_config(),
        s3_client=s3,
        store=InMemoryIdempotencyStore(clock=clock),
        metrics=metrics,
        clock=clock,
    )
    objects = [s3.put(SRC, f"m{i}.txt", b"12345") for i in range(2)]
    event = sqs_batch([s3_body(o.record()) for o in objects] + [s3_test_event_body(SRC), "[]"])
    processor.process(event, LocalContext.from_timeout(60, clock=clock))
    (document,) = capture.documents()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Bundles"
    assert directive["Dimensions"] == [["service"]]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["BytesBundled"] == "Bytes"
    assert units["BundleSeconds"] == "Seconds"
    assert units["RemainingTimeAtFinish"] == "Milliseconds"
    assert {k: document[k] for k in ("ObjectsBundled", "BytesBundled", "BundlesWritten")} == {
        "ObjectsBundled": 2,
        "BytesBundled": 10,
        "BundlesWritten": 1,
    }
    assert document["Skipped_test_event"] == 1
    assert document["Failed_invalid_message"] == 1
    assert document["MessagesFailed"] == 1
    assert document["Duplicates"] == 0
    assert document["RemainingTimeAtFinish"] == 60_000
    assert document["service"] == "svc"


def test_metrics_default_follows_config_and_store_is_required() -> None:
    """EMF by default, NullMetrics when disabled; no table and no store is a config error."""
    s3 = FakeS3Client()
    store = InMemoryIdempotencyStore()
    on = ReusableProcessor(unit_config(metrics_enabled=True), s3_client=s3, store=store)
    off = ReusableProcessor(unit_config(), s3_client=s3, store=store)
    assert isinstance(on.metrics, EmfMetrics)
    assert isinstance(off.metrics, NullMetrics)
    with pytest.raises(ConfigurationError) as raised:
        ReusableProcessor(unit_config(), s3_client=s3)
    assert raised.value.context["variable"] == "IDEMPOTENCY_TABLE_NAME"


def test_logs_are_structured_and_never_hold_contents(caplog: pytest.LogCaptureFixture) -> None:
    """Log messages are constant strings; ids, keys and reasons travel in ``extra``."""
    env = make_unit_env()
    obj = env.put("secret.txt", b"TOP-SECRET-CONTENT")
    caplog.set_level(logging.DEBUG, logger="data_aggregator")
    env.run(sqs_batch([s3_body(obj.record()), "{broken"]))
    processor_logs = [r for r in caplog.records if r.name == "data_aggregator.processor"]
    messages = {r.getMessage() for r in processor_logs}
    assert {"record bundled", "record failed", "batch processed"} <= messages
    failed = next(r for r in processor_logs if r.getMessage() == "record failed")
    assert failed.__dict__["message_id"] == "message-1"
    assert failed.__dict__["reason"] == "invalid_message"
    bundled = next(r for r in processor_logs if r.getMessage() == "record bundled")
    assert bundled.__dict__["key"] == "secret.txt"
    summary = next(r for r in processor_logs if r.getMessage() == "batch processed")
    assert summary.__dict__["failed_messages"] == 1
    for record in caplog.records:
        assert "TOP-SECRET-CONTENT" not in json.dumps(record.__dict__, default=str)
