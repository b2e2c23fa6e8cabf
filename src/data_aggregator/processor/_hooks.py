"""The hooks an invocation calls, and how it calls them (private).

`Hooks` is all an invocation needs of its processor: the four hooks a
`ReusableProcessor` subclass may override. `CheckedHooks` calls them for one invocation
and raises [`HookError`][data_aggregator.exceptions.HookError] where a hook raises or
returns something unusable, so each hook failure is decided where it happens; the
invocation turns it into the ``HOOK_FAILED`` outcome of the records it concerns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from data_aggregator.exceptions import HookError, ValidationError
from data_aggregator.security import MAX_KEY_BYTES, sanitize_s3_key

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from data_aggregator.bundle import BundleSummary
    from data_aggregator.schemas import S3EventNotificationRecord

__all__ = ["CheckedHooks", "Hooks"]


class Hooks(Protocol):
    """The hooks of a `ReusableProcessor` (which satisfies this protocol)."""

    def accept(self, record: S3EventNotificationRecord) -> bool:
        """Whether to bundle ``record``."""
        ...

    def member_name(self, record: S3EventNotificationRecord) -> str:
        """The name of ``record``'s member in the bundle."""
        ...

    def bundle_key(self, number: int, *, request_id: str, now: datetime) -> str:
        """The S3 key of the invocation's ``number``-th bundle."""
        ...

    def on_bundle_written(
        self, bundle: BundleSummary, records: Sequence[S3EventNotificationRecord]
    ) -> None:
        """Called once per uploaded bundle."""
        ...


class CheckedHooks:
    """The hooks of one invocation, called safely: misbehaviour raises `HookError`.

    Args:
        hooks: The processor's hooks.
        naming_id: The request id used in bundle keys (``bundle_key``'s ``request_id``).
        now: The invocation's start, passed to ``bundle_key``.
    """

    def __init__(self, hooks: Hooks, *, naming_id: str, now: datetime) -> None:
        self._hooks = hooks
        self._naming_id = naming_id
        self._now = now
        self._used_bundle_keys: set[str] = set()

    def accept(self, record: S3EventNotificationRecord) -> bool:
        """``accept(record)``, as a ``bool``.

        Raises:
            HookError: the hook raised.
        """
        try:
            return bool(self._hooks.accept(record))
        except Exception as exc:
            raise HookError("accept", "raised", cause=exc) from exc

    def member_name(self, record: S3EventNotificationRecord) -> str:
        """``member_name(record)``, checked: a ``str`` that ``sanitize_s3_key`` accepts.

        Raises:
            HookError: the hook raised or returned an unusable name.
        """
        try:
            name: object = self._hooks.member_name(record)
        except Exception as exc:
            raise HookError("member_name", "raised", cause=exc) from exc
        if not isinstance(name, str):
            raise HookError("member_name", "did not return a str")
        try:
            sanitize_s3_key(name)
        except ValidationError as exc:
            raise HookError("member_name", "unusable member name", cause=exc) from exc
        return name

    def bundle_key(self, number: int) -> str:
        """``bundle_key(number, ...)``, checked: a non-empty ``str`` of at most
        ``MAX_KEY_BYTES`` bytes, not used before in this invocation.

        Raises:
            HookError: the hook raised or returned an unusable key.
        """
        try:
            key: object = self._hooks.bundle_key(number, request_id=self._naming_id, now=self._now)
        except Exception as exc:
            raise HookError("bundle_key", "raised", cause=exc) from exc
        if not isinstance(key, str) or not key:
            detail = "did not return a non-empty str"
        elif len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            detail = f"returned a key longer than {MAX_KEY_BYTES} bytes"
        elif key in self._used_bundle_keys:
            detail = "returned a key already used in this invocation"
        else:
            self._used_bundle_keys.add(key)
            return key
        raise HookError("bundle_key", detail)

    def on_bundle_written(
        self, bundle: BundleSummary, records: Sequence[S3EventNotificationRecord]
    ) -> None:
        """``on_bundle_written(bundle, records)``.

        Raises:
            HookError: the hook raised.
        """
        try:
            self._hooks.on_bundle_written(bundle, records)
        except Exception as exc:
            raise HookError("on_bundle_written", "raised", cause=exc) from exc
