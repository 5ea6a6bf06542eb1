r"""Small conditioner networks shared by coupling and autoregressive layers.

A flow layer that is the identity at initialization is easy to stack: a deep flow then starts
as the identity map and training moves it away gradually. ``mlp(..., zero_init_last=True)``
gives exactly that: the last linear layer starts at zero, so the network outputs 0 for every
input (zero shift, zero log-scale) until the first gradient step.
"""
from __future__ import annotations

from torch import nn

from .utils import check_dim

__all__ = ["mlp"]


def mlp(in_features: int, out_features: int, hidden: int = 64, depth: int = 2,
        zero_init_last: bool = True, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    r"""A plain MLP ``in -> hidden -> ... -> hidden -> out`` with ``depth`` hidden layers.

    Parameter count: :math:`(i+1)h + (\text{depth}-1)(h+1)h + (h+1)o` for ``depth >= 1``
    (``depth=0`` is a single linear map ``in -> out``), the same as ``nflows``/``zuko``
    conditioners with ``hidden_features=(h,) * depth``, so capacities can be matched.

    Args:
        in_features, out_features: input and output sizes.
        hidden: width of every hidden layer.
        depth: number of hidden layers (``0`` allowed: a linear map).
        zero_init_last: start the last layer's weight and bias at zero, so the output is 0.
        activation: the nonlinearity class placed after each hidden linear layer.

    Example:
        >>> import torch, flowbook
        >>> net = flowbook.nets.mlp(3, 4, hidden=16, depth=2)
        >>> net(torch.randn(5, 3)).abs().max().item()
        0.0
        >>> sum(p.numel() for p in net.parameters())
        404
    """
    in_features, out_features = check_dim(in_features, "in_features"), check_dim(out_features, "out_features")
    hidden = check_dim(hidden, "hidden")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
    sizes = [in_features] + [hidden] * depth + [out_features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    if zero_init_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)
