"""Hypothesis strategies shared by the property tests (one place, as attrs does).

Sections are owned by area; add to your own section.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- S3 keys
# (security / sanitization strategies go here)
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import strategies as st

#: Pieces that exercise every canonicalisation step and every rejection rule of
#: ``sanitize_s3_key``: separators, dots, percent-escapes (nested, invalid, overlong),
#: Windows prefixes and device names, control / format / surrogate characters, fullwidth
#: and other compatibility forms, decomposable characters, whitespace, plain text.
S3_KEY_ATOMS: tuple[str, ...] = (
    # separators and dots
    "/", "//", "\\", "\\\\", ".", "..", "...", "./", "../", "..\\", "/.", "/..",
    # percent-encoding
    "%", "%%", "%4", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25", "%252e", "%252f",
    "%25252e", "%2525252e", "%00", "%0a", "%ff", "%C0%AE", "%e2%80%8b", "%3a", "%41",
    "%c3%a9", "100%", "+",
    # Windows prefixes and device names
    "C:", "c:", "C:/", "z:\\", "\\\\?\\", "\\\\?\\UNC\\", "\\\\.\\", "//?/", "//server/share/",
    "CON", "con", "Nul", "aux.txt", "COM1", "lpt9", "com0", "conin$", "PRN.", "nul ", "con:",
    # control, format, surrogate and separator characters
    "\x00", "\x1f", "\x7f", "\x85", "\t", "\n", "\u200b", "\u200d", "\u202e", "\ufeff",
    "\u00ad", "\u2028", "\u2029", "\ud800", "\udfff",
    # fullwidth and compatibility forms that NFKC turns into syntax
    "\uff05", "\uff0e", "\uff0f", "\uff3c", "\uff1a", "\uff12\uff45", "\uff12\uff26",
    "\u2024", "\u2025", "\u2026", "\ufe52", "\ufe30", "\u2100", "\uff23\uff1a",
    "\uff23\uff2f\uff2e", "COM\u00b9",
    # decomposable and compatibility characters
    "e\u0301", "\u00e9", "A\u030a", "\u212b", "\ufb01", "\u2460", "\u337f", "\ufdfa",
    # whitespace
    " ", "\u00a0", "\u3000", "\u1680",
    # ordinary text
    "a", "b", "x.txt", "logs", "2024", "\u65e5\u672c\u8a9e", "\U0001f600", "\u00df",
)  # fmt: skip

SEED_KEY_ERROR_CODES = frozenset(
    {
        "INVALID_S3_KEY_TYPE",
        "INVALID_S3_KEY_FORMAT",
        "INVALID_S3_KEY_LENGTH",
        "INVALID_S3_KEY_CHARACTER",
        "UNSAFE_S3_KEY_PATH",
    }
)

_DEVICE_NAME = re.compile(
    r"(?:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9]|CONIN\$|CONOUT\$) *(?:[.:]|\Z)", re.I | re.A
)
# NFKC-stable characters with no special meaning to sanitize_s3_key (no "%", "\", ":").
_SAFE_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-_.+=,;@~!$&'()[]{}# \u00e9\u00df\u03a9\u65e5\u672c\u8a9e\U0001f600"
)


def text_with_surrogates() -> st.SearchStrategy[str]:
    """Any text, lone surrogates included (``st.text()`` leaves them out)."""
    return st.text(st.characters(exclude_categories=()))


def adversarial_s3_keys(max_atoms: int = 12) -> st.SearchStrategy[str]:
    """Keys glued together from :data:`S3_KEY_ATOMS` and short arbitrary text."""
    piece = st.one_of(
        st.sampled_from(S3_KEY_ATOMS),
        st.sampled_from(S3_KEY_ATOMS),
        st.text(max_size=4),
    )
    return st.lists(piece, max_size=max_atoms).map("".join)


def safe_s3_segments() -> st.SearchStrategy[str]:
    """One path segment that ``sanitize_s3_key`` must leave unchanged."""
    return st.text(_SAFE_ALPHABET, min_size=1, max_size=20).filter(
        lambda s: s == s.strip() and s.strip(".") != "" and not _DEVICE_NAME.match(s)
    )


def safe_s3_keys(max_segments: int = 6) -> st.SearchStrategy[str]:
    """Relative keys made of safe segments: ``sanitize_s3_key`` returns them as they are."""
    return st.lists(safe_s3_segments(), min_size=1, max_size=max_segments).map("/".join)


def percent_encode(key: str, times: int) -> str:
    """``key`` percent-encoded ``times`` times over, every character but unreserved ones.

    Lone surrogates are encoded as their (invalid) UTF-8 bytes rather than refused.
    """
    for _ in range(times):
        key = quote(key, safe="", errors="surrogatepass")
    return key


def windows_prefixes() -> st.SearchStrategy[str]:
    """Drive and long-path prefixes that ``sanitize_s3_key`` strips without a trace."""
    return st.sampled_from(
        [
            "/", "//", "\\", "C:", "c:/", "Z:\\", "\\\\?\\", "\\\\?\\C:\\", "\\\\?\\UNC\\",
            "\\\\.\\", "//?/unc/", "\uff23\uff1a\uff3c", "%2F", "C:%5C", "./", "C:/./",
        ]
    )  # fmt: skip


@st.composite
def s3_keys_near_limit(draw: st.DrawFn) -> str:
    """Keys within a few bytes of the 1024-byte limit, with short or over-long segments."""
    target = draw(st.integers(min_value=1016, max_value=1032))
    unit = draw(
        st.sampled_from(
            ["a", "ab/", "abcdefghij/", "\u00e9/", "\u65e5\u672c/", "\U0001f600x/", "%41/",
             "\ufdfa/", "\u00e9", "\u65e5"]
        )
    )  # fmt: skip
    key = unit * (target // len(unit.encode()) + 1)
    while len(key.encode()) > target:
        key = key[:-1]
    key += "z" * (target - len(key.encode()))
    if key.endswith("/"):
        key = key[:-1] + "z"
    return key


def any_s3_key_text() -> st.SearchStrategy[str]:
    """The union used by the sanitization properties: arbitrary and targeted keys."""
    return st.one_of(
        st.text(),
        text_with_surrogates(),
        adversarial_s3_keys(),
        s3_keys_near_limit(),
        st.tuples(windows_prefixes(), adversarial_s3_keys(max_atoms=4)).map("".join),
        st.builds(percent_encode, adversarial_s3_keys(max_atoms=4), st.integers(0, 4)),
    )


# ----------------------------------------------------------------------------- events
# (S3 notification encodings and envelope strategies go here)
#: Pieces of event keys that stress the "decode exactly once" rule: form-encoding syntax
#: (``+``, ``%``, literal escapes, double escapes), spaces, NFC/NFD twins, emoji, and the
#: characters S3 notifications percent-encode.
EVENT_KEY_ATOMS: tuple[str, ...] = (
    "+", "%", "%2B", "%252B", "%20", "%2F", "%%", "%zz", "+%2B+", " ", "  ", "a", "B", "0",
    "/", "log", ".json", "\u00e9", "e\u0301", "\u00c5", "A\u030a", "\U0001f4c8", "\U0001f600",
    "\u65e5\u672c", "~", "*", ":", "=", "&", "?", "#", "@", ";", ",", "'", "(", ")", "!",
)  # fmt: skip


def _is_valid_s3_key(key: str) -> bool:
    try:
        return 0 < len(key.encode("utf-8")) <= 1024
    except UnicodeEncodeError:  # lone surrogates: not a possible S3 key
        return False


def event_keys() -> st.SearchStrategy[str]:
    """Exact S3 keys (non-empty valid UTF-8, at most 1024 bytes) as they exist in S3."""
    glued = st.lists(st.sampled_from(EVENT_KEY_ATOMS), min_size=1, max_size=12).map("".join)
    mixed = st.lists(
        st.one_of(st.sampled_from(EVENT_KEY_ATOMS), st.text(min_size=1, max_size=3)),
        min_size=1,
        max_size=8,
    ).map("".join)
    return st.one_of(glued, mixed, st.text(min_size=1, max_size=40)).filter(_is_valid_s3_key)


def form_encode_key(key: str) -> str:
    """Encode ``key`` as S3 notifications do: form encoding, ``/`` kept, space as ``+``."""
    return quote_plus(key, safe="/")


@st.composite
def raw_s3_records(
    draw: st.DrawFn, key: str, event_name: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    """A raw S3 notification record (AWS's shape) for the exact ``key``, form-encoded."""
    obj: dict[str, Any] = {
        "key": form_encode_key(key),
        "sequencer": draw(st.from_regex(r"[0-9A-F]{16,18}", fullmatch=True)),
    }
    if draw(st.booleans()):
        obj["size"] = draw(st.integers(0, 5 * 1024**4))
        obj["eTag"] = draw(st.from_regex(r"[0-9a-f]{32}(-[1-9][0-9]{0,3})?", fullmatch=True))
    if draw(st.booleans()):
        obj["versionId"] = draw(st.from_regex(r"[A-Za-z0-9._]{32}", fullmatch=True))
    bucket = draw(st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True))
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-01-01T00:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sqs_event(bodies: list[str], queue: str = "queue") -> dict[str, Any]:
    """An SQS-triggered Lambda event with one message per body."""
    return {
        "Records": [
            {
                "messageId": f"message-{index}",
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1704067200000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1704067200001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def sns_notification_body(message: str) -> str:
    """An SNS notification (no raw delivery) carrying ``message``, as SQS receives it."""
    envelope = {
        "Type": "Notification",
        "MessageId": "sns-message",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:topic",
        "Subject": "Amazon S3 Notification",
        "Message": message,
        "Timestamp": "2024-01-01T00:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    return json.dumps(envelope, indent=2, separators=(",", " : "), ensure_ascii=False)


def sns_event(message: str) -> dict[str, Any]:
    """An SNS-triggered Lambda event carrying ``message``."""
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:topic:sub",
                "EventSource": "aws:sns",
                "Sns": {"Type": "Notification", "MessageId": "sns-1", "Message": message},
            }
        ]
    }


#: Ways an S3 notification reaches the function (see :func:`wrap_notification`).
NOTIFICATION_WRAPPERS: tuple[str, ...] = (
    "s3_direct",
    "sns_direct",
    "sqs",
    "sqs_sns",
    "sqs_sns_raw",
)


def wrap_notification(wrapper: str, notification: dict[str, Any]) -> dict[str, Any]:
    """The Lambda event delivering ``notification`` the way ``wrapper`` names."""
    body = _compact(notification)
    if wrapper == "s3_direct":
        return notification
    if wrapper == "sns_direct":
        return sns_event(body)
    if wrapper == "sqs_sns":
        return sqs_event([sns_notification_body(body)])
    # "sqs" and "sqs_sns_raw" (raw message delivery) look the same to the function.
    return sqs_event([body])


def notification_wrappers() -> st.SearchStrategy[str]:
    """Names of :data:`NOTIFICATION_WRAPPERS`."""
    return st.sampled_from(NOTIFICATION_WRAPPERS)


def eventbridge_event(key: str, size: int = 1, etag: str = "0" * 32) -> dict[str, Any]:
    """An EventBridge ``Object Created`` event whose ``detail.object.key`` is ``key``."""
    return {
        "version": "0",
        "id": "eventbridge-event",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::bucket-name"],
        "detail": {
            "version": "0",
            "bucket": {"name": "bucket-name"},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": "0A1B2C3D4E5F"},
            "request-id": "EXAMPLE",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


# ----------------------------------------------------------------------------- configuration
# (environment variables for data_aggregator.config.AppConfig)

#: Integer variables and their ranges on their own (cross-field rules narrow a few of them).
CONFIG_INT_RANGES: dict[str, tuple[int, int]] = {
    "IDEMPOTENCY_TTL_DAYS": (1, 365),
    "SPOOL_FILE_MAX_SIZE_MB": (1, 10240),
    "MAX_BUNDLE_ON_DISK_MB": (1, 10240),
    "COMPRESSION_LEVEL": (1, 22),
    "MAX_BUNDLE_SIZE_MB": (1, 5_000_000),
    "FETCH_CONCURRENCY": (1, 256),
    "UPLOAD_CONCURRENCY": (1, 64),
    "MULTIPART_PART_SIZE_MB": (5, 5120),
    "IN_FLIGHT_BYTES_MB": (1, 10240),
}

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
    disk = draw(st.integers(5, 10240))
    part = draw(st.integers(5, min(5120, disk)))
    codec = draw(st.sampled_from(["gzip", "zstd", "none"]))
    env = {
        "DISTRIBUTION_BUCKET_NAME": draw(destination_bucket_names()),
        "MAX_BUNDLE_ON_DISK_MB": str(disk),
        "MULTIPART_PART_SIZE_MB": str(part),
        "MAX_BUNDLE_SIZE_MB": str(draw(st.integers(1, min(5_000_000, part * 10_000)))),
        "BUNDLE_CODEC": _randomly_cased(draw, codec),
        "TIMEOUT_GUARD_THRESHOLD_SECONDS": repr(
            draw(st.floats(0, 900, exclude_min=True, allow_nan=False))
        ),
        "LEASE_MARGIN_SECONDS": repr(draw(st.floats(0, 300, allow_nan=False))),
        "METRICS_ENABLED": draw(st.sampled_from(_CONFIG_TRUE_FALSE)),
        "LOG_LEVEL": draw(st.sampled_from(_CONFIG_LOG_LEVELS)),
    }
    for name in ("IDEMPOTENCY_TTL_DAYS", "SPOOL_FILE_MAX_SIZE_MB", "FETCH_CONCURRENCY"):
        env[name] = str(draw(st.integers(*CONFIG_INT_RANGES[name])))
    for name in ("UPLOAD_CONCURRENCY", "IN_FLIGHT_BYTES_MB"):
        env[name] = str(draw(st.integers(*CONFIG_INT_RANGES[name])))
    if codec != "none" and draw(st.booleans()):
        env["COMPRESSION_LEVEL"] = str(draw(st.integers(1, 9 if codec == "gzip" else 22)))
    optional = {
        "IDEMPOTENCY_TABLE_NAME": st.from_regex(r"[A-Za-z0-9_.-]{3,40}", fullmatch=True),
        "SERVICE_NAME": st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True),
        "EXPECTED_BUCKET_OWNER": st.from_regex(r"[0-9]{12}", fullmatch=True),
        "BUNDLE_PREFIX": st.from_regex(
            r"[a-z0-9_-]{1,10}(/[a-z0-9_-]{1,10}){0,3}/?", fullmatch=True
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
# (fault schedules for the simulated processor; see tests/idempotency_support.py)
from tests.idempotency_support import FAULT_POINTS  # noqa: E402

#: ``{invocation number: {fault point, ...}}`` over the first few invocations.
fault_plans = st.dictionaries(
    st.integers(1, 8), st.sets(st.sampled_from(FAULT_POINTS), max_size=2), max_size=6
)


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
