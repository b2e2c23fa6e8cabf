"""JSON events in the shapes AWS sends, and :func:`load_event` to read them.

Files are named after the path the event takes: ``s3_*`` (an S3 notification: an SQS
body, an SNS ``Message`` or a direct Lambda event), ``sqs_*`` (SQS-triggered Lambda
events), ``sns_*`` (SNS-triggered), ``eventbridge_*`` (EventBridge events), ``sfn_map_*`` (a
Step Functions Distributed Map item batch, ``{"Items": [...], "BatchInput": {...}}``).
They were written from AWS's documented formats: Amazon S3 "Event message structure" and
"EventBridge event message structure", Amazon SNS notification JSON, AWS Lambda's SQS
event, and AWS Step Functions "ItemReader (Map)" (the ListObjectsV2 item: ``Etag`` quoted,
``LastModified`` in epoch seconds; the S3 Inventory item: the manifest's ``fileSchema``
names, every value a string) and "ItemBatcher (Map)".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent


def event_names() -> list[str]:
    """Names of every JSON fixture, sorted."""
    return sorted(path.name for path in EVENTS_DIR.glob("*.json"))


def load_event(name: str) -> dict[str, Any]:
    """Return the fixture ``name`` (with or without ``.json``) as a fresh dict."""
    filename = name if name.endswith(".json") else f"{name}.json"
    data = json.loads((EVENTS_DIR / filename).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        msg = f"event fixture {filename} is not a JSON object"
        raise TypeError(msg)
    return data
