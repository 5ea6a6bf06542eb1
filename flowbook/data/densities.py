r"""2-D densities with an exact log-density (or a quadrature one), generated on the fly.

Every 2-D density has ``sample(n)``; ``log_prob(x)`` is exact for the Gaussian mixtures and the
checkerboard, and for the noisy curves (moons, circles, spirals) it is the Gaussian-noise
convolution of the curve, integrated over the curve parameter by a fine quadrature
(error far below Monte Carlo error). ``true_kl(flow, n)`` then estimates KL(p_data || p_model).
"""
from __future__ import annotations

import math

import torch

from ..runtime import device_of
from ..validation import check_count, check_dim, check_features, check_positive

__all__ = ["Density2D", "GaussianMixture", "Ring", "Grid", "NoisyCurves", "Moons", "Circles",
           "Spirals", "Checkerboard", "StudentT", "Fork", "DENSITIES"]


class Density2D:
    """A 2-D data distribution: ``sample(n)`` and, where it exists, an exact ``log_prob(x)``.

    ``n`` is a count (``check_count``: integer-like, >= 0); the scales (``std``, ``noise``, ``size``)
    must be positive, since a zero-width density has no log-density.
    """

    features = 2
    bounds = (-5.0, 5.0)  # a square that holds nearly all the mass, for plots and quadrature

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no exact log-density")

    def kl_to(self, model_log_prob, n: int = 20000, generator=None) -> float:
        """Monte Carlo KL(p_data || p_model) = E_data[log p_data - log p_model], in nats.

        ``model_log_prob`` is a function of ``(m, 2)`` points, e.g. ``flow.log_prob``; the points go to
        the device of the module it belongs to (``runtime.device_of``), so a flow on a GPU just works.
        """
        x = self.sample(check_count(n, "n", 1), generator)
        device = device_of(model_log_prob)
        with torch.no_grad():
            log_q = model_log_prob(x if device is None else x.to(device))
            return (self.log_prob(x) - log_q.to(x)).mean().item()

    def __repr__(self):
        return f"{type(self).__name__}()"


class GaussianMixture(Density2D):
    """Equal-weight mixture of isotropic Gaussians with the given ``means`` (K, 2) and ``std``."""

    def __init__(self, means, std: float):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        if self.means.dim() != 2 or self.means.shape[1] != 2 or len(self.means) == 0:
            raise ValueError(f"means must have shape (K, 2) with K >= 1, got {tuple(self.means.shape)}")
        if not torch.isfinite(self.means).all():
            raise ValueError("means must hold finite numbers")
        self.std = check_positive(std, "std")

    def sample(self, n, generator=None):
        n = check_count(n, "n")
        k = torch.randint(len(self.means), (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.std * noise).to(torch.get_default_dtype())

    def log_prob(self, x):
        check_features(x, 2, "x")
        d2 = (x.double().unsqueeze(1) - self.means.to(x.device)).pow(2).sum(-1)
        log_comp = -0.5 * d2 / self.std**2 - math.log(2 * math.pi * self.std**2)
        return (torch.logsumexp(log_comp, 1) - math.log(len(self.means))).to(x.dtype)


class Ring(GaussianMixture):
    """``k`` Gaussians (std ``std``) evenly spaced on a circle of ``radius`` (default: 8, 4, 0.5)."""

    def __init__(self, k: int = 8, radius: float = 4.0, std: float = 0.5):
        a = 2 * math.pi * torch.arange(check_dim(k, "k"), dtype=torch.float64) / k
        super().__init__(radius * torch.stack([a.cos(), a.sin()], 1), std)
        self.bounds = (-(radius + 4 * std), radius + 4 * std)


class Grid(GaussianMixture):
    """A ``k`` x ``k`` grid of Gaussians with centres from ``-spacing*(k-1)/2`` to ``+...``."""

    def __init__(self, k: int = 4, spacing: float = 2.0, std: float = 0.3):
        c = (torch.arange(check_dim(k, "k"), dtype=torch.float64) - (k - 1) / 2) * spacing
        super().__init__(torch.cartesian_prod(c, c), std)
        half = spacing * (k - 1) / 2 + 4 * std
        self.bounds = (-half, half)


class NoisyCurves(Density2D):
    """Points on parametric curves plus isotropic Gaussian noise.

    A sample picks a curve at random, a parameter ``t ~ U[0, 1]``, and adds ``N(0, noise^2 I)``.
    The density is a mixture over ``t`` of Gaussians, integrated with ``n_quad`` midpoints.
    """

    n_quad = 2000

    def __init__(self, noise: float):
        # noise = 0 puts all the mass on a curve: no 2-D density (log_prob would divide by 0)
        self.noise = check_positive(noise, "noise")

    def curves(self, t: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def sample(self, n, generator=None):
        n = check_count(n, "n")
        t = torch.rand(n, generator=generator, dtype=torch.float64)
        pts = torch.stack(self.curves(t), 0)  # (n_curves, n, 2)
        c = torch.randint(pts.shape[0], (n,), generator=generator)
        x = pts[c, torch.arange(n)] + self.noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return x.to(torch.get_default_dtype())

    def log_prob(self, x):
        check_features(x, 2, "x")
        t = (torch.arange(self.n_quad, dtype=torch.float64) + 0.5) / self.n_quad
        centres = torch.cat(self.curves(t), 0)  # every curve, every quadrature node
        out = []
        for chunk in x.double().split(4096):  # bounded memory: (4096, nodes) at a time
            d2 = torch.cdist(chunk, centres).pow(2)
            log_comp = -0.5 * d2 / self.noise**2 - math.log(2 * math.pi * self.noise**2)
            out.append(torch.logsumexp(log_comp, 1) - math.log(len(centres)))
        return torch.cat(out).to(x.dtype)


class Moons(NoisyCurves):
    """Two interleaving half circles (scikit-learn's ``make_moons`` shape), centred and scaled by 2."""

    bounds = (-3.5, 3.5)

    def __init__(self, noise: float = 0.1):
        super().__init__(noise)

    def curves(self, t):
        a = math.pi * t
        upper = torch.stack([a.cos() - 0.5, a.sin() - 0.25], 1)
        lower = torch.stack([0.5 - a.cos(), 0.25 - a.sin()], 1)  # 1 - cos, 0.5 - sin, recentred
        return [2 * upper, 2 * lower]


class Circles(NoisyCurves):
    """Two concentric circles of radii ``r_outer`` and ``r_inner``."""

    def __init__(self, r_inner: float = 1.5, r_outer: float = 3.5, noise: float = 0.15):
        super().__init__(noise)
        self.radii = (r_inner, r_outer)
        self.bounds = (-(r_outer + 1.0), r_outer + 1.0)

    def curves(self, t):
        a = 2 * math.pi * t
        unit = torch.stack([a.cos(), a.sin()], 1)
        return [r * unit for r in self.radii]


class Spirals(NoisyCurves):
    """Two interleaved spirals, each making ``turns`` turns out to radius ``radius``."""

    def __init__(self, turns: float = 1.5, radius: float = 4.0, noise: float = 0.2):
        super().__init__(noise)
        self.turns, self.radius = turns, radius
        self.bounds = (-(radius + 1.0), radius + 1.0)

    def curves(self, t):
        r = self.radius * (0.1 + 0.9 * t)
        a = 2 * math.pi * self.turns * t
        one = torch.stack([r * a.cos(), r * a.sin()], 1)
        return [one, -one]


class Checkerboard(Density2D):
    """Uniform on the black squares of a ``k`` x ``k`` board of side ``size`` (exact density)."""

    def __init__(self, k: int = 4, size: float = 8.0):
        self.k, self.size = check_dim(k, "k"), check_positive(size, "size")
        self.bounds = (-size / 2 - 0.5, size / 2 + 0.5)

    def sample(self, n, generator=None):
        n = check_count(n, "n")
        cell = self.size / self.k
        out = torch.empty(0, 2, dtype=torch.float64)
        while len(out) < n:  # rejection: keep the cells whose indices sum to an even number
            u = torch.rand(2 * n, 2, generator=generator, dtype=torch.float64) * self.size
            ij = (u / cell).floor()
            out = torch.cat([out, u[(ij.sum(1) % 2) == 0]])
        return (out[:n] - self.size / 2).to(torch.get_default_dtype())

    def log_prob(self, x):
        check_features(x, 2, "x")
        u = x.double() + self.size / 2
        ij = (u / (self.size / self.k)).floor()
        inside = ((u >= 0) & (u < self.size)).all(1) & ((ij.sum(1) % 2) == 0)
        area = self.size**2 / 2 if self.k % 2 == 0 else self.size**2 * (self.k**2 + 1) / (2 * self.k**2)
        lp = torch.full((len(x),), -math.log(area), dtype=torch.float64)
        return lp.masked_fill(~inside, -math.inf).to(x.dtype)


class StudentT(Density2D):
    """Two independent Student-t coordinates with ``df`` degrees of freedom and scale ``scale``: heavy tails.

    A sample is ``scale * z / sqrt(chi2 / df)`` per coordinate (z standard normal, chi2 with ``df``
    degrees of freedom); ``log_prob`` is exact.

    Example:
        >>> import torch
        >>> StudentT().log_prob(torch.zeros(1, 2)).shape
        torch.Size([1])
    """

    bounds = (-4.0, 4.0)

    def __init__(self, df: int = 3, scale: float = 0.5):
        self.df, self.scale = check_dim(df, "df"), float(scale)

    def sample(self, n, generator=None):
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        chi2 = torch.randn(n, 2, self.df, generator=generator, dtype=torch.float64).pow(2).sum(-1)
        return (self.scale * z / (chi2 / self.df).sqrt()).to(torch.get_default_dtype())

    def log_prob(self, x):
        check_features(x, 2, "x")
        return torch.distributions.StudentT(self.df, 0.0, self.scale).log_prob(x.double()).sum(1).to(x.dtype)


class Fork(Density2D):
    r"""A density whose conditional splits: one mode of :math:`x_2` at the left, two at the right.

    :math:`x_1 \sim \mathcal N(0, 1)` and, given :math:`x_1`, :math:`x_2 = \pm m(x_1) + \sigma\varepsilon`
    with :math:`m(x_1) = a\,(x_1 + 2)`, the sign a fair coin, :math:`\varepsilon \sim \mathcal N(0, 1)`:

    .. math::
        p(x_2 \mid x_1) = \tfrac12\,\mathcal N(x_2; m, \sigma^2) + \tfrac12\,\mathcal N(x_2; -m, \sigma^2).

    One affine coupling layer (:math:`x_2` shifted and scaled as a function of :math:`x_1`) can only
    give each conditional one Gaussian; a monotone spline can split it in two (chapter 9). The best
    Gaussian conditional has the same mean and variance, :math:`\mathcal N(0, m^2 + \sigma^2)`.

    Example:
        >>> import torch
        >>> fork = Fork()
        >>> fork.log_conditional(torch.tensor([-2.0]), torch.tensor([0.0]))  # one mode at x1 = -2
        tensor([0.2850])
    """

    bounds = (-4.0, 4.0)

    def __init__(self, slope: float = 0.7, noise: float = 0.3):
        self.slope, self.noise = check_positive(slope, "slope"), check_positive(noise, "noise")

    def m(self, first: torch.Tensor) -> torch.Tensor:
        """The distance :math:`m(x_1) = a (x_1 + 2)` of the two modes from 0, at ``first`` = :math:`x_1`."""
        return self.slope * (first + 2.0)

    def sample(self, n, generator=None):
        n = check_count(n, "n")
        x1 = torch.randn(n, generator=generator)
        sign = 2 * torch.randint(2, (n,), generator=generator) - 1
        return torch.stack([x1, sign * self.m(x1) + self.noise * torch.randn(n, generator=generator)], 1)

    def log_conditional(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x_2 \mid x_1)` at ``first`` = :math:`x_1`, ``second`` = :math:`x_2`: the mixture above."""
        m = self.m(first).unsqueeze(-1)
        modes = torch.distributions.Normal(torch.cat([m, -m], -1), self.noise)
        return modes.log_prob(second.unsqueeze(-1)).logsumexp(-1) - math.log(2)

    def log_prob(self, x):
        check_features(x, 2, "x")
        normal = torch.distributions.Normal(0.0, 1.0)
        return normal.log_prob(x[:, 0]) + self.log_conditional(x[:, 0], x[:, 1])


DENSITIES = {"ring": Ring, "grid": Grid, "moons": Moons, "circles": Circles,
             "spirals": Spirals, "checkerboard": Checkerboard, "student-t": StudentT, "fork": Fork}
