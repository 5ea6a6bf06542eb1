"""A figure that moves on a static page: precomputed frames and matplotlib's JavaScript player."""
from __future__ import annotations

import base64
import io
import re
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import HTML
from matplotlib.animation import HTMLWriter
from matplotlib.figure import Figure
from PIL import Image

from .layout import check_figure

__all__ = ["animate"]


# The player's buttons as inline SVG: matplotlib's template takes its icons from a CDN style sheet,
# and a page read offline must load nothing from the network.
_ICONS = {
    "fa-minus": "M3 7h10v2H3z", "fa-plus": "M7 3h2v4h4v2H9v4H7V9H3V7h4z",
    "fa-fast-backward": "M2 3h2v10H2zM9 3v10L4 8zM15 3v10l-5-5z", "fa-step-backward": "M3 3h2v10H3zM13 3v10L6 8z",
    "fa-play fa-flip-horizontal": "M12 3v10L4 8z", "fa-pause": "M4 3h3v10H4zM9 3h3v10H9z",
    "fa-play": "M4 3v10l8-5z", "fa-step-forward": "M3 3v10l7-5zM11 3h2v10h-2z",
    "fa-fast-forward": "M1 3v10l5-5zM7 3v10l5-5zM12 3h2v10h-2z",
}


def _offline_player(html: str) -> str:
    """matplotlib's JavaScript player with its icons drawn inline and its slider as wide as the picture."""
    html = re.sub(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">', "", html)

    def icon(match):
        path = _ICONS.get(match.group(1).removeprefix("fa "))
        if path is None:  # an icon this module does not know: its name, as text
            return match.group(1).split("-")[-1]
        return (f'<svg viewBox="0 0 16 16" width="14" height="14" fill="currentColor" aria-hidden="true">'
                f'<path d="{path}"/></svg>')

    html = re.sub(r'<i class="(fa [^"]+)"></i>', icon, html)
    return html.replace("width: 374px;", "width: 80%;")


def _palette_frames(html: str, colors: int) -> str:
    """Each embedded PNG frame redrawn with a palette of ``colors`` colours (median cut): about 3x fewer bytes."""
    def shrink(match):
        picture = Image.open(io.BytesIO(base64.b64decode(match.group(2).replace("\\\n", "")))).convert("RGB")
        out = io.BytesIO()
        picture.quantize(colors, method=Image.Quantize.MEDIANCUT).save(out, format="png", optimize=True)
        return match.group(1) + base64.b64encode(out.getvalue()).decode("ascii") + '"'

    return re.sub(r'(frames\[\d+\] = "data:image/png;base64,)([^"]*)"', shrink, html)


def animate(fig, draw, frames, *, interval: int = 400, mode: str = "once", dpi: float = 72,
            colors: int | None = 256, max_bytes: int = 2_000_000) -> HTML:
    """A figure that moves on a static web page: one picture per value of ``frames``, and a player.

    ``draw(value)`` changes ``fig`` to show ``value`` (it may update artists or clear and redraw
    axes); it is called once per value, and each state is saved as a PNG embedded in the returned
    HTML, with matplotlib's JavaScript player (a slider and play/step buttons). The page needs no
    Python and no network: it works in the book's static HTML, and the same cell works in Jupyter
    and Colab. ``fig`` is closed afterwards, so the notebook shows the player only.

    The page's weight is about ``len(frames)`` pictures of ``fig`` at ``dpi``, each reduced to a
    palette of ``colors`` colours (about three times smaller than full colour, and indistinguishable
    for heat maps and scatter plots); a result larger than ``max_bytes`` raises ``ValueError`` (use
    fewer frames or a lower ``dpi``).

    Args:
        fig: the matplotlib figure that ``draw`` changes.
        draw: a function of one value of ``frames``.
        frames: the values to show, in order (at least 2).
        interval: milliseconds between pictures when playing.
        mode: what the player does at the end, ``"once"``, ``"loop"`` or ``"reflect"`` (back and forth).
        dpi: resolution of the pictures.
        colors: colours per picture, 2 to 256; ``None`` keeps full colour.
        max_bytes: the largest HTML accepted.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots(figsize=(2, 2))
        >>> line, = ax.plot([0, 1], [0, 0])
        >>> _ = ax.set(title="a line that rises", xlabel="t", ylabel="y")
        >>> movie = animate(fig, lambda a: line.set_ydata([0, a]), [0.0, 0.5, 1.0], dpi=30)
        >>> movie.data.count("data:image/png;base64")   # one embedded picture per value
        3
        >>> "http" in movie.data   # nothing to fetch from the network
        False
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure (e.g. from plt.subplots()); got {type(fig).__name__}")
    if not callable(draw):
        raise TypeError(f"draw must be a function of one frame value; got {type(draw).__name__}")
    frames = list(frames)
    if len(frames) < 2:
        raise ValueError(f"frames must hold at least 2 values for a figure that moves; got {len(frames)}")
    if mode not in ("once", "loop", "reflect"):
        raise ValueError(f"mode must be 'once', 'loop' or 'reflect'; got {mode!r}")
    for name, value in (("interval", interval), ("dpi", dpi), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number; got {value!r}")
    if colors is not None and (isinstance(colors, bool) or not isinstance(colors, int) or not 2 <= colors <= 256):
        raise ValueError(f"colors must be an integer from 2 to 256, or None for full colour; got {colors!r}")
    try:
        draw(frames[0])
        check_figure(fig)  # readable (draws it): no text on text, a colour bar per colour map, labels
        # laid out once by that draw, then kept still: frames do not jitter, and draw faster
        writer = HTMLWriter(fps=1000 / interval, embed_frames=True, default_mode=mode)
        with tempfile.TemporaryDirectory() as folder, plt.rc_context(
                {"animation.frame_format": "png", "animation.embed_limit": 1e4,  # every frame, then our limit
                 "figure.autolayout": False, "figure.constrained_layout.use": False}):
            fig.set_layout_engine(None)  # no layout engine: one draw per frame
            path = Path(folder) / "movie.html"
            with writer.saving(fig, str(path), dpi):
                for i, value in enumerate(frames):
                    if i:
                        draw(value)
                    writer.grab_frame()
            html = _offline_player(path.read_text())
        if colors is not None:
            html = _palette_frames(html, colors)
    finally:
        plt.close(fig)
    if len(html) > max_bytes:
        raise ValueError(f"the moving figure takes {len(html) / 1e6:.2f} MB, more than max_bytes = "
                         f"{max_bytes / 1e6:.2f} MB: use fewer frames or a lower dpi")
    return HTML(html)
