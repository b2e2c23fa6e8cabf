"""`Admission`: sources admitted to a bundle run while it runs."""

from __future__ import annotations

import threading

from data_aggregator.bundle import (
    Admission,
    AdmissionState,
    BundleEngine,
    BundleSource,
    OutcomeStatus,
)
from tests.bundle_fakes import MemorySink, MemorySource


def test_states_move_once_and_close_withdraws_the_rest() -> None:
    """A source is decided once; after `close` nothing is admitted any more."""
    admission = Admission(4)
    admission.admit([0, 1])
    admission.withdraw([1, 2])  # 1 is already admitted: it stays so
    assert [admission.state(i) for i in range(4)] == [
        AdmissionState.ADMITTED,
        AdmissionState.ADMITTED,
        AdmissionState.WITHDRAWN,
        AdmissionState.PENDING,
    ]
    admission.close()
    admission.admit([3])
    assert admission.state(3) is AdmissionState.WITHDRAWN
    assert (admission.admitted, admission.closed) == (2, True)


def test_wait_returns_when_another_thread_decides() -> None:
    """`wait` returns the state a producer sets meanwhile, without waiting it out."""
    admission = Admission(1)
    timer = threading.Timer(0.05, admission.admit, args=([0],))
    timer.start()
    try:
        assert admission.wait(0, timeout=30.0) is AdmissionState.ADMITTED
    finally:
        timer.cancel()


def test_the_run_writes_only_what_is_admitted_in_input_order() -> None:
    """Sources admitted while the run waits are written; withdrawn ones are never opened."""
    source, sink = MemorySource(), MemorySink()
    sources = []
    for index in range(6):
        etag = source.put("b", f"k{index}", b"x" * (index + 1))
        sources.append(BundleSource("b", f"k{index}", size=index + 1, etag=etag, token=index))
    engine = BundleEngine(source, sink, codec="none", fetch_concurrency=2)
    admission = Admission(len(sources))

    def produce() -> None:  # admits the even ones, withdraws the odd ones, in order
        for index in range(len(sources)):
            (admission.admit if index % 2 == 0 else admission.withdraw)([index])
        admission.close()

    producer = threading.Thread(target=produce)
    producer.start()
    run = engine.run(sources, admission=admission, bundle_key=lambda n: f"b{n}.tar")
    producer.join()
    statuses = [outcome.status for outcome in run.outcomes]
    assert statuses == [OutcomeStatus.BUNDLED, OutcomeStatus.NOT_ATTEMPTED] * 3
    assert source.opened == 3
    assert admission.finished == 3
