r"""Ready-made coupling flows: ``NICE`` and ``RealNVP``, each a ``flowbook.Flow``.

``hidden`` is the width and ``depth`` the number of hidden layers of every conditioner, the two
numbers other libraries expose (``hidden_features=(hidden,) * depth``), so capacities can be
matched: ``RealNVP(D, 8, H, 2)`` has the parameter count of nflows' / zuko's RealNVP with 8
couplings and conditioner hidden sizes (H, H).
"""
from __future__ import annotations

import torch

from .core import Compose, Flow
from .coupling import (AdditiveCoupling, AffineCoupling, Partial, Scaling, Squeeze, alternating_mask,
                       channel_mask, checkerboard_mask)
from .distributions import StandardNormal
from .normalization import ActNorm
from .utils import check_dim

__all__ = ["NICE", "RealNVP", "MultiscaleRealNVP"]


def _masks(dim, n_layers):
    if check_dim(dim) < 2:
        raise ValueError(f"a coupling flow needs dim >= 2, got {dim}")
    return [alternating_mask(dim, even=(i % 2 == 0)) for i in range(check_dim(n_layers, "n_layers"))]


def NICE(dim: int, n_layers: int = 4, hidden: int = 64, depth: int = 2, scaling: bool = True) -> Flow:
    r"""NICE (Dinh et al. 2014): ``n_layers`` additive couplings with alternating masks, then rescaling.

    Generative direction :math:`z \to x`: ``Scaling`` first (it acts on the latent side, NICE's
    "top" layer), then the couplings. All couplings preserve volume, so
    :math:`\log p(x) = \log \mathcal N(z; 0, I) - \sum_i \log\theta_i`: the scaling is the only place
    where the model can make some directions wider than others. ``scaling=False`` drops it (the
    ablation of lecture 001).

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.NICE(2, hidden=16)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """
    layers = [AdditiveCoupling(m, hidden=hidden, depth=depth) for m in _masks(dim, n_layers)]
    if scaling:
        layers.insert(0, Scaling(dim))
    return Flow(StandardNormal(dim), layers)


def RealNVP(dim: int, n_layers: int = 8, hidden: int = 64, depth: int = 2, clamp: float | None = 3.0,
            dropout: float = 0.0) -> Flow:
    r"""RealNVP (Dinh et al. 2016) for vectors: ``n_layers`` affine couplings with alternating masks.

    Each conditioner is ``mlp(D/2, 2 * D/2, hidden, depth)``, last layer zero (the fresh flow
    is the identity); the log-scale is soft-clamped to :math:`(-c, c)` by
    :math:`c\tanh(\cdot/c)`, ``clamp`` = c (see ``AffineCoupling``).

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.RealNVP(2, hidden=16)
        >>> flow.sample(4).shape, flow.log_prob(torch.zeros(1, 2)).item() == flowbook.StandardNormal(2).log_prob(torch.zeros(1, 2)).item()
        (torch.Size([4, 2]), True)
    """
    layers = [AffineCoupling(m, hidden=hidden, depth=depth, clamp=clamp, dropout=dropout) for m in _masks(dim, n_layers)]
    return Flow(StandardNormal(dim), layers)


def MultiscaleRealNVP(hidden: int = 64) -> Flow:
    r"""RealNVP with two scales for 1 x 8 x 8 images (the digits), flattened to 64 features.

    From the data side: ActNorm, two checkerboard couplings on the 8 x 8 image (each pixel
    conditioned on its neighbours), ``Squeeze`` to 4 x 4 x 4, two channel couplings; then half the
    features (channels 2-3) leave as latents and only channels 0-1 get two more checkerboard
    couplings and an ActNorm (``Partial``): Dinh et al.'s multiscale design. The list below is in
    the generative (latent -> data) order that ``Flow`` expects.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.MultiscaleRealNVP(hidden=8)
        >>> flow.log_prob(torch.randn(3, 64)).shape
        torch.Size([3])
    """
    layers = []
    keep = torch.arange(32)                      # channels 0-1 of the squeezed 4x4x4 image
    scale2 = [AffineCoupling(checkerboard_mask(2, 4, 4, even=e), hidden=hidden) for e in (False, True)]
    layers.append(Partial(Compose(*scale2, ActNorm(32)), keep, dim=64))
    layers += [AffineCoupling(channel_mask(4, 4, 4, first=f), hidden=hidden) for f in (False, True)]
    layers.append(Squeeze((1, 8, 8)))
    layers += [AffineCoupling(checkerboard_mask(1, 8, 8, even=e), hidden=hidden) for e in (False, True)]
    layers.append(ActNorm(64))
    return Flow(StandardNormal(64), layers)
