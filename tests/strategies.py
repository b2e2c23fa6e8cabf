"""Hypothesis strategies shared by the property tests (one place, as attrs does).

Sections are owned by area; add to your own section. The S3 key and notification-record
strategies live in :mod:`data_aggregator.testing.strategies` (public, for users' tests
too) and are re-exported here under the names the tests use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from data_aggregator.config import S3_MAX_PARTS, AppConfig, Codec
from data_aggregator.config import _bounds as config_bounds
from data_aggregator.testing import sns_event, sns_notification
from data_aggregator.testing.strategies import (
    EVENT_KEY_ATOMS,
    S3_KEY_ATOMS,
    adversarial_s3_keys,
    any_s3_key_text,
    event_keys,
    percent_encode,
    s3_keys,
    s3_keys_near_limit,
    safe_s3_keys,
    safe_s3_segments,
    text_with_surrogates,
    windows_prefixes,
)
from data_aggregator.testing.strategies import s3_event_records as raw_s3_records
from tests.processor_support import sqs_batch

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "EVENT_KEY_ATOMS",
    "S3_KEY_ATOMS",
    "adversarial_s3_keys",
    "any_s3_key_text",
    "config_bounds",
    "event_keys",
    "percent_encode",
    "raw_s3_records",
    "s3_keys_near_limit",
    "safe_s3_keys",
    "safe_s3_segments",
    "text_with_surrogates",
    "windows_prefixes",
]

# ----------------------------------------------------------------------------- S3 keys
# (security / sanitization strategies: data_aggregator.testing.strategies)

SEED_KEY_ERROR_CODES = frozenset(
    {
        "INVALID_S3_KEY_TYPE",
        "INVALID_S3_KEY_FORMAT",
        "INVALID_S3_KEY_LENGTH",
        "INVALID_S3_KEY_CHARACTER",
        "UNSAFE_S3_KEY_PATH",
    }
)


# ----------------------------------------------------------------------------- events
# (built with data_aggregator.testing; tests/processor_support.py adds SQS batches)


#: Ways an S3 notification reaches the function (see :func:`wrap_notification`).
NOTIFICATION_WRAPPERS: tuple[str, ...] = (
    "s3_direct",
    "sns_direct",
    "sqs",
    "sqs_sns",
    "sqs_sns_raw",
)


def wrap_notification(wrapper: str, notification: dict[str, Any]) -> Mapping[str, Any]:
    """The Lambda event delivering ``notification`` the way ``wrapper`` names."""
    if wrapper == "s3_direct":
        return notification
    if wrapper == "sns_direct":
        return sns_event(notification)
    if wrapper == "sqs_sns":
        return sqs_batch([sns_notification(notification)])
    # "sqs" and "sqs_sns_raw" (raw message delivery) look the same to the function.
    return sqs_batch([sns_notification(notification, raw=wrapper == "sqs_sns_raw")])


def notification_wrappers() -> st.SearchStrategy[str]:
    """Names of :data:`NOTIFICATION_WRAPPERS`."""
    return st.sampled_from(NOTIFICATION_WRAPPERS)


# ----------------------------------------------------------------------------- configuration
# (environment variables for data_aggregator.config.AppConfig)


def _config_int_ranges() -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    for name, info in AppConfig.model_fields.items():
        if info.annotation in (int, int | None):
            bounds = config_bounds(name)
            ranges[name.upper()] = (int(bounds.low), int(bounds.high))
    return ranges


#: Integer variables and their ranges on their own (cross-field rules narrow a few of them),
#: read from the ``Field`` bounds of AppConfig, where they are declared.
CONFIG_INT_RANGES: dict[str, tuple[int, int]] = _config_int_ranges()

_CONFIG_TRUE_FALSE = ("true", "false", "1", "0", "yes", "no", "on", "off", "TRUE", "Off")
_CONFIG_LOG_LEVELS = ("DEBUG", "info", "Warning", "ERROR", "critical")


def _randomly_cased(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=True))


def destination_bucket_names() -> st.SearchStrategy[str]:
    """Names that pass the S3 bucket naming rules for DISTRIBUTION_BUCKET_NAME."""
    return st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True).filter(
        lambda name: ".." not in name and not re.fullmatch(r"[0-9.]+", name)
    )


@st.composite
def valid_config_environments(draw: st.DrawFn) -> dict[str, str]:
    """Environment mappings that ``AppConfig.from_env`` must accept (cross-field rules too)."""
    part_low, part_high = CONFIG_INT_RANGES["MULTIPART_PART_SIZE_MB"]
    bundle_low, bundle_high = CONFIG_INT_RANGES["MAX_BUNDLE_SIZE_MB"]
    disk = draw(st.integers(part_low, CONFIG_INT_RANGES["MAX_BUNDLE_ON_DISK_MB"][1]))
    part = draw(st.integers(part_low, min(part_high, disk)))
    codec = draw(st.sampled_from([codec.value for codec in Codec]))
    guard = config_bounds("timeout_guard_threshold_seconds")
    lease = config_bounds("lease_margin_seconds")
    env = {
        "DISTRIBUTION_BUCKET_NAME": draw(destination_bucket_names()),
        "MAX_BUNDLE_ON_DISK_MB": str(disk),
        "MULTIPART_PART_SIZE_MB": str(part),
        "MAX_BUNDLE_SIZE_MB": str(
            draw(st.integers(bundle_low, min(bundle_high, part * S3_MAX_PARTS)))
        ),
        "BUNDLE_CODEC": _randomly_cased(draw, codec),
        "TIMEOUT_GUARD_THRESHOLD_SECONDS": repr(
            draw(st.floats(guard.low, guard.high, exclude_min=True, allow_nan=False))
        ),
        "LEASE_MARGIN_SECONDS": repr(draw(st.floats(lease.low, lease.high, allow_nan=False))),
        "METRICS_ENABLED": draw(st.sampled_from(_CONFIG_TRUE_FALSE)),
        "LOG_LEVEL": draw(st.sampled_from(_CONFIG_LOG_LEVELS)),
    }
    for name in ("IDEMPOTENCY_TTL_DAYS", "SPOOL_FILE_MAX_SIZE_MB", "FETCH_CONCURRENCY"):
        env[name] = str(draw(st.integers(*CONFIG_INT_RANGES[name])))
    for name in ("UPLOAD_CONCURRENCY", "IN_FLIGHT_BYTES_MB", "COMPRESSION_THREADS"):
        env[name] = str(draw(st.integers(*CONFIG_INT_RANGES[name])))
    levels = Codec(codec).level_range
    if levels is not None and draw(st.booleans()):
        env["COMPRESSION_LEVEL"] = str(draw(st.integers(*levels)))
    optional = {
        "IDEMPOTENCY_TABLE_NAME": st.from_regex(r"[A-Za-z0-9_.-]{3,40}", fullmatch=True),
        "SERVICE_NAME": st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True),
        "EXPECTED_BUCKET_OWNER": st.from_regex(r"[0-9]{12}", fullmatch=True),
        "BUNDLE_PREFIX": st.from_regex(
            r"[a-z0-9_-]{1,10}(/[a-z0-9_-]{1,10}){0,3}/?", fullmatch=True
        ),
        "SIDECAR_PREFIX": st.from_regex(
            r"[a-z0-9_-]{1,10}(/[a-z0-9_-]{1,10}){0,2}/?", fullmatch=True
        ),
        "BUNDLE_FORMAT": st.sampled_from(["tar", "concat", "TAR", "Concat"]),
        "IDEMPOTENCY_BATCH_MODE": st.sampled_from(
            ["auto", "single", "hybrid", "transact", "statements", "AUTO", "Statements"]
        ),
        "SOURCE_BUCKET_ALLOWLIST": st.lists(
            st.from_regex(r"[A-Za-z0-9._-]{3,20}", fullmatch=True), min_size=1, max_size=4
        ).map(",".join),
        "ACCEPTED_EVENT_PREFIXES": st.lists(
            st.sampled_from(
                [
                    "ObjectCreated:",
                    "s3:ObjectCreated:*",
                    "ObjectRemoved:",
                    "ObjectRestore:Completed",
                ]
            ),
            min_size=1,
            max_size=3,
        ).map(",".join),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            env[name] = draw(strategy)
    return env


# ----------------------------------------------------------------------------- idempotency
# (fault schedules for the real processor; see tests/faults.py)
from tests.faults import STORE_OPERATIONS, Fault, Rule  # noqa: E402

#: What the processor calls for S3 notifications through SQS, with one-part bundles.
_FAULTED_OPERATIONS = (*STORE_OPERATIONS, "GetObject", "PutObject")


@st.composite
def fault_rules(draw: st.DrawFn, max_invocation: int = 8) -> Rule:
    """One fault at one of the first three calls of an operation, in up to three of the
    first ``max_invocation`` invocations. Delays are short (at most 5 s of fake time):
    six of them stay within a 60 s function timeout, as on Lambda."""
    operation = draw(st.sampled_from(_FAULTED_OPERATIONS))
    faults = [f for f in Fault if f is not Fault.CRASH_MIDWAY or operation in STORE_OPERATIONS]
    fault = draw(st.sampled_from(faults))
    delayed = fault in (Fault.DELAY, Fault.DELAY_ANSWER)
    return Rule(
        operation,
        fault,
        call=draw(st.integers(1, 3)),
        invocations=draw(st.frozensets(st.integers(1, max_invocation), min_size=1, max_size=3)),
        seconds=draw(st.sampled_from([1.0, 5.0])) if delayed else 0.0,
    )


#: Up to six rules: a fault plan over the first eight invocations.
fault_plans = st.lists(fault_rules(), max_size=6)


# ----------------------------------------------------------------------------- bundles
# (source objects for the bundle engine's property tests)

#: Name pieces that collide on purpose: case twins, NFC/NFD twins, the reserved manifest
#: name, a file that is also a directory, names that look like renamed ones.
BUNDLE_NAME_ATOMS: tuple[str, ...] = (
    "a", "A", "b.txt", "B.TXT", "manifest.json", "MANIFEST.JSON", "e\u0301", "\u00e9",
    "x.tar.gz", "logs", "a~00000000", "\u65e5\u672c", "~", ".hidden",
)  # fmt: skip

#: One bundle input: ``(bucket, key, version id or None, bytes)``.
BundleObject = tuple[str, str, "str | None", bytes]


@st.composite
def bundle_objects(draw: st.DrawFn, max_objects: int = 12) -> list[BundleObject]:
    """Inputs of one bundle run: colliding names, versions, buckets, empty bodies, and
    exact duplicates (the same object listed twice)."""
    colliding = st.lists(st.sampled_from(BUNDLE_NAME_ATOMS), min_size=1, max_size=3).map("/".join)
    identities = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["bucket-1", "bucket-2"]),
                st.one_of(colliding, safe_s3_keys(3)),
                st.sampled_from([None, "v1", "v2"]),
            ),
            max_size=max_objects,
        )
    )
    bodies: dict[tuple[str, str, str | None], bytes] = {}
    for identity in identities:
        if identity not in bodies:
            bodies[identity] = draw(st.binary(max_size=64))
    return [(*identity, bodies[identity]) for identity in identities]


# ----------------------------------------------------------------------------- object identities

#: ``(bucket, exact key, ETag, size)``: what a content key is made of.
ObjectContent = tuple[str, str, str, int]


def bucket_names() -> st.SearchStrategy[str]:
    """S3 bucket names: 3 to 63 characters of ``a-z 0-9 . -``."""
    return st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)


def etags() -> st.SearchStrategy[str]:
    """ETags: single-part MD5s, multipart ``-N`` ones, or any text (S3-compatible stores)."""
    return st.one_of(
        st.from_regex(r"[0-9a-f]{32}(-[1-9][0-9]{0,3})?", fullmatch=True),
        st.text(min_size=1, max_size=80).filter(lambda tag: tag.strip('"') != ""),
    )


def object_contents() -> st.SearchStrategy[ObjectContent]:
    """One object's content-key inputs; keys of up to 1,024 bytes, adversarial ones too."""
    return st.tuples(bucket_names(), s3_keys(), etags(), st.integers(0, 5 * 1024**4))


@st.composite
def object_content_pairs(draw: st.DrawFn) -> tuple[ObjectContent, ObjectContent]:
    """Two objects' inputs, often equal but for one field (the likeliest collisions)."""
    first = draw(object_contents())
    other = draw(object_contents())
    bucket, key, etag, size = first
    field = draw(st.integers(0, 4))
    if field == 0:
        return first, (other[0], key, etag, size)
    if field == 1:
        return first, (bucket, other[1], etag, size)
    if field == 2:
        return first, (bucket, key, other[2], size)
    if field == 3:
        return first, (bucket, key, etag, other[3])
    return first, other
