"""The plan of a bundle run: member names and, up front, which bundle each object goes in.

Private. `plan_sources` sanitizes every name (refusing unsafe ones), assigns unique member
names over all the run's sources (``_naming.py``), decides which objects are streamed
rather than prefetched, and numbers the bundles: it cuts the sequence wherever the tar
stream of the next member would pass ``max_bundle_size_bytes``, with the same arithmetic
the writer uses plus a small slack, so the run never has to roll over anywhere else. A
caller that must know an object's bundle before the run writes it (the processor
announces it with the claim) reads it from the plan; every written object lands in its
planned bundle or in none.

A concat bundle (``BUNDLE_FORMAT=concat``) counts its stream exactly: each member's bytes
and at most one newline, no header, padding or manifest (the manifest is a sidecar
object). A streamed member of a concat bundle gets a bundle of its own: its UTF-8 check
can fail after some of its bytes are written, and then only its own bundle is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_aggregator.bundle._concat import planned_concat_bytes
from data_aggregator.bundle._manifest import ManifestMember, manifest_overhead
from data_aggregator.bundle._naming import NameRequest, assign_member_names
from data_aggregator.bundle._tar import member_header, padding
from data_aggregator.config import BundleFormat
from data_aggregator.exceptions import ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from data_aggregator.bundle._types import BundleSource

__all__ = ["BundlePlan", "Item", "plan_sources"]

#: Bytes added to each planned member for what the plan cannot know exactly (an ETag that
#: differs in length from the event's), so that the planned bundles never overflow.
_SLACK = 128
#: The longest bundle key S3 allows: the plan's manifest overhead holds for any key.
_LONGEST_KEY = "k" * 1024
_SHA256_PLACEHOLDER = "0" * 64


@dataclass(slots=True)
class Item:
    """A source the run will try to write: its input index, member name and bundle."""

    index: int
    source: BundleSource
    name: str
    #: Not fetched ahead: the writer streams it straight into the tar.
    streamed: bool
    #: The number of the bundle it goes in (1, 2, ...).
    bundle: int = 1


@dataclass(frozen=True, slots=True)
class BundlePlan:
    """What a run will do with its sources (see
    [`BundleEngine.plan`][data_aggregator.bundle.BundleEngine.plan]).

    Attributes:
        sources: The sources, in input order.
        items: The sources the run will try to write, in input order, each with its
            member name and bundle number.
        refused: ``(index, error)`` of each source whose name the sanitizer refused.
    """

    sources: tuple[BundleSource, ...]
    items: tuple[Item, ...]
    refused: tuple[tuple[int, ValidationError], ...]

    def bundle_numbers(self) -> dict[int, int]:
        """Source index -> planned bundle number, for every planned source."""
        return {item.index: item.bundle for item in self.items}


def plan_sources(
    sources: Sequence[BundleSource],
    *,
    sanitize: Callable[[str], str],
    in_flight_bytes: int,
    max_bundle_size_bytes: int | None,
    bundle_format: BundleFormat = BundleFormat.TAR,
) -> BundlePlan:
    """Name every source and number the bundles (see the module docstring)."""
    refused: list[tuple[int, ValidationError]] = []
    named: list[tuple[int, str]] = []
    for index, source in enumerate(sources):
        try:
            named.append((index, sanitize(source.name or source.key)))
        except ValidationError as exc:
            refused.append((index, exc))
    requests = [
        NameRequest(
            base, sources[i].bucket, sources[i].key, sources[i].version_id, sources[i].sequencer
        )
        for i, base in named
    ]
    names = assign_member_names(requests, sanitize)
    concat = bundle_format is BundleFormat.CONCAT
    overhead = 0 if concat else manifest_overhead(_LONGEST_KEY)
    items: list[Item] = []
    number = 1
    used = 0  # planned tar bytes of the current bundle, manifest entries included
    members = 0
    for (index, _), name in zip(named, names, strict=True):
        source = sources[index]
        streamed = source.size is None or source.size > in_flight_bytes
        need = planned_concat_bytes(source.size or 0) if concat else _planned_bytes(source, name)
        alone = source.size is None or (concat and streamed)
        if members and (
            alone
            or (
                max_bundle_size_bytes is not None and overhead + used + need > max_bundle_size_bytes
            )
        ):
            number, used, members = number + 1, 0, 0
        items.append(Item(index, source, name, streamed, number))
        used += need
        members += 1
        if alone:  # unknown size, or streamed into a concat bundle: a bundle of its own
            number, used, members = number + 1, 0, 0
    return BundlePlan(tuple(sources), tuple(items), tuple(refused))


def _planned_bytes(source: BundleSource, name: str) -> int:
    """Tar bytes (header, data, padding) plus manifest entry of one member, with slack."""
    size = source.size or 0
    entry = ManifestMember(
        name=name,
        bucket=source.bucket,
        key=source.key,
        version_id=source.version_id,
        sequencer=source.sequencer,
        etag=source.etag,
        size=size,
        sha256=_SHA256_PLACEHOLDER,
    )
    header = member_header(name, size, 0)
    return len(header) + size + padding(size) + len(entry.encoded()) + 2 + _SLACK
