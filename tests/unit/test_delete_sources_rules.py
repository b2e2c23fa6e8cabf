"""Which decided records `DELETE_SOURCES` may delete, and how (`deletable`).

Only an object the bundle is known to hold exactly is deleted: one bundled by this
invocation, or one recovered from a verified bundle whose member is that object.
"""

from __future__ import annotations

import pytest

from data_aggregator.processor import Outcome, Reason
from data_aggregator.processor._deletions import deletable
from data_aggregator.processor._slots import Slot
from data_aggregator.schemas import S3EventNotificationRecord
from data_aggregator.testing import s3_record


def _slot(
    outcome: Outcome,
    reason: Reason | None,
    *,
    version_id: str | None = None,
    etag: str | None = "e1",
    size: int | None = 5,
) -> Slot:
    raw = s3_record("src", "dir/a.txt", size=size, etag=etag, version_id=version_id)
    record = S3EventNotificationRecord.model_validate(raw)
    slot = Slot(0, "m1", record)
    slot.bundled_etag = "fetched" if outcome is Outcome.BUNDLED else None
    slot.decide(outcome, reason, bundle_key="b/1.tar.gz")
    return slot


def test_bundled_here_is_deleted_as_fetched() -> None:
    source = deletable(_slot(Outcome.BUNDLED, None))
    assert source is not None
    assert (source.target.key, source.target.etag, source.target.version_id) == (
        "dir/a.txt",
        "fetched",
        None,
    )
    versioned = deletable(_slot(Outcome.BUNDLED, None, version_id="v1"))
    assert versioned is not None
    assert (versioned.target.version_id, versioned.target.etag) == ("v1", None)


def test_already_completed_duplicates_are_never_deleted() -> None:
    """Nothing shows that their bundle still exists, or which version it holds."""
    assert deletable(_slot(Outcome.DUPLICATE, Reason.ALREADY_COMPLETED)) is None
    assert deletable(_slot(Outcome.DUPLICATE, Reason.ALREADY_COMPLETED, version_id="v2")) is None


def test_recovered_unversioned_is_deleted_while_it_holds_the_bundled_etag() -> None:
    source = deletable(_slot(Outcome.DUPLICATE, Reason.RECOVERED))
    assert source is not None
    assert (source.target.etag, source.target.version_id) == ("e1", None)


def test_recovered_by_content_in_a_versioned_bucket_is_kept() -> None:
    """The member matched by content may be another version with the same bytes."""
    assert deletable(_slot(Outcome.DUPLICATE, Reason.RECOVERED, version_id="v2")) is None


def test_recovered_by_the_seed_key_deletes_that_version() -> None:
    """Without an ETag the key names the version: the member is exactly that version."""
    source = deletable(_slot(Outcome.DUPLICATE, Reason.RECOVERED, version_id="v2", etag=None))
    assert source is not None
    assert (source.target.version_id, source.target.etag) == ("v2", None)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (Outcome.FAILED, Reason.COMPLETE_FAILED),
        (Outcome.FAILED, Reason.TIMEOUT),
        (Outcome.SKIPPED, Reason.OBJECT_NOT_FOUND),
        (Outcome.DUPLICATE, Reason.DUPLICATE_IN_BATCH),
    ],
)
def test_records_not_in_a_completed_bundle_stay(outcome: Outcome, reason: Reason) -> None:
    assert deletable(_slot(outcome, reason)) is None


@pytest.mark.parametrize("etag", ["*", "W/weak"])
def test_a_wildcard_or_weak_etag_is_no_condition(etag: str) -> None:
    """Sent as is, ``*`` would delete whatever the key holds: no condition at all."""
    slot = _slot(Outcome.BUNDLED, None)
    slot.bundled_etag = etag
    source = deletable(slot)
    assert source is not None
    assert source.target.etag is None
    assert source.target.version_id is None


def test_the_null_version_is_deleted_by_its_etag_not_by_version_id() -> None:
    """``VersionId="null"`` would name whatever the key's null version holds at delete
    time: in a versioning-suspended bucket every write replaces it, so it may be an
    object written after the bundling. The ETag condition keeps such an object."""
    source = deletable(_slot(Outcome.BUNDLED, None, version_id="null"))
    assert source is not None
    assert (source.target.version_id, source.target.etag) == (None, "fetched")
