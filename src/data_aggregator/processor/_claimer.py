"""Claims an invocation's records chunk by chunk while the bundle is written (private).

The `Claimer` runs on its own thread, ahead of the bundle run: it claims the records in
input order, in chunks that never span two planned bundles (each claim announces its
bundle), and admits each claimed record to the run at once, so that its ``GetObject``
starts as soon as its claim returns. It claims only while the timeout guard allows and
only as far ahead as the time left can plausibly bundle: the pace is what this invocation
has measured so far (records the run finished per second). Before the run has finished
anything, it keeps at most ``_LANES + 1`` chunks ahead. It starts no claim that this
invocation's own claims say cannot answer before the guard trips: the longest a claim has
taken so far, or has been waiting for, must fit in the time left (a claim answered after
the guard bundles nothing and leaves leases and announcements for the next delivery to
check). Up to ``_LANES`` chunk claims are in flight at once; on a FIFO queue one, made on
the claimer's own thread, and claiming stops at the first record that failed. Records it
never claims are left undecided and the invocation fails them with ``TIMEOUT``, without a
store call.

Everything it learns is kept under a lock until `seal` hands it to the invocation's
thread; after `seal`, a claim still in flight (a slow store) is abandoned: its records'
leases run out and their announcement tells the next claimer where to look.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from data_aggregator import _deadline
from data_aggregator.exceptions import HookError
from data_aggregator.processor._leases import Decision
from data_aggregator.processor._results import Outcome, Reason

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from data_aggregator.bundle import Admission
    from data_aggregator.processor._leases import Leases
    from data_aggregator.processor._slots import Slot

__all__ = ["Claimer"]

logger = logging.getLogger("data_aggregator.processor")

#: Longest single wait of the pacing loop (it re-checks the guard after each).
_PACE_POLL_SECONDS = 0.05
#: Claims in flight at once (one on a FIFO queue, whose order must hold): a chunk's claim
#: waits for its slowest key, so a second and third chunk keep the store busy meanwhile.
_LANES = 3


class Claimer:
    """Claims ``slots`` (in input order) on a thread of its own.

    Args:
        leases: Makes the claims.
        slots: The records to claim, in the run's input order (slot ``i`` is source ``i``).
        bundles: Slot index -> planned bundle number (unplanned slots are skipped).
        bundle_key: The checked ``bundle_key`` hook (cached: one call per number).
        admission: The run's admission.
        has_time: The timeout guard.
        work_seconds: Seconds left before the guard trips.
        chunk_size: Records per claim call at most.
        fifo: Stop claiming after the first record that failed (FIFO queues).
    """

    def __init__(
        self,
        leases: Leases,
        slots: Sequence[Slot],
        bundles: dict[int, int],
        *,
        bundle_key: Callable[[int], str],
        admission: Admission,
        has_time: Callable[[], bool],
        work_seconds: Callable[[], float],
        chunk_size: int,
        fifo: bool,
    ) -> None:
        self._leases = leases
        self._slots = slots
        self._bundles = bundles
        self._bundle_key = bundle_key
        self._admission = admission
        self._has_time = has_time
        self._work_seconds = work_seconds
        self._chunk_size = max(1, chunk_size)
        self._fifo = fifo
        self._lock = threading.Lock()
        self._sealed = False
        self._stop = threading.Event()
        self._decisions: list[Decision] = []
        self._bundle_key_error: HookError | None = None
        self._interrupt: BaseException | None = None
        self._outstanding = 0  # records in claims not answered yet
        # Claim times are measured on the context's clock, as `work_seconds` left at send.
        self._in_flight: dict[int, float] = {}  # claim id -> work seconds left when sent
        self._longest_claim = 0.0  # seconds, the slowest claim answered so far
        self._fifo_failed = False
        self._claimed = 0
        self._first_admitted: float | None = None
        self._thread = threading.Thread(
            target=_deadline_carrier(self._run), name="da-claimer", daemon=True
        )

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Start claiming."""
        self._thread.start()

    def stop(self) -> None:
        """Claim nothing more (a claim in flight still completes, unless sealed)."""
        self._stop.set()

    def seal(self, timeout: float) -> list[Decision]:
        """Stop, wait at most ``timeout`` seconds for the thread, and take its decisions.

        After this, nothing the thread learns is used: a claim still in flight is
        abandoned (its records stay undecided here; their leases run out).

        Raises:
            BaseException: what interrupted the thread (not an ``Exception``: e.g.
                ``KeyboardInterrupt``), re-raised here.
        """
        self._stop.set()
        self._thread.join(max(0.0, timeout))
        with self._lock:
            self._sealed = True
            if self._interrupt is not None:
                raise self._interrupt
            return list(self._decisions)

    @property
    def bundle_key_error(self) -> HookError | None:
        """The error of a ``bundle_key`` hook that failed while claiming, if any."""
        return self._bundle_key_error

    @property
    def claimed(self) -> int:
        """Records claimed so far."""
        return self._claimed

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            self._claim_all()
        except Exception:  # a bug: stop claiming; the undecided records fail and retry
            logger.exception("claiming stopped by an unexpected error")
        except BaseException as exc:  # noqa: BLE001 - an interrupt: re-raised by `seal`
            self._interrupt = exc
        finally:
            self._admission.close()

    def _claim_all(self) -> None:
        order = [i for i in range(len(self._slots)) if i in self._bundles]
        free = threading.Semaphore(_LANES)
        pool = ThreadPoolExecutor(_LANES, thread_name_prefix="da-claim")
        running: list[Future[None]] = []
        try:
            position = 0
            while position < len(order) and not self._fifo_failed:
                chunk = self._next_chunk(order, position)
                if not self._wait_for_room(len(chunk)):
                    return
                try:
                    key = self._bundle_key(self._bundles[chunk[0]])
                except HookError as error:
                    self._fail_unclaimed(order[position:], error)
                    return
                if self._fifo:  # in order, one at a time: nothing after a failure is claimed
                    with self._lock:
                        self._outstanding += len(chunk)
                    self._claim_chunk(chunk, key, None)
                    position += len(chunk)
                    continue
                while not free.acquire(timeout=_PACE_POLL_SECONDS):
                    if not self._may_claim():
                        return
                if not self._may_claim():  # the lane came free late: measured again
                    free.release()
                    return
                with self._lock:
                    if self._stop.is_set() or self._sealed:
                        free.release()
                        return
                    self._outstanding += len(chunk)
                running.append(_deadline.submit(pool, self._claim_chunk, chunk, key, free))
                position += len(chunk)
        finally:
            wait(running)  # their admissions must land before the admission closes
            pool.shutdown(wait=False)
            for future in running:
                failure = future.exception()
                if failure is not None:
                    raise failure

    def _fail_unclaimed(self, indexes: list[int], error: HookError) -> None:
        """Bundle ``number`` can never be written: its records and every later one fail
        with the ``bundle_key`` hook's error, unclaimed."""
        self._bundle_key_error = error
        with self._lock:
            if not self._sealed:
                self._decisions.extend(
                    Decision(self._slots[i], Outcome.FAILED, Reason.HOOK_FAILED, error)
                    for i in indexes
                )

    def _claim_chunk(self, chunk: list[int], key: str, free: threading.Semaphore | None) -> None:
        """Claim one chunk for bundle ``key`` and admit what was claimed (a lane's task)."""
        sent = self._work_seconds()
        with self._lock:
            self._in_flight[id(chunk)] = sent
        try:
            slots = [self._slots[i] for i in chunk]
            held, decisions = self._leases.claim(slots, bundle_key=key)
            held_ids = {id(slot) for slot in held}
            failed = [d.slot.message_index for d in decisions if d.outcome is Outcome.FAILED]
            if self._fifo and failed:  # FIFO: nothing after a failed message is bundled
                first = min(failed)
                held_ids = {id(s) for s in held if s.message_index < first}
                self._fifo_failed = True  # read by the claiming loop, on this same thread
            with self._lock:
                self._outstanding -= len(chunk)
                self._longest_claim = max(self._longest_claim, sent - self._work_seconds())
                if self._sealed:
                    return
                self._decisions.extend(decisions)
                admitted = [i for i in chunk if id(self._slots[i]) in held_ids]
                self._claimed += len(admitted)
                if self._first_admitted is None and admitted:
                    self._first_admitted = time.monotonic()
                self._admission.admit(admitted)
                self._admission.withdraw([i for i in chunk if i not in admitted])
        finally:
            with self._lock:
                self._in_flight.pop(id(chunk), None)
            if free is not None:
                free.release()

    def _next_chunk(self, order: list[int], position: int) -> list[int]:
        """Up to ``chunk_size`` slots from ``position``, all of one planned bundle."""
        number = self._bundles[order[position]]
        chunk: list[int] = []
        for index in order[position:]:
            if self._bundles[index] != number or len(chunk) >= self._chunk_size:
                break
            chunk.append(index)
        return chunk

    def _wait_for_room(self, size: int) -> bool:
        """Wait until ``size`` more records fit the time left; ``False``: claim no more."""
        while True:
            if not self._may_claim():
                return False
            admission = self._admission
            finished = admission.finished
            with self._lock:
                ahead = admission.admitted - finished + self._outstanding
            if ahead <= 0:
                return True  # the run is idle: always claim (progress on every call)
            started = self._first_admitted
            if finished and started is not None:
                rate = finished / max(time.monotonic() - started, 1e-6)
                if (ahead + size) / rate <= self._work_seconds():
                    return True
            elif ahead < (_LANES + 1) * self._chunk_size:
                return True  # nothing measured yet: keep the pipeline filling
            admission.wait_for_progress(finished, _PACE_POLL_SECONDS)

    def _may_claim(self) -> bool:
        """Whether a claim may be sent now: not stopped, the guard allows, and it should
        answer before the guard trips (nothing a claim answered later claims is bundled)."""
        return not self._stop.is_set() and self._has_time() and self._answers_in_time()

    def _answers_in_time(self) -> bool:
        """Whether a claim sent now should answer before the guard trips, by this
        invocation's claims: the slowest answered, or the oldest unanswered's wait so far
        if longer, must be shorter than the work time left.

        Only while there is work time left by the configured guard threshold: when the
        guard says go on past it (``process_with_timeout_guard`` overridden), the guard is
        in charge and this does not hold claims back.
        """
        left = self._work_seconds()
        if left <= 0:
            return True
        with self._lock:
            waiting = max((sent - left for sent in self._in_flight.values()), default=0.0)
            return max(self._longest_claim, waiting) < left


def _deadline_carrier(target: Callable[[], None]) -> Callable[[], None]:
    """``target`` run with the creating thread's deadline current."""
    deadline = _deadline.current()

    def run() -> None:
        with _deadline.scope(deadline):
            target()

    return run
