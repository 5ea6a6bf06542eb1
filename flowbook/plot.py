"""Plots used throughout the book, in one consistent seaborn style."""
from __future__ import annotations

import base64
import io
import re
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from IPython.display import HTML
from matplotlib.animation import HTMLWriter
from matplotlib.figure import Figure
from PIL import Image

from .runtime import device_of

__all__ = ["style", "grid_points", "density_grid", "density", "sample_density", "samples", "deformed_grid", "images",
           "animate"]


def style():
    """Set the book's plotting style (called on ``import flowbook.plot``)."""
    sns.set_theme(style="white", context="notebook", palette="deep")
    plt.rcParams.update({"figure.dpi": 90, "axes.titlesize": 11, "image.cmap": "magma"})


style()


def grid_points(bounds=(-5, 5), n: int = 200):
    """A ``(n*n, 2)`` tensor of grid points over the square ``bounds``, and the cell area."""
    lo, hi = bounds
    t = torch.linspace(lo, hi, n)
    xx, yy = torch.meshgrid(t, t, indexing="xy")
    cell = ((hi - lo) / (n - 1)) ** 2
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), cell


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(4, 4))[1]


@torch.no_grad()
def density_grid(log_prob, bounds=(-5, 5), n: int = 200, device=None, log: bool = False) -> np.ndarray:
    """``exp(log_prob)`` (or ``log_prob`` with ``log=True``) on an ``n`` x ``n`` grid over the square ``bounds``.

    Returns an ``(n, n)`` NumPy image, rows along the second coordinate (for ``imshow`` with
    ``origin="lower"``), so that several densities can be drawn with one shared colour scale.
    ``device``: where ``log_prob`` expects its points; by default the device of the module
    ``log_prob`` belongs to (``flow.log_prob`` of a flow on a GPU gets GPU points).

    Example:
        >>> import flowbook
        >>> density_grid(flowbook.StandardNormal(2).log_prob, (-3, 3), n=50).shape
        (50, 50)
    """
    pts, _ = grid_points(bounds, n)
    device = device_of(log_prob) if device is None else device
    if device is not None:
        pts = pts.to(device)
    lp = torch.cat([log_prob(p).detach().float().cpu() for p in pts.split(10000)])
    return (lp if log else lp.exp()).reshape(n, n).numpy()


@torch.no_grad()
def density(log_prob, bounds=(-5, 5), n: int = 200, ax=None, title=None, log=False):
    """Heat-map of ``exp(log_prob(x))`` (or of ``log_prob`` with ``log=True``) over a square.

    ``log_prob`` is a function of a ``(m, 2)`` tensor, e.g. ``flow.log_prob`` or ``Ring().log_prob``.
    """
    ax = _ax(ax)
    ax.imshow(density_grid(log_prob, bounds, n, log=log), origin="lower", extent=(*bounds, *bounds), aspect="equal")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def sample_density(x, bounds=(-4, 4), bins: int = 100, ax=None, title=None, gamma: float = 1.0):
    """Draw the density of 2-D samples as a normalized histogram (for flows with no ``log_prob``).

    ``gamma < 1`` brightens faint regions (colour = density ** gamma), for densities with sharp peaks.
    """
    ax = _ax(ax)
    x = torch.as_tensor(x).detach().cpu().double().numpy()
    edges = np.linspace(bounds[0], bounds[1], bins + 1)
    hist, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges], density=True)
    ax.imshow(hist.T ** gamma, origin="lower", extent=(*bounds, *bounds), aspect="equal", cmap="magma")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def samples(x, bounds=None, ax=None, title=None, s=2, alpha=0.4, color=None):
    """Scatter plot of 2-D samples."""
    ax = _ax(ax)
    x = torch.as_tensor(x).detach().cpu().numpy()
    ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, linewidths=0)
    if bounds is not None:
        ax.set_xlim(bounds), ax.set_ylim(bounds)
    ax.set_aspect("equal")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


@torch.no_grad()
def deformed_grid(fn, bounds=(-3, 3), lines: int = 15, n: int = 200, ax=None, title=None, color="k"):
    """Draw the image of a square grid under ``fn`` (a bijection or any map of ``(m, 2)`` tensors)."""
    ax = _ax(ax)
    t = torch.linspace(*bounds, n)
    for c in torch.linspace(*bounds, lines):
        for pts in (torch.stack([t, c.expand(n)], 1), torch.stack([c.expand(n), t], 1)):
            out = fn(pts)
            out = (out[0] if isinstance(out, tuple) else out).detach().cpu().numpy()
            ax.plot(out[:, 0], out[:, 1], color=color, lw=0.6)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def images(x, nrow: int = 10, ax=None, title=None, vmax=None, height: int | None = None, width: int | None = None):
    """Tile a batch of grey images into one grid: ``(N, 1, H, W)``, ``(N, H, W)``, or flat ``(N, H*W)`` rows.

    Flat rows are ``height`` x ``width`` (default: square, e.g. 64 features -> 8 x 8).

    Example:
        >>> import torch
        >>> images(torch.rand(3, 1, 8, 8)).get_images()[0].get_array().shape   # 3 tiles and 2 gaps
        (8, 26)
    """
    ax = _ax(ax)
    x = torch.as_tensor(x).detach().cpu().float()
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.dim() == 2:
        h = height or width or int(round(x.shape[1] ** 0.5))
        x = x.reshape(len(x), h, width or x.shape[1] // h)
    if x.dim() != 3:
        raise ValueError(f"x must hold grey images, (N, 1, H, W), (N, H, W) or flat (N, H*W); got {tuple(x.shape)}")
    x = x.numpy()
    n, h, w = x.shape
    ncol = min(nrow, n)
    rows = int(np.ceil(n / ncol))
    canvas = np.full((rows * (h + 1) - 1, ncol * (w + 1) - 1), np.nan)
    for i, im in enumerate(x):
        r, c = divmod(i, ncol)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = im
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=vmax)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


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
        fig.canvas.draw()  # lay the figure out once, then keep it still: frames do not jitter, and draw faster
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
