r"""Elementwise bijections: a diagonal Jacobian, so the log-determinant is a sum of D terms.

* ``Scaling``: NICE's diagonal rescaling :math:`x = e^{\ell} \odot z`.
* ``Logit``: the unit cube to all of :math:`\mathbb R^D`, the usual first step for images.
* ``SinhArcsinh``: the sinh-arcsinh transform (Jones and Pewsey, 2009), described below.
* ``soft_clamp``: the bound on the log-scale that the affine coupling and autoregressive layers share.


Linear layers alone can only produce Gaussians. The smallest nonlinear ingredient is a monotone
map applied to every coordinate separately; its Jacobian is diagonal, so its log-determinant is a
sum of D scalar log-derivatives (:math:`O(D)`). Per coordinate, with skew :math:`\epsilon_i` and
tail weight :math:`\tau_i = e^{\delta_i}`,

.. math::
    \begin{aligned}
    x_i &= \sinh(\tau_i \,\mathrm{asinh}(z_i) - \epsilon_i), \\
    \log\left|\frac{\partial x_i}{\partial z_i}\right| &= \delta_i + \log\cosh(\tau_i\,\mathrm{asinh}\,z_i - \epsilon_i)
        - \tfrac12 \log(1 + z_i^2),
    \end{aligned}

with inverse :math:`z_i = \sinh((\mathrm{asinh}(x_i) + \epsilon_i)/\tau_i)`. :math:`\tau > 1` gives
heavier tails, :math:`\tau < 1` lighter ones, :math:`\epsilon` skews. It starts as the identity.
The last term is computed as :math:`\log m + \tfrac12\log(1 + r^2)` with :math:`m = \max(|z|, 1)`,
:math:`r = \min(|z|, 1/|z|)`: :math:`z^2` itself would overflow for :math:`|z| > 1.8 \cdot 10^{19}` in float32.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..core import Bijection
from ..validation import check_dim, check_positive

__all__ = ["SinhArcsinh", "Scaling", "Logit", "soft_clamp"]


def soft_clamp(x: torch.Tensor, clamp: float | None) -> torch.Tensor:
    r"""The smooth bound :math:`c\tanh(x / c)` of a raw log-scale x (``clamp=None``: no bound).

    It equals x near 0 (so a zero-initialized layer is the identity and early training is that
    of a plain ``exp``) and lies in :math:`(-c, c)`, so one layer scales by at most :math:`e^c`:
    no ``exp`` overflow, and no division by nearly 0 in the inverse.

    Example:
        >>> import torch
        >>> soft_clamp(torch.tensor([0.0, 100.0]), clamp=3.0)
        tensor([0., 3.])
    """
    return x if clamp is None else clamp * torch.tanh(x / clamp)


def _log_cosh(u):
    # log cosh u = |u| + log(1 + e^{-2|u|}) - log 2, which never overflows.
    a = u.abs()
    return a + F.softplus(-2 * a) - math.log(2)


def _half_log1p_square(x):
    # log(1 + x^2) / 2 = log m + log1p(r^2) / 2 with m = max(|x|, 1), r = min(|x|, 1/|x|): x * x never overflows
    a = x.abs()
    m = a.clamp(min=1)
    r = torch.where(a > 1, 1 / m, a)
    return m.log() + 0.5 * torch.log1p(r * r)


class SinhArcsinh(Bijection):
    r"""Elementwise :math:`x = \sinh(e^{\delta}\,\mathrm{asinh}(z) - \epsilon)` with learnable ``skew`` and ``log_tail``.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.SinhArcsinh(2)
        >>> z = torch.tensor([[0.5, -1.0]])
        >>> x, logabsdet = b(z)   # the identity at initialization
        >>> torch.allclose(x, z), abs(logabsdet.item()) < 1e-6
        (True, True)
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_dim(features)
        self.skew = nn.Parameter(torch.zeros(self.features))
        self.log_tail = nn.Parameter(torch.zeros(self.features))

    def forward(self, z, context=None):
        self.check_input(z, "z")
        u = self.log_tail.exp() * torch.asinh(z) - self.skew
        logabsdet = self.log_tail + _log_cosh(u) - _half_log1p_square(z)
        return torch.sinh(u), logabsdet.sum(1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        w = (torch.asinh(x) + self.skew) * torch.exp(-self.log_tail)
        logabsdet = -self.log_tail + _log_cosh(w) - _half_log1p_square(x)
        return torch.sinh(w), logabsdet.sum(1)


class Scaling(Bijection):
    r"""NICE's diagonal rescaling :math:`x_i = \theta_i z_i`, :math:`\det = \prod_i \theta_i`.

    :math:`\theta = e^{\ell}` is stored as ``log_scale`` :math:`\ell` (positive by construction,
    starts at 1), so :math:`\log|\det| = \sum_i \ell_i` for every input. NICE's couplings preserve
    volume; this is the only layer of NICE that can expand or shrink it.

    Example:
        >>> import torch, flowbook
        >>> s = flowbook.Scaling(2)
        >>> s.log_scale.data = torch.tensor([2.0, 0.5]).log()
        >>> round(s(torch.ones(1, 2))[1].exp().item(), 5)  # det = 2 * 0.5
        1.0
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_dim(features)
        self.log_scale = nn.Parameter(torch.zeros(self.features))

    @property
    def scale(self) -> torch.Tensor:
        """:math:`\theta`."""
        return self.log_scale.exp()

    def forward(self, z, context=None):
        self.check_input(z, "z")
        return z * self.log_scale.exp(), self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        return x * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[0])


class Logit(Bijection):
    r"""Map the unit cube to all of :math:`\mathbb R^D`, the usual first step for image data.

    ``inverse`` (data y in [0, 1] -> w): :math:`s = \alpha + (1-2\alpha) y`,
    :math:`w = \log s - \log(1-s)`, with
    :math:`\log|\partial w/\partial y| = \sum_d \log(1-2\alpha) - \log s_d - \log(1-s_d)`.
    ``forward`` is the sigmoid way back. ``alpha`` keeps pixels away from 0 and 1.

    The support is :math:`0 < s < 1`, i.e. ``y`` in :math:`(-\alpha/(1-2\alpha),\ 1 + \alpha/(1-2\alpha))`
    ((0, 1) for ``alpha = 0``). A row with a value outside it has density 0: ``inverse`` returns
    the log-det :math:`-\infty` for that row (and ``w = 0`` as a finite stand-in), so
    ``Flow.log_prob`` is ``-inf`` there, and ``fit`` names this layer if training data falls outside.
    ``features`` is an int, or an event shape ``(C, H, W)``: then the layer takes ``(N, C, H, W)`` images.

    Example:
        >>> import torch, flowbook
        >>> logit = flowbook.Logit(3, alpha=0.05)
        >>> w, logabsdet = logit.inverse(torch.full((2, 3), 0.5))
        >>> w.abs().max().item(), logabsdet.shape
        (0.0, torch.Size([2]))
    """

    def __init__(self, features, alpha: float = 0.05):
        super().__init__()
        if isinstance(features, (tuple, list, torch.Size)):  # an image's event shape (C, H, W)
            self.event_shape = tuple(check_dim(s, "features (an event shape)") for s in features)
            features = math.prod(self.event_shape)
        self.features, self.alpha = check_dim(features), check_positive(alpha, "alpha", allow_zero=True)
        if not 0 <= self.alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")

    def forward(self, w, context=None):
        self.check_input(w, "w")
        s = torch.sigmoid(w)
        y = (s - self.alpha) / (1 - 2 * self.alpha)
        logabsdet = (F.logsigmoid(w) + F.logsigmoid(-w)).flatten(1).sum(1)
        return y, logabsdet - self.features * math.log(1 - 2 * self.alpha)

    def inverse(self, y, context=None):
        self.check_input(y, "y")
        s = self.alpha + (1 - 2 * self.alpha) * y
        inside = (s > 0) & (s < 1)
        s = torch.where(inside, s, 0.5)  # outside the support: a finite stand-in, log-det -inf below
        w = s.log() - torch.log1p(-s)
        logabsdet = (math.log(1 - 2 * self.alpha) - s.log() - torch.log1p(-s)).flatten(1).sum(1)
        return w, logabsdet.masked_fill(~inside.flatten(1).all(1), -math.inf)
