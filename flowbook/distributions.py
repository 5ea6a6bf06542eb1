"""Base distributions. They are modules holding buffers, so ``flow.to(device)`` moves them."""
from __future__ import annotations

import math

import torch
from torch import nn

from .utils import check_dim, check_features

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

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim)
        # A buffer carries device and dtype: flow.to(...) / flow.double() move the base too.
        self.register_buffer("_anchor", torch.zeros(()))
        self._log_norm = 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.dim, device=self._anchor.device, dtype=self._anchor.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.dim, "z")
        return -0.5 * z.pow(2).sum(-1) - self._log_norm

    def extra_repr(self):
        return f"dim={self.dim}"


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
        if not (high > low).all():
            raise ValueError("high must be larger than low in every coordinate")
        self.dim = check_dim(low.numel(), "len(low)")
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    def sample(self, n: int) -> torch.Tensor:
        u = torch.rand(n, self.dim, device=self.low.device, dtype=self.low.dtype)
        return self.low + u * (self.high - self.low)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        check_features(z, self.dim, "z")
        inside = ((z >= self.low) & (z <= self.high)).all(-1)
        lp = -(self.high - self.low).log().sum()
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))
