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


def test_glue_hands_myst_nb_plain_numbers(monkeypatch):
    """A NumPy or torch scalar is glued as its Python number: MyST-NB's {glue:text}`x:.3f` cannot
    format the text 'np.float64(0.98)', and the build warns (-W: fails) on it."""
    import numpy as np
    import torch
    import myst_nb

    import flowbook as fb

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: seen.update({name: value}))
    fb.glue("a", np.float64(0.98)), fb.glue("b", torch.tensor(3)), fb.glue("c", 0.5), fb.glue("d", "text")
    assert seen == {"a": 0.98, "b": 3, "c": 0.5, "d": "text"}
    assert all(type(v) in (float, int, str) for v in seen.values())
