"""Bundle S3 objects into compressed tar archives (or line-oriented concat bundles): fetch
concurrently, write in order.

[`BundleEngine`][data_aggregator.bundle.BundleEngine] takes a sequence of
[`BundleSource`][data_aggregator.bundle.BundleSource] (bucket, exact key, the event's size /
ETag / version / sequencer, and an opaque ``token``) and writes them into one or more bundles: a
POSIX (PAX) tar stream, compressed with gzip, zstd or nothing, streamed into a
[`BundleSink`][data_aggregator.bundle.BundleSink] (the multipart writer), ``manifest.json``
last. It returns a [`BundleRun`][data_aggregator.bundle.BundleRun] with exactly one
[`ObjectOutcome`][data_aggregator.bundle.ObjectOutcome] per input:

```python
engine = BundleEngine.from_config(config, S3Client.from_config(config), sink)
run = engine.run(sources, bundle_key=keys, should_continue=lambda: guard(context))
for outcome in run.outcomes:
    if outcome.status is OutcomeStatus.BUNDLED: ...
```

Guarantees (``docs/bundle-format.md`` has the details):

* Members are written in input order, fetched ahead by ``fetch_concurrency`` workers
  within an ``in_flight_bytes`` memory budget; bigger objects stream through.
* Each body is checked against the expected ETag (``If-Match`` and the response's) and
  size before it is written; a mismatch is an outcome, never a crash.
* An object is ``BUNDLED`` only once the bundle holding it is committed by the sink. If
  the upload fails, every object of that bundle is ``FAILED_RETRYABLE`` and the run stops
  (the rest ``NOT_ATTEMPTED``); the upload is aborted, so nothing is left behind.
* ``should_continue()`` is asked before each object; once it says no, the open bundle is
  finished and uploaded and the rest are ``NOT_ATTEMPTED``.
* A bundle is closed and the next one opened when the next member would take its tar
  stream past ``max_bundle_size_bytes``; the cut is planned before the run
  ([`BundleEngine.plan`][data_aggregator.bundle.BundleEngine.plan]), so a caller knows
  each object's bundle before it is written. Empty bundles are never uploaded.
* With ``bundle_format="concat"`` a bundle is the members' bytes concatenated (a newline
  after each that lacks one), its manifest the sidecar ``<bundle key>.manifest.json``;
  members must be UTF-8 text. Every bundle's S3 metadata names its format and sidecar.
  [`read_bundle_manifest`][data_aggregator.bundle.read_bundle_manifest] reads and checks
  the manifest of a stored bundle of either format, wherever its sidecar is.
* With an [`Admission`][data_aggregator.bundle.Admission], the run writes only the sources
  admitted while it runs (the processor admits each record once its claim returns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_aggregator import _lazy
from data_aggregator.bundle._admission import Admission, AdmissionState
from data_aggregator.bundle._codecs import CodecSpec
from data_aggregator.bundle._engine import (
    BundleEngine,
    BundleSettings,
    MultipartSink,
    make_bundle_key_factory,
)
from data_aggregator.bundle._manifest import (
    FORMAT_VERSION,
    BundleManifest,
    ManifestMember,
)
from data_aggregator.bundle._naming import MANIFEST_NAME
from data_aggregator.bundle._plan import BundlePlan
from data_aggregator.bundle._types import (
    BundleRun,
    BundleSink,
    BundleSource,
    BundleSummary,
    BundleUpload,
    ObjectBody,
    ObjectOutcome,
    ObjectSource,
    OutcomeStatus,
    ReadableStream,
    StopReason,
    UploadReceipt,
)

if TYPE_CHECKING:
    from data_aggregator.bundle._verify import read_bundle_manifest, verify_bundle

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Admission",
    "AdmissionState",
    "BundleEngine",
    "BundleManifest",
    "BundlePlan",
    "BundleRun",
    "BundleSettings",
    "BundleSink",
    "BundleSource",
    "BundleSummary",
    "BundleUpload",
    "CodecSpec",
    "ManifestMember",
    "MultipartSink",
    "ObjectBody",
    "ObjectOutcome",
    "ObjectSource",
    "OutcomeStatus",
    "ReadableStream",
    "StopReason",
    "UploadReceipt",
    "make_bundle_key_factory",
    "read_bundle_manifest",
    "verify_bundle",
]

# Reading bundles back (verification, inspection, crash recovery) is not on the path of a
# Lambda's first invocation: loaded on first use.
_LAZY: dict[str, str] = {
    "read_bundle_manifest": "data_aggregator.bundle._verify",
    "verify_bundle": "data_aggregator.bundle._verify",
}

__getattr__, __dir__ = _lazy.lazy_attributes(globals(), _LAZY)
