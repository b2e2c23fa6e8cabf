"""Fail if the built documentation shows reST markup as text instead of rendering it.

Usage: ``python .ci/check_docs_html.py SITE_DIR`` (the ``--site-dir`` of ``mkdocs build``).

mkdocstrings renders docstrings as Markdown. A Sphinx role such as
``:class:`ReusableProcessor``` or a reST literal-block marker (``Example::``) is not
Markdown: it reaches the page as literal text. This script reads every ``*.html`` file
under SITE_DIR and reports, with the file and a snippet, any of these in the *prose* of
a page:

* a Sphinx role: ``:class:``, ``:meth:``, ``:func:``, ``:attr:``, ``:exc:``, ``:data:``,
  ``:mod:``, ``:obj:`` or ``:const:`` (optionally ``:py:``-prefixed);
* a stray ``::``: two or more consecutive colons.

"Prose" is the text content of the page outside ``<code>``, ``<pre>``, ``<kbd>``,
``<samp>``, ``<script>``, ``<style>`` and ``<textarea>`` elements; attribute values are
not text. Inside code, ``::`` is legitimate (C++ scopes, an ARN such as
``arn:aws:s3:::bucket``, IPv6 ``::1``, a ``::: module`` directive shown as an example),
and so is a role written on purpose as a code sample, so both are ignored there. In prose
neither has a legitimate use in these docs: a ``::`` there is a reST marker (or an
unrendered ``::: identifier`` mkdocstrings directive) leaking through. Write such text in
backticks.

Exit status: 0 when clean, 1 when anything is found, 2 on a usage error (no HTML found).
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

#: Elements whose text is code (or not text at all): not checked.
SKIPPED_ELEMENTS = frozenset({"code", "pre", "kbd", "samp", "script", "style", "textarea"})
#: Elements that never have an end tag (so they must not be pushed on the skip stack).
VOID_ELEMENTS = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input",
        "link", "meta", "source", "track", "wbr",
    }
)  # fmt: skip

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj|const):")
STRAY_COLONS = re.compile(r"::+")


class _ProseExtractor(HTMLParser):
    """Collects the text of a page that lies outside code-like elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._skip_depth = 0
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_ELEMENTS and tag not in VOID_ELEMENTS:
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_ELEMENTS and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.chunks.append(data)


def prose_text(html: str) -> str:
    """Return the text of `html` outside code-like elements, one chunk per text node."""
    parser = _ProseExtractor()
    parser.feed(html)
    parser.close()
    # A separator that cannot create a match across two text nodes.
    return "\n".join(parser.chunks)


def find_problems(html: str) -> list[str]:
    """Return a description of each role or stray ``::`` in the prose of `html`."""
    text = prose_text(html)
    problems: list[str] = []
    for pattern, what in ((ROLE, "Sphinx role"), (STRAY_COLONS, "stray '::'")):
        for match in pattern.finditer(text):
            start, end = max(match.start() - 40, 0), min(match.end() + 40, len(text))
            snippet = " ".join(text[start:end].split())
            problems.append(f"{what} {match.group()!r}: ...{snippet}...")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    site = Path(argv[1])
    pages = sorted(site.rglob("*.html"))
    if not pages:
        print(f"no HTML files under {site}: was the site built there?", file=sys.stderr)
        return 2
    failures = 0
    for page in pages:
        for problem in find_problems(page.read_text(encoding="utf-8")):
            failures += 1
            print(f"{page.relative_to(site)}: {problem}")
    if failures:
        print(
            f"\n{failures} unrendered reST construct(s) in {len(pages)} pages: use"
            " Markdown (autorefs links or backticks, fenced code blocks) in docstrings"
            " and docs.",
            file=sys.stderr,
        )
        return 1
    print(f"docs HTML ok: {len(pages)} pages, no Sphinx roles or stray '::' in prose")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
