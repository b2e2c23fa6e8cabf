"""The claim race on DynamoDB Local: 4 processes x 8 threads, overlapping keys, no shim.

moto's conditional writes are not atomic under concurrency, so on moto the other race tests
go through a server that handles one request at a time (``_dynamodb_support``): they test
our conditions, not the race. Here nothing is in between: 32 claimers, each with its own
owner, hit DynamoDB Local at the same moment, and every key must have exactly one winner,
the one the table records.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from typing import TYPE_CHECKING

import pytest

from data_aggregator.idempotency import DynamoDBIdempotencyStore, make_idempotency_key
from tests.integration._claim_worker import ThreadedClaimJob, claim_with_threads
from tests.integration._dynamodb_support import BATCH_MODES, ddb_client, new_table

if TYPE_CHECKING:
    from data_aggregator.idempotency import BatchMode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.real_servers_only(
        reason="moto's conditional writes are not atomic: two claimers can both win"
    ),
]

PROCESSES = 4
THREADS = 8
KEYS = 96
SHARE = 24  # each claimer's window: every key is wanted by several claimers


@pytest.mark.parametrize("batch_mode", BATCH_MODES)
def test_processes_and_threads_win_each_key_exactly_once(
    dynamodb_endpoint: str, batch_mode: BatchMode
) -> None:
    """32 concurrent claimers (4 processes x 8 threads) on overlapping keys: one winner per
    key, no errors, and the winner is the owner the table holds."""
    client = ddb_client(dynamodb_endpoint)
    table = new_table(client, "race")
    keys = [make_idempotency_key(f"race/{i:04d}.json", None, f"{i:016X}") for i in range(KEYS)]
    claimers = PROCESSES * THREADS
    step = KEYS // claimers
    rng = random.Random(13)
    shares = []
    for i in range(claimers):
        window = [keys[(i * step + j) % KEYS] for j in range(SHARE)]
        rng.shuffle(window)
        shares.append(window)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(claimers)
    queue = context.Queue()
    now = time.time()
    processes = [
        context.Process(
            target=claim_with_threads,
            args=(
                ThreadedClaimJob(
                    dynamodb_endpoint,
                    table,
                    p,
                    shares[p * THREADS : (p + 1) * THREADS],
                    now,
                    batch_mode,
                ),
                barrier,
                queue,
            ),
        )
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports = [report for _ in processes for report in queue.get(timeout=300)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(reports) == claimers
    winners: dict[str, list[str]] = {}
    for owner, won, unexpected in reports:
        assert unexpected == 0, owner
        for key in won:
            winners.setdefault(key, []).append(owner)
    wanted = {key for share in shares for key in share}
    assert set(winners) == wanted
    contested = [key for key in wanted if sum(key in share for share in shares) > 1]
    assert len(contested) == len(wanted)  # every key was raced for
    assert all(len(owners) == 1 for owners in winners.values()), winners
    reader = DynamoDBIdempotencyStore(table, client=client, clock=lambda: now)
    for key, (owner,) in winners.items():
        record = reader.get(key)
        assert record is not None
        assert record.owner == owner
    reader.close()
