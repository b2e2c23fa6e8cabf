"""data_aggregator.testing: builders encode keys as AWS does, and the fakes behave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import unicodedata
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given

from data_aggregator import get_config, testing
from data_aggregator.schemas import Envelope, S3EventRecord, parse_event
from data_aggregator.testing import (
    FakeClock,
    InMemoryIdempotencyStore,
    LocalContext,
    encode_event_key,
    eventbridge_object_created,
    import_handler,
    local_context,
    s3_notification,
    s3_record,
    s3_test_event,
    sns_notification,
    sqs_event,
    sqs_message,
    use_environment,
)
from data_aggregator.testing.strategies import (
    is_valid_s3_key,
    nfc_nfd_twins,
    s3_event_records,
    s3_keys,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

AWKWARD = ["a b+c.txt", "100%/x", "%2B already", "e\u0301/\u00e9", "\U0001f600+/x y+z"]


def _only_key(event: Mapping[str, Any]) -> str:
    (message,) = parse_event(event)
    assert message.error is None, message.error
    (record,) = message.records
    return record.s3.object.original_key


def test_all_is_sorted_and_resolves() -> None:
    """The public __all__ is sorted and every name in it exists."""
    assert testing.__all__ == sorted(testing.__all__)
    assert all(getattr(testing, name) is not None for name in testing.__all__)
    assert testing.InMemoryIdempotencyStore is InMemoryIdempotencyStore


def test_importing_the_builders_loads_neither_hypothesis_nor_moto() -> None:
    """`import data_aggregator.testing` needs only the standard library and the package."""
    code = (
        "import sys, data_aggregator.testing; "
        "print(sorted(m for m in ('hypothesis', 'moto') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_keys_are_form_encoded_as_aws_does() -> None:
    """Space becomes +, + becomes %2B, / is kept, non-ASCII is UTF-8 percent-escaped."""
    assert encode_event_key("a b+c/d") == "a+b%2Bc/d"
    assert encode_event_key("\u00e9") == "%C3%A9"
    record = s3_record("bucket", "x y.txt", size=3, etag="e" * 32)
    assert record["s3"]["object"]["key"] == "x+y.txt"


@pytest.mark.parametrize("key", AWKWARD)
def test_each_envelope_round_trips_the_exact_key(key: str) -> None:
    """Direct, SQS, SQS+SNS, raw SNS and EventBridge events all parse back to the exact key."""
    body = s3_notification([s3_record("bucket", key)])
    assert _only_key(body) == key
    assert _only_key(sqs_event([sqs_message(body)])) == key
    assert _only_key(sqs_event([sqs_message(sns_notification(body))])) == key
    assert _only_key(sqs_event([sqs_message(sns_notification(body, raw=True))])) == key
    assert _only_key(eventbridge_object_created("bucket", key)) == key


@given(s3_event_records())
def test_generated_records_parse_to_their_exact_key(record: S3EventRecord) -> None:
    """Every record the strategy builds, for any key S3 accepts, decodes back exactly once."""
    event = sqs_event([sqs_message(s3_notification([record]))])
    (message,) = parse_event(event)
    if message.error is not None:  # only keys the seed validator refuses may fail
        assert message.error.error_code.startswith(("INVALID_S3_KEY", "UNSAFE_S3_KEY"))
        return
    (parsed,) = message.records
    assert encode_event_key(parsed.s3.object.original_key) == record["s3"]["object"]["key"]


@given(s3_keys())
def test_generated_keys_are_keys_s3_accepts(key: str) -> None:
    """s3_keys only draws non-empty valid UTF-8 of at most 1024 bytes."""
    assert is_valid_s3_key(key)


@given(nfc_nfd_twins())
def test_nfc_nfd_twins_differ_but_normalise_alike(pair: tuple[str, str]) -> None:
    """Twins are different keys that are the same text after normalisation."""
    nfc, nfd = pair
    assert nfc != nfd
    assert unicodedata.normalize("NFC", nfd) == nfc


def test_fifo_messages_carry_group_sequence_and_queue() -> None:
    """A FIFO message has the group, sequence number and .fifo queue parse_event reports."""
    body = s3_notification([s3_record("bucket", "k")])
    event = sqs_event(
        [sqs_message(body, message_id="m-1", fifo=True, group_id="g", sequence_number=7)]
    )
    (message,) = parse_event(event)
    assert message.message_id == "m-1"
    assert message.message_group_id == "g"
    assert message.sequence_number == "00000000000000000007"
    assert message.event_source_arn is not None
    assert message.event_source_arn.endswith(".fifo")


def test_fifo_settings_must_match_the_queue() -> None:
    """FIFO attributes on a standard queue, or a .fifo ARN without fifo=True, are refused."""
    with pytest.raises(ValueError, match="FIFO"):
        sqs_message("{}", group_id="g")
    with pytest.raises(ValueError, match="fifo=False"):
        sqs_message("{}", queue_arn="arn:aws:sqs:us-east-1:123456789012:q.fifo")


def test_sns_envelope_wraps_the_body_as_its_message() -> None:
    """Without raw delivery the SQS body is SNS's JSON envelope whose Message is the body."""
    envelope = json.loads(sns_notification("payload"))
    assert envelope["Type"] == "Notification"
    assert envelope["Message"] == "payload"
    assert sns_notification("payload", raw=True) == "payload"
    body = s3_notification([s3_record("bucket", "k")])
    (message,) = parse_event(sqs_event([sqs_message(sns_notification(body))]))
    assert message.envelope is Envelope.SQS_SNS


def test_eventbridge_event_carries_the_key_unencoded() -> None:
    """EventBridge events hold the key as it is, with the version id when given."""
    event = eventbridge_object_created("bucket", "a b+c", version_id="v1", size=5)
    assert event["detail"]["object"]["key"] == "a b+c"
    assert event["detail"]["object"]["version-id"] == "v1"
    (message,) = parse_event(event)
    (record,) = message.records
    assert record.s3.object.version_id == "v1"


def test_test_event_is_recognised() -> None:
    """s3_test_event parses as a test event with no records."""
    (message,) = parse_event(sqs_event([sqs_message(s3_test_event("bucket"))]))
    assert message.is_test_event
    assert message.records == ()


def test_fake_clock_moves_only_forward_and_drives_a_context() -> None:
    """A LocalContext on a FakeClock counts down exactly as the clock is advanced."""
    clock = FakeClock()
    context = local_context(10, clock, aws_request_id="req")
    assert isinstance(context, LocalContext)
    assert context.aws_request_id == "req"
    assert context.get_remaining_time_in_millis() == 10_000
    clock.advance(2.5)
    assert context.get_remaining_time_in_millis() == 7_500
    clock.advance(60)
    assert context.get_remaining_time_in_millis() == 0
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_fake_clock_is_shared_safely_by_threads() -> None:
    """Threads advancing and reading one FakeClock lose no step; ``now`` is read-only."""
    clock = FakeClock(0.0)
    seen: list[float] = []

    def tick() -> None:
        for _ in range(2_000):
            clock.advance(0.25)
            seen.append(clock())

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock() == clock.now == 8 * 2_000 * 0.25
    assert max(seen) == clock()
    with pytest.raises(AttributeError):
        clock.now = 0.0  # type: ignore[misc]


def test_use_environment_applies_then_restores_and_clears_the_config_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside, get_config() reads the applied variables; after, the old ones, and no profile."""
    monkeypatch.setenv("DISTRIBUTION_BUCKET_NAME", "before")
    monkeypatch.setenv("AWS_PROFILE", "someones-real-profile")
    monkeypatch.delenv("IDEMPOTENCY_TABLE_NAME", raising=False)
    get_config.cache_clear()
    assert get_config().distribution_bucket_name == "before"
    with use_environment({"DISTRIBUTION_BUCKET_NAME": "inside", "IDEMPOTENCY_TABLE_NAME": "tbl"}):
        assert get_config().distribution_bucket_name == "inside"
        assert "AWS_PROFILE" not in os.environ
    assert get_config().distribution_bucket_name == "before"
    assert os.environ["AWS_PROFILE"] == "someones-real-profile"
    assert "IDEMPOTENCY_TABLE_NAME" not in os.environ
    get_config.cache_clear()


def test_import_handler_runs_module_level_code_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By name or by path, each import executes the module afresh."""
    (tmp_path / "counting_handler.py").write_text(
        "import os\nBUILT_FOR = os.environ['WHICH']\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WHICH", "first")
    assert import_handler("counting_handler").BUILT_FOR == "first"
    monkeypatch.setenv("WHICH", "second")
    assert import_handler("counting_handler").BUILT_FOR == "second"
    assert import_handler(tmp_path / "counting_handler.py").BUILT_FOR == "second"
    monkeypatch.delitem(sys.modules, "counting_handler")


def test_import_handler_of_a_missing_file_raises() -> None:
    """A path that is not a file is a ModuleNotFoundError naming it."""
    with pytest.raises(ModuleNotFoundError, match="no handler module"):
        import_handler("/nonexistent/handler.py")


def test_use_environment_hides_the_shell_and_restores_after_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings and endpoints left in the shell are hidden inside, and all is back after a raise."""
    monkeypatch.setenv("KMS_KEY_ID", "alias/from-the-shell")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/home/someone/.aws/config")
    seen: dict[str, str | None] = {}

    def body() -> None:
        with use_environment({"SERVICE_NAME": "svc"}):
            for name in ("KMS_KEY_ID", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE", "SERVICE_NAME"):
                seen[name] = os.environ.get(name)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        body()
    assert seen == {
        "KMS_KEY_ID": None,
        "AWS_ENDPOINT_URL_S3": None,
        "AWS_CONFIG_FILE": os.devnull,
        "SERVICE_NAME": "svc",
    }
    assert os.environ["KMS_KEY_ID"] == "alias/from-the-shell"
    assert os.environ["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:1"
    assert os.environ["AWS_CONFIG_FILE"] == "/home/someone/.aws/config"
    assert "SERVICE_NAME" not in os.environ


def test_import_handler_reimports_the_whole_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dotted handler is re-imported with its package's other modules, not only itself."""
    package = tmp_path / "svc_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "settings.py").write_text(
        "import os\nWHICH = os.environ['WHICH']\n", encoding="utf-8"
    )
    (package / "handler.py").write_text("from svc_pkg.settings import WHICH\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WHICH", "first")
    assert import_handler("svc_pkg.handler").WHICH == "first"
    monkeypatch.setenv("WHICH", "second")
    assert import_handler("svc_pkg.handler").WHICH == "second"
    for name in ("svc_pkg", "svc_pkg.settings", "svc_pkg.handler"):
        monkeypatch.delitem(sys.modules, name)


def test_import_handler_by_path_supports_dataclasses(tmp_path: Path) -> None:
    """A module loaded by path is registered while it runs, as dataclasses need."""
    path = tmp_path / "dc_handler.py"
    path.write_text(
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "@dataclass\n"
        "class Settings:\n"
        "    LIMIT: ClassVar[int] = 3\n"
        "    name: str = 'x'\n",
        encoding="utf-8",
    )
    module = import_handler(path)
    assert module.Settings().name == "x"
    assert sys.modules[module.__name__] is module
    del sys.modules[module.__name__]
