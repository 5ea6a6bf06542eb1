r"""Ready-made coupling flows: ``NICE`` and ``RealNVP``, each a ``flowbook.Flow``.

``hidden`` is the width and ``depth`` the number of hidden layers of every conditioner, the two
numbers other libraries expose (``hidden_features=(hidden,) * depth``), so capacities can be
matched: ``RealNVP(D, 8, H, 2)`` has the parameter count of nflows' / zuko's RealNVP with 8
couplings and conditioner hidden sizes (H, H).
"""
from __future__ import annotations

from .core import Flow
from .coupling import AdditiveCoupling, AffineCoupling, Scaling, alternating_mask
from .distributions import StandardNormal
from .utils import check_dim

__all__ = ["NICE", "RealNVP"]


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
