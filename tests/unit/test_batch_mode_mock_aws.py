"""``auto`` under moto's in-process ``mock_aws``: the mock answers on AWS's own endpoint
names, so the default store resolves to ``statements``, which moto cannot run (its PartiQL
parser raises ``TypeError`` on a ``?`` parameter, before applying anything). The store
falls back to ``hybrid`` in the same call, says so once, and nothing is lost.

Runs in a subprocess: ``mock_aws`` patches botocore for the whole process and resets
moto's in-process backends, which the integration suite's in-process server shares.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("moto")

SCRIPT = textwrap.dedent(
    """
    import json, logging, os
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1", DISTRIBUTION_BUCKET_NAME="dest-bucket",
        IDEMPOTENCY_TABLE_NAME="idem", METRICS_ENABLED="false",
    )
    warnings = []
    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())
    logging.getLogger("data_aggregator").addHandler(Keep())
    import boto3
    from moto import mock_aws
    from data_aggregator import LocalContext, ReusableProcessor, get_config
    from data_aggregator.idempotency import create_idempotency_table
    from data_aggregator.testing import s3_notification, s3_record, sqs_event, sqs_message
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="source-bucket")
        s3.create_bucket(Bucket="dest-bucket")
        create_idempotency_table(boto3.client("dynamodb"), "idem")
        processor = ReusableProcessor(get_config())
        resolved = processor.store.batch_mode
        records = []
        for n in range(30):
            body = f"line {n}\\n".encode()
            etag = s3.put_object(Bucket="source-bucket", Key=f"k/{n:02d}", Body=body)["ETag"]
            records.append(
                s3_record("source-bucket", f"k/{n:02d}", size=len(body), etag=etag.strip('"'))
            )
        event = sqs_event(sqs_message(s3_notification([r])) for r in records)
        first = processor.handle(event, LocalContext.from_timeout(300))
        again = processor.handle(event, LocalContext.from_timeout(300))
        outcomes = sorted({r.outcome.value for r in processor.last_result.records})
        bundles = s3.list_objects_v2(Bucket="dest-bucket").get("KeyCount", 0)
    print(json.dumps({
        "resolved": resolved, "after": processor.store.batch_mode, "first": first,
        "again": again, "again_outcomes": outcomes, "bundles": bundles, "warnings": warnings,
    }))
    """
)


def test_auto_under_mock_aws_falls_back_to_hybrid_and_bundles_everything() -> None:
    """The first claims' ``BatchExecuteStatement`` fails inside moto; the store switches to
    ``hybrid`` and claims with ``PutItem`` in the same call: no failed message, one
    bundle, one warning naming the endpoint's limit; the redelivered batch is all
    duplicates (the hybrid records are there)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["resolved"] == "statements"
    assert result["after"] == "hybrid"
    assert result["first"] == {"batchItemFailures": []}
    assert result["again"] == {"batchItemFailures": []}
    assert result["again_outcomes"] == ["duplicate"]
    assert result["bundles"] == 1
    assert len(result["warnings"]) == 1
    assert "could not run a PartiQL BatchExecuteStatement" in result["warnings"][0]
