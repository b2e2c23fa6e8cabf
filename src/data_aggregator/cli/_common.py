"""What every subcommand of the command line shares: its name, its error, its wording."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["PROG", "CommandError", "plural", "report_error"]

PROG = "data-aggregator"


class CommandError(Exception):
    """An error to report to the user as one line; the exit status is 1."""


def report_error(prog: str, message: str) -> None:
    """Write ``<prog>: error: <message>`` on stderr (nothing if stderr is gone)."""
    with contextlib.suppress(BrokenPipeError):  # nobody left to tell
        sys.stderr.write(f"{prog}: error: {message}\n")


def plural(count: int, noun: str) -> str:
    """``1 object``, ``2 objects``."""
    return f"{count} {noun}{'s' * (count != 1)}"
