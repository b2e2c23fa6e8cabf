"""Properties of concat bundles: whatever the text, the stream is the sources' lines and the
sidecar's offsets cut every source back exactly."""

from __future__ import annotations

import gzip
import io

from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.bundle import BundleEngine, BundleSource, verify_bundle
from data_aggregator.bundle._codecs import open_decompressed
from data_aggregator.bundle._concat import sidecar_key
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource

#: Text with the characters that matter here: newlines, CR, NUL, multi-byte sequences.
texts = st.text(
    alphabet=st.one_of(st.sampled_from('\n\r\0ab{}"é€😀'), st.characters(codec="utf-8")),
    max_size=40,
)


@given(
    bodies=st.lists(texts.map(lambda text: text.encode("utf-8")), max_size=12),
    codec=st.sampled_from(["none", "gzip"]),
    chunk_size=st.integers(min_value=1, max_value=9),
    in_flight=st.sampled_from([4, 1 << 20]),
)
def test_sources_to_concat_bundle_and_back(
    bodies: list[bytes], codec: str, chunk_size: int, in_flight: int
) -> None:
    """Each bundle is its members' bytes, each followed by one newline if it lacked one;
    the sidecar's offset and size cut each member back; a line reader sees exactly the
    sources' lines. Streamed (``in_flight`` 4) or prefetched, every chunk size."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for i, data in enumerate(bodies):
        etag = source.put("b", f"k{i}", data)
        sources.append(BundleSource("b", f"k{i}", len(data), etag=etag, token=i))
    engine = BundleEngine(
        source,
        sink,
        codec=codec,
        bundle_format="concat",
        chunk_size=chunk_size,
        in_flight_bytes=in_flight,
        clock=FIXED_TIME.timestamp,
    )
    run = engine.run(sources, bundle_key="bundle-{}".format)
    assert all(outcome.bundled for outcome in run.outcomes)
    got: dict[int, bytes] = {}
    lines: list[bytes] = []
    for summary in run.bundles:
        data = sink.objects[summary.key]
        manifest = verify_bundle(
            io.BytesIO(data), codec, sidecar=sink.objects[sidecar_key(summary.key)]
        )
        stream = open_decompressed(io.BytesIO(data), codec).read()
        expected = b"".join(
            member_bytes + (b"\n" if member_bytes and not member_bytes.endswith(b"\n") else b"")
            for member_bytes in (bodies[int(m.key[1:])] for m in manifest.members)
        )
        assert stream == expected
        for member in manifest.members:
            assert member.offset is not None
            got[int(member.key[1:])] = stream[member.offset : member.offset + member.size]
        if codec == "gzip":
            with gzip.open(io.BytesIO(data), "rb") as reader:
                lines.extend(reader)
        else:
            lines.extend(io.BytesIO(stream))
    assert got == dict(enumerate(bodies))
    # Line by line, every source on lines of its own (split on "\n" only, as line readers do).
    expected_lines = [
        line
        for body in bodies
        if body
        for line in io.BytesIO(body if body.endswith(b"\n") else body + b"\n").readlines()
    ]
    assert lines == expected_lines


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=25),
    limit=st.integers(min_value=1, max_value=20_000),
    in_flight=st.sampled_from([2_000, 1 << 20]),
)
def test_the_concat_plan_is_what_the_run_does_and_never_overflows(
    sizes: list[int], limit: int, in_flight: int
) -> None:
    """The concat plan counts the stream exactly: the run puts every member in its planned
    bundle, no bundle of more than one member passes the limit, and a streamed member
    always has a bundle of its own."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for index, size in enumerate(sizes):
        key = f"o{index:03d}.log"
        etag = source.put("b", key, b"z" * size)
        sources.append(BundleSource(bucket="b", key=key, size=size, etag=etag, token=index))
    engine = BundleEngine(
        source,
        sink,
        codec="none",
        bundle_format="concat",
        max_bundle_size_bytes=limit,
        in_flight_bytes=in_flight,
    )
    plan = engine.plan(sources)
    planned = plan.bundle_numbers()
    run = engine.run(plan, bundle_key="bundle-{}.log".format)
    assert all(outcome.bundled for outcome in run.outcomes)
    for outcome in run.outcomes:
        assert outcome.bundle_key == f"bundle-{planned[outcome.index]}.log"
    for summary in run.bundles:
        assert summary.member_count == 1 or summary.tar_size <= limit
        assert len(sink.objects[summary.key]) == summary.tar_size
    for item in plan.items:
        if item.streamed:
            assert list(planned.values()).count(item.bundle) == 1
