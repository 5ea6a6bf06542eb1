"""Plots used throughout the book, in one consistent seaborn style."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .animation import animate
from .layout import install
from .runtime import device_of

__all__ = ["style", "grid_points", "density_grid", "density", "densities", "sample_density", "samples",
           "deformed_grid", "images"]  # and animate, from flowbook.animation


def style():
    """Set the book's plotting style, and in IPython check every figure shown (called on import).

    The check is :func:`flowbook.layout.figure_problems`: a figure with text on text, a strip, a
    colour map without a colour bar, unlabelled axes or no title shows an error instead.
    """
    sns.set_theme(style="white", context="notebook", palette="deep")
    plt.rcParams.update({"figure.dpi": 90, "axes.titlesize": 11, "image.cmap": "magma"})
    install()


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


def _picture(ax, grid, bounds, title, colorbar, label, vmax=None, cmap=None):
    """Draw a density picture on ``ax`` with labelled axes and (unless ``colorbar=False``) its colour bar."""
    im = ax.imshow(grid, origin="lower", extent=(*bounds, *bounds), aspect="equal", vmin=0 if vmax else None,
                   vmax=vmax, cmap=cmap)
    ax.set_xlabel("$x_1$"), ax.set_ylabel("$x_2$")
    ax.locator_params(nbins=3)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    if title:
        ax.set_title(title)
    return ax


@torch.no_grad()
def density(log_prob, bounds=(-5, 5), n: int = 200, ax=None, title=None, log=False, vmax=None,
            colorbar: bool = True):
    """Heat-map of ``exp(log_prob(x))`` (or of ``log_prob`` with ``log=True``) over a square.

    ``log_prob`` is a function of a ``(m, 2)`` tensor, e.g. ``flow.log_prob`` or ``Ring().log_prob``.
    The axes are labelled :math:`x_1`, :math:`x_2` and a colour bar gives the scale; ``vmax`` fixes the top of
    the scale (to compare panels), ``colorbar=False`` leaves the bar to the caller (see
    :func:`densities` for a row of panels on one scale).
    """
    grid = density_grid(log_prob, bounds, n, log=log)
    return _picture(_ax(ax), grid, bounds, title, colorbar, "log density" if log else "density",
                    None if log else vmax)


def densities(panels: dict, bounds=(-5, 5), n: int = 200, axes=None, suptitle=None, vmax=None):
    """A row of densities on one colour scale with one colour bar: ``{title: log_prob or (n, n) grid}``.

    Each value is a ``log_prob`` function (drawn with :func:`density_grid`) or a precomputed grid;
    the scale runs from 0 to ``vmax`` (by default the largest value of any panel). Returns the axes.

    Example:
        >>> import flowbook
        >>> normal = flowbook.StandardNormal(2).log_prob
        >>> axes = densities({"N(0, I)": normal, "wider": lambda x: normal(x / 2) - 1.386}, (-3, 3), n=40)
        >>> [ax.get_title() for ax in axes], axes[0].figure.axes[-1].get_ylabel()
        (['N(0, I)', 'wider'], 'density')
    """
    if not isinstance(panels, dict) or not panels:
        raise ValueError(f"panels must be a non-empty dict {{title: log_prob or grid}}; got {type(panels).__name__}")
    grids = {t: np.asarray(p) if not callable(p) else density_grid(p, bounds, n) for t, p in panels.items()}
    if axes is None:
        axes = plt.subplots(1, len(grids), figsize=(3.3 * len(grids) + 0.9, 3.4), constrained_layout=True)[1]
    axes = np.atleast_1d(axes)
    if len(axes) != len(grids):
        raise ValueError(f"axes must hold one axes per panel ({len(grids)}); got {len(axes)}")
    vmax = max(float(g.max()) for g in grids.values()) if vmax is None else vmax
    for ax, (title, grid) in zip(axes, grids.items()):
        _picture(ax, grid, bounds, title, False, None, vmax)
    axes[0].figure.colorbar(axes[0].images[0], ax=list(axes), fraction=0.046 / len(axes) ** 0.5, pad=0.02,
                            label="density")
    if suptitle:
        axes[0].figure.suptitle(suptitle)
    return axes


def sample_density(x, bounds=(-4, 4), bins: int = 100, ax=None, title=None, gamma: float = 1.0,
                   colorbar: bool = True):
    """Draw the density of 2-D samples as a normalized histogram (for flows with no ``log_prob``).

    ``gamma < 1`` brightens faint regions (colour = density ** gamma), for densities with sharp peaks;
    the colour bar then reads "density^gamma".
    """
    x = torch.as_tensor(x).detach().cpu().double().numpy()
    edges = np.linspace(bounds[0], bounds[1], bins + 1)
    hist, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges], density=True)
    label = "density" if gamma == 1 else f"density$^{{{gamma:g}}}$"
    return _picture(_ax(ax), hist.T ** gamma, bounds, title, colorbar, label, cmap="magma")


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
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
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
