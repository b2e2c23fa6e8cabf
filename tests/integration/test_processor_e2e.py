"""ReusableProcessor end to end over moto's server: envelopes, keys, batch outcomes.

Real S3Client, real DynamoDB store and S3 manifest locator; every test reads the bundles
back from S3, verifies them and compares members with the source objects.
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING

import pytest

from data_aggregator.processor import Outcome, Reason
from tests.processor_support import (
    assert_bundled_once,
    eventbridge_body,
    failed_ids,
    notification,
    redeliver,
    s3_body,
    s3_record,
    s3_test_event_body,
    sns_body,
    sqs_batch,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration._processor_env import ProcessorEnv

pytestmark = pytest.mark.integration


def test_every_sqs_envelope_kind_is_bundled(make_env: Callable[..., ProcessorEnv]) -> None:
    """S3, SNS (raw and not) and EventBridge bodies in one SQS batch all land in a bundle."""
    env = make_env()
    direct, raw, wrapped, bridged = (env.put(f"in/{n}.json") for n in ("s3", "raw", "sns", "eb"))
    event = sqs_batch(
        [
            s3_body(direct.record()),
            s3_body(raw.record()),  # SNS with raw message delivery: the S3 body itself
            sns_body(wrapped.record()),
            eventbridge_body(bridged),
        ]
    )
    assert env.handle(event) == {"batchItemFailures": []}
    assert env.last.count(Outcome.BUNDLED) == 4
    bundles = env.bundles()
    assert len(bundles) == 1
    assert_bundled_once(bundles, [direct, raw, wrapped, bridged])


def test_direct_s3_event_is_bundled(make_env: Callable[..., ProcessorEnv]) -> None:
    """A direct S3 invocation bundles its records and returns an empty failure list."""
    env = make_env()
    objects = [env.put("direct/one.txt"), env.put("direct/two.txt")]
    assert env.handle(notification(*(o.record() for o in objects))) == {"batchItemFailures": []}
    assert_bundled_once(env.bundles(), objects)


def test_awkward_keys_are_fetched_exactly_and_named_apart(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Spaces, '+', '%', unicode and NFC/NFD twins round-trip through events and bundles."""
    env = make_env()
    nfc = unicodedata.normalize("NFC", "café/menu.txt")
    nfd = unicodedata.normalize("NFD", "café/menu.txt")
    keys = ["red flower.jpg", "a+b=c.txt", "100%/done 50%25.txt", "日本語/データ 📈.json", nfc, nfd]
    objects = [env.put(key, f"bytes of {key!a}".encode()) for key in keys]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert env.handle(event) == {"batchItemFailures": []}
    (bundle,) = env.bundles()
    assert_bundled_once([bundle], objects)
    names = [m.name for m in bundle.manifest.members]
    assert len(set(names)) == len(names) == 6
    twins = [r.member_name for r in env.last.records[4:]]
    assert twins[0] != twins[1]


def test_two_versions_of_one_key_are_both_bundled(make_env: Callable[..., ProcessorEnv]) -> None:
    """In a versioned bucket each version is fetched by its id and kept under its own name."""
    env = make_env(versioned=True)
    first = env.put("sensor/reading.json", b'{"v": 1}')
    second = env.put("sensor/reading.json", b'{"v": 2, "more": true}')
    assert None not in (first.version_id, second.version_id)
    assert first.version_id != second.version_id
    event = sqs_batch([s3_body(first.record()), s3_body(second.record())])
    assert env.handle(event) == {"batchItemFailures": []}
    (bundle,) = env.bundles()
    assert_bundled_once([bundle], [first, second])
    assert len(set(bundle.members)) == 2


def test_mixed_batch_reports_exactly_the_failed_messages(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """Test event and deleted object are acknowledged; bad body, traversal key and a
    foreign bucket fail their messages; the rest is bundled."""
    env = make_env(allowlist=True)
    good = env.put("ok/1.txt")
    deleted = env.put("ok/deleted.txt")
    env.s3.delete_object(Bucket=env.source, Key=deleted.key)
    foreign = env.put("elsewhere.txt", bucket=env.make_bucket("foreign"))
    traversal = s3_record(env.source, "../../etc/passwd", size=3, etag="0" * 32)
    event = sqs_batch(
        [
            s3_body(good.record()),
            s3_test_event_body(env.source),
            '{"Records": [{"eventName": ',
            s3_body(traversal),
            s3_body(deleted.record()),
            s3_body(foreign.record()),
            json.dumps({"hello": "world"}),
        ]
    )
    assert failed_ids(env.handle(event)) == ["message-2", "message-3", "message-5", "message-6"]
    reasons = [(r.message_id, r.outcome, r.reason) for r in env.last.records]
    assert reasons == [
        ("message-0", Outcome.BUNDLED, None),
        ("message-1", Outcome.SKIPPED, Reason.TEST_EVENT),
        ("message-2", Outcome.FAILED, Reason.INVALID_MESSAGE),
        ("message-3", Outcome.FAILED, Reason.INVALID_MESSAGE),
        ("message-4", Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND),
        ("message-5", Outcome.FAILED, Reason.BUCKET_NOT_ALLOWED),
        ("message-6", Outcome.FAILED, Reason.INVALID_MESSAGE),
    ]
    traversal_error = env.last.records[3].error
    assert traversal_error is not None
    assert traversal_error.error_code == "UNSAFE_S3_KEY_PATH"
    assert_bundled_once(env.bundles(), [good])


def test_redelivered_batch_adds_nothing(make_env: Callable[..., ProcessorEnv]) -> None:
    """The same batch delivered twice: no new bundle, every record a DUPLICATE."""
    env = make_env()
    objects = [env.put(f"again/{i}.txt") for i in range(4)]
    event = sqs_batch([s3_body(o.record()) for o in objects])
    assert env.handle(event) == {"batchItemFailures": []}
    first_bundles = env.bundles()
    assert env.handle(redeliver(event, [f"message-{i}" for i in range(4)])) == {
        "batchItemFailures": []
    }
    assert {(r.outcome, r.reason) for r in env.last.records} == {
        (Outcome.DUPLICATE, Reason.ALREADY_COMPLETED)
    }
    assert env.last.bundles == ()
    assert [b.key for b in env.bundles()] == [b.key for b in first_bundles]
    assert_bundled_once(env.bundles(), objects)


def test_fifo_bad_message_fails_it_and_every_later_one(
    make_env: Callable[..., ProcessorEnv],
) -> None:
    """FIFO: a bad message in the middle fails with all after it, those left unclaimed."""
    env = make_env()
    objects = [env.put(f"fifo/{i}.txt") for i in range(4)]
    bodies = [s3_body(o.record()) for o in objects]
    event = sqs_batch([*bodies[:2], "not json at all", *bodies[2:]], queue="bundle-queue.fifo")
    assert failed_ids(env.handle(event)) == ["message-2", "message-3", "message-4"]
    assert [r.reason for r in env.last.records[2:]] == [
        Reason.INVALID_MESSAGE,
        Reason.FIFO_BLOCKED,
        Reason.FIFO_BLOCKED,
    ]
    assert [env.store.get(o.idempotency_key) for o in objects[2:]] == [None, None]
    assert_bundled_once(env.bundles(), objects[:2])
    # The bad message went to the DLQ; the blocked ones come back and are bundled.
    assert env.handle(redeliver(event, ["message-3", "message-4"])) == {"batchItemFailures": []}
    assert_bundled_once(env.bundles(), objects)


def test_allowlist_refuses_other_buckets(make_env: Callable[..., ProcessorEnv]) -> None:
    """With an allowlist, a record from another bucket fails; allowed ones are bundled."""
    env = make_env(allowlist=True)
    allowed = env.put("allowed.txt")
    refused = env.put("refused.txt", bucket=env.make_bucket("foreign"))
    event = sqs_batch([s3_body(allowed.record()), s3_body(refused.record())])
    assert failed_ids(env.handle(event)) == ["message-1"]
    error = env.last.records[1].error
    assert error is not None
    assert error.error_code == "BUCKET_NOT_ALLOWED"
    assert env.store.get(refused.idempotency_key) is None
    assert_bundled_once(env.bundles(), [allowed])


def test_source_object_identity_matches_manifest(make_env: Callable[..., ProcessorEnv]) -> None:
    """Manifest entries carry the exact key, version, sequencer, ETag and SHA-256."""
    env = make_env()
    obj = env.put("manifest/check me+.txt", b"exact bytes")
    env.handle(sqs_batch([s3_body(obj.record())]))
    (bundle,) = env.bundles()
    (member,) = bundle.manifest.members
    assert (member.bucket, member.key, member.sequencer, member.etag, member.size) == (
        obj.bucket,
        obj.key,
        obj.sequencer,
        obj.etag,
        len(obj.data),
    )
    assert bundle.members[member.name] == obj.data
