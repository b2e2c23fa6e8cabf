"""Member naming: plain names when possible, deterministic unique renames otherwise."""

from __future__ import annotations

import itertools
import unicodedata

from data_aggregator.bundle._naming import NameRequest, assign_member_names, fold_name
from data_aggregator.security import sanitize_s3_key


def _req(key: str, bucket: str = "b", version: str | None = None) -> NameRequest:
    return NameRequest(sanitize_s3_key(key), bucket, key, version, None)


def _names(requests: list[NameRequest]) -> list[str]:
    return assign_member_names(requests, sanitize_s3_key)


def test_distinct_names_are_kept() -> None:
    """Objects whose names do not clash keep their sanitized keys."""
    assert _names([_req("a.txt"), _req("dir/b.txt"), _req("c")]) == ["a.txt", "dir/b.txt", "c"]


def test_two_versions_get_distinct_names_in_any_order() -> None:
    """Two versions of a key: one keeps the name, the other gets a suffix, whatever the order."""
    first, second = _req("a.txt", version="v1"), _req("a.txt", version="v2")
    names = _names([first, second])
    assert names[0] == "a.txt"
    assert names[1].startswith("a~")
    assert names[1].endswith(".txt")
    assert len(names[1]) == 14
    assert _names([second, first]) == [names[1], names[0]]


def test_same_key_in_two_buckets() -> None:
    """The same key from two buckets yields two names; the first bucket keeps the plain one."""
    assert _names([_req("k.log", "zeta"), _req("k.log", "alpha")])[1] == "k.log"


def test_nfc_nfd_and_case_twins_collide() -> None:
    """NFC/NFD spellings and names differing only in case are treated as the same name."""
    nfc, nfd = unicodedata.normalize("NFC", "é.txt"), unicodedata.normalize("NFD", "é.txt")
    names = _names([_req(nfc), _req(nfd), _req("É.TXT")])
    assert len({fold_name(n) for n in names}) == 3


def test_manifest_name_is_reserved() -> None:
    """No object is named manifest.json, in any case, nor uses it as a directory."""
    names = _names([_req("manifest.json"), _req("MANIFEST.JSON"), _req("manifest.json/x")])
    assert all(fold_name(n) != "manifest.json" for n in names)
    assert not names[2].startswith("manifest.json/")
    assert names[2].endswith("/x")


def test_file_and_directory_of_the_same_name() -> None:
    """A name that is also another member's directory is renamed so both extract."""
    names = _names([_req("logs"), _req("logs/today.txt")])
    assert names[1] == "logs/today.txt"
    assert names[0].startswith("logs~")


def test_crafted_key_that_looks_renamed() -> None:
    """A key equal to the rename of another still ends up unique."""
    plain = _names([_req("a.txt", version="v1"), _req("a.txt", version="v2")])
    crafted = _req(plain[1])
    names = _names([_req("a.txt", version="v1"), _req("a.txt", version="v2"), crafted])
    assert len({fold_name(n) for n in names}) == 3


def test_exact_duplicates_get_distinct_names() -> None:
    """The same object listed twice still gets two names."""
    names = _names([_req("x"), _req("x")])
    assert names[0] == "x"
    assert names[1] != "x"


def test_order_does_not_change_names() -> None:
    """Every permutation of a colliding set gets the same name per object."""
    requests = [_req("a.txt", "b1", "1"), _req("a.txt", "b1", "2"), _req("A.txt", "b2")]
    expected = dict(zip(requests, _names(requests), strict=True))
    for perm in itertools.permutations(requests):
        assert dict(zip(perm, _names(list(perm)), strict=True)) == expected


def test_double_extension_and_long_segments() -> None:
    """``.tar.gz`` stays together, and renames of 255-byte segments stay within limits."""
    renamed = [n for n in _names([_req("x.tar.gz", "b2"), _req("X.TAR.GZ", "b1")]) if "~" in n]
    assert renamed[0].startswith("x~")
    assert renamed[0].endswith(".tar.gz")
    long_key = "d/" + "n" * 251 + ".txt"
    names = _names([_req(long_key, version="1"), _req(long_key, version="2")])
    assert all(len(segment.encode()) <= 255 for segment in names[1].split("/"))
    assert sanitize_s3_key(names[1]) == names[1]
    assert names[1] != names[0]
