"""Code samples taken from the documentation, so tests run exactly what the pages show."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A fenced block: its info string (language and attributes), then its body.
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_TITLE = re.compile(r'title="([^"]+)"')


def code_blocks(page: str) -> list[tuple[str, str]]:
    """Every fenced block of ``page`` (relative to the repository) as ``(info, body)``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    return [(m.group(1).strip(), m.group(2)) for m in _FENCE.finditer(text)]


def titled_blocks(page: str) -> dict[str, str]:
    """The blocks of ``page`` that carry ``title="<file name>"``, by that file name."""
    found: dict[str, str] = {}
    for info, body in code_blocks(page):
        match = _TITLE.search(info)
        if match:
            assert match.group(1) not in found, f"{page}: two blocks titled {match.group(1)}"
            found[match.group(1)] = body
    return found


def python_block_containing(page: str, needle: str) -> str:
    """The one ``python`` block of ``page`` that contains ``needle``."""
    matches = [b for i, b in code_blocks(page) if i.startswith("python") and needle in b]
    assert len(matches) == 1, f"{page}: {len(matches)} python blocks contain {needle!r}"
    return matches[0]
