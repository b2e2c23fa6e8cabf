"""Code samples in the docs fit 88 columns, so they read without scrolling on the site.

Checked: every fenced code block (```` ``` ```` or ``~~~``) of ``docs/**/*.md``,
``README.md`` and ``examples/README.md``, and every line of ``docs/examples/*.py`` (the
files the guides link to; ruff holds them to 88 columns too, see their ``ruff.toml``).
A line is measured from the fence's own indentation (a block in a list or an admonition
is indented in the Markdown, not on the page); East Asian wide characters count two.

The one way out is for verbatim output or data whose line breaks are part of what is
shown (a program's table, an error message with one problem per line, a file with one
record per line): a ``<!-- wide: why -->`` comment as the last non-blank line before
the fence. It is refused on code (Python and shell blocks) and on a block that fits, so
that a marker cannot outlive its reason.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_COLUMNS = 88
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
WIDE_MARKER = re.compile(r"^\s*<!--\s*wide:\s*\S.*-->\s*$")
CODE_LANGUAGES = frozenset({"python", "py", "pycon", "bash", "sh", "shell", "console"})

MARKDOWN_FILES = sorted(
    [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md", ROOT / "examples" / "README.md"]
)
EXAMPLE_FILES = sorted((ROOT / "docs" / "examples").glob("*.py"))


@dataclass(frozen=True)
class Block:
    path: Path
    first_line: int  # 1-based number of the opening fence
    language: str
    wide_marker: bool
    lines: tuple[tuple[int, str], ...]  # (1-based number, text without the fence indent)


def columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fenced_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip().lstrip("{").lstrip(".")
        language = info.split()[0].rstrip("}").lower() if info else ""
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        body: list[tuple[int, str]] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            text = lines[j]
            body.append((j + 1, text[len(indent) :] if text.startswith(indent) else text))
            j += 1
        else:
            pytest.fail(f"{path.relative_to(ROOT)}:{i + 1}: code fence never closed")
        blocks.append(Block(path, i + 1, language, bool(WIDE_MARKER.match(before)), tuple(body)))
        i = j + 1
    return blocks


def too_wide(numbered: tuple[tuple[int, str], ...]) -> list[str]:
    return [f"{n}: {columns(text)} columns" for n, text in numbered if columns(text) > MAX_COLUMNS]


def test_the_files_are_found() -> None:
    # Guards the globs: an empty selection would make every test below pass vacuously.
    assert ROOT / "README.md" in MARKDOWN_FILES
    assert ROOT / "docs" / "getting-started.md" in MARKDOWN_FILES
    assert ROOT / "docs" / "examples" / "lambda_handler.py" in EXAMPLE_FILES
    assert sum(len(fenced_blocks(path)) for path in MARKDOWN_FILES) > 50


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fenced_code_blocks_fit_88_columns(path: Path) -> None:
    problems = []
    for block in fenced_blocks(path):
        where = f"{path.relative_to(ROOT)}:{block.first_line} ({block.language or 'no language'})"
        wide = too_wide(block.lines)
        if block.wide_marker:
            if block.language in CODE_LANGUAGES:
                problems.append(f"{where}: a 'wide' marker on code; reflow the code instead")
            elif not wide:
                problems.append(f"{where}: a 'wide' marker on a block that fits; remove it")
        elif wide:
            problems.append(f"{where}: lines over {MAX_COLUMNS} columns at " + ", ".join(wide))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_files_fit_88_columns(path: Path) -> None:
    numbered = tuple(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))
    assert not too_wide(numbered), f"{path.relative_to(ROOT)}: {too_wide(numbered)}"


def test_the_scanner_sees_blocks_markers_and_widths(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text that is not code may be as long as it likes, well past eighty-eight columns"
        " of width.\n"
        "\n"
        "- a list item:\n"
        "\n"
        "    ```python\n"
        f"    x = {'1' * 84}\n"  # 88 columns once the fence's indentation is removed
        "    ```\n"
        "\n"
        "<!-- wide: verbatim output -->\n"
        "\n"
        "~~~~text\n"
        "```\n"  # a shorter fence of another kind does not close the block
        f"{'-' * 89}\n"
        "~~~~\n"
        "\n"
        "```{.json title='x'}\n"
        "{}\n"
        "```\n",
        encoding="utf-8",
    )
    first, second, third = fenced_blocks(page)
    assert (first.language, first.wide_marker, first.first_line) == ("python", False, 5)
    assert first.lines == ((6, f"x = {'1' * 84}"),)
    assert too_wide(first.lines) == []
    assert (second.language, second.wide_marker) == ("text", True)
    assert too_wide(second.lines) == ["13: 89 columns"]
    assert (third.language, third.wide_marker) == ("json", False)
    assert columns("日本") == 4
