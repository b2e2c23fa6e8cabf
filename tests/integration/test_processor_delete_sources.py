"""``DELETE_SOURCES`` through the real `ReusableProcessor`, over HTTP to the S3 server.

Both servers (moto's, and SeaweedFS with ``--aggregator-backend=real``) honour the
per-object ``ETag`` condition of ``DeleteObjects`` (``PreconditionFailed`` for that key),
so an object overwritten after it was bundled is kept by the server itself: were the
condition not sent, or ignored, `test_an_object_overwritten_after_bundling_is_kept` would
find it deleted and fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from data_aggregator.exceptions import IdempotencyStoreError
from data_aggregator.idempotency import DynamoDBIdempotencyStore
from data_aggregator.metrics import CallbackMetrics, MetricPoint
from data_aggregator.processor import Outcome, Reason, _deletions
from data_aggregator.testing import s3_record
from tests.integration._processor_env import Crash, CrashOnComplete
from tests.integration._s3_hooks import error_response, inject, xml_response
from tests.processor_support import assert_bundled_once, failed_ids, s3_body, sqs_batch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

    from data_aggregator.idempotency import UpdateResult
    from tests.integration._processor_env import ProcessorEnv
    from tests.processor_support import SourceObject

pytestmark = pytest.mark.integration


class _Metrics:
    """The processor's metrics, summed per name over every flush."""

    def __init__(self, env: ProcessorEnv) -> None:
        self.totals: dict[str, float] = {}
        env.processor.metrics = CallbackMetrics(self._add)

    def _add(self, point: MetricPoint) -> None:
        self.totals[point.name] = self.totals.get(point.name, 0) + point.value

    def __getitem__(self, name: str) -> float:
        return self.totals.get(name, 0)


def _delete_requests(env: ProcessorEnv) -> list[bytes]:
    """Bodies of the processor's ``DeleteObjects`` requests, recorded as they are sent."""
    bodies: list[bytes] = []

    def record(request: AWSPreparedRequest, **_: Any) -> None:
        body = request.body
        bodies.append(body if isinstance(body, bytes) else str(body).encode())

    env.processor_s3.meta.events.register("before-send.s3.DeleteObjects", record)
    return bodies


def _exists(env: ProcessorEnv, obj: SourceObject) -> bool:
    listing = env.s3.list_objects_v2(Bucket=obj.bucket, Prefix=obj.key)
    return any(entry["Key"] == obj.key for entry in listing.get("Contents", []))


def _versions(env: ProcessorEnv, bucket: str, key: str) -> tuple[list[str], int]:
    """Version ids of ``key`` still stored, and how many delete markers it has."""
    listing = env.s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key]
    markers = [m for m in listing.get("DeleteMarkers", []) if m["Key"] == key]
    return versions, len(markers)


def test_sources_are_deleted_after_a_good_bundle(make_env: Callable[..., ProcessorEnv]) -> None:
    """With DELETE_SOURCES, a bundled and completed batch leaves no source behind, in one
    DeleteObjects request, each object conditional on its bundled ETag."""
    env = make_env(delete_sources=True)
    metrics = _Metrics(env)
    requests = _delete_requests(env)
    objects = [env.put(f"good/{i}.txt") for i in range(5)]
    assert env.handle(sqs_batch([s3_body(o.record()) for o in objects])) == {
        "batchItemFailures": []
    }
    assert env.last.count(Outcome.BUNDLED) == 5
    assert_bundled_once(env.bundles(), objects)
    assert [o.key for o in objects if _exists(env, o)] == []
    assert metrics["SourcesDeleted"] == 5
    assert metrics["SourceDeletesFailed"] == 0
    (body,) = requests
    for obj in objects:
        assert f"<ETag>&quot;{obj.etag}&quot;</ETag>".encode() in body or (
            f'<ETag>"{obj.etag}"</ETag>'.encode() in body
        )


def test_sources_stay_when_the_option_is_off(make_env: Callable[..., ProcessorEnv]) -> None:
    """Off by default: bundling deletes nothing and sends no DeleteObjects."""
    env = make_env()
    requests = _delete_requests(env)
    objects = [env.put(f"kept/{i}.txt") for i in range(3)]
    assert env.handle(sqs_batch([s3_body(o.record()) for o in objects])) == {
        "batchItemFailures": []
    }
    assert all(_exists(env, o) for o in objects)
    assert requests == []


def test_an_object_overwritten_after_bundling_is_kept(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """An object rewritten between its fetch and the delete is kept (the ETag condition
    fails for that key), counted as changed; the others are deleted, the message
    succeeds."""
    env = make_env(delete_sources=True)
    metrics = _Metrics(env)
    objects = [env.put(f"racy/{i}.txt") for i in range(3)]
    victim = objects[1]

    def overwrite(request: AWSPreparedRequest, **_: Any) -> None:
        env.s3.put_object(Bucket=victim.bucket, Key=victim.key, Body=b"written after the bundle")

    env.processor_s3.meta.events.register("before-send.s3.DeleteObjects", overwrite)
    assert env.handle(sqs_batch([s3_body(o.record()) for o in objects])) == {
        "batchItemFailures": []
    }
    assert env.last.count(Outcome.BUNDLED) == 3
    body = env.s3.get_object(Bucket=victim.bucket, Key=victim.key)["Body"].read()
    assert body == b"written after the bundle"
    assert [o.key for o in objects if _exists(env, o)] == [victim.key]
    assert metrics["SourcesChanged"] == 1
    assert metrics["SourcesDeleted"] == 2


def test_versioned_bucket_deletes_the_bundled_version_only(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """In a versioned bucket the exact version bundled is deleted (no delete marker); a
    newer version of the same key stays current and untouched."""
    env = make_env(delete_sources=True, versioned=True)
    metrics = _Metrics(env)
    old = env.put("doc.txt", b"first")
    new = env.put("doc.txt", b"second")
    other = env.put("other.txt", b"alone")
    assert old.version_id
    assert new.version_id
    assert other.version_id
    assert env.handle(sqs_batch([s3_body(old.record()), s3_body(other.record())])) == {
        "batchItemFailures": []
    }
    assert _versions(env, env.source, "doc.txt") == ([new.version_id], 0)
    assert _versions(env, env.source, "other.txt") == ([], 0)
    assert env.s3.get_object(Bucket=env.source, Key="doc.txt")["Body"].read() == b"second"
    assert metrics["SourcesDeleted"] == 2


def test_a_crash_before_complete_deletes_nothing_until_the_records_are_completed(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Killed after the upload, before complete: nothing is deleted, nor while the leases
    live; the redelivery after they end recovers the records (completing them) and only
    then deletes each source, once."""
    env = make_env(store_class=CrashOnComplete, lease_margin_seconds=10.0, delete_sources=True)
    assert isinstance(env.store, CrashOnComplete)
    metrics = _Metrics(env)
    requests = _delete_requests(env)
    objects = [env.put(f"crash/{i}.txt") for i in range(3)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    with pytest.raises(Crash):
        env.processor.handle(event, env.context(60))
    assert_bundled_once(env.bundles(), objects)
    assert all(_exists(env, o) for o in objects)
    env.store.crash = False
    assert len(failed_ids(env.handle(event))) == 3  # leases still live
    assert {r.reason for r in env.last.records} == {Reason.IN_PROGRESS_ELSEWHERE}
    assert all(_exists(env, o) for o in objects)
    assert requests == []
    env.clock.advance(71)  # deadline + margin have passed
    assert env.handle(event) == {"batchItemFailures": []}
    assert {r.reason for r in env.last.records} == {Reason.RECOVERED}
    assert [o.key for o in objects if _exists(env, o)] == []
    assert len(requests) == 1
    assert metrics["SourcesDeleted"] == 3


class _CompleteFails(DynamoDBIdempotencyStore):
    """``complete`` fails (the store is unreachable): the records stay in progress."""

    def complete(
        self, keys: Iterable[str], *, owner: str, bundle_key: str, ttl_seconds: int | None = None
    ) -> dict[str, UpdateResult]:
        raise IdempotencyStoreError("injected complete failure", context={"injected": True})


def test_records_not_completed_keep_their_sources(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Bundled but not completed (COMPLETE_FAILED): no source is deleted, no DeleteObjects
    is sent, the messages fail as without the option."""
    env = make_env(store_class=_CompleteFails, delete_sources=True)
    requests = _delete_requests(env)
    objects = [env.put(f"incomplete/{i}.txt") for i in range(3)]
    assert len(failed_ids(env.handle(sqs_batch([s3_body(o.record()) for o in objects])))) == 3
    assert {r.reason for r in env.last.records} == {Reason.COMPLETE_FAILED}
    assert_bundled_once(env.bundles(), objects)
    assert all(_exists(env, o) for o in objects)
    assert requests == []


def test_a_second_copy_in_the_batch_is_deleted_once(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """A record delivered twice in one batch: one bundle member, one delete."""
    env = make_env(delete_sources=True)
    metrics = _Metrics(env)
    requests = _delete_requests(env)
    obj = env.put("twice.txt")
    body = s3_body(obj.record())
    assert env.handle(sqs_batch([body, body])) == {"batchItemFailures": []}
    assert not _exists(env, obj)
    assert len(requests) == 1
    assert requests[0].count(b"<Key>twice.txt</Key>") == 1
    assert metrics["SourcesDeleted"] == 1


def test_a_failed_delete_leaves_the_message_successful_and_is_not_retried(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """DeleteObjects failing (500 after the client's retries) fails no record: the objects
    are counted as not deleted and stay. The next delivery of the completed records (a
    duplicate) deletes nothing either: it cannot tell that their bundle still exists."""
    env = make_env(delete_sources=True, retries=False)
    metrics = _Metrics(env)
    requests = _delete_requests(env)
    objects = [env.put(f"flaky/{i}.txt") for i in range(3)]

    def fail(request: AWSPreparedRequest) -> AWSResponse | None:
        return error_response(request, 500, "InternalError")

    inject(env.processor_s3, "DeleteObjects", fail)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert env.handle(event) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 3
    assert all(_exists(env, o) for o in objects)
    assert metrics["SourceDeletesFailed"] == 3
    assert metrics["SourcesDeleted"] == 0
    sent = len(requests)
    assert env.handle(event) == {"batchItemFailures": []}
    assert {r.reason for r in env.last.records} == {Reason.ALREADY_COMPLETED}
    assert all(_exists(env, o) for o in objects)
    assert len(requests) == sent  # no DeleteObjects for duplicates
    assert_bundled_once(env.bundles(), objects)


def test_an_event_without_an_etag(make_env: Callable[..., ProcessorEnv]) -> None:
    """Bundled from an event without an ETag: the ETag the fetch saw is the condition, so
    the object is deleted. A duplicate of such a record (its first delete failed) is
    never deleted: no request sent, nothing counted."""
    env = make_env(delete_sources=True, retries=False)
    metrics = _Metrics(env)
    first, second = env.put("bare/1.txt"), env.put("bare/2.txt")

    def bare(obj: SourceObject) -> str:
        size = len(obj.data)
        return s3_body(s3_record(obj.bucket, obj.key, size=size, etag=None, sequencer="1A"))

    assert env.handle(sqs_batch([bare(first)])) == {"batchItemFailures": []}
    assert not _exists(env, first)
    failing = [True]

    def fail(request: AWSPreparedRequest) -> AWSResponse | None:
        return error_response(request, 503, "SlowDown") if failing[0] else None

    inject(env.processor_s3, "DeleteObjects", fail)
    assert env.handle(sqs_batch([bare(second)])) == {"batchItemFailures": []}
    assert _exists(env, second)
    assert metrics["SourceDeletesFailed"] == 1
    failing[0] = False
    requests = _delete_requests(env)
    assert env.handle(sqs_batch([bare(second)])) == {"batchItemFailures": []}
    assert {r.reason for r in env.last.records} == {Reason.ALREADY_COMPLETED}
    assert _exists(env, second)
    assert requests == []
    assert metrics["SourceDeletesFailed"] == 1
    assert metrics["SourcesDeleted"] == 1


def test_no_delete_is_started_without_time_left(
    make_env: Callable[..., ProcessorEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the bundle is committed with less time left than the deletes need, they are
    not attempted: counted as failed, the objects stay, the records are still bundled."""
    # The deletes need 30 s here (1 s by default), so that the upload and the completions
    # still have about 20 s of the fake clock: each attempt's read timeout is the time
    # left, in real seconds, and a loaded machine can take more than one to answer.
    monkeypatch.setattr(_deletions, "MIN_DELETE_SECONDS", 30.0)
    env = make_env(delete_sources=True, timeout_guard_threshold_seconds=1.0)
    metrics = _Metrics(env)
    requests = _delete_requests(env)
    objects = [env.put(f"late/{i}.txt") for i in range(2)]

    def late(request: AWSPreparedRequest, **_: Any) -> None:
        env.clock.advance(40.0)  # about 20 s of the 60 s left: under the deletes' 30 s

    env.processor_s3.meta.events.register("before-send.s3.PutObject", late)
    assert env.handle(sqs_batch([s3_body(o.record()) for o in objects]), env.context(60)) == {
        "batchItemFailures": []
    }
    assert env.last.count(Outcome.BUNDLED) == 2
    assert all(_exists(env, o) for o in objects)
    assert requests == []
    assert metrics["SourceDeletesFailed"] == 2


def test_an_object_the_answer_does_not_name_as_deleted_counts_as_failed(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """A ``DeleteObjects`` answer (200) whose only error names a key not asked for, and
    that lists none of the objects as deleted, deletes nothing: every object is counted
    and logged as a failed delete, none as deleted."""
    env = make_env(delete_sources=True, retries=False)
    metrics = _Metrics(env)
    objects = [env.put(f"unanswered/{i}.txt") for i in range(2)]
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>'
        b"<Error><Key>someone/else.txt</Key><Code>AccessDenied</Code>"
        b"<Message>injected</Message></Error></DeleteResult>"
    )

    def answer(request: AWSPreparedRequest) -> AWSResponse | None:
        return xml_response(request, body)

    inject(env.processor_s3, "DeleteObjects", answer)
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert env.handle(event) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 2
    assert all(_exists(env, o) for o in objects)
    assert metrics["SourcesDeleted"] == 0
    assert metrics["SourceDeletesFailed"] == 2
