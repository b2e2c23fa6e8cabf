"""Part sizing of MultipartWriter: S3's limits hold for every stream size up to 5 TiB."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_aggregator.clients import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    PARTS_PER_DOUBLING,
    clamp_part_size,
    part_size_for,
)

requested_sizes = st.integers(min_value=-1, max_value=2 * MAX_PART_SIZE)
stream_sizes = st.integers(min_value=0, max_value=MAX_OBJECT_SIZE)


def split(total: int, base: int) -> tuple[int, list[int]]:
    """Cut a ``total``-byte stream the way the writer does: (part count, distinct sizes).

    Walks runs of equal-sized parts (at most one run per doubling), so 5 TiB costs a few
    dozen steps instead of 10,000.
    """
    count = 0
    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = part_size_for(count + 1, base)
        run = PARTS_PER_DOUBLING - count % PARTS_PER_DOUBLING
        taken = min(run, -(-remaining // size))
        sizes.append(size)
        count += taken
        remaining -= taken * size
    return count, sizes


@given(requested_sizes)
def test_clamped_size_is_within_s3_limits_and_idempotent(requested: int) -> None:
    """Any requested part size clamps into 5 MiB..5 GiB, and clamping twice changes nothing."""
    clamped = clamp_part_size(requested)
    assert MIN_PART_SIZE <= clamped <= MAX_PART_SIZE
    assert clamp_part_size(clamped) == clamped
    if MIN_PART_SIZE <= requested <= MAX_PART_SIZE:
        assert clamped == requested


@given(st.integers(min_value=1, max_value=MAX_PARTS), requested_sizes)
def test_every_part_size_is_within_limits_and_never_shrinks(number: int, base: int) -> None:
    """Each part is 5 MiB..5 GiB and at least as large as the part before it."""
    size = part_size_for(number, base)
    assert MIN_PART_SIZE <= size <= MAX_PART_SIZE
    assert size >= clamp_part_size(base)
    if number > 1:
        assert size >= part_size_for(number - 1, base)


@given(stream_sizes, requested_sizes)
def test_any_stream_up_to_5_tib_needs_at_most_10000_parts(total: int, base: int) -> None:
    """Whatever the base part size, a stream of at most 5 TiB fits in 10,000 parts."""
    count, sizes = split(total, base)
    assert count <= MAX_PARTS
    assert all(MIN_PART_SIZE <= size <= MAX_PART_SIZE for size in sizes)


def test_smallest_base_still_reaches_5_tib() -> None:
    """Even at 5 MiB parts, 10,000 parts hold more than S3's 5 TiB maximum object."""
    capacity = sum(part_size_for(n, 1) for n in range(1, MAX_PARTS + 1))
    assert capacity >= MAX_OBJECT_SIZE
    assert split(MAX_OBJECT_SIZE, 1)[0] <= MAX_PARTS


def test_streams_below_500_parts_keep_the_base_size() -> None:
    """Parts only grow after 500 of them: up to 8 GiB at the 16 MiB default, sizes are equal."""
    assert split(500 * 16 * MIB, 16 * MIB) == (500, [16 * MIB])
    assert part_size_for(501, 16 * MIB) == 32 * MIB


@pytest.mark.parametrize("number", [0, -1, MAX_PARTS + 1])
def test_part_numbers_outside_s3_range_are_refused(number: int) -> None:
    """Part numbers exist only from 1 to 10,000."""
    with pytest.raises(ValueError, match="part_number"):
        part_size_for(number, 16 * MIB)


def test_the_limits_are_s3s() -> None:
    """The shared sizes are S3's documented multipart limits, in bytes."""
    assert MIB == 1_048_576
    assert (MIN_PART_SIZE, MAX_PART_SIZE) == (5 * 2**20, 5 * 2**30)
    assert (MAX_PARTS, MAX_OBJECT_SIZE) == (10_000, 5 * 2**40)
