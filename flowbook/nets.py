r"""Small conditioner networks shared by coupling and autoregressive layers.

A flow layer that is the identity at initialization is easy to stack: a deep flow then starts
as the identity map and training moves it away gradually. ``mlp(..., zero_init_last=True)``
gives exactly that: the last linear layer starts at zero, so the network outputs 0 for every
input (zero shift, zero log-scale) until the first gradient step.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .utils import check_dim

__all__ = ["mlp", "FlatParameters", "run_packed"]


def mlp(in_features: int, out_features: int, hidden: int = 64, depth: int = 2,
        zero_init_last: bool = True, activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0) -> nn.Sequential:
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
        dropout: if > 0, an ``nn.Dropout(dropout)`` after each hidden activation (train mode only).

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
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    if zero_init_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class FlatParameters(nn.Module):
    r"""Mixin: store all parameters of a module's sub-layers in one flat ``Parameter``.

    Why: ``torch.optim.Adam`` on the CPU loops over parameter tensors in Python (its fused
    multi-tensor kernels are GPU-only), about ten small kernel calls per tensor per step. A flow of
    5 MADEs has 30 weight and bias tensors; for small layers that loop costs as much as the
    forward and backward passes together. Packed, the optimizer sees one tensor per layer; the
    parameter count (and what each number does) is unchanged.

    After ``_pack()`` every sub-layer's ``weight``/``bias`` is a *view* into ``self.flat``, so
    ``layer.weight``, ``nn.init.*_(layer.weight)`` and ``layer.weight.copy_(...)`` (under
    ``torch.no_grad()``) read and write the packed numbers as before. Gradients reach ``flat``
    only through ``_views()``, which the owning module's ``forward`` uses.
    """

    def _pack(self) -> None:
        slots, tensors = [], []
        for mod in self.modules():
            if mod is self:
                continue
            for name, p in list(mod._parameters.items()):
                if p is not None:
                    slots.append((mod, name, p.shape))
                    tensors.append(p.detach().reshape(-1))
                    del mod._parameters[name]
        self.flat = nn.Parameter(torch.cat(tensors))
        self._slots = slots
        self._sizes = [t.numel() for t in tensors]
        self._alias()

    def _alias(self) -> None:
        """Point each sub-layer's attribute at its (gradient-free) slice of ``flat``."""
        for (mod, name, shape), chunk in zip(self._slots, self.flat.detach().split(self._sizes)):
            mod.__dict__[name] = chunk.view(shape)

    def _views(self) -> list[torch.Tensor]:
        """The sub-layers' tensors as differentiable views of ``flat`` (in ``_slots`` order)."""
        return [c.view(s) for c, (_, _, s) in zip(self.flat.split(self._sizes), self._slots)]

    def _apply(self, fn, *args, **kwargs):  # .to() / .double() replace flat's storage
        out = super()._apply(fn, *args, **kwargs)
        self._alias()
        return out

    def __setstate__(self, state):  # deepcopy / unpickle: re-point the views at the new flat
        super().__setstate__(state)
        if "flat" in self._parameters:
            self._alias()


def run_packed(net: nn.Sequential, views, h):
    """Evaluate a ``Sequential`` of ``nn.Linear`` and parameter-free layers with weights ``views``."""
    it = iter(views)
    for layer in net:
        if isinstance(layer, nn.Linear):
            w = next(it)
            h = F.linear(h, w, next(it) if layer.bias is not None else None)
        else:
            h = layer(h)
    return h
