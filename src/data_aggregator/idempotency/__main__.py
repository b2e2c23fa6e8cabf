"""``python -m data_aggregator.idempotency create-table``: create the idempotency table."""

from __future__ import annotations

if __name__ == "__main__":
    from data_aggregator.idempotency import main

    raise SystemExit(main())
