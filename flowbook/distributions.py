"""Base distributions. They are modules holding buffers, so ``flow.to(device)`` moves them."""
from __future__ import annotations

import math

import torch
from torch import nn

from .utils import check_dim, check_features

__all__ = ["StandardNormal"]


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
