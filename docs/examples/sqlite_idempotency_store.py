"""Bring your own store: an idempotency store over SQLite (standard library only).

A worked example for ``docs/delivery-semantics.md``. It passes the same contract test
suite as the built-in stores (``tests/integration/test_idempotency_contract.py``).
SQLite is a good fit for a single host (a container, a CLI run, an ECS task with a
volume); several processes may share the file, since every primitive runs in an
``IMMEDIATE`` transaction.

A store implements five primitives, each one atomic operation on one key. The base class
does everything else: bulk calls, de-duplication, per-key results, crash recovery
through the bundle locator, and the conversion of per-key failures into ``ERROR``
results.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from data_aggregator.exceptions import (
    IdempotencyConfigurationError,
    IdempotencyStoreError,
)
from data_aggregator.idempotency import (
    DEFAULT_TTL_SECONDS,
    IdempotencyRecord,
    IdempotencyStore,
    RecordStatus,
    WriteOutcome,
    claim_allowed,
    held_by,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from data_aggregator.idempotency import BundleLocator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    object_key         TEXT PRIMARY KEY,
    status             TEXT NOT NULL,
    owner              TEXT,
    lease_expires_at   REAL,
    pending_bundles    TEXT NOT NULL DEFAULT '[]',  -- JSON list of bundle keys
    bundle_key         TEXT,
    expiration         INTEGER
)
"""
_COLUMNS = "status, owner, lease_expires_at, pending_bundles, bundle_key, expiration"


class SQLiteIdempotencyStore(IdempotencyStore):
    """Idempotency records in one SQLite table."""

    def __init__(
        self,
        path: str = ":memory:",
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        bundle_locator: BundleLocator | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # One connection, one lock: SQLite serialises writers anyway, so the base class
        # runs the primitives inline (max_workers=1).
        super().__init__(
            ttl_seconds=ttl_seconds, bundle_locator=bundle_locator, clock=clock
        )
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None
            )
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            msg = f"cannot open the idempotency database {path!r}"
            raise IdempotencyConfigurationError(msg, context={"path": path}) from exc
        self._lock = threading.Lock()

    # Each primitive: read the row, test the same condition as every store (the shared
    # claim_allowed / held_by helpers), write, all inside one IMMEDIATE transaction.

    def _claim_record(
        self,
        key: str,
        *,
        owner: str,
        now: float,
        lease_expires_at: float,
        expiration: int,
        bundle_key: str | None,
    ) -> WriteOutcome:
        with self._transaction() as db:
            current = self._read(db, key)
            if not claim_allowed(current, owner, now):
                return WriteOutcome(applied=False, record=current)
            # Earlier announcements survive a takeover; the claim adds its own.
            pending = set(current.pending_bundle_keys) if current else set()
            if bundle_key is not None:
                pending.add(bundle_key)
            db.execute(
                "INSERT OR REPLACE INTO idempotency "  # noqa: S608
                f"(object_key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (
                    key,
                    RecordStatus.IN_PROGRESS.value,
                    owner,
                    lease_expires_at,
                    json.dumps(sorted(pending)),
                    expiration,
                ),
            )
            return WriteOutcome(applied=True, record=current)

    def _set_pending(self, key: str, *, owner: str, bundle_key: str) -> WriteOutcome:
        return self._update_held(
            key, owner, "", (), pending=lambda keys: keys | {bundle_key}
        )

    def _complete_record(
        self, key: str, *, owner: str, bundle_key: str, expiration: int
    ) -> WriteOutcome:
        return self._update_held(
            key,
            owner,
            "status = ?, bundle_key = ?, expiration = ?, lease_expires_at = NULL,",
            (RecordStatus.COMPLETED.value, bundle_key, expiration),
            pending=lambda _keys: frozenset(),
        )

    def _release_record(
        self, key: str, *, owner: str, bundle_key: str | None
    ) -> WriteOutcome:
        # Withdraw only our own announcement: the others' bundles must still be checked.
        return self._update_held(
            key,
            owner,
            "owner = NULL, lease_expires_at = 0,",
            (),
            pending=lambda keys: keys - {bundle_key},
        )

    def _get_record(self, key: str) -> IdempotencyRecord | None:
        with self._transaction() as db:
            return self._read(db, key)

    # ------------------------------------------------------------------ helpers

    def _update_held(
        self,
        key: str,
        owner: str,
        assignments: str,
        params: tuple[Any, ...],
        *,
        pending: Callable[[frozenset[str]], frozenset[str]],
    ) -> WriteOutcome:
        """If ``owner`` holds the record: apply ``assignments`` (each ending in a comma)
        and set the announcements to ``pending(current announcements)``."""
        with self._transaction() as db:
            current = self._read(db, key)
            if current is None or not held_by(current, owner):
                return WriteOutcome(applied=False, record=current)
            announced = json.dumps(sorted(pending(current.pending_bundle_keys)))
            db.execute(
                f"UPDATE idempotency SET {assignments}"  # noqa: S608
                " pending_bundles = ? WHERE object_key = ?",
                (*params, announced, key),
            )
            return WriteOutcome(applied=True, record=current)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    @staticmethod
    def _read(db: sqlite3.Connection, key: str) -> IdempotencyRecord | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM idempotency WHERE object_key = ?",  # noqa: S608
            (key,),
        ).fetchone()
        if row is None:
            return None
        status, owner, lease, pending, bundle, expiration = row
        return IdempotencyRecord(
            key,
            RecordStatus(status),
            owner,
            lease,
            frozenset(json.loads(pending)),
            bundle,
            expiration,
        )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the store's lock; a SQLite failure
    becomes the retryable `IdempotencyStoreError` that fails this key only."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._lock.release()
            msg = "the idempotency database is busy"
            raise IdempotencyStoreError(msg) from exc
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.Error):
            msg = "idempotency database operation failed"
            raise IdempotencyStoreError(msg) from exc
