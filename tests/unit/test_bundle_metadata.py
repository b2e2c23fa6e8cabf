"""Bundles describe themselves in their S3 metadata (format, a concat bundle's sidecar key),
readers of stored bundles go by it whatever their own settings, and every entry point
normalises a sidecar prefix as ``SIDECAR_PREFIX`` does. In memory: no S3 involved."""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any
from unittest.mock import MagicMock

import boto3
import pytest

from data_aggregator.bundle import (
    BundleEngine,
    BundleSource,
    MultipartSink,
    _writer,
    read_bundle_manifest,
    verify_bundle,
)
from data_aggregator.bundle._concat import sidecar_key
from data_aggregator.bundle._metadata import (
    FORMAT_METADATA,
    MAX_SIDECAR_METADATA,
    SIDECAR_METADATA,
    BundleDescription,
    bundle_metadata,
)
from data_aggregator.bundle._verify import sidecar_candidates
from data_aggregator.clients import S3Client
from data_aggregator.config import (
    AppConfig,
    BundleFormat,
    normalise_key_prefix,
    resolve_bundle_format,
)
from data_aggregator.exceptions import (
    BundleError,
    ConfigurationError,
    ErrorCode,
    S3AccessDeniedError,
    S3ObjectNotFoundError,
    ValidationError,
)
from data_aggregator.idempotency import S3ManifestBundleLocator
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource, MemoryUpload

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.bundle import BundleRun

CONCAT_KEY = "logs/bundle-{}.log.gz"
TAR_KEY = "logs/bundle-{}.tar.gz"


def _write(
    sink: MemorySink, bodies: list[bytes], key: str, **engine: Any
) -> tuple[BundleRun, list[BundleSource]]:
    source = MemorySource()
    sources = []
    for i, data in enumerate(bodies):
        etag = source.put("src", f"k{i}.log", data)
        sources.append(BundleSource("src", f"k{i}.log", len(data), etag=etag, token=i))
    engine_ = BundleEngine(source, sink, clock=FIXED_TIME.timestamp, **engine)
    return engine_.run(sources, bundle_key=key.format), sources


# ------------------------------------------------------------------ the metadata itself


def test_a_tar_bundle_names_its_format_only() -> None:
    """A tar bundle's metadata is ``aggregator-format: tar``; the sidecar key is left out."""
    assert bundle_metadata(BundleFormat.TAR, None) == {FORMAT_METADATA: "tar"}
    assert BundleDescription.from_metadata({FORMAT_METADATA: "tar"}) == BundleDescription(
        BundleFormat.TAR
    )


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        (
            "manifests/2024/05/b-1.log.gz.manifest.json",
            "manifests/2024/05/b-1.log.gz.manifest.json",
        ),
        ("m/a b+c=d.log.gz.manifest.json", "m/a%20b%2Bc%3Dd.log.gz.manifest.json"),
        ("m/café☕.log.gz.manifest.json", "m/caf%C3%A9%E2%98%95.log.gz.manifest.json"),
        ("m/%41\n.log.manifest.json", "m/%2541%0A.log.manifest.json"),
    ],
)
def test_a_concat_bundle_names_its_sidecar_percent_encoded(key: str, encoded: str) -> None:
    """The sidecar key is stored percent-encoded (ASCII keys as they are; what an HTTP
    header cannot carry, encoded) and read back exactly."""
    metadata = bundle_metadata(BundleFormat.CONCAT, key)
    assert metadata == {FORMAT_METADATA: "concat", SIDECAR_METADATA: encoded}
    assert all(value.isascii() and value.isprintable() for value in metadata.values())
    assert BundleDescription.from_metadata(metadata) == BundleDescription(BundleFormat.CONCAT, key)


def test_a_sidecar_key_too_long_for_s3_metadata_is_left_out() -> None:
    """S3 allows 2 KB of user metadata: a key whose encoding passes the limit is not
    recorded (readers then use their own SIDECAR_PREFIX), the format still is."""
    fits = "m/" + "a" * (MAX_SIDECAR_METADATA - 2)
    assert SIDECAR_METADATA in bundle_metadata(BundleFormat.CONCAT, fits)
    long = "m/" + "é" * 200  # 400 UTF-8 bytes, 1,200 characters encoded
    assert bundle_metadata(BundleFormat.CONCAT, long) == {FORMAT_METADATA: "concat"}


@pytest.mark.parametrize("char", ["=", " ", "+", ":"])
def test_ascii_punctuation_counts_three_characters_against_the_limit(char: str) -> None:
    """Every byte other than a letter, digit or ``-._~/`` is encoded as three characters,
    ASCII punctuation too: a 400-byte key is recorded with 312 such bytes, not 313 (the
    rule docs/bundle-format.md states: bytes + 2 x encoded bytes <= 1,024)."""
    for encoded, recorded in ((312, True), (313, False)):
        key = char * encoded + "a" * (400 - encoded)
        assert (SIDECAR_METADATA in bundle_metadata(BundleFormat.CONCAT, key)) is recorded


def test_metadata_keys_are_read_in_any_case() -> None:
    """S3 returns metadata keys in lower case, other stores may not: either reads."""
    found = BundleDescription.from_metadata(
        {"Aggregator-Format": "CONCAT", "AGGREGATOR-SIDECAR": "m/k.manifest.json"}
    )
    assert found == BundleDescription(BundleFormat.CONCAT, "m/k.manifest.json")


def test_no_metadata_describes_nothing() -> None:
    """A bundle written before bundles described themselves (or someone else's metadata)
    has no format: readers go by their configuration."""
    assert BundleDescription.from_metadata({}) == BundleDescription()
    assert BundleDescription.from_metadata({"content-sha256": "ab"}) == BundleDescription()


@pytest.mark.parametrize(
    "metadata",
    [
        {FORMAT_METADATA: "parquet"},
        {FORMAT_METADATA: "tar", SIDECAR_METADATA: "k.manifest.json"},
        {FORMAT_METADATA: "concat", SIDECAR_METADATA: ""},
        {FORMAT_METADATA: "concat", SIDECAR_METADATA: "m/%FF.manifest.json"},
    ],
    ids=["unknown-format", "sidecar-on-tar", "empty-sidecar", "not-utf8"],
)
def test_metadata_that_cannot_be_trusted_is_a_bundle_error(metadata: dict[str, str]) -> None:
    """A format this version does not know, or a sidecar key that cannot be right, makes
    the bundle unreadable (``BUNDLE_INVALID``) rather than guessed at."""
    with pytest.raises(BundleError) as caught:
        BundleDescription.from_metadata(metadata)
    assert caught.value.error_code == ErrorCode.BUNDLE_INVALID


# ------------------------------------------------------------------ what the writer stores


def test_the_engine_describes_each_bundle_and_leaves_tar_bytes_alone() -> None:
    """Tar bundles carry ``aggregator-format: tar`` (the bytes are those of a sink without
    metadata); concat bundles name their sidecar under the engine's prefix; sidecars carry
    no metadata."""
    tar_sink, concat_sink = MemorySink(), MemorySink()
    _write(tar_sink, [b"a\n", b"b"], TAR_KEY)
    _write(concat_sink, [b"a\n", b"b"], CONCAT_KEY, bundle_format="concat", sidecar_prefix="m")
    assert tar_sink.metadata == {TAR_KEY.format(1): {FORMAT_METADATA: "tar"}}
    bundle = CONCAT_KEY.format(1)
    assert concat_sink.metadata == {
        f"m/{bundle}.manifest.json": {},
        bundle: {FORMAT_METADATA: "concat", SIDECAR_METADATA: f"m/{bundle}.manifest.json"},
    }
    verify_bundle(io.BytesIO(tar_sink.objects[TAR_KEY.format(1)]))


def _sink(metadata: dict[str, str]) -> MultipartSink:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3")
    return MultipartSink(S3Client(client), "d", extra_args={"Metadata": metadata})


@pytest.mark.parametrize(
    "key", ["aggregator-format", "Aggregator-Sidecar", "AGGREGATOR-FORMAT", "Content-SHA256"]
)
def test_a_sinks_own_metadata_may_not_use_the_bundles_keys(key: str) -> None:
    """``MultipartSink(extra_args={"Metadata": ...})`` naming a key of the bundle's
    description, in any case, would spoil it (S3 keeps both spellings and joins them): it is
    refused when the sink is built, as ``content-sha256`` is."""
    with pytest.raises(ValidationError) as caught:
        _sink({key: "x"})
    assert caught.value.error_code == ErrorCode.INVALID_UPLOAD_ARGUMENT
    assert caught.value.context["argument"] == "Metadata"


def test_a_sinks_own_metadata_must_leave_room_for_the_bundles() -> None:
    """S3 allows 2,048 bytes of user metadata: 1,065 for the description at its longest
    and 78 for ``content-sha256`` leave 905 (keys and values, UTF-8), checked when the
    sink is built, not at every upload."""
    fits = {"team": "d" * (905 - 4)}
    _sink(fits)  # accepted
    with pytest.raises(ValidationError) as caught:
        _sink({"team": "é" * 451})  # 4 + 902 bytes
    assert (caught.value.context["bytes"], caught.value.context["limit"]) == (906, 905)
    assert caught.value.error_code == ErrorCode.INVALID_UPLOAD_ARGUMENT
    longest = bundle_metadata(BundleFormat.CONCAT, "m/" + "a" * (MAX_SIDECAR_METADATA - 2))
    ours = sum(len(k) + len(v) for k, v in longest.items()) + len("content-sha256") + 64
    assert 905 + ours == 2048


# ------------------------------------------------------------------ what readers do


def _concat_under(prefix: str) -> MemorySink:
    sink = MemorySink()
    _write(sink, [b"x\n", b"y"], CONCAT_KEY, bundle_format="concat", sidecar_prefix=prefix)
    return sink


@pytest.mark.parametrize("layout", ["tar", "concat"])
@pytest.mark.parametrize("reader_prefix", ["", "manifests/", "elsewhere/"])
def test_a_described_concat_bundle_is_read_whatever_the_readers_settings(
    layout: str, reader_prefix: str
) -> None:
    """The bundle's metadata names its sidecar: one GET of the bundle and one of that
    sidecar, whatever BUNDLE_FORMAT and SIDECAR_PREFIX the reader has."""
    store = _concat_under("manifests").as_source()
    bundle = CONCAT_KEY.format(1)
    manifest = read_bundle_manifest(
        store, "d", bundle, bundle_format=layout, sidecar_prefix=reader_prefix
    )
    assert (manifest.bundle_format, manifest.bundle_key) == (BundleFormat.CONCAT, bundle)
    assert store.opened == [bundle, f"manifests/{bundle}.manifest.json"]


def test_a_described_tar_bundle_is_not_looked_up_as_concat() -> None:
    """A concat deployment reading a tar bundle (written before the switch) that says it
    is tar asks for no sidecar."""
    sink = MemorySink()
    _write(sink, [b"x"], TAR_KEY)
    store = sink.as_source()
    manifest = read_bundle_manifest(store, "d", TAR_KEY.format(1), bundle_format="concat")
    assert manifest.bundle_format is BundleFormat.TAR
    assert store.opened == [TAR_KEY.format(1)]


def test_a_concat_bundle_whose_named_sidecar_is_gone_cannot_be_read() -> None:
    """The metadata names a sidecar that no longer exists: a `BundleError` (the records
    wait), never "no such bundle" (which would bundle them again)."""
    sink = _concat_under("manifests")
    del sink.objects[f"manifests/{CONCAT_KEY.format(1)}.manifest.json"]
    with pytest.raises(BundleError, match="no sidecar manifest"):
        read_bundle_manifest(sink.as_source(), "d", CONCAT_KEY.format(1), bundle_format="concat")


def test_a_sidecar_named_by_the_metadata_must_name_this_bundle() -> None:
    """Metadata pointing at another bundle's sidecar is refused: the manifest must name
    the bundle read."""
    sink = _concat_under("")
    _write(sink, [b"z\n"], "logs/other-{}.log.gz", bundle_format="concat")
    bundle = CONCAT_KEY.format(1)
    sink.metadata[bundle][SIDECAR_METADATA] = sidecar_key("logs/other-1.log.gz")
    with pytest.raises(BundleError, match="names bundle"):
        read_bundle_manifest(sink.as_source(), "d", bundle)


@pytest.mark.parametrize("writer_prefix", ["", "manifests/"])
@pytest.mark.parametrize("layout", ["tar", "concat"])
def test_an_undescribed_concat_bundle_is_found_at_the_readers_prefix_or_next_to_it(
    writer_prefix: str, layout: str
) -> None:
    """Without metadata (an earlier version's bundle) the reader's SIDECAR_PREFIX is tried,
    then next to the bundle; a tar reader tries them once the bundle fails to read as tar
    (reading the bundle a second time)."""
    store = _concat_under(writer_prefix).as_source(described=False)
    bundle = CONCAT_KEY.format(1)
    manifest = read_bundle_manifest(
        store, "d", bundle, bundle_format=layout, sidecar_prefix=writer_prefix
    )
    assert manifest.bundle_format is BundleFormat.CONCAT
    assert store.opened.count(bundle) == (2 if layout == "tar" else 1)


def test_an_undescribed_concat_bundle_under_an_unknown_prefix_cannot_be_read() -> None:
    """Without metadata and with the sidecar where the reader does not look, the bundle
    reads as a broken tar: a `BundleError`, never a guess."""
    store = _concat_under("manifests").as_source(described=False)
    for layout in ("tar", "concat"):
        with pytest.raises(BundleError):
            read_bundle_manifest(store, "d", CONCAT_KEY.format(1), bundle_format=layout)


def _concat_holding_a_tar_bundle() -> MemorySink:
    """An undescribed concat bundle ``out-1.log`` (sidecar next to it) whose one member is
    itself an uncompressed tar bundle, ``inner-1.tar``: read as tar, it is that bundle."""
    inner_sink = MemorySink()
    _write(inner_sink, [b"hello\n"], "inner-{}.tar", codec="none")
    inner = inner_sink.objects["inner-1.tar"]
    sink = MemorySink()
    source = MemorySource()
    etag = source.put("src", "evil.tar", inner)
    BundleEngine(
        source, sink, clock=FIXED_TIME.timestamp, codec="none", bundle_format="concat"
    ).run(
        [BundleSource("src", "evil.tar", len(inner), etag=etag, token=0)],
        bundle_key="out-{}.log".format,
    )
    return sink


@pytest.mark.parametrize("layout", ["tar", "concat"])
def test_a_concat_bundle_holding_a_tar_bundle_is_read_against_its_sidecar(layout: str) -> None:
    """Without metadata, the tar read of a concat bundle whose first member is a tar
    bundle succeeds with the inner bundle's manifest: that names another bundle, so it is
    a failed tar read and the sidecar decides (not the inner bundle's members)."""
    sink = _concat_holding_a_tar_bundle()
    manifest = read_bundle_manifest(
        sink.as_source(described=False), "d", "out-1.log", bundle_format=layout
    )
    assert (manifest.bundle_key, manifest.bundle_format) == ("out-1.log", BundleFormat.CONCAT)
    assert [member.key for member in manifest.members] == ["evil.tar"]


@pytest.mark.parametrize("layout", ["tar", "concat"])
def test_a_tar_manifest_naming_another_bundle_is_refused_on_every_path(layout: str) -> None:
    """Without a sidecar to fall back on, a tar manifest naming another bundle is a
    `BundleError`: for the concat bundle above, and for a described tar bundle stored under
    another key."""
    sink = _concat_holding_a_tar_bundle()
    del sink.objects[sidecar_key("out-1.log")]
    with pytest.raises(BundleError, match=r"names bundle 'inner-1\.tar'"):
        read_bundle_manifest(
            sink.as_source(described=False), "d", "out-1.log", bundle_format=layout
        )
    tar_sink = MemorySink()
    _write(tar_sink, [b"x"], TAR_KEY)
    tar_sink.objects["copy.tar.gz"] = tar_sink.objects[TAR_KEY.format(1)]
    tar_sink.metadata["copy.tar.gz"] = tar_sink.metadata[TAR_KEY.format(1)]
    with pytest.raises(BundleError, match="names bundle"):
        read_bundle_manifest(tar_sink.as_source(), "d", "copy.tar.gz", bundle_format=layout)


def test_a_sidecar_without_its_bundle_is_not_committed_for_every_reader() -> None:
    """The bundle is opened first: no bundle, `S3ObjectNotFoundError`, whatever sidecar
    exists and whatever the reader's format."""
    sink = _concat_under("")
    del sink.objects[CONCAT_KEY.format(1)]
    for layout in ("tar", "concat"):
        with pytest.raises(S3ObjectNotFoundError):
            read_bundle_manifest(sink.as_source(), "d", CONCAT_KEY.format(1), bundle_format=layout)


# ------------------------------------------------------------------ without s3:ListBucket


@pytest.mark.parametrize("layout", ["tar", "concat"])
def test_a_403_at_the_readers_prefix_moves_on_to_next_to_the_bundle(layout: str) -> None:
    """Without ``s3:ListBucket`` a missing object answers 403: a sidecar missing under the
    reader's SIDECAR_PREFIX does not stop the search before the one next to the bundle."""
    store = _concat_under("").as_source(described=False, listable=False)
    bundle = CONCAT_KEY.format(1)
    manifest = read_bundle_manifest(
        store, "d", bundle, bundle_format=layout, sidecar_prefix="manifests"
    )
    assert manifest.bundle_format is BundleFormat.CONCAT
    assert f"manifests/{bundle}.manifest.json" in store.opened


def test_a_tar_bundle_read_by_a_concat_reader_without_list_rights() -> None:
    """An undescribed tar bundle (written before a switch to concat): both sidecar places
    answer 403, and the bundle reads as tar, as it does with ``s3:ListBucket``."""
    sink = MemorySink()
    _write(sink, [b"x"], TAR_KEY)
    store = sink.as_source(described=False, listable=False)
    manifest = read_bundle_manifest(
        store, "d", TAR_KEY.format(1), bundle_format="concat", sidecar_prefix="m"
    )
    assert manifest.bundle_key == TAR_KEY.format(1)


@pytest.mark.parametrize(
    ("described", "layout"), [(True, "tar"), (False, "tar"), (False, "concat")]
)
def test_no_sidecar_found_after_a_403_is_an_access_error_that_says_so(
    described: bool, layout: str
) -> None:
    """Every place failed and one answered 403: the sidecar may be there, unreadable, so
    the error is `S3AccessDeniedError` naming that place (with every place a 404: the
    `BundleError` as before)."""
    sink = _concat_under("manifests")
    bundle = CONCAT_KEY.format(1)
    del sink.objects[f"manifests/{bundle}.manifest.json"]
    read = functools.partial(
        read_bundle_manifest, bundle_key=bundle, bundle_format=layout, sidecar_prefix="manifests"
    )
    with pytest.raises(S3AccessDeniedError) as denied:
        read(sink.as_source(described=described, listable=False), "d")
    assert f"access denied at manifests/{bundle}.manifest.json" in denied.value.message
    assert denied.value.context["bundle_key"] == bundle
    with pytest.raises(BundleError):
        read(sink.as_source(described=described), "d")


def test_sidecar_candidates() -> None:
    """Where a reader looks: the metadata's key only; none for tar; else the configured
    prefix, then next to the bundle (once when they are the same)."""
    key = "b.log.gz"
    assert sidecar_candidates(key, BundleDescription(BundleFormat.TAR), "m/") == ()
    named = BundleDescription(BundleFormat.CONCAT, "x/b.log.gz.manifest.json")
    assert sidecar_candidates(key, named, "m/") == ("x/b.log.gz.manifest.json",)
    for unnamed in (BundleDescription(BundleFormat.CONCAT), BundleDescription()):
        assert sidecar_candidates(key, unnamed, "m/") == (
            "m/b.log.gz.manifest.json",
            "b.log.gz.manifest.json",
        )
        assert sidecar_candidates(key, unnamed) == ("b.log.gz.manifest.json",)


# ------------------------------------------------------------------ one prefix rule


def _locator(sidecar_prefix: str = "", **options: Any) -> S3ManifestBundleLocator:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3")
    return S3ManifestBundleLocator(
        "d", client=S3Client(client), sidecar_prefix=sidecar_prefix, **options
    )


@pytest.mark.parametrize(
    ("given", "normal"),
    [("", ""), ("manifests", "manifests/"), ("manifests/", "manifests/"), ("a/b", "a/b/")],
)
def test_every_entry_point_normalises_a_sidecar_prefix_alike(given: str, normal: str) -> None:
    """``AppConfig``, ``BundleEngine``, ``S3ManifestBundleLocator`` and
    ``read_bundle_manifest`` give a prefix its trailing ``/`` the same way (one function),
    so the engine writes the sidecar where readers look."""
    assert normalise_key_prefix(given) == normal
    assert AppConfig(distribution_bucket_name="dest", sidecar_prefix=given).sidecar_prefix == (
        normal
    )
    assert BundleEngine(MemorySource(), MemorySink(), sidecar_prefix=given).sidecar_prefix == (
        normal
    )
    assert _locator(given).sidecar_prefix == normal
    sink = _concat_under(given)
    assert f"{normal}{CONCAT_KEY.format(1)}.manifest.json" in sink.objects
    manifest = read_bundle_manifest(
        sink.as_source(described=False),
        "d",
        CONCAT_KEY.format(1),
        bundle_format="concat",
        sidecar_prefix=given.rstrip("/"),
    )
    assert manifest.bundle_format is BundleFormat.CONCAT


@pytest.mark.parametrize("bad", ["/manifests", "a//b", "a/../b", "./a", "a\nb", "m" * 512, "a/./"])
def test_every_entry_point_refuses_the_same_prefixes(bad: str) -> None:
    """A prefix ``SIDECAR_PREFIX`` refuses is a `ConfigurationError` naming the setting
    everywhere else too."""
    with pytest.raises(ConfigurationError) as caught:
        normalise_key_prefix(bad, variable="sidecar_prefix")
    assert caught.value.context["variable"] == "sidecar_prefix"
    with pytest.raises(ConfigurationError):
        AppConfig(distribution_bucket_name="dest", sidecar_prefix=bad)
    with pytest.raises(ConfigurationError):
        BundleEngine(MemorySource(), MemorySink(), sidecar_prefix=bad)
    with pytest.raises(ConfigurationError):
        _locator(bad)
    with pytest.raises(ConfigurationError):
        read_bundle_manifest(MemorySource(), "d", "k", sidecar_prefix=bad)


@pytest.mark.parametrize("given", ["CONCAT", "Concat", BundleFormat.CONCAT])
def test_every_entry_point_reads_a_bundle_format_alike(given: str) -> None:
    """``BundleEngine``, ``read_bundle_manifest`` and ``S3ManifestBundleLocator`` take a
    bundle format in any case (one function)."""
    assert resolve_bundle_format(given) is BundleFormat.CONCAT
    assert BundleEngine(MemorySource(), MemorySink(), bundle_format=given).bundle_format is (
        BundleFormat.CONCAT
    )
    assert _locator(bundle_format=given).bundle_format is BundleFormat.CONCAT
    store = _concat_under("").as_source(described=False)
    manifest = read_bundle_manifest(store, "d", CONCAT_KEY.format(1), bundle_format=given)
    assert manifest.bundle_format is BundleFormat.CONCAT


def test_every_entry_point_refuses_the_same_bundle_formats() -> None:
    """An unknown format is the same `ConfigurationError` everywhere (the locator used to
    raise a bare ``ValueError``)."""
    attempts: list[Callable[[], object]] = [
        lambda: resolve_bundle_format("parquet"),
        lambda: BundleEngine(MemorySource(), MemorySink(), bundle_format="parquet"),
        lambda: _locator(bundle_format="parquet"),
        lambda: read_bundle_manifest(MemorySource(), "d", "k", bundle_format="parquet"),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigurationError) as caught:
            attempt()
        assert caught.value.error_code == ErrorCode.INVALID_BUNDLE_SETTING
        assert caught.value.context["variable"] == "bundle_format"


# ------------------------------------------------------------------ sinks written before 0.2


class _SinkWithoutMetadata(MemorySink):
    """A user's sink written against the earlier protocol: ``open_upload`` has no
    ``metadata`` parameter."""

    def open_upload(self, key: str, *, content_type: str) -> MemoryUpload:  # type: ignore[override]
        del content_type
        return MemoryUpload(self, key, {})


def test_a_sink_without_metadata_still_gets_its_bundles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The engine calls an older sink without ``metadata``: the bundle is written and
    committed (with no metadata), and a warning names the sink once."""
    sink = _SinkWithoutMetadata()
    _writer._warn_without_metadata.cache_clear()
    with caplog.at_level("WARNING", logger="data_aggregator.bundle"):
        run, _ = _write(sink, [b"a\n", b"b\n"], TAR_KEY)
        again, _ = _write(sink, [b"c\n"], "logs/again-{}.tar.gz")
    assert [summary.key for summary in run.bundles] == [TAR_KEY.format(1)]
    assert [summary.key for summary in again.bundles] == ["logs/again-1.tar.gz"]
    assert sink.metadata[TAR_KEY.format(1)] == {}
    warnings = [r for r in caplog.records if "takes no metadata" in r.getMessage()]
    assert len(warnings) == 1
    assert "_SinkWithoutMetadata" in warnings[0].getMessage()


class _DelegatingSink:
    """A wrapper sink that forwards everything to an inner sink through ``__getattr__``
    (instrumentation, retries): its class has no ``open_upload``."""

    def __init__(self, inner: MemorySink) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("inner", [MemorySink, _SinkWithoutMetadata])
def test_a_sink_forwarding_open_upload_gets_its_bundles(
    inner: type[MemorySink], caplog: pytest.LogCaptureFixture
) -> None:
    """A sink whose ``open_upload`` is not on its class (forwarded by ``__getattr__``) is
    called as the method it forwards to takes it: with metadata for a current sink,
    without (and one warning) for an older one."""
    wrapped = inner()
    _writer._warn_without_metadata.cache_clear()
    with caplog.at_level("WARNING", logger="data_aggregator.bundle"):
        for _ in range(2):
            run, _ = _write(_DelegatingSink(wrapped), [b"a\n"], TAR_KEY)  # type: ignore[arg-type]
            assert [summary.key for summary in run.bundles] == [TAR_KEY.format(1)]
    described = inner is MemorySink
    assert wrapped.metadata[TAR_KEY.format(1)] == ({FORMAT_METADATA: "tar"} if described else {})
    warnings = [r for r in caplog.records if "takes no metadata" in r.getMessage()]
    assert len(warnings) == (0 if described else 1)


def test_sinks_whose_open_upload_is_set_per_instance_are_read_each_time() -> None:
    """A ``MagicMock`` sink (a class per instance) or a sink whose ``open_upload`` is
    replaced on the instance: the method actually called decides, and the signature cache
    does not grow from one instance to the next."""
    sizes = []
    for _ in range(3):
        inner = MemorySink()
        run, _ = _write(MagicMock(wraps=inner), [b"a\n"], TAR_KEY)
        assert [summary.key for summary in run.bundles] == [TAR_KEY.format(1)]
        assert inner.metadata[TAR_KEY.format(1)] == {FORMAT_METADATA: "tar"}
        sizes.append(_writer._function_takes_metadata.cache_info().currsize)
    for _ in range(3):
        sink = MemorySink()
        older = _SinkWithoutMetadata()
        sink.open_upload = older.open_upload  # type: ignore[method-assign,assignment]
        run, _ = _write(sink, [b"a\n"], TAR_KEY)
        assert older.metadata[TAR_KEY.format(1)] == {}
        sizes.append(_writer._function_takes_metadata.cache_info().currsize)
    assert len(set(sizes)) == 1
