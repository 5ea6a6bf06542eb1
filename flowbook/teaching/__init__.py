"""Tools for the book itself, not for models: what the chapters use to state and check their claims.

* ``checks``: ``check`` (a quiet one-line ✓ for a claim the text makes), ``glue`` (a computed
  number kept for the text) and ``source`` (a listing of a public name without its docstring);
* ``timing``: ``time_call`` and friends, steady wall-clock timings for the cost figures;
* ``diagrams``: the schematic figures (imported on first use: it loads matplotlib);
* ``bench``: flowbook's own cost benchmark, ``python -m flowbook.teaching.bench``.

``flowbook.check``, ``flowbook.glue`` and ``flowbook.source`` are the same functions as here.
"""
from . import checks, timing
from .checks import check, format_value, glue, source

__all__ = ["checks", "timing", "diagrams", "bench", "check", "format_value", "glue", "source"]


def __getattr__(name):
    # diagrams and bench pull in matplotlib or the flows, so they are imported on first use only.
    if name in ("diagrams", "bench"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'flowbook.teaching' has no attribute {name!r}")
