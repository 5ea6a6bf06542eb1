"""Base distributions. They are modules holding buffers, so ``flow.to(device)`` moves them."""
from __future__ import annotations

import math

import torch
from torch import nn

from .validation import check_count, check_dim, check_features

__all__ = ["StandardNormal", "BoxUniform"]


class StandardNormal(nn.Module):
    r"""The standard normal :math:`\mathcal N(0, I_D)`, the usual base of a flow.

    .. math:: \log p(z) = -\tfrac12 \lVert z\rVert^2 - \tfrac D2 \log 2\pi

    Example:
        >>> import flowbook
        >>> base = flowbook.StandardNormal(3)
        >>> z = base.sample(10)
        >>> base.log_prob(z).shape
        torch.Size([10])
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = check_dim(features, "features")
        # A buffer carries device and dtype: flow.to(...) / flow.double() move the base too.
        self.register_buffer("_anchor", torch.zeros(()))
        self._log_norm = 0.5 * self.features * math.log(2 * math.pi)

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws (``n`` a count: integer-like, >= 0), shape ``(n, features)``."""
        return torch.randn(check_count(n, "n"), self.features, device=self._anchor.device, dtype=self._anchor.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.features, "z")
        return -0.5 * z.pow(2).sum(-1) - self._log_norm

    def extra_repr(self):
        return f"features={self.features}"


class BoxUniform(nn.Module):
    r"""Uniform density on the box :math:`[\text{low}, \text{high}]^D`: :math:`1/\prod_i(\text{high}_i-\text{low}_i)`.

    ``log_prob`` is :math:`-\infty` outside the box, so a flow with this base has a density with
    bounded support (as in the lectures' uniform-square example).

    Example:
        >>> import torch, flowbook
        >>> base = flowbook.BoxUniform([0.0, 0.0], [2.0, 2.0])
        >>> base.log_prob(torch.tensor([[1.0, 1.0], [3.0, 1.0]])).exp()
        tensor([0.2500, 0.0000])
    """

    def __init__(self, low, high):
        super().__init__()
        low, high = torch.as_tensor(low, dtype=torch.get_default_dtype()), torch.as_tensor(high, dtype=torch.get_default_dtype())
        if low.dim() != 1 or low.shape != high.shape:
            raise ValueError(f"low and high must be 1-D and of the same length, got {tuple(low.shape)} and {tuple(high.shape)}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError(f"low and high must be finite (a uniform density needs a bounded box), got {low.tolist()} "
                             f"and {high.tolist()}")
        if not (high > low).all():
            raise ValueError("high must be larger than low in every coordinate")
        self.features = check_dim(low.numel(), "len(low)")
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws (``n`` a count: integer-like, >= 0), shape ``(n, features)``."""
        u = torch.rand(check_count(n, "n"), self.features, device=self.low.device, dtype=self.low.dtype)
        return self.low + u * (self.high - self.low)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.features, "z")
        inside = ((z >= self.low) & (z <= self.high)).all(-1)
        lp = -(self.high - self.low).log().sum()
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))


class MixtureBase(nn.Module):
    r"""A learnable mixture of ``k`` diagonal Gaussians, a base distribution for separated modes.

    .. math:: p(z) = \sum_{j=1}^{k} \pi_j \prod_{i=1}^{D} \mathcal N(z_i;\ \mu_{ji}, \sigma_{ji}^2),
              \qquad \pi = \mathrm{softmax}(\text{logits}),\ \sigma = e^{\text{log\_std}}.

    A continuous bijection cannot tear one Gaussian into separate islands; a base with ``k``
    modes gives the flow islands to start from. Every parameter is trained with the flow. The
    means start at ``N(0, I)`` draws (distinct components, so they can move apart), the
    standard deviations at 1, the weights equal.

    ``rsample(n)`` is differentiable in the means and standard deviations (the component of
    each sample is drawn without a gradient); ``sample(n)`` is the same without gradients.

    Args:
        features: number of features D.
        k: number of components.

    Example:
        >>> import torch, flowbook
        >>> base = flowbook.MixtureBase(2, k=3)
        >>> base.log_prob(base.sample(5)).shape
        torch.Size([5])
        >>> flow = flowbook.Flow(base, [flowbook.Affine(2)])
        >>> flow.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    def __init__(self, features: int, k: int = 8):
        super().__init__()
        self.features, self.k = check_dim(features, "features"), check_dim(k, "k")
        self.logits = nn.Parameter(torch.zeros(self.k))
        self.means = nn.Parameter(torch.randn(self.k, self.features))
        self.log_std = nn.Parameter(torch.zeros(self.k, self.features))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.features, "z")
        u = (z.unsqueeze(1) - self.means) * torch.exp(-self.log_std)   # (batch, k, D)
        log_normal = (-0.5 * u.pow(2) - self.log_std).sum(-1) - 0.5 * self.features * math.log(2 * math.pi)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + log_normal, dim=1)

    def rsample(self, n: int) -> torch.Tensor:
        n = check_count(n, "n")
        j = (torch.multinomial(torch.softmax(self.logits.detach(), 0), n, replacement=True) if n
             else torch.zeros(0, dtype=torch.long, device=self.logits.device))  # multinomial refuses n = 0
        eps = torch.randn(n, self.features, device=self.means.device, dtype=self.means.dtype)
        return self.means[j] + torch.exp(self.log_std[j]) * eps

    def sample(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(n)

    def extra_repr(self):
        return f"features={self.features}, k={self.k}"


__all__ += ["MixtureBase"]
