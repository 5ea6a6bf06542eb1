"""Helpers for the book's cells: quiet checks of stated numbers, and short listings of the package's code.

Every number a chapter states is backed by a check that fails the build when the claim stops
being true. ``check`` keeps that cell short and its output readable::

    fb.check(abs(total - 1) < 1e-3, "the density integrates to 1", total)
    # ✓ the density integrates to 1 (1.000)

``source`` prints a function or class of flowbook as the chapter wants to show it: the code
without its docstring, or only the lines that carry the idea.
"""
from __future__ import annotations

import ast
import inspect
import math
import numbers
import textwrap

import torch

__all__ = ["check", "format_value", "glue", "source"]


def format_value(value) -> str:
    """A short, readable rendering of a measured value: 4 significant digits for floats.

    Example:
        >>> format_value(1.0000312), format_value((0.25, 3)), format_value(-71.4553), format_value(2e-5)
        ('1.000', '0.2500, 3', '-71.46', '2.00e-05')
    """
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if v == 0 or 1e-3 <= abs(v) < 1e3:
            return f"{v:#.4g}"  # 4 significant digits, trailing zeros kept: 1.000
        return f"{v:.1f}" if abs(v) >= 1e3 else f"{v:.2e}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def check(condition, what: str, value=None) -> None:
    """Assert ``condition`` and print ``✓ what (value)``; raise ``AssertionError`` naming ``what`` if it fails.

    Args:
        condition: the claim, a Python bool or a one-element boolean tensor (a NaN comparison
            is ``False``, so a NaN never passes).
        what: the claim in words, as the text states it.
        value: the measured number(s) shown in brackets (optional).

    Example:
        >>> check(2 + 2 == 4, "two and two make four", 2 + 2)
        ✓ two and two make four (4)
        >>> check(float("nan") < 1, "a NaN is small", float("nan"))
        Traceback (most recent call last):
        ...
        AssertionError: ✗ a NaN is small: measured nan
    """
    if isinstance(condition, torch.Tensor):
        if condition.numel() != 1:
            raise TypeError(f"condition must be a single boolean, got a tensor of shape {tuple(condition.shape)}")
        condition = condition.item()
    shown = "" if value is None else f" ({format_value(value)})"
    if not condition:
        raise AssertionError(f"✗ {what}" + ("" if value is None else f": measured {format_value(value)}"))
    print(f"✓ {what}{shown}")


def glue(name: str, value, display: bool = False) -> None:
    """Keep ``value`` under ``name`` for the page's text: ``{glue:text}`name:.3f``` quotes it (MyST-NB).

    The chapters quote every computed number this way, so text and output cannot disagree. In the
    book build this is ``myst_nb.glue``; where MyST-NB is not installed (Colab, a plain Jupyter) it
    does nothing, and the number is printed by the cell that computed it. ``display=False`` (the
    default here) keeps the value out of the cell's output.

    Example:
        >>> glue("answer", 42)      # no output; in the book, {glue:text}`answer` reads 42
        >>> glue("ratio", torch.tensor(0.25))   # a 0-d tensor or NumPy scalar is quoted as a number
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # a NumPy or torch scalar: its Python number, which glue's format reads
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=display)


def source(obj, lines: tuple | None = None, docstring: bool = False) -> str:
    """The source of ``obj`` (a public function, method or class), ready to print in a chapter.

    Args:
        obj: what to show, e.g. ``flowbook.AffineCoupling.forward``.
        lines: optional ``(first, last)`` to show only the lines that carry the idea: line
            numbers (1-based, inclusive, counted in the listing without its docstring), or
            strings (the first line containing ``first`` to the first line from there containing
            ``last``), or ``None`` for the start / the end. The signature is always shown, and
            omitted lines are marked with ``...``.
        docstring: keep the docstring (default: drop it, the text around the listing explains).

    Example:
        >>> print(source(format_value, lines=(2, 3)))
        def format_value(value) -> str:
            if isinstance(value, torch.Tensor):
                value = value.item() if value.numel() == 1 else value.tolist()
            ...
        >>> print(source(format_value, lines=("isinstance(value, bool)", "return str(value)")))
        def format_value(value) -> str:
            ...
            if isinstance(value, bool):
                return str(value)
            ...
    """
    name = getattr(obj, "__qualname__", "")
    if any(part.startswith("_") and not part.startswith("__") for part in name.split(".")):
        raise ValueError(f"source() shows public names only, got {name!r}")
    out = textwrap.dedent(inspect.getsource(obj)).rstrip("\n").split("\n")
    node = ast.parse("\n".join(out)).body[0]
    body = node.body
    if not docstring and body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                               ast.Constant) \
            and isinstance(body[0].value.value, str):
        del out[body[0].lineno - 1:body[0].end_lineno]
    if lines is None:
        return "\n".join(out)
    first, last = lines
    first = _line_number(out, first, 1, 1)
    last = _line_number(out, last, len(out), first)
    if not 1 <= first <= last <= len(out):
        raise ValueError(f"lines must be (first, last) with 1 <= first <= last <= {len(out)}, got {lines}")
    signature_end = next(i for i, line in enumerate(out) if line.rstrip().endswith(":")) + 1
    start = max(first - 1, signature_end)
    indent = "    "
    shown = out[:signature_end] + ([indent + "..."] if start > signature_end else []) + out[start:last]
    if last < len(out):
        shown.append(indent + "...")
    return "\n".join(shown)


def _line_number(out, marker, default, start):
    """1-based number of the first line (from line ``start`` on) that contains the string ``marker``."""
    if marker is None:
        return default
    if isinstance(marker, int):
        return marker
    for i in range(start - 1, len(out)):
        if marker in out[i]:
            return i + 1
    raise ValueError(f"no line of the listing contains {marker!r}")
