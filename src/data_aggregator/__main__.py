"""``python -m data_aggregator``: the command line (see `data_aggregator.cli`)."""

from __future__ import annotations

if __name__ == "__main__":
    from data_aggregator.cli import main

    raise SystemExit(main(prog="python -m data_aggregator"))
