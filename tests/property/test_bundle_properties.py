"""Properties of bundles: whatever the inputs, a bundle extracts back to exactly them."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.bundle import (
    MANIFEST_NAME,
    BundleEngine,
    BundleSource,
    OutcomeStatus,
    verify_bundle,
)
from data_aggregator.bundle._naming import fold_name
from data_aggregator.exceptions import ValidationError
from data_aggregator.security import sanitize_s3_key
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource
from tests.strategies import BundleObject, bundle_objects


def _sanitizes(key: str) -> bool:
    try:
        sanitize_s3_key(key)
    except ValidationError:
        return False
    return True


@given(objects=bundle_objects(), codec=st.sampled_from(["none", "gzip"]))
def test_bundle_extracts_to_the_source_bytes(objects: list[BundleObject], codec: str) -> None:
    """Extracting with the ``data`` filter gives back every object's bytes under a unique
    name, the manifest maps each member to its source, and only the manifest is named
    ``manifest.json``."""
    source = MemorySource()
    for bucket, key, version, data in objects:
        source.objects[(bucket, key, version)] = data
    sources = [
        BundleSource(bucket, key, len(data), version_id=version, token=i)
        for i, (bucket, key, version, data) in enumerate(objects)
    ]
    sink = MemorySink()
    engine = BundleEngine(
        source, sink, codec=codec, fetch_concurrency=4, clock=FIXED_TIME.timestamp
    )
    run = engine.run(sources, bundle_key="bundle-{}".format)

    for outcome, (_, key, _, _) in zip(run.outcomes, objects, strict=True):
        expected = OutcomeStatus.BUNDLED if _sanitizes(key) else OutcomeStatus.REFUSED
        assert outcome.status is expected
    bundled = run.with_status(OutcomeStatus.BUNDLED)
    if not bundled:
        assert sink.objects == {}
        return
    data = sink.objects["bundle-1"]
    manifest = verify_bundle(io.BytesIO(data), codec)

    names = [member.name for member in manifest.members]
    assert names == [outcome.member_name for outcome in bundled]
    assert len({fold_name(name) for name in names}) == len(names)
    assert fold_name(MANIFEST_NAME) not in {fold_name(name) for name in names}
    with tempfile.TemporaryDirectory() as target:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(target, filter="data")
        root = Path(target)
        for member, outcome in zip(manifest.members, bundled, strict=True):
            bucket, key, version, body = objects[outcome.index]
            assert (member.bucket, member.key, member.version_id) == (bucket, key, version)
            assert (root / member.name).read_bytes() == body
            assert member.size == len(body)
        extracted = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        assert extracted == {*names, MANIFEST_NAME}


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=12_000), min_size=1, max_size=25),
    long_names=st.booleans(),
    limit=st.integers(min_value=12_000, max_value=40_000),
)
def test_the_plan_is_what_the_run_does_and_never_overflows(
    sizes: list[int], long_names: bool, limit: int
) -> None:
    """``BundleEngine.plan`` numbers the bundles before the run; the run puts every member
    in its planned bundle (the processor announces that bundle with the claim), and no
    bundle with more than one member passes the size limit."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for index, size in enumerate(sizes):
        key = f"{'deep/' * 20 if long_names else ''}o{index:03d}.bin"
        etag = source.put("b", key, bytes([index % 256]) * size)
        sources.append(BundleSource(bucket="b", key=key, size=size, etag=etag, token=index))
    engine = BundleEngine(source, sink, codec="none", max_bundle_size_bytes=limit)
    plan = engine.plan(sources)
    planned = plan.bundle_numbers()
    prefix = "k" * 1000  # the longest keys: the plan's manifest allowance is exact

    run = engine.run(plan, bundle_key=lambda n: f"{prefix}/bundle-{n}.tar")
    assert all(outcome.bundled for outcome in run.outcomes)
    for outcome in run.outcomes:
        assert outcome.bundle_key == f"{prefix}/bundle-{planned[outcome.index]}.tar"
    for summary in run.bundles:
        assert summary.member_count == 1 or summary.tar_size <= limit
    numbers = [planned[i] for i in range(len(sources))]
    assert numbers == sorted(numbers)  # bundles follow the input order
