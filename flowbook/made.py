r"""MADE: a masked MLP whose outputs form an autoregressive model in one forward pass.

Every input feature :math:`i` gets a *degree* :math:`m(i)` (by default :math:`m(i) = i`, so the
order is ``1..D``); every hidden unit gets a degree in :math:`[\min m, \max m - 1]`. A weight is
kept only where information may flow without breaking the order:

* input :math:`i` → hidden unit :math:`k` (and hidden → hidden):  :math:`m(k) \ge m(i)`;
* hidden unit :math:`k` → output of feature :math:`j`:            :math:`m(j) > m(k)`.

A path from input :math:`i` to output :math:`j` therefore needs :math:`m(i) \le \dots < m(j)`:
output :math:`j` depends only on the features of lower degree (:math:`x_{<j}` for the default
order), and on the optional ``context``, which feeds the first hidden layer unmasked. The
outputs of the lowest-degree features see no hidden unit at all: they equal the last layer's
bias (``constant_output``). Germain et al., *MADE: Masked Autoencoder for Distribution
Estimation* (2015).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .nets import FlatParameters, dropout as _dropout
from .utils import check_dim, check_features

__all__ = ["MaskedLinear", "MADE"]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` (a buffer) on every call.

    The masked-out weights still exist (and count as parameters) but never receive a gradient.
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(FlatParameters):
    r"""Masked autoencoder: ``out_per_feature`` outputs per feature, each depending only on earlier features.

    Args:
        features: number of input features D.
        hidden: width of each hidden layer (an int, repeated ``depth`` times, or a tuple of widths).
        depth: number of hidden layers when ``hidden`` is an int.
        context: size of an optional conditioning vector (e.g. a one-hot label); 0 for none.
        out_per_feature: outputs per feature (2 for an affine layer: log-scale and shift).
        degrees: optional input degrees (D ints); features with equal degree do not see each
            other. Default ``1..D``. ``[1]*d + [2]*(D-d)`` gives a coupling layer's pattern.
        activation: the hidden nonlinearity (a module class).
        zero_init: start the last layer at zero, so every output is 0 (an identity flow layer).
        dropout: drop probability of the hidden units, in train mode only (a regularizer for
            small data sets; ``eval()`` turns it off, so the density is then deterministic).

    ``forward(x, context=None)`` returns a ``(batch, out_per_feature, features)`` tensor.

    Example:
        >>> import torch, flowbook
        >>> made = flowbook.MADE(3, hidden=16, zero_init=False)
        >>> x = torch.randn(5, 3, requires_grad=True)
        >>> made(x)[:, :, 1].sum().backward()     # outputs of feature 2 (index 1) ...
        >>> (x.grad[:, 1:] == 0).all().item()     # ... ignore features 2 and 3
        True
    """

    def __init__(self, features: int, hidden=64, depth: int = 2, context: int = 0,
                 out_per_feature: int = 2, degrees=None, activation=nn.ReLU, zero_init: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        self.features = check_dim(features, "features")
        self.out_per_feature = check_dim(out_per_feature, "out_per_feature")
        self.context = 0 if not context else check_dim(context, "context")
        widths = (check_dim(hidden, "hidden"),) * check_dim(depth, "depth") if isinstance(hidden, int) \
            else tuple(check_dim(h, "hidden") for h in hidden)
        if not widths:
            raise ValueError("hidden must name at least one hidden layer")
        if degrees is None:
            degrees = torch.arange(1, self.features + 1)
        degrees = torch.as_tensor(degrees, dtype=torch.long)
        if degrees.shape != (self.features,) or (degrees < 1).any():
            raise ValueError(f"degrees must be {self.features} integers >= 1, got {degrees.tolist()}")
        # Rank the degrees (1, 2, ...) so the number of distinct levels is max(degrees).
        degrees = torch.unique(degrees, return_inverse=True)[1] + 1
        self.register_buffer("degrees", degrees)

        lo, hi = 1, int(degrees.max())
        # Hidden degrees cycle through lo..hi-1 (all of them used, each about equally often).
        # With one level only (hi == lo) they are set to hi: such units reach no output.
        # Sorted, so the units a given output level needs form a prefix of each layer (used by
        # the sequential inverse, which then skips the units of higher degree).
        hidden_degrees = [(lo + torch.arange(w) % (hi - lo)).sort().values if hi > lo else torch.full((w,), hi)
                          for w in widths]
        layers, prev_deg, prev_w = [], degrees, self.features
        for w, deg in zip(widths, hidden_degrees):
            layers.append(MaskedLinear(prev_w, w, (deg[:, None] >= prev_deg[None, :]).float()))
            prev_deg, prev_w = deg, w
        out_deg = degrees.repeat(self.out_per_feature)  # output unit p*D + j belongs to feature j
        self.output = MaskedLinear(prev_w, self.out_per_feature * self.features,
                                   (out_deg[:, None] > prev_deg[None, :]).float())
        self.hidden_layers = nn.ModuleList(layers)
        self.context_layer = nn.Linear(self.context, widths[0]) if self.context else None
        # in place after a linear layer saves an allocation per call (the linear's backward does not need its output)
        self.activation = activation(inplace=True) if activation is nn.ReLU else activation()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if zero_init:
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
        for layer, deg in zip(layers, hidden_degrees):
            layer.register_buffer("degrees", deg, persistent=False)
        # one flat parameter for the optimizer (see FlatParameters); the masked weights are
        # cached while no gradient is needed (sampling runs the MADE D - 1 times per layer)
        self._pack()
        # every mask laid out like ``flat`` (1 on biases): one multiply masks all layers at once
        self.register_buffer("flat_mask", torch.cat([
            m.mask.reshape(-1) if n == "weight" and isinstance(m, MaskedLinear) else torch.ones(size)
            for (m, n, _), size in zip(self._slots, self._sizes)]), persistent=False)
        slot = {(id(m), n): i for i, (m, n, _) in enumerate(self._slots)}
        self._idx = [(slot[id(l), "weight"], slot[id(l), "bias"]) for l in [*layers, self.output]]
        self._ctx_idx = (slot[id(self.context_layer), "weight"], slot[id(self.context_layer), "bias"]) \
            if self.context else None
        self._cache = self._level_cache = None

    def _drop(self, h):
        return _dropout(h, self.dropout, self.training)

    def _params(self):
        """[(masked weight, bias) per masked layer, hidden then output], (context W, b) or None."""
        grad = torch.is_grad_enabled() and self.flat.requires_grad
        key = (id(self.flat), self.flat._version, self.flat.data_ptr(), self.flat.dtype)
        if not grad and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        flat = self.flat * self.flat_mask
        v = self._views(flat)
        out = ([(v[w], v[b]) for w, b in self._idx],
               (v[self._ctx_idx[0]], v[self._ctx_idx[1]]) if self._ctx_idx else None)
        self._cache = None if grad else (key, out)
        return out

    @property
    def n_levels(self) -> int:
        """Number of distinct degrees: an autoregressive inverse needs ``n_levels - 1`` passes."""
        return int(self.degrees.max())

    def masks(self) -> list[torch.Tensor]:
        """The 0/1 masks of every layer, input to output (each ``(out, in)``)."""
        return [layer.mask for layer in self.hidden_layers] + [self.output.mask]

    def connectivity(self) -> torch.Tensor:
        """``(D, D)`` 0/1 matrix: entry ``(j, i)`` is 1 when output j can depend on input i.

        It is the product of the masks, so it must be strictly lower triangular in degree order.
        """
        path = torch.eye(self.features, dtype=self.output.mask.dtype, device=self.output.mask.device)
        for m in self.masks():
            path = (m @ path).clamp(max=1)
        return path.reshape(self.out_per_feature, self.features, self.features).amax(0)

    def constant_output(self) -> torch.Tensor:
        """``(out_per_feature, features)``: exact outputs of the lowest-degree features for any input.

        Those outputs see no hidden unit, so they are the last layer's bias; entries of the other
        features are meaningless. An autoregressive inverse uses this to skip one network pass.
        """
        return self._params()[0][-1][1].view(self.out_per_feature, self.features)

    def level_output(self, x: torch.Tensor, level: int, context=None):
        r"""Outputs of the features of degree ``level`` only: ``(index, (batch, out_per_feature, k))``.

        They depend on the hidden units of degree < ``level`` only, which (degrees are sorted)
        are the first units of every hidden layer, so this pass multiplies smaller matrices
        than ``forward``: the sequential inverse costs about a third of D full passes.
        """
        if self._level_cache is None or self._level_cache[0] is not self.degrees:
            hid = [l.degrees for l in self.hidden_layers]
            self._level_cache = (self.degrees, [[int((d < j).sum()) for d in hid] for j in range(self.n_levels + 1)],
                                 [torch.nonzero(self.degrees == j).squeeze(1) for j in range(self.n_levels + 1)])
        _, prefix, index = self._level_cache
        idx, n = index[level], prefix[level]
        layers, ctx = self._params()
        w, b = layers[0]
        h = F.linear(x, w[:n[0]], b[:n[0]])
        if ctx is not None:
            h = h + F.linear(context, ctx[0][:n[0]], ctx[1][:n[0]])
        h = self._drop(self.activation(h))
        for (w, b), m, k in zip(layers[1:-1], n[:-1], n[1:]):
            h = self._drop(self.activation(F.linear(h, w[:k, :m], b[:k])))
        rows = (idx + self.features * torch.arange(self.out_per_feature, device=idx.device)[:, None]).reshape(-1)
        w, b = layers[-1]
        out = F.linear(h, w[rows, :n[-1]], b[rows])
        return idx, out.view(x.shape[0], self.out_per_feature, len(idx))

    def forward(self, x: torch.Tensor, context=None) -> torch.Tensor:
        check_features(x, self.features, "x")
        layers, ctx = self._params()
        h = F.linear(x, *layers[0])
        if self.context_layer is None and context is not None:
            raise ValueError("this MADE was built with context=0 and takes no context; "
                             "build it with context=<size> to condition on one")
        if self.context_layer is not None:
            if context is None:
                raise ValueError(f"this MADE was built with context={self.context}; pass a context tensor")
            check_features(context, self.context, "context")
            h = h + F.linear(context, *ctx)
        h = self._drop(self.activation(h))
        for w, b in layers[1:-1]:
            h = self._drop(self.activation(F.linear(h, w, b)))
        return F.linear(h, *layers[-1]).view(x.shape[0], self.out_per_feature, self.features)

    def extra_repr(self):
        return f"features={self.features}, context={self.context}, levels={self.n_levels}"
