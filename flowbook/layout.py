r"""Is a drawn figure readable? The checks the book runs on every figure as it is displayed.

:func:`figure_problems` lists what a reader would trip over in a matplotlib figure:

* text on text: two labels, titles, tick labels, legends or annotations whose boxes intersect
  (overprinted tick labels, a sub-title running into its neighbour);
* a strip: the drawn figure is more than ``max_aspect`` times wider than tall (or 3 times taller
  than wide);
* too wide: the drawn figure is wider than ``max_width`` inches; the page's text column (about
  7.7 in at 90 dpi) shrinks it, and its text with it (a 12 in figure's 11 pt labels become 9 px);
* a colour-mapped picture (``imshow``, ``pcolormesh``, ``contourf``) with no colour bar for its
  scale, or with unlabelled axes; grey-scale pictures (digits, masks) are pictures, not densities;
* an axes with tick labels but no axis label, or a figure with neither a suptitle nor a title on
  every axes (a figure says what it shows);
* a bar chart whose value axis leaves out zero (bar lengths are then not proportional to values).

Labels shared along a row or a column count once: a y label on the leftmost axes of a row labels
the row, an x label on the lowest axes of a column labels the column, one colour bar labels every
picture drawn with the same colour map and range.

``import flowbook.plot`` calls :func:`install` in IPython (the book's kernels): every figure is
checked when it is shown, and a figure with a problem shows a :class:`FigureLayoutError` naming
it instead of the picture, so the book's browser test, which fails on any error output, sees it.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(8, 1))
    >>> _ = ax.plot([0, 1]), ax.set(title="a line", xlabel="t", ylabel="y")
    >>> [problem.split(":")[0] for problem in figure_problems(fig)]
    ['a strip']
    >>> plt.close(fig)
"""
from __future__ import annotations

from itertools import combinations

from matplotlib.collections import QuadMesh
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

__all__ = ["figure_problems", "check_figure", "FigureLayoutError", "install"]

PICTURE_MAPS = {"gray", "gray_r", "Greys", "Greys_r", "binary", "binary_r", "bone", "bone_r"}


class FigureLayoutError(ValueError):
    """A figure a reader cannot read as drawn (see :func:`figure_problems`)."""


def _drawn_tick_labels(axis):
    ticks = axis._update_ticks()  # the ticks matplotlib draws (inside the view limits)
    return [lab for t in ticks for lab in (t.label1, t.label2) if lab.get_visible() and lab.get_text().strip()]


def _texts(fig):
    """Every visible, non-empty text of the figure, with a short name for the message."""
    found = [(getattr(fig, name, None), name[1:]) for name in ("_suptitle", "_supxlabel", "_supylabel")]
    found += [(t, "figure text") for t in fig.texts]
    for i, ax in enumerate(fig.axes):
        where = f"axes {i}"
        found += [(t, f"title of {where}") for t in (ax.title, ax._left_title, ax._right_title)]
        found += [(ax.xaxis.label, f"x label of {where}"), (ax.yaxis.label, f"y label of {where}")]
        found += [(t, f"x tick label of {where}") for t in _drawn_tick_labels(ax.xaxis)]
        found += [(t, f"y tick label of {where}") for t in _drawn_tick_labels(ax.yaxis)]
        found += [(t, f"text in {where}") for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found.append((legend, f"legend of {where}"))
    for legend in fig.legends:
        found.append((legend, "figure legend"))
    seen, unique = set(), []
    for t, name in found:  # the suptitle is also one of fig.texts: each artist once
        if t is not None and id(t) not in seen and t.get_visible() and (
                not hasattr(t, "get_text") or t.get_text().strip()):
            seen.add(id(t))
            unique.append((t, name))
    return unique


def _overlaps(fig, renderer):
    texts = [(t.get_window_extent(renderer), t, name) for t, name in _texts(fig)]
    problems = []
    for (a, ta, na), (b, tb, nb) in combinations(texts, 2):
        width = min(a.x1, b.x1) - max(a.x0, b.x0)
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        if width > 1 and height > 1:
            label = lambda t: f"'{t.get_text()}'" if hasattr(t, "get_text") else "legend"
            problems.append(f"text on text: {na} {label(ta)} overlaps {nb} {label(tb)}")
    return problems


def _colour_mapped(ax):
    """The colour-mapped pictures of an axes (images, meshes, filled contours), not grey pictures."""
    found = [a for a in ax.images if isinstance(a, AxesImage) and a.get_array() is not None
             and a.get_array().ndim == 2]
    found += [c for c in ax.collections if isinstance(c, QuadMesh)  # contour lines are not a colour map
              or (type(c).__name__ == "QuadContourSet" and getattr(c, "filled", False))]
    return [m for m in found if m.get_cmap().name not in PICTURE_MAPS]


def _scale(m):
    return m.get_cmap().name, m.norm.vmin, m.norm.vmax


def _row_or_column_labelled(ax, others, axis):
    """Is ``ax``'s x (y) axis labelled, by itself or by an axes below (left of) it in its column (row)?"""
    box = ax.get_position()
    for other in [ax, *others]:
        o = other.get_position()
        if axis == "x" and abs(o.x0 - box.x0) < 0.02 and o.y0 <= box.y0 + 1e-3 and other.get_xlabel().strip():
            return True
        if axis == "y" and abs(o.y0 - box.y0) < 0.02 and o.x0 <= box.x0 + 1e-3 and other.get_ylabel().strip():
            return True
    return False


def figure_problems(fig: Figure, max_aspect: float = 4.0, max_width: float = 10.0) -> list[str]:
    """What makes ``fig`` hard to read, as a list of sentences (empty when it reads well)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not max_aspect >= 1:
        raise ValueError(f"max_aspect must be a number >= 1, got {max_aspect}")
    if not max_width > 0:
        raise ValueError(f"max_width must be a positive number of inches, got {max_width}")
    fig.draw_without_rendering()  # lays the figure out (and places the ticks) without painting pixels
    renderer = fig.canvas.get_renderer()
    problems = _overlaps(fig, renderer)
    box = fig.get_tightbbox(renderer)
    if box.width > max_aspect * box.height or box.height > 3 * box.width:
        ratio = box.width / box.height
        problems.append(f"a strip: the figure is {ratio:.1f} times wider than tall (at most {max_aspect:g})"
                        if ratio > 1 else f"a strip: the figure is {1 / ratio:.1f} times taller than wide (at most 3)")
    if box.width > max_width:
        problems.append(f"too wide: {box.width:.1f} in (at most {max_width:g}); the page shrinks it to its "
                        f"text column and its text to {7.7 / box.width:.0%} of its size")
    bars = [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    scales = {_scale(cb.mappable) for cb in bars}
    plots = [ax for ax in fig.axes if ax.get_visible() and getattr(ax, "_colorbar", None) is None and ax.axison]
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        name = f"axes {i}" + (f" ('{ax.get_title()}')" if ax.get_title() else "")
        if getattr(ax, "_colorbar", None) is not None:
            if not (ax.get_ylabel().strip() or ax.get_xlabel().strip()):
                problems.append(f"colour bar of {name} has no label (what does the colour measure?)")
            continue
        if not ax.axison:
            continue
        pictures = _colour_mapped(ax)
        if any(_scale(m) not in scales for m in pictures):
            problems.append(f"{name} shows a colour-mapped picture with no colour bar for its scale")
        for axis in ("x", "y"):
            ticks = _drawn_tick_labels(ax.xaxis if axis == "x" else ax.yaxis)
            if (ticks or pictures) and not _row_or_column_labelled(ax, plots, axis):
                problems.append(f"{name} has no {axis} label")
        for bar in (c for c in ax.containers if isinstance(c, BarContainer)):
            horizontal = getattr(bar, "orientation", "vertical") == "horizontal"
            scale, (lo, hi) = (ax.get_xscale(), ax.get_xlim()) if horizontal else (ax.get_yscale(), ax.get_ylim())
            if scale == "linear" and not min(lo, hi) <= 0 <= max(lo, hi):
                problems.append(f"{name} is a bar chart whose value axis ({lo:.3g} to {hi:.3g}) leaves out 0")
    if not (fig._suptitle and fig._suptitle.get_text().strip()) and any(not ax.get_title().strip() for ax in plots):
        problems.append("no title: give the figure a suptitle or every axes a title (what is shown?)")
    return problems


def check_figure(fig: Figure, max_aspect: float = 4.0, max_width: float = 10.0) -> Figure:
    """Raise :class:`FigureLayoutError` listing :func:`figure_problems` of ``fig``; return ``fig`` if none."""
    problems = figure_problems(fig, max_aspect, max_width)
    if problems:
        raise FigureLayoutError("this figure is hard to read:\n  - " + "\n  - ".join(problems))
    return fig


def install(shell=None) -> bool:
    """Check every figure IPython displays (wraps the PNG formatter); False outside IPython."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    import matplotlib.pyplot as plt
    plt.close(plt.figure())  # the inline backend registers its PNG formatter when first used
    png = shell.display_formatter.formatters["image/png"]
    draw = png.lookup_by_type(Figure) if Figure in png.type_printers else None
    if draw is None or getattr(draw, "checks_layout", False):
        return draw is not None

    def checked(fig, *args, **kwargs):
        return draw(check_figure(fig), *args, **kwargs)

    checked.checks_layout = True
    png.for_type(Figure, checked)
    return True
