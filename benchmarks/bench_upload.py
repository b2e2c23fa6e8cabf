"""MultipartWriter (parallel parts) vs a serial, smart_open-style part uploader.

Run: ``python benchmarks/bench_upload.py [--size-mib 128] [--latency-ms 20 50]``

Both writers stream the same bytes (random 1 MiB blocks repeated, written 256 KiB at a
time, as a tar/gzip stream would) in 16 MiB parts to a moto server in its own process, do
the same hashing work (SHA-256 per part as the S3 checksum, SHA-256 of the whole stream)
and pay the same injected round-trip latency per request. Each configuration runs in a
fresh subprocess so that its peak RSS is its own; the table shows the median wall time of
``--repeat`` runs and the largest memory figures.

A local moto server is CPU-bound on the bytes it receives, which hides most of what
parallel parts buy against real S3, where one connection tops out well below the network
(tens of MiB/s). The optional ``--bandwidth-mibps`` scenario models that: each upload
request also waits ``body size / bandwidth`` seconds, per connection.

The baseline mirrors smart_open's ``MultipartWriter``: buffer a part in a ``BytesIO``,
upload it, wait for the answer, carry on.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import client, moto_server, peak_rss_mb, print_table

from data_aggregator.clients import MIB

CHUNK = 256 * 1024
BUCKET = "bench-upload"


def _data(size: int) -> Any:
    blocks = [os.urandom(MIB) for _ in range(8)]
    whole = b"".join(blocks)
    view = memoryview(whole)
    offset = sent = 0
    while sent < size:
        take = min(CHUNK, size - sent, len(whole) - offset)
        yield view[offset : offset + take]
        sent += take
        offset = (offset + take) % len(whole)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class SerialWriter:
    """The baseline: smart_open-style multipart upload, one part at a time."""

    def __init__(self, s3: Any, bucket: str, key: str, part_size: int) -> None:
        self._s3, self._bucket, self._key, self._part_size = s3, bucket, key, part_size
        self._buf = io.BytesIO()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._sha256 = hashlib.sha256()

    def write(self, data: Any) -> int:
        self._sha256.update(data)
        self._buf.write(data)
        if self._buf.tell() >= self._part_size:
            self._upload_next_part()
        return len(data)

    def _upload_next_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ChecksumAlgorithm="SHA256"
            )["UploadId"]
        body = self._buf.getvalue()
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        number = len(self._parts) + 1
        response = self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )
        self._parts.append(
            {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}
        )
        self._buf = io.BytesIO()

    def close(self) -> None:
        if self._buf.tell():
            self._upload_next_part()
        self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in this (fresh) process."""
    from data_aggregator.clients import MultipartWriter, S3Client

    s3 = client("s3", args.endpoint, latency=args.latency_ms / 1000)
    if args.bandwidth_mibps:
        per_byte = 1 / (args.bandwidth_mibps * MIB)

        def _throttle(request: Any, **_: Any) -> None:
            time.sleep(int(request.headers.get("Content-Length", 0)) * per_byte)

        s3.meta.events.register("before-send.s3.UploadPart", _throttle)
        s3.meta.events.register("before-send.s3.PutObject", _throttle)
    size = args.size_mib * MIB
    part = args.part_mib * MIB
    key = f"{args.impl}-{args.latency_ms}-{args.concurrency}-{args.spool_mib}"
    for _ in _data(MIB):  # warm the generator's blocks before measuring
        break
    rss_before = _rss_now_mb()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    writer: Any
    if args.impl == "serial":
        writer = SerialWriter(s3, BUCKET, key, part)
    else:
        writer = MultipartWriter(
            S3Client(s3),
            BUCKET,
            key,
            part_size=part,
            max_concurrency=args.concurrency,
            spool_max_size=(args.spool_mib * MIB) or None,
        )
    for piece in _data(size):
        writer.write(piece)
    writer.close()
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    stored = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    assert stored == size, (stored, size)
    s3.delete_object(Bucket=BUCKET, Key=key)
    peak = peak_rss_mb()
    return {
        "wall": wall,
        "mbps": size / MIB / wall,
        "cpu": cpu,
        "peak": peak,
        "delta": peak - rss_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument(
        "--bandwidth-mibps",
        type=int,
        default=64,
        help="per-connection bandwidth of the extra scenario (0: skip it)",
    )
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="parallel", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--spool-mib", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--throttle", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        args.latency_ms = args.latency_ms[0]
        args.bandwidth_mibps = args.throttle
        print(json.dumps(run_one(args)))
        return
    scenarios = [(latency, 0) for latency in args.latency_ms]
    if args.bandwidth_mibps:
        scenarios.append((args.latency_ms[0], args.bandwidth_mibps))

    configs = [
        ("serial (smart_open-style)", "serial", 1, 0),
        ("MultipartWriter c=4", "parallel", 4, 0),
        ("MultipartWriter c=8", "parallel", 8, 0),
        ("MultipartWriter c=4, spool 4 MiB", "parallel", 4, 4),
    ]
    rows: list[list[Any]] = []
    with moto_server() as endpoint:
        client("s3", endpoint).create_bucket(Bucket=BUCKET)
        for latency, bandwidth in scenarios:
            scenario = f"{latency} ms" + (f" + {bandwidth} MiB/s/conn" if bandwidth else "")
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in configs}
            # Round-robin over the writers so that a burst of load elsewhere on the machine
            # hits every writer alike; the median of each then compares fairly.
            for _ in range(args.repeat):
                for label, impl, concurrency, spool in configs:
                    command = [
                        sys.executable,
                        __file__,
                        "--run",
                        f"--impl={impl}",
                        f"--endpoint={endpoint}",
                        f"--size-mib={args.size_mib}",
                        f"--part-mib={args.part_mib}",
                        f"--latency-ms={latency}",
                        f"--concurrency={concurrency}",
                        f"--spool-mib={spool}",
                        f"--throttle={bandwidth}",
                    ]
                    out = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
                    runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            baseline = None
            for label, *_ in configs:
                # Median wall time; the largest memory figures seen.
                ordered = sorted(runs[label], key=lambda r: r["wall"])
                result = ordered[len(ordered) // 2]
                baseline = baseline or result["wall"]
                rows.append(
                    [
                        scenario,
                        label,
                        result["wall"],
                        result["mbps"],
                        result["cpu"],
                        max(r["peak"] for r in ordered),
                        max(r["delta"] for r in ordered),
                        baseline / result["wall"],
                    ]
                )
    print_table(
        f"Streaming upload of {args.size_mib} MiB in {args.part_mib} MiB parts (moto server)",
        [
            "scenario",
            "writer",
            "wall s",
            "MiB/s",
            "client CPU s",
            "peak RSS MiB",
            "RSS growth MiB",
            "speed-up",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
