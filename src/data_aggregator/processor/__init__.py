"""The Lambda entry point: [`ReusableProcessor`][data_aggregator.processor.ReusableProcessor].

Subclass it (or use it as it is), build it once per container, call
[`handle`][data_aggregator.processor.ReusableProcessor.handle] per invocation:

```python
from data_aggregator import ReusableProcessor, get_config

class LogBundler(ReusableProcessor):
    def accept(self, record):                 # optional hooks
        return record.s3.object.original_key.endswith(".log")

processor = LogBundler(get_config())          # cold start

def handler(event, context):
    return processor.handle(event, context)   # {"batchItemFailures": [...]}
```

One invocation: parse every message → filter (event type, bucket allowlist) → resolve
ambiguous EventBridge keys → hooks (``accept``, ``member_name``) → claim each record in the
idempotency store → bundle what was claimed (stopping at the timeout guard), announcing
each bundle to the store just before its upload commits → complete what was uploaded,
release the rest → report, per SQS message, whether SQS must retry it.
``docs/processor.md`` describes the lifecycle, hooks and outcomes;
``docs/delivery-semantics.md`` what is guaranteed.
"""

from __future__ import annotations

from data_aggregator.processor._processor import ReusableProcessor
from data_aggregator.processor._results import (
    BatchFailedError,
    BatchItemFailure,
    BatchResult,
    MapBatchSummary,
    Outcome,
    PartialBatchResponse,
    Reason,
    RecordResult,
)

__all__ = [
    "BatchFailedError",
    "BatchItemFailure",
    "BatchResult",
    "MapBatchSummary",
    "Outcome",
    "PartialBatchResponse",
    "Reason",
    "RecordResult",
    "ReusableProcessor",
]
