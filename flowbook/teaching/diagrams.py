"""Schematic diagrams drawn with matplotlib: how layers route their inputs, in pictures.

Each function draws one diagram on a new figure (or on ``ax``) and returns the axes, so the
book shows the picture and the tests can check that it draws. No data, no training: these are
the figures a lecturer would sketch on the board.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["directions", "coupling", "autoregressive", "multiscale", "vae_flow_posterior"]


def _ax(ax, size):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    ax.set_axis_off()
    return ax


def _box(ax, xy, w, h, text, color="#dbe9f6", fontsize=10):
    """A rounded box with centred text; returns its centre."""
    x, y = xy
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)
    return x + w / 2, y + h / 2


def _arrow(ax, start, end, text=None, color="0.2", fontsize=9, rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.2,
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, text, ha="center", va="bottom",
                fontsize=fontsize, color=color)


# ----------------------------------------------------------------------------- layers (chapters 4-6)
def coupling(affine: bool = True, ax=None):
    r"""How a coupling layer routes its inputs, in the generative direction :math:`z \to x`.

    The mask splits ``z`` into :math:`z_A` (copied to :math:`x_A` and fed to the conditioner
    network) and :math:`z_B`, which the network's outputs move: :math:`x_B = z_B \odot e^{s} + t`
    (``affine=True``, RealNVP, log-det :math:`\sum s`) or :math:`x_B = z_B + t` (``affine=False``,
    NICE, log-det 0). The inverse runs the same picture right to left: :math:`x_A = z_A` gives
    the network its input back.

    Example:
        >>> import flowbook.teaching.diagrams as fbd
        >>> ax = fbd.coupling(affine=False)
        >>> len(ax.patches) > 0
        True
    """
    ax = _ax(ax, (10, 3.6))
    blue, green, orange, grey = "#dbe9f6", "#d9f0d3", "#fde0c5", "#eeeeee"
    z = _box(ax, (0.0, 1.5), 0.9, 1.0, "z", grey, fontsize=12)
    za = _box(ax, (1.9, 3.0), 1.1, 0.8, r"$z_A$", blue, fontsize=12)
    zb = _box(ax, (1.9, 0.2), 1.1, 0.8, r"$z_B$", orange, fontsize=12)
    _arrow(ax, (z[0] + 0.45, z[1] + 0.2), (za[0] - 0.6, za[1]))
    _arrow(ax, (z[0] + 0.45, z[1] - 0.2), (zb[0] - 0.6, zb[1]))
    ax.text(1.3, 2.0, "split by\nthe mask", ha="center", va="center", fontsize=9, color="0.3")
    net = _box(ax, (4.0, 1.6), 1.6, 0.8, "conditioner\nnetwork", green, fontsize=10)
    _arrow(ax, (za[0] + 0.3, za[1] - 0.4), (net[0] - 0.3, net[1] + 0.4), rad=0.15)
    law = r"$x_B = z_B \odot e^{s} + t$" if affine else r"$x_B = z_B + t$"
    op = _box(ax, (6.3, 0.2), 2.1, 0.8, law, orange, fontsize=11)
    _arrow(ax, (zb[0] + 0.55, zb[1]), (op[0] - 1.05, op[1]))
    _arrow(ax, (net[0] + 0.3, net[1] - 0.4), (op[0] - 0.3, op[1] + 0.4), rad=-0.15)
    ax.text(net[0] + 0.55, net[1] - 0.75, "(t, s)" if affine else "t", ha="right", va="center", fontsize=10)
    xa = _box(ax, (9.1, 3.0), 1.1, 0.8, r"$x_A$", blue, fontsize=12)
    xb = _box(ax, (9.1, 0.2), 1.1, 0.8, r"$x_B$", orange, fontsize=12)
    _arrow(ax, (za[0] + 0.55, za[1]), (xa[0] - 0.55, xa[1]), text="copied unchanged")
    _arrow(ax, (op[0] + 1.05, op[1]), (xb[0] - 0.55, xb[1]))
    ldj = r"$\log|\det \partial x/\partial z| = \sum_{i \in B} s_i(z_A)$" if affine \
        else r"$\log|\det \partial x/\partial z| = 0$: volume kept"
    ax.text(7.9, 2.0, ldj, ha="center", va="center", fontsize=10,
            bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.6"))
    ax.set_xlim(-0.1, 10.3), ax.set_ylim(0.0, 4.0)
    name = "affine coupling (RealNVP)" if affine else "additive coupling (NICE)"
    ax.set_title(f"An {name}, generative direction z → x", fontsize=11)
    return ax


def autoregressive(mode: str = "maf", ax=None):
    r"""Which side a MADE reads in a MAF or IAF layer, and what that costs in each direction.

    Both layers compute :math:`x_i = z_i e^{\alpha_i} + \mu_i`. In a MAF (``mode="maf"``) the
    MADE reads :math:`x`: the density (x given) takes one pass, sampling must build
    :math:`x_1, x_2, \dots` in turn, D passes. In an IAF (``mode="iaf"``) it reads :math:`z`:
    sampling takes one pass, the density of a given x takes D passes.

    Example:
        >>> import flowbook.teaching.diagrams as fbd
        >>> ax = fbd.autoregressive("iaf")
        >>> len(ax.texts) > 0
        True
    """
    if mode not in ("maf", "iaf"):
        raise ValueError(f"mode must be 'maf' or 'iaf', got {mode!r}")
    ax = _ax(ax, (5.5, 3.8))
    blue, green, orange = "#dbe9f6", "#d9f0d3", "#fde0c5"
    z = _box(ax, (0.0, 0.4), 1.2, 0.8, "z", blue, fontsize=12)
    step = _box(ax, (2.0, 0.4), 2.4, 0.8, r"$x_i = z_i e^{\alpha_i} + \mu_i$", orange, fontsize=11)
    x = _box(ax, (5.2, 0.4), 1.2, 0.8, "x", blue, fontsize=12)
    made = _box(ax, (2.4, 2.3), 1.6, 0.8, "MADE", "#d9f0d3", fontsize=11)
    _arrow(ax, (z[0] + 0.6, z[1]), (step[0] - 1.2, step[1]))
    _arrow(ax, (step[0] + 1.2, step[1]), (x[0] - 0.6, x[1]))
    _arrow(ax, (made[0], made[1] - 0.4), (step[0], step[1] + 0.4))
    ax.text(made[0] + 0.08, (made[1] + step[1]) / 2, r"$\mu_i, \alpha_i$", ha="left", va="center", fontsize=10)
    if mode == "maf":
        _arrow(ax, (x[0], x[1] + 0.4), (made[0] + 0.8, made[1]), rad=0.3, color="C3")
        ax.text(x[0] - 0.1, 2.6, r"reads $x_{<i}$", ha="left", va="center", fontsize=10, color="C3")
        one, many, title = "density x → z: 1 pass (x known)", "sampling z → x: D passes (x₁, then x₂, ...)", "MAF"
    else:
        _arrow(ax, (z[0], z[1] + 0.4), (made[0] - 0.8, made[1]), rad=-0.3, color="C3")
        ax.text(z[0] + 0.1, 2.6, r"reads $z_{<i}$", ha="right", va="center", fontsize=10, color="C3")
        one, many, title = "sampling z → x: 1 pass (z known)", "density x → z: D passes (z₁, then z₂, ...)", "IAF"
    ax.text(3.2, 3.75, one, ha="center", va="center", fontsize=10, color="C2")
    ax.text(3.2, 3.35, many, ha="center", va="center", fontsize=10, color="C3")
    ax.set_xlim(-0.6, 7.0), ax.set_ylim(0.2, 4.1)
    ax.set_title(f"{title}: the MADE reads {'x' if mode == 'maf' else 'z'}", fontsize=11)
    return ax


def multiscale(ax=None):
    r"""RealNVP's multiscale step: squeeze a 2x2 block into 4 channels, then factor out half.

    Squeeze turns :math:`C \times H \times W` into :math:`4C \times H/2 \times W/2` (each 2x2 block of
    pixels becomes one position with 4 channels: a permutation, log-det 0). After the couplings
    of this scale, half of the channels leave as latents and only the other half goes on to the
    next scale.

    Example:
        >>> import flowbook.teaching.diagrams as fbd
        >>> ax = fbd.multiscale()
        >>> len(ax.patches) > 20
        True
    """
    from matplotlib.patches import Rectangle

    ax = _ax(ax, (10.5, 3.6))
    colors = ["#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc"]   # position (0,0), (0,1), (1,0), (1,1) in a block
    cell = 0.45

    def grid(x0, y0, rows, cols, color_of, label=None):
        for r in range(rows):
            for c in range(cols):
                ax.add_patch(Rectangle((x0 + c * cell, y0 + (rows - 1 - r) * cell), cell, cell,
                                       fc=color_of(r, c), ec="0.3", lw=0.8))
        if label:
            ax.text(x0 + cols * cell / 2, y0 - 0.25, label, ha="center", va="top", fontsize=9)

    grid(0.0, 1.0, 4, 4, lambda r, c: colors[2 * (r % 2) + c % 2], "1 channel, 4x4")
    _arrow(ax, (2.0, 1.9), (3.0, 1.9), text="squeeze")
    for k in range(4):                                      # the 4 channels of 2x2, side by side
        grid(3.2 + k * 1.05, 1.45, 2, 2, lambda r, c, k=k: colors[k])
        ax.text(3.2 + k * 1.05 + cell, 2.45, f"ch {k}", ha="center", va="bottom", fontsize=9)
    ax.text(3.2 + 2 * 1.05 - 0.1, 1.1, "4 channels, 2x2 (log-det 0)", ha="center", va="top", fontsize=9)
    _arrow(ax, (7.45, 1.9), (8.0, 1.9))
    _box(ax, (8.05, 1.5), 1.3, 0.8, "couplings\nof this scale", "#d9f0d3", fontsize=9)
    _arrow(ax, (9.45, 2.1), (10.2, 3.0))
    ax.text(9.75, 2.75, "ch 0-1", ha="right", va="center", fontsize=9, color="0.2")
    _arrow(ax, (9.45, 1.7), (10.2, 0.8))
    _box(ax, (10.25, 2.85), 1.5, 0.7, "next scale:\nmore couplings", "#dbe9f6", fontsize=9)
    _box(ax, (10.25, 0.45), 1.5, 0.7, "ch 2-3 leave:\nlatents", "#eeeeee", fontsize=9)
    ax.text(9.75, 1.05, "factor out", ha="right", va="center", fontsize=9, color="0.2")
    ax.set_xlim(-0.1, 11.9), ax.set_ylim(0.2, 3.7)
    ax.set_title("Multiscale RealNVP: squeeze (C×H×W → 4C×H/2×W/2), then factor out half the features",
                 fontsize=11)
    return ax


def vae_flow_posterior(ax=None):
    """A VAE whose posterior is a flow: encoder, reparameterized draw, flow layers, decoder, prior.

    The encoder maps x to (mu, sigma) and a context h(x); z_0 = mu + sigma * eps is pushed through
    T flow layers (their ``forward``, the only direction needed), each conditioned on h(x); the
    decoder scores x at z_T and the prior scores z_T. The ELBO collects the four terms shown
    under the arrows: reconstruction, log q_0, the log-dets and the prior.
    """
    ax = _ax(ax, (10.5, 3.6))
    ax.set_xlim(0, 10.5), ax.set_ylim(0, 3.6)
    enc = "#dbe9f6"
    flow_c, dec = "#fde2c8", "#d9f0d3"
    _box(ax, (0.1, 1.6), 0.9, 0.7, "image $x$", color="white", fontsize=10)
    _box(ax, (1.4, 1.5), 1.4, 0.9, "encoder\n(an MLP)", color=enc)
    _box(ax, (3.3, 1.5), 1.7, 0.9, "$z_0 = \\mu + \\sigma \\odot \\varepsilon$", color=enc)
    _box(ax, (5.5, 1.5), 1.9, 0.9, "flow: $T$ IAF layers\n(forward only)", color=flow_c)
    _box(ax, (7.9, 1.5), 1.1, 0.9, "$z_T$", color="white", fontsize=11)
    _box(ax, (9.3, 2.6), 1.1, 0.8, "decoder\n$p(x|z_T)$", color=dec, fontsize=9)
    _box(ax, (9.3, 0.4), 1.1, 0.8, "prior\n$p(z_T)$", color=dec, fontsize=9)
    _box(ax, (3.55, 0.2), 1.2, 0.6, "$\\varepsilon \\sim N(0, I)$", color="white", fontsize=9)
    _arrow(ax, (1.0, 1.95), (1.4, 1.95))
    _arrow(ax, (2.8, 1.95), (3.3, 1.95), "$\\mu, \\sigma$")
    _arrow(ax, (4.15, 0.8), (4.15, 1.5))
    _arrow(ax, (5.0, 1.95), (5.5, 1.95))
    _arrow(ax, (7.4, 1.95), (7.9, 1.95))
    _arrow(ax, (9.0, 2.15), (9.3, 2.9))
    _arrow(ax, (9.0, 1.75), (9.3, 0.9))
    _arrow(ax, (2.1, 2.4), (6.45, 2.4), rad=-0.25)
    ax.text(4.3, 3.15, "context $h(x)$ for every flow layer", ha="center", fontsize=9)
    ax.text(4.3, 1.15, "$\\log q_0(z_0|x)$", ha="left", va="center", fontsize=9)
    ax.text(6.45, 1.3, "$+\\sum_t \\log|\\det \\partial z_t/\\partial z_{t-1}|$", ha="center", va="top", fontsize=9)
    ax.text(9.85, 2.45, "$\\log p(x|z_T)$", ha="center", va="top", fontsize=9)
    ax.text(9.85, 0.3, "$\\log p(z_T)$", ha="center", va="top", fontsize=9)
    ax.set_title("A flow in the VAE's posterior: one sampled path $z_0 \\to z_T$ per image, "
                 "scored by four terms", fontsize=11)
    return ax


# ----------------------------------------------------------------------------- directions (notation, chapter 3)
def directions(ax=None):
    r"""The two directions of a ``flowbook.Bijection`` and the sign of each log-determinant.

    ``forward(z)`` is the generative map :math:`z \to x` and returns
    :math:`(x, +\log|\det \partial x/\partial z|)`; ``inverse(x)`` returns
    :math:`(z, \log|\det \partial z/\partial x|)`, the negative of the former. ``Flow.log_prob``
    runs ``inverse`` and adds its log-det; ``Flow.sample`` and ``sample_and_log_prob`` run
    ``forward`` (the latter subtracts its log-det).

    Example:
        >>> import flowbook.teaching.diagrams as fbd
        >>> ax = fbd.directions()
        >>> len(ax.patches) >= 4
        True
    """
    ax = _ax(ax, (8.8, 3.3))
    blue, orange = "#dbe9f6", "#fde0c5"
    z = _box(ax, (0.0, 0.9), 1.75, 1.6, "z-space\n\nbase density\n" + r"$p_Z(z)$", blue, fontsize=11)
    x = _box(ax, (8.25, 0.9), 1.75, 1.6, "x-space\n\ndata density\n" + r"$p_X(x)$", orange, fontsize=11)
    top, bottom = 2.25, 1.15
    _arrow(ax, (1.85, top), (8.15, top), color="C0")
    ax.text(5.0, top + 0.12, r"forward(z) $\to$ (x, $+\log|\det \partial x/\partial z|$)",
            ha="center", va="bottom", fontsize=11, color="C0")
    ax.text(5.0, top - 0.12, "generative map: Flow.sample, sample_and_log_prob",
            ha="center", va="top", fontsize=9, color="0.3")
    _arrow(ax, (8.15, bottom), (1.85, bottom), color="C3")
    ax.text(5.0, bottom + 0.12, "normalizing map: Flow.log_prob",
            ha="center", va="bottom", fontsize=9, color="0.3")
    ax.text(5.0, bottom - 0.12,
            r"inverse(x) $\to$ (z, $\log|\det \partial z/\partial x| = -\log|\det \partial x/\partial z|$)",
            ha="center", va="top", fontsize=11, color="C3")
    ax.text(5.0, 0.4, r"$\log p_X(x) = \log p_Z(z) + \log|\det \partial z/\partial x|"
                       r" = \log p_Z(z) - \log|\det \partial x/\partial z|$",
            ha="center", va="center", fontsize=10.5,
            bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.6"))
    ax.set_xlim(-0.1, 10.1), ax.set_ylim(0.05, 2.95)
    ax.set_title("The two directions of a flow and the sign of each log-determinant", fontsize=11)
    return ax


