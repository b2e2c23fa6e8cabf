"""A process worker for the multi-process claim race (kept light: spawn imports it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from data_aggregator.idempotency import (
    BatchMode,
    ClaimStatus,
    DynamoDBIdempotencyStore,
    lease_expiry,
)


@dataclass(frozen=True)
class ClaimJob:
    """One worker process's share of a concurrent claim test."""

    endpoint: str
    table: str
    owner: str
    keys: list[str]
    now: float
    batch_mode: BatchMode = "single"


def claim_in_process(job: ClaimJob, barrier: Any, results: Any) -> None:
    """Build its own client and store, wait for the others, claim, report the wins."""
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=job.endpoint, config=Config(max_pool_connections=16))
    store = DynamoDBIdempotencyStore(
        job.table,
        client=client,
        clock=lambda: job.now,
        max_workers=16,
        batch_mode=job.batch_mode,
        transact_max_items=8,  # several chunks per process, racing each other
    )
    barrier.wait(timeout=60)
    outcome = store.claim(
        job.keys, owner=job.owner, lease_expires_at=lease_expiry(60_000, now=job.now)
    )
    store.close()
    errors = [r for r in outcome.values() if r.status is ClaimStatus.ERROR]
    wins = [key for key, r in outcome.items() if r.status is ClaimStatus.CLAIMED]
    results.put((job.owner, wins, len(errors)))


@dataclass(frozen=True)
class ThreadedClaimJob:
    """One process of the process-and-thread race: ``len(shares)`` threads, one owner each."""

    endpoint: str
    table: str
    process: int
    shares: list[list[str]]
    now: float
    batch_mode: BatchMode = "single"


def claim_with_threads(job: ThreadedClaimJob, barrier: Any, results: Any) -> None:
    """Start one thread per share, each with its own store and owner; all wait for every
    thread of every process, then claim at once; report each owner's wins and errors."""
    import threading

    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client(
        "dynamodb",
        endpoint_url=job.endpoint,
        config=Config(max_pool_connections=8 * len(job.shares)),
    )
    reports: list[tuple[str, list[str], int]] = []
    lock = threading.Lock()

    def claim(index: int, share: list[str]) -> None:
        owner = f"process-{job.process}-thread-{index}"
        store = DynamoDBIdempotencyStore(
            job.table,
            client=client,
            clock=lambda: job.now,
            max_workers=8,
            batch_mode=job.batch_mode,
            transact_max_items=8,
        )
        barrier.wait(timeout=120)
        outcome = store.claim(
            share, owner=owner, lease_expires_at=lease_expiry(60_000, now=job.now)
        )
        store.close()
        wins = [key for key, r in outcome.items() if r.status is ClaimStatus.CLAIMED]
        unexpected = [
            r
            for r in outcome.values()
            if r.status not in (ClaimStatus.CLAIMED, ClaimStatus.IN_PROGRESS_ELSEWHERE)
        ]
        with lock:
            reports.append((owner, wins, len(unexpected)))

    threads = [
        threading.Thread(target=claim, args=(i, share)) for i, share in enumerate(job.shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    results.put(reports)
