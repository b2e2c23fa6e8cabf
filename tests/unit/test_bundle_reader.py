"""The one bundle reader: ``verify_bundle`` and ``inspect`` find the same problems.

Every damaged bundle here is made from a real ``BundleEngine`` bundle, rewritten with
``tarfile`` so that exactly one thing is wrong with it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

import pytest

from data_aggregator.bundle import BundleEngine, BundleSource, verify_bundle
from data_aggregator.bundle._reader import read_bundle
from data_aggregator.cli._inspect import inspect_bundle
from data_aggregator.config import Codec
from data_aggregator.exceptions import BundleError
from tests.bundle_fakes import FIXED_TIME, MemorySink, MemorySource

OBJECTS = {"a.txt": b"alpha\n" * 40, "dir/b.bin": bytes(range(256)), "c.json": b'{"c": 3}'}

Member = tuple[str, bytes]
Damage = Callable[[list[Member], dict[str, Any]], list[Member]]


def engine_bundle(codec: str = "none", objects: dict[str, bytes] = OBJECTS) -> bytes:
    """``objects`` bundled by the real engine into one bundle."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for key, data in objects.items():
        etag = source.put("src", key, data)
        sources.append(BundleSource("src", key, len(data), etag=etag, sequencer="0A", token=key))
    run = BundleEngine(source, sink, codec=codec, clock=FIXED_TIME.timestamp).run(
        sources, bundle_key="b-{}".format
    )
    (summary,) = run.bundles
    return sink.objects[summary.key]


def members_of(bundle: bytes) -> tuple[list[Member], dict[str, Any]]:
    """The members of an uncompressed bundle (manifest excluded) and its manifest document."""
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:") as archive:
        members = []
        for info in archive.getmembers():
            handle = archive.extractfile(info)
            assert handle is not None
            members.append((info.name, handle.read()))
    *rest, (name, manifest) = members
    assert name == "manifest.json"
    return rest, json.loads(manifest)


def tar_of(members: list[Member]) -> bytes:
    """A PAX tar of regular-file ``members``; a ``None`` body makes a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                continue
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def damaged(damage: Damage) -> bytes:
    """The engine's bundle, its members and manifest passed through ``damage``."""
    members, document = members_of(engine_bundle())
    return tar_of(damage(members, document))


def with_manifest(members: list[Member], document: dict[str, Any]) -> list[Member]:
    return [*members, ("manifest.json", json.dumps(document).encode())]


def flip_member_byte(members: list[Member], document: dict[str, Any]) -> list[Member]:
    name, data = members[0]
    return with_manifest([(name, b"A" + data[1:]), *members[1:]], document)


def drop_manifest(members: list[Member], document: dict[str, Any]) -> list[Member]:
    del document
    return members


def member_after_manifest(members: list[Member], document: dict[str, Any]) -> list[Member]:
    return [*with_manifest(members, document), ("late.txt", b"late")]


def extra_member(members: list[Member], document: dict[str, Any]) -> list[Member]:
    return with_manifest([*members, ("extra.txt", b"x")], document)


def missing_member(members: list[Member], document: dict[str, Any]) -> list[Member]:
    return with_manifest(members[:-1], document)


def swapped_order(members: list[Member], document: dict[str, Any]) -> list[Member]:
    return with_manifest([members[1], members[0], *members[2:]], document)


def wrong_size(members: list[Member], document: dict[str, Any]) -> list[Member]:
    document["members"][2]["size"] += 1
    return with_manifest(members, document)


def directory_member(members: list[Member], document: dict[str, Any]) -> list[Member]:
    return with_manifest([("dir/", b""), *members], document)


def invalid_json(members: list[Member], document: dict[str, Any]) -> list[Member]:
    del document
    return [*members, ("manifest.json", b'{"format_version": 1, ')]


def other_format_version(members: list[Member], document: dict[str, Any]) -> list[Member]:
    document["format_version"] = 2
    return with_manifest(members, document)


def key_not_text(members: list[Member], document: dict[str, Any]) -> list[Member]:
    document["members"][0]["key"] = 5
    return with_manifest(members, document)


def listed_twice(members: list[Member], document: dict[str, Any]) -> list[Member]:
    document["members"].append(document["members"][0])
    return with_manifest(members, document)


def folded_duplicates(members: list[Member], document: dict[str, Any]) -> list[Member]:
    twin = ("A.TXT", members[0][1])
    entry = {**document["members"][0], "name": "A.TXT"}
    document["members"].insert(1, entry)
    return with_manifest([members[0], twin, *members[1:]], document)


DAMAGES: dict[str, tuple[Damage, str]] = {
    "flipped-byte": (flip_member_byte, "member 'a.txt': SHA-256"),
    "no-manifest": (drop_manifest, "bundle has no manifest.json"),
    "member-after-manifest": (member_after_manifest, "'late.txt' follows manifest.json"),
    "extra-member": (extra_member, "'extra.txt' is in the archive but not in the manifest"),
    "missing-member": (missing_member, "'c.json' is in the manifest but not in the archive"),
    "swapped": (swapped_order, "not in the manifest's order"),
    "wrong-size": (wrong_size, "member 'c.json': size 8 in the archive, 9 in the manifest"),
    "directory": (directory_member, "member 'dir' is not a regular file"),
    "invalid-json": (invalid_json, "manifest.json is not valid UTF-8 JSON"),
    "format-version": (other_format_version, "does not have format_version 1"),
    "key-not-text": (key_not_text, "manifest entry 0 has a field of the wrong type"),
    "listed-twice": (listed_twice, "member 'a.txt' appears twice in the manifest"),
    "folded-duplicates": (folded_duplicates, "not unique once folded"),
}


@pytest.mark.parametrize(("damage", "expected"), DAMAGES.values(), ids=list(DAMAGES))
def test_verify_raises_the_first_problem_inspect_reports(damage: Damage, expected: str) -> None:
    """``verify_bundle`` raises ``BUNDLE_INVALID`` naming the first problem ``inspect`` lists."""
    bundle = damaged(damage)
    report = inspect_bundle(io.BytesIO(bundle))
    assert report.problems
    assert expected in report.problems[0]
    with pytest.raises(BundleError) as raised:
        verify_bundle(io.BytesIO(bundle))
    assert raised.value.error_code == "BUNDLE_INVALID"
    assert raised.value.message == report.problems[0]


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_an_engine_bundle_reads_without_problems(codec: str) -> None:
    """A bundle the engine wrote passes, from a stream that can only ``read``."""
    data = engine_bundle(codec)
    problems: list[BundleError] = []

    class ReadOnly:
        def __init__(self) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1, /) -> bytes:
            return self._data.read(size)

        def close(self) -> None:
            self._data.close()

    reading = read_bundle(ReadOnly(), report=problems.append, digest=True)
    assert problems == []
    assert reading.codec is Codec(codec)
    assert reading.size == len(data)
    assert reading.sha256 == hashlib.sha256(data).hexdigest()
    assert reading.manifest is not None
    assert [m.key for m in reading.manifest.members] == list(OBJECTS)
    assert [(m.name, m.size) for m in reading.members] == [(k, len(v)) for k, v in OBJECTS.items()]


def test_a_given_codec_is_not_guessed() -> None:
    """With ``codec`` given, a gzip bundle read as ``none`` is not a readable archive."""
    with pytest.raises(BundleError, match="not a readable archive"):
        verify_bundle(io.BytesIO(engine_bundle("gzip")), "none")


def test_a_damaged_gzip_trailer_fails() -> None:
    """The compressed stream is read to its end: a wrong gzip CRC is a problem."""
    data = bytearray(engine_bundle("gzip"))
    data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    with pytest.raises(BundleError) as raised:
        verify_bundle(io.BytesIO(bytes(data)))
    assert raised.value.context["cause"] == "BadGzipFile"


def test_a_truncated_bundle_is_truncated() -> None:
    """A gzip bundle cut short says so, with the cause in the error's context."""
    data = engine_bundle("gzip")
    with pytest.raises(BundleError, match="truncated") as raised:
        verify_bundle(io.BytesIO(data[:-20]))
    assert raised.value.context["cause"] == "EOFError"
    assert isinstance(raised.value.__cause__, EOFError)


def test_gzip_of_a_handmade_tar_with_a_good_manifest_passes() -> None:
    """The reader checks the format, not the writer: a faithful re-pack passes."""
    members, document = members_of(engine_bundle())
    manifest = verify_bundle(io.BytesIO(gzip.compress(tar_of(with_manifest(members, document)))))
    assert [m.name for m in manifest.members] == list(OBJECTS)
