"""The ``data-aggregator`` command line (also ``python -m data_aggregator``).

Subcommands:

* ``demo``: the whole production path (S3 notifications through SQS into
  `ReusableProcessor`, a DynamoDB idempotency table,
  bundles written to S3 and verified) on a local S3 from moto, in this process, with no
  AWS account and no network. Install it with ``pip install "s3-data-aggregator[demo]"``.
* ``inspect BUNDLE``: list a bundle's members (local file or ``s3://bucket/key``), verify
  every checksum while streaming it, optionally extract it (documentation page "Command
  line").
* ``create-table NAME``: create the DynamoDB idempotency table.
* ``bundle s3://bucket/prefix --to s3://dest/prefix --table NAME``: bundle objects that
  already exist (a backfill, a replay) through the processor and its idempotency table.

Standard library ``argparse`` only; each subcommand is a parser plus a ``_run_*`` function
registered through ``set_defaults(run=...)``, so more subcommands slot in beside ``demo``.

Exit status: 0 on success, 1 on an error or a failed check (one line on stderr), 2 on a
usage error.
"""

from __future__ import annotations

from data_aggregator.cli._common import PROG, CommandError
from data_aggregator.cli._main import build_parser, main

__all__ = [
    "PROG",
    "CommandError",
    "build_parser",
    "main",
]
