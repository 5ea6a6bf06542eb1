r"""Unnormalized 2-D targets for reverse-KL training: :math:`p(z) = e^{-U(z)}/Z` with Z unknown.

The four energies of Rezende & Mohamed (2015, table 1), with
:math:`w_1 = \sin(\pi z_1/2)`, :math:`w_2 = 3 e^{-\frac12((z_1 - 1)/0.6)^2}`,
:math:`w_3 = 3\,\sigma((z_1 - 1)/0.3)`:

* :math:`U_1 = \frac12\left(\frac{\lVert z\rVert - 2}{0.4}\right)^2
  - \log\left(e^{-\frac12((z_1 - 2)/0.6)^2} + e^{-\frac12((z_1 + 2)/0.6)^2}\right)`
* :math:`U_2 = \frac12\left(\frac{z_2 - w_1}{0.4}\right)^2`
* :math:`U_3 = -\log\left(e^{-\frac12((z_2 - w_1)/0.35)^2} + e^{-\frac12((z_2 - w_1 + w_2)/0.35)^2}\right)`
* :math:`U_4 = -\log\left(e^{-\frac12((z_2 - w_1)/0.4)^2} + e^{-\frac12((z_2 - w_1 + w_3)/0.35)^2}\right)`

:math:`U_2`–:math:`U_4` do not grow along :math:`z_1`, so :math:`e^{-U}` has infinite mass on the
plane (the paper only ever shows the box :math:`[-4, 4]^2`). We add the soft wall
:math:`\frac12(\max(|z_1| - 4, 0)/0.2)^2` to them, which leaves the box untouched and makes
:math:`\log Z` finite; ``log_normalizer()`` computes it by quadrature, so the gap between an
ELBO and :math:`\log Z` (the reverse KL) can be measured.

The energies are computed where ``z`` lives (CPU or GPU, any float dtype), so a flow on
``fb.device()`` trains against them without copies; ``log_normalizer`` integrates on the CPU in
float64.
"""
from __future__ import annotations

import math

import torch

from .data.densities import GaussianMixture
from .validation import check_features

__all__ = ["Target2D", "U1", "U2", "U3", "U4", "ENERGIES", "Bimodal", "Wave"]


class Target2D:
    """A 2-D density known up to its normalizer: ``log_unnormalized(z) = -U(z)``.

    Example:
        >>> import torch
        >>> from flowbook.targets import U2
        >>> U2().log_unnormalized(torch.tensor([[1.0, 1.0]])).abs().item()  # on the wave z2 = sin(pi z1/2)
        0.0
    """

    features = 2
    bounds = (-4.0, 4.0)  # the square the paper plots

    def energy(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_unnormalized(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, 2, "z")
        return -self.energy(z)

    @torch.no_grad()
    def log_normalizer(self, bounds=(-7.0, 7.0), n: int = 701) -> float:
        r""":math:`\log Z = \log\int e^{-U}` by the midpoint rule on an ``n`` x ``n`` grid (float64)."""
        lo, hi = bounds
        h = (hi - lo) / n
        t = torch.linspace(lo + h / 2, hi - h / 2, n, dtype=torch.float64)
        pts = torch.cartesian_prod(t, t)
        return (torch.logsumexp(self.log_unnormalized(pts), 0) + 2 * math.log(h)).item()

    def plot(self, ax=None, bounds=None, n: int = 200, title=None):
        """Heat-map of :math:`e^{-U}` (unnormalized) over ``bounds`` (default: the paper's box)."""
        from . import plot
        return plot.density(self.log_unnormalized, bounds or self.bounds, n, ax=ax,
                            title=type(self).__name__ if title is None else title)

    def __repr__(self):
        return f"{type(self).__name__}()"


def _w1(z):
    return torch.sin(math.pi * z[:, 0] / 2)


def _wall(z):
    return 0.5 * (torch.relu(z[:, 0].abs() - 4) / 0.2).pow(2)


def _neg_logaddexp(a, b):
    return -torch.logaddexp(a, b)


class U1(Target2D):
    """A ring of radius 2 with two lobes on the z1 axis (normalizable as is)."""

    def energy(self, z):
        r = z.norm(dim=-1)
        lobes = torch.logaddexp(-0.5 * ((z[:, 0] - 2) / 0.6) ** 2, -0.5 * ((z[:, 0] + 2) / 0.6) ** 2)
        return 0.5 * ((r - 2) / 0.4) ** 2 - lobes


class U2(Target2D):
    """A sine wave z2 = sin(pi z1 / 2) of width 0.4."""

    def energy(self, z):
        return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2 + _wall(z)


class U3(Target2D):
    """The sine wave and a copy pulled down by a bump w2 near z1 = 1 (width 0.35)."""

    def energy(self, z):
        d = z[:, 1] - _w1(z)
        w2 = 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)
        return _neg_logaddexp(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + w2) / 0.35) ** 2) + _wall(z)


class U4(Target2D):
    """The sine wave and a copy pulled down by a step w3 for z1 > 1."""

    def energy(self, z):
        d = z[:, 1] - _w1(z)
        w3 = 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)
        return _neg_logaddexp(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + w3) / 0.35) ** 2) + _wall(z)


ENERGIES = {"U1": U1, "U2": U2, "U3": U3, "U4": U4}


class Bimodal(GaussianMixture, Target2D):
    r"""Two equal Gaussians at :math:`(\pm s/2, 0)` with standard deviation ``std``; normalized, so log Z = 0.

    It has both ``sample``/``log_prob`` (for maximum likelihood, forward KL) and
    ``log_unnormalized`` (for reverse KL).
    """

    def __init__(self, separation: float = 5.0, std: float = 0.6):
        super().__init__([[-separation / 2, 0.0], [separation / 2, 0.0]], std)
        self.bounds = (-separation / 2 - 4 * std, separation / 2 + 4 * std)

    def log_unnormalized(self, z):
        return self.log_prob(z)

    def log_normalizer(self, bounds=None, n=None) -> float:
        return 0.0


class Wave:
    r"""A family of targets indexed by a context :math:`c` (amplitude), for amortized flows.

    :math:`\log \tilde p(z \mid c) = -\frac12\left(\frac{z_2 - c\sin(\pi z_1/2)}{0.4}\right)^2
    - \frac12\left(\frac{z_1}{2}\right)^2`: integrating :math:`z_2` first shows
    :math:`Z = 2\pi \cdot 2 \cdot 0.4` for every :math:`c`, so ``log_normalizer`` is exact.

    Example:
        >>> import torch
        >>> from flowbook.targets import Wave
        >>> Wave().log_unnormalized(torch.zeros(3, 2), torch.ones(3, 1)).shape
        torch.Size([3])
    """

    features, context_features, bounds = 2, 1, (-4.0, 4.0)

    def log_unnormalized(self, z, context):
        check_features(z, 2, "z")
        check_features(context, 1, "context")
        c = context[:, 0]
        return -0.5 * ((z[:, 1] - c * _w1(z)) / 0.4) ** 2 - 0.5 * (z[:, 0] / 2) ** 2

    def log_normalizer(self) -> float:
        return math.log(2 * math.pi * 2 * 0.4)
