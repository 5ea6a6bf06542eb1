r"""Monotone rational-quadratic splines (Durkan, Bekasov, Murray and Papamakarios 2019, "Neural Spline Flows").

An elementwise transformer more flexible than :math:`x = z e^{s} + t`, still invertible in closed form. On
:math:`[-B, B]` the map passes through :math:`K + 1` knots :math:`(x^{(k)}, y^{(k)})` with
:math:`(x^{(0)}, y^{(0)}) = (-B, -B)` and :math:`(x^{(K)}, y^{(K)}) = (B, B)`, with positive derivatives
:math:`\delta^{(k)}` at the knots; outside :math:`[-B, B]` it is the identity (linear tails), so
:math:`\delta^{(0)} = \delta^{(K)} = 1` and value and slope are continuous at :math:`\pm B`. Inside bin k, with
:math:`s_k = (y^{(k+1)} - y^{(k)}) / (x^{(k+1)} - x^{(k)})` and
:math:`\xi = (x - x^{(k)}) / (x^{(k+1)} - x^{(k)}) \in [0, 1]`,

.. math::
    y = y^{(k)} + \frac{(y^{(k+1)} - y^{(k)})\,[s_k \xi^2 + \delta^{(k)} \xi (1 - \xi)]}
                      {s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k]\, \xi (1 - \xi)},

    \frac{dy}{dx} = \frac{s_k^2\, [\delta^{(k+1)} \xi^2 + 2 s_k \xi (1 - \xi) + \delta^{(k)} (1 - \xi)^2]}
                         {[s_k + (\delta^{(k+1)} + \delta^{(k)} - 2 s_k)\, \xi (1 - \xi)]^2}.

The spline is monotone whenever every :math:`\delta^{(k)} > 0` (Gregory and Delbourgo 1982).
Given y in bin k, :math:`\xi` is the root in [0, 1] of :math:`a\xi^2 + b\xi + c = 0` with

.. math::
    a &= (y^{(k+1)} - y^{(k)})[s_k - \delta^{(k)}] + (y - y^{(k)})[\delta^{(k+1)} + \delta^{(k)} - 2 s_k],\\
    b &= (y^{(k+1)} - y^{(k)})\,\delta^{(k)} - (y - y^{(k)})[\delta^{(k+1)} + \delta^{(k)} - 2 s_k],\\
    c &= -s_k (y - y^{(k)}),

taken as the paper recommends, :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`: the root in [0, 1], finite
even when :math:`a = 0` (a straight bin, e.g. the identity), unlike :math:`(-b + \sqrt{b^2 - 4ac}) / 2a`.

A network outputs :math:`3K - 1` unconstrained numbers per feature: K widths, K heights (a softmax turns each into bin
sizes that fill :math:`2B`) and :math:`K - 1` interior derivatives (a softplus makes them positive). Two details not
in the paper: every bin keeps a share of at least ``MIN_BIN`` of the interval and every derivative is at least
``MIN_DERIVATIVE`` (no bin or slope collapses to 0), and the softplus is divided by :math:`\log 2` so that zero
outputs give :math:`\delta = 1`: equal bins and unit slopes, the identity map. So a layer whose conditioner's last
layer starts at zero is the identity. :math:`K \ge 2`: one bin from :math:`(-B, -B)` to :math:`(B, B)` has
:math:`s_0 = \delta^{(0)} = \delta^{(1)} = 1`, so :math:`y = -B + 2B\xi = x` (the identity) whatever the parameters;
and :math:`K < 1/` ``MIN_BIN``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..core import Bijection
from ..validation import check_dim, check_positive
from .autoregressive import Autoregressive
from .coupling import Coupling

__all__ = ["rational_quadratic_spline", "spline_knots", "Spline", "SplineCoupling", "SplineAutoregressive",
           "MIN_BIN", "MIN_DERIVATIVE"]

MIN_BIN = 1e-3         # smallest share of [-B, B] a bin may take (in x and in y)
MIN_DERIVATIVE = 1e-3  # smallest derivative at a knot


def spline_knots(widths, heights, derivatives, bound: float):
    r"""The knots :math:`x^{(k)}, y^{(k)}` and derivatives :math:`\delta^{(k)}`, k = 0..K, from raw outputs.

    Args:
        widths, heights: ``(..., K)`` unconstrained numbers; a softmax (with the floor ``MIN_BIN``)
            turns each into K bin sizes that add up to :math:`2B`.
        derivatives: ``(..., K - 1)`` numbers u made positive, :math:`\delta = m + (1 - m)\,\mathrm{softplus}(u)
            / \log 2`, m = ``MIN_DERIVATIVE`` (u = 0: :math:`\delta = 1`); both ends :math:`\delta = 1` (linear tails).
        bound: B, the spline lives on :math:`[-B, B]`.

    Returns ``(x_knots, y_knots, derivatives)``, each ``(..., K + 1)``, from :math:`-B` to :math:`B`.

    Example:
        >>> import torch
        >>> xk, yk, d = spline_knots(torch.zeros(4), torch.zeros(4), torch.zeros(3), bound=2.0)
        >>> xk.tolist(), d.tolist()
        ([-2.0, -1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    raw = (widths, heights, derivatives)
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in raw):
        raise TypeError("widths, heights, derivatives must be floating-point tensors, got "
                        f"{[getattr(t, 'dtype', type(t).__name__) for t in raw]}")
    if widths.dim() == 0 or [t.shape[-1:] for t in raw] != [widths.shape[-1:]] * 2 + [(widths.shape[-1] - 1,)]:
        raise ValueError("widths and heights need K numbers in their last dimension and derivatives K - 1, got "
                         f"shapes {[tuple(t.shape) for t in raw]}")
    bins, bound = _check_spline(widths.shape[-1], bound)

    def positions(raw):  # -B, then -B + 2B * (cumulative share of each bin), ending exactly at B
        share = MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(raw, dim=-1)
        inner = -bound + 2 * bound * share.cumsum(-1)[..., :-1]
        end = inner.new_full((*inner.shape[:-1], 1), bound)
        return torch.cat([-end, inner, end], dim=-1)

    slopes = MIN_DERIVATIVE + (1 - MIN_DERIVATIVE) * F.softplus(derivatives) / math.log(2)
    return positions(widths), positions(heights), F.pad(slopes, (1, 1), value=1.0)  # slope 1 at -B and B


def rational_quadratic_spline(x, widths, heights, derivatives, bound: float,
                              inverse: bool = False):
    r"""The monotone rational-quadratic spline of Durkan et al. (2019), elementwise, with linear tails.

    Inside :math:`[-B, B]`, in the bin k that holds x (see the module docstring for :math:`s_k`, :math:`\xi`):

    .. math::
        y = y^{(k)} + \frac{(y^{(k+1)} - y^{(k)})[s_k \xi^2 + \delta^{(k)} \xi (1 - \xi)]}
                           {s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k] \xi (1 - \xi)},

        \frac{dy}{dx} = \frac{s_k^2 [\delta^{(k+1)} \xi^2 + 2 s_k \xi (1 - \xi) + \delta^{(k)} (1 - \xi)^2]}
                             {[s_k + (\delta^{(k+1)} + \delta^{(k)} - 2 s_k) \xi (1 - \xi)]^2};

    outside, y = x and dy/dx = 1. ``inverse=True`` maps y back to x: the bin is found among the :math:`y^{(k)}`, and
    :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})` with the a, b, c of the module docstring (the stable root of the
    quadratic), clamped to [0, 1] against rounding.

    Args:
        x: input of any shape (y when ``inverse=True``); every real value is valid.
        widths, heights: ``(*x.shape, K)`` unconstrained bin widths and heights (broadcastable), 2 <= K < 1000.
        derivatives: ``(*x.shape, K - 1)`` unconstrained interior derivatives (broadcastable).
        bound: B, a positive finite number.
        inverse: compute the inverse map.

    Returns:
        ``(y, logabsdet)``, both shaped like x: the output and :math:`\log|dy/dx|` (:math:`\log|dx/dy|` if inverse).

    Example:
        >>> import torch
        >>> x = torch.tensor([-7.0, -1.0, 0.3, 2.5, 7.0])
        >>> w, h, d = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 3)
        >>> y, logabsdet = rational_quadratic_spline(x, w, h, d, bound=3.0)
        >>> y[[0, 4]].tolist(), logabsdet[[0, 4]].tolist()        # the tails are the identity
        ([-7.0, 7.0], [0.0, 0.0])
        >>> x_back, logabsdet_back = rational_quadratic_spline(y, w, h, d, bound=3.0, inverse=True)
        >>> torch.allclose(x_back, x, atol=1e-5), torch.allclose(logabsdet_back, -logabsdet, atol=1e-5)
        (True, True)
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    knots = spline_knots(widths, heights, derivatives, bound)
    try:  # the knots of each element of x
        x_knots, y_knots, slopes = (t.expand(*x.shape, -1) for t in knots)
    except RuntimeError:
        raise ValueError(f"widths, heights, derivatives must broadcast to (*x.shape, K or K - 1), x has shape "
                         f"{tuple(x.shape)}, got {[tuple(t.shape) for t in (widths, heights, derivatives)]}") from None
    inside = (x >= -bound) & (x <= bound)
    u = x.clamp(-bound, bound).unsqueeze(-1)  # tails are computed on a clamped copy, then discarded
    k = (u >= (y_knots if inverse else x_knots)[..., 1:-1]).sum(-1, keepdim=True)  # the bin of each input
    x0, x1 = x_knots.gather(-1, k), x_knots.gather(-1, k + 1)  # the two knots around each input
    y0, y1 = y_knots.gather(-1, k), y_knots.gather(-1, k + 1)
    d0, d1 = slopes.gather(-1, k), slopes.gather(-1, k + 1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    if inverse:  # xi solves a xi^2 + b xi + c = 0 (the stable root)
        a = h * (s - d0) + (u - y0) * (d1 + d0 - 2 * s)
        b = h * d0 - (u - y0) * (d1 + d0 - 2 * s)
        c = -s * (u - y0)
        xi = 2 * c / (-b - (b * b - 4 * a * c).clamp(min=0).sqrt())
        # rounding can leave [0, 1]: clamp the value, keep the slope
        xi = xi + (xi.clamp(0, 1) - xi).detach()
    else:
        xi = (u - x0) / w
    denominator = s + (d1 + d0 - 2 * s) * xi * (1 - xi)
    out = (x0 + xi * w if inverse
           else y0 + h * (s * xi**2 + d0 * xi * (1 - xi)) / denominator)
    log_slope = (2 * s.log() + (d1 * xi**2 + 2 * s * xi * (1 - xi)
                                + d0 * (1 - xi) ** 2).log()
                 - 2 * denominator.log()).squeeze(-1)  # log dy/dx
    y = torch.where(inside, out.squeeze(-1), x)
    return y, torch.where(inside, -log_slope if inverse else log_slope,
                          torch.zeros_like(x))


class Spline(Bijection):
    r"""A learnable rational-quadratic spline per feature, the same for every input (like ``Affine``).

    Each feature has its own K widths, K heights and K - 1 derivatives (zero at the start: the
    identity). A 1-D ``Flow`` with this layer is a monotone density model of one variable.

    Args:
        features: number of features.
        bins, bound: K bins, :math:`2 \le K < 1/` ``MIN_BIN``, on :math:`[-B, B]`, B > 0 (the identity outside).

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.Spline(2, bins=4)
        >>> z = torch.randn(3, 2)
        >>> torch.allclose(layer(z)[0], z)
        True
    """

    def __init__(self, features: int, bins: int = 8, bound: float = 5.0):
        super().__init__()
        self.features, (self.bins, self.bound) = check_dim(features), _check_spline(bins, bound)
        self.widths = nn.Parameter(torch.zeros(self.features, self.bins))
        self.heights = nn.Parameter(torch.zeros(self.features, self.bins))
        self.derivatives = nn.Parameter(torch.zeros(self.features, self.bins - 1))

    def forward(self, z, context=None):
        self.check_input(z, "z")
        x, logabsdet = rational_quadratic_spline(z, self.widths, self.heights, self.derivatives, self.bound)
        return x, logabsdet.sum(1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        z, logabsdet = rational_quadratic_spline(x, self.widths, self.heights, self.derivatives, self.bound,
                                                 inverse=True)
        return z, logabsdet.sum(1)

    def extra_repr(self):
        return f"features={self.features}, bins={self.bins}, bound={self.bound}"


def _check_spline(bins, bound) -> tuple[int, float]:
    """``(K, B)`` if 2 <= K < 1 / MIN_BIN and B is a finite number > 0, else raise naming the argument."""
    if not 2 <= check_dim(bins, "bins") < 1 / MIN_BIN:
        raise ValueError(f"bins must be from 2 to {round(1 / MIN_BIN) - 1}, got {bins}: " + (
            "one bin, pinned to (-bound, -bound) and (bound, bound) with slope 1 at both ends, is the identity "
            "whatever its parameters" if bins < 2 else f"every bin keeps a share MIN_BIN = {MIN_BIN} of the interval"))
    return int(bins), check_positive(bound, "bound")


class SplineCoupling(Coupling):
    r"""A coupling layer with the spline law: :math:`x_A = z_A`, :math:`x_B = \mathrm{RQS}(z_B; \theta(z_A))`.

    The conditioner outputs :math:`3K - 1` numbers per transformed feature (widths, heights, interior
    derivatives); the log-det is the sum of the log-slopes. The rest is ``Coupling``'s, as for ``AffineCoupling``.

    Args:
        mask: ``(D,)`` booleans; ``True`` features pass through and condition the others.
        bins, bound: K and B of the spline.
        net, hidden, depth, context_features, dropout: see ``Coupling``.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.SplineCoupling(flowbook.alternating_mask(4), bins=4, hidden=8)
        >>> report = flowbook.check_bijection(flowbook.randomize_parameters(layer), 3 * torch.randn(6, 4))
    """

    def __init__(self, mask, bins: int = 8, bound: float = 5.0, net: nn.Module | None = None, hidden: int = 64,
                 depth: int = 2, context_features: int = 0, dropout: float = 0.0):
        bins, bound = _check_spline(bins, bound)
        super().__init__(mask, 3 * bins - 1, net, hidden, depth, context_features, dropout)
        self.bins, self.bound = bins, bound

    def spline_parameters(self, a, context=None):
        """Raw ``(widths, heights, derivatives)`` for the B features, each ``(batch, #B, K or K - 1)``."""
        theta = self.run_net(a, context).view(a.shape[0], 3 * self.bins - 1, len(self.idx_b))
        return theta.transpose(1, 2).split([self.bins, self.bins, self.bins - 1], dim=-1)

    def forward(self, z, context=None):
        self.check_input(z, "z")
        z_a, z_b = self.split(z)
        x_b, logabsdet = rational_quadratic_spline(z_b, *self.spline_parameters(z_a, context), self.bound)
        return self.merge(z, x_b), logabsdet.sum(1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        x_a, x_b = self.split(x)
        z_b, logabsdet = rational_quadratic_spline(x_b, *self.spline_parameters(x_a, context), self.bound, inverse=True)
        return self.merge(x, z_b), logabsdet.sum(1)

    def extra_repr(self):
        return super().extra_repr() + f", bins={self.bins}, bound={self.bound}"


class SplineAutoregressive(Autoregressive):
    r"""Autoregressive spline layer: :math:`x_i = \mathrm{RQS}(z_i; \theta_i)`, :math:`\theta_i` from a MADE.

    ``Autoregressive`` with the spline law instead of the affine one (``MaskedAffineAutoregressive``):
    in ``"maf"`` mode the parameters of feature i are functions of :math:`x_{<i}` (density in one
    MADE pass, sampling in ``n_levels`` passes); in ``"iaf"`` mode of :math:`z_{<i}` (the other
    way round). The MADE outputs :math:`3K - 1` numbers per feature and starts at zero: the identity.

    Args:
        features: number of features D.
        bins, bound: K and B of the spline.
        hidden, depth, context_features, degrees, activation, dropout: passed to ``MADE``.
        mode: ``"maf"`` or ``"iaf"``.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.SplineAutoregressive(3, bins=4, hidden=8)
        >>> report = flowbook.check_bijection(flowbook.randomize_parameters(layer), 3 * torch.randn(6, 3))
    """

    def __init__(self, features: int, bins: int = 8, bound: float = 5.0, hidden=64, depth: int = 2,
                 context_features: int = 0, mode: str = "maf", degrees=None, activation=nn.ReLU,
                 dropout: float = 0.0):
        bins, bound = _check_spline(bins, bound)
        super().__init__(features, 3 * bins - 1, hidden, depth, context_features, mode, degrees, activation, dropout)
        self.bins, self.bound = bins, bound

    def spline_parameters(self, u, context=None):
        """One MADE pass: raw ``(widths, heights, derivatives)``, each ``(batch, D, K or K - 1)``."""
        return self.made(u, context).transpose(1, 2).split([self.bins, self.bins, self.bins - 1], dim=-1)

    def law(self, v, u, context=None, inverse: bool = False):
        """The spline with parameters from u: v = z gives x, v = x gives z (``inverse``)."""
        widths, heights, derivatives = self.spline_parameters(u, context)
        return rational_quadratic_spline(v, widths, heights, derivatives,
                                         self.bound, inverse)

    def extra_repr(self):
        return super().extra_repr() + f", bins={self.bins}, bound={self.bound}"
