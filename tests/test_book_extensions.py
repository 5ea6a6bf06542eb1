"""The book's own Sphinx extension: a page that shows an error output makes the build warn (-W: fail)."""
import sys
from pathlib import Path

from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import flowbook_outputs  # noqa: E402


def page(*blocks):
    doc = new_document("page", get_default_settings(Parser))
    doc += [nodes.paragraph(text="A figure:"), *blocks]
    return doc


def test_an_error_output_is_a_build_warning_and_a_plain_output_is_not(monkeypatch):
    warned = []
    monkeypatch.setattr(flowbook_outputs.logger, "warning", lambda message, **kw: warned.append(message))
    plain = nodes.literal_block(text="✓ the density integrates to 1: 1.000")
    plain["classes"] += ["output", "stream"]
    flowbook_outputs.warn_on_error_outputs(None, page(plain), "book/01")
    assert warned == []
    refused = nodes.literal_block(text="Traceback ...\nFigureLayoutError: this figure is hard to read:\n  - a strip")
    refused["classes"] += ["output", "traceback"]
    flowbook_outputs.warn_on_error_outputs(None, page(plain, refused), "book/01")
    assert warned == ["the page shows an error output: FigureLayoutError: this figure is hard to read:"]
