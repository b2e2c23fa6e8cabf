"""Which planned objects a run may write, decided while it runs (private; public as
``data_aggregator.bundle.Admission``)."""

from __future__ import annotations

import threading
from enum import Enum

__all__ = ["Admission", "AdmissionState"]


class AdmissionState(Enum):
    """Where one source stands."""

    #: Not decided yet: the run waits (in input order) before fetching it.
    PENDING = "pending"
    #: The run may fetch and write it.
    ADMITTED = "admitted"
    #: The run must not touch it (its outcome stays ``NOT_ATTEMPTED``).
    WITHDRAWN = "withdrawn"


class Admission:
    """Admits the sources of a run one by one while it runs (thread-safe).

    A producer (the processor's claimer thread) admits sources once it may bundle them,
    withdraws those it may not, and closes the admission when it is done (every source
    still pending is then withdrawn). The run handles sources in input order: it waits
    for the next one to be decided, fetches the admitted ones and skips the withdrawn.
    It reports each source it has finished with (`finish`), which the producer reads to
    pace itself (`finished`).

    Args:
        count: Number of sources of the run.
    """

    def __init__(self, count: int) -> None:
        self._states = [AdmissionState.PENDING] * count
        self._cond = threading.Condition()
        self._closed = False
        self._admitted = 0
        self._finished = 0

    def __len__(self) -> int:
        return len(self._states)

    def admit(self, indexes: list[int]) -> None:
        """Let the run write these sources (ignored once closed)."""
        self._decide(indexes, AdmissionState.ADMITTED)

    def withdraw(self, indexes: list[int]) -> None:
        """Keep the run away from these sources."""
        self._decide(indexes, AdmissionState.WITHDRAWN)

    def close(self) -> None:
        """No more admissions: every pending source is withdrawn."""
        with self._cond:
            self._closed = True
            self._states = [
                AdmissionState.WITHDRAWN if state is AdmissionState.PENDING else state
                for state in self._states
            ]
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def state(self, index: int) -> AdmissionState:
        """The state of source ``index`` now."""
        return self._states[index]

    def wait(self, index: int, timeout: float) -> AdmissionState:
        """Wait at most ``timeout`` seconds for source ``index`` to be decided."""
        with self._cond:
            if self._states[index] is AdmissionState.PENDING:
                self._cond.wait(max(0.0, timeout))
            return self._states[index]

    def finish(self) -> None:
        """The run is done with one admitted source (written, rejected or given up)."""
        with self._cond:
            self._finished += 1
            self._cond.notify_all()

    @property
    def admitted(self) -> int:
        """How many sources were admitted so far."""
        return self._admitted

    @property
    def finished(self) -> int:
        """How many admitted sources the run is done with."""
        return self._finished

    def wait_for_progress(self, finished: int, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for `finished` to pass ``finished``."""
        with self._cond:
            if self._finished <= finished and not self._closed:
                self._cond.wait(max(0.0, timeout))

    def _decide(self, indexes: list[int], state: AdmissionState) -> None:
        with self._cond:
            if self._closed:
                return
            for index in indexes:
                if self._states[index] is AdmissionState.PENDING:
                    self._states[index] = state
                    if state is AdmissionState.ADMITTED:
                        self._admitted += 1
            self._cond.notify_all()
