"""`.ci/check_docs_html.py`: what it reports in built HTML, and what it leaves alone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "check_docs_html.py"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    if not SCRIPT.exists():  # an sdist ships tests/ but not .ci/
        pytest.skip(f"{SCRIPT} is not in this tree")
    spec = importlib.util.spec_from_file_location("check_docs_html", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "html",
    [
        # What mkdocstrings made of an unconverted role: the role name stays as text.
        "<p>Build a :class:<code>ReusableProcessor</code> once.</p>",
        "<p>see :meth:<code>S3Client.open_object</code></p>",
        "<p>:func:<code>sanitize_s3_key</code></p>",
        "<li>the :attr:<code>result</code> after close</li>",
        "<td>raises :exc:<code>ValueError</code></td>",
        "<p>:py:class:<code>X</code></p>",
        # A reST literal-block marker, and an unrendered mkdocstrings directive.
        "<p>Create a local table with::</p><pre><code>python -m x</code></pre>",
        "<p>::: data_aggregator.bundle</p>",
        # Code elsewhere on the line does not hide prose after it.
        "<p><code>x</code> per input::</p>",
    ],
)
def test_reports_rest_markup_in_prose(check: ModuleType, html: str) -> None:
    assert check.find_problems(html)


@pytest.mark.parametrize(
    "html",
    [
        '<p>Build a <a href="#x"><code>ReusableProcessor</code></a> once.</p>',
        # `::` has legitimate uses inside code ...
        '<pre><code>arn:aws:s3:::bucket\nstd::vector&lt;int&gt; v;\n"::1"</code></pre>',
        "<p>the ARN <code>arn:aws:s3:::my-bucket</code> and <kbd>::</kbd></p>",
        "<div class='highlight'><pre><span></span><code><span>a::b</span></code></pre></div>",
        # ... and so does a role written on purpose as code.
        "<p>write <code>:class:`X`</code> as a link</p>",
        # Attribute values and scripts are not text.
        '<a title=":class:`X`" href="a::b">link</a><script>var a = "::";</script>',
        # One colon is prose; so is a colon at the end of one node and the start of the next.
        "<p>Returns:</p><p>: a value</p><p>time 10:30</p>",
    ],
)
def test_leaves_rendered_pages_alone(check: ModuleType, html: str) -> None:
    assert check.find_problems(html) == []


def test_main_fails_on_a_bad_page_and_passes_on_good_ones(
    check: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "index.html").write_text("<p>fine <code>a::b</code></p>", encoding="utf-8")
    assert check.main(["check", str(tmp_path)]) == 0

    page = tmp_path / "reference" / "processor" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>call :meth:<code>handle</code> per invocation::</p>", encoding="utf-8")
    assert check.main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "reference/processor/index.html: Sphinx role ':meth:'" in out
    assert "reference/processor/index.html: stray '::'" in out


def test_main_refuses_a_directory_without_html(check: ModuleType, tmp_path: Path) -> None:
    assert check.main(["check", str(tmp_path)]) == 2
