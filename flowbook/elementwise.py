r"""An elementwise nonlinear bijection: the sinh-arcsinh transform (Jones and Pewsey, 2009).

Linear layers alone can only produce Gaussians. The smallest nonlinear ingredient is a monotone
map applied to every coordinate separately; its Jacobian is diagonal, so its log-determinant is a
sum of D scalar log-derivatives (:math:`O(D)`). Per coordinate, with skew :math:`\epsilon_i` and
tail weight :math:`\tau_i = e^{\delta_i}`,

.. math::
    x_i = \sinh(\tau_i \,\mathrm{asinh}(z_i) - \epsilon_i), \qquad
    \log\left|\frac{\partial x_i}{\partial z_i}\right| = \delta_i + \log\cosh(\tau_i\,\mathrm{asinh}\,z_i - \epsilon_i)
        - \tfrac12 \log(1 + z_i^2),

with inverse :math:`z_i = \sinh((\mathrm{asinh}(x_i) + \epsilon_i)/\tau_i)`. :math:`\tau > 1` gives
heavier tails, :math:`\tau < 1` lighter ones, :math:`\epsilon` skews. It starts as the identity.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .core import Bijection
from .utils import check_dim

__all__ = ["SinhArcsinh"]


def _log_cosh(u):
    # log cosh u = |u| + log(1 + e^{-2|u|}) - log 2, which never overflows.
    a = u.abs()
    return a + F.softplus(-2 * a) - math.log(2)


class SinhArcsinh(Bijection):
    r"""Elementwise :math:`x = \sinh(e^{\delta}\,\mathrm{asinh}(z) - \epsilon)` with learnable ``skew`` and ``log_tail``.

    Example:
        >>> import torch
        >>> from flowbook.elementwise import SinhArcsinh
        >>> b = SinhArcsinh(2)
        >>> z = torch.tensor([[0.5, -1.0]])
        >>> x, ladj = b(z)   # the identity at initialization
        >>> torch.allclose(x, z), abs(ladj.item()) < 1e-6
        (True, True)
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim)
        self.skew = nn.Parameter(torch.zeros(self.dim))
        self.log_tail = nn.Parameter(torch.zeros(self.dim))

    def forward(self, z, context=None):
        self._check(z, "z")
        u = self.log_tail.exp() * torch.asinh(z) - self.skew
        ladj = self.log_tail + _log_cosh(u) - 0.5 * torch.log1p(z * z)
        return torch.sinh(u), ladj.sum(1)

    def inverse(self, x, context=None):
        self._check(x, "x")
        w = (torch.asinh(x) + self.skew) * torch.exp(-self.log_tail)
        ladj = -self.log_tail + _log_cosh(w) - 0.5 * torch.log1p(x * x)
        return torch.sinh(w), ladj.sum(1)
