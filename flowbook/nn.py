r"""Networks used as conditioners: a plain MLP, and MADE, the masked MLP of autoregressive flows.

**Identity at initialization.** A flow layer whose conditioner outputs 0 is the identity map (zero shift, zero
log-scale), so a deep flow built from such layers starts as the identity and training moves it away gradually.
``mlp(..., zero_init=True)`` and ``MADE(..., zero_init=True)`` start their last layer at zero for exactly that.

**MADE** (Germain et al., *MADE: Masked Autoencoder for Distribution Estimation*, 2015). Every input feature :math:`i`
gets a *degree* :math:`m(i)` (by default :math:`m(i) = i`), every hidden unit a degree in :math:`[1, \max m - 1]`. A
weight is kept only where information may flow without breaking the order:

* into a hidden unit :math:`k` from a unit of degree :math:`m`: kept iff :math:`m(k) \ge m`;
* into the output of feature :math:`j` from hidden unit :math:`k`: kept iff :math:`m(j) > m(k)`.

A path from input :math:`i` to output :math:`j` then needs :math:`m(i) \le \dots < m(j)`, so output :math:`j` depends
only on the features of lower degree (:math:`x_{<j}` for the default order). The rule is the two small functions
``hidden_degrees`` and ``made_mask``; ``MADE`` is a stack of ``MaskedLinear`` layers built from them.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .validation import check_context, check_count, check_dim, check_features

__all__ = ["mlp", "MaskedLinear", "MADE", "hidden_degrees", "made_mask", "VectorField", "LinearField"]


def mlp(in_features: int, out_features: int, hidden: int = 64, depth: int = 2, zero_init: bool = True,
        activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0) -> nn.Sequential:
    r"""A plain MLP ``in -> hidden -> ... -> hidden -> out`` with ``depth`` hidden layers.

    Parameter count: :math:`(i+1)h + (\text{depth}-1)(h+1)h + (h+1)o` for ``depth >= 1``
    (``depth=0`` is a single linear map), the same as a conditioner with hidden sizes
    ``(hidden,) * depth`` in other libraries, so capacities can be matched.

    Args:
        in_features: input size.
        out_features: output size.
        hidden: width of every hidden layer.
        depth: number of hidden layers (``0``: a linear map).
        zero_init: start the last layer's weight and bias at zero, so the output is 0.
        activation: the nonlinearity class placed after each hidden linear layer.
        dropout: if > 0, an ``nn.Dropout(dropout)`` after each hidden activation (train mode only).

    Example:
        >>> import torch, flowbook
        >>> net = flowbook.mlp(3, 4, hidden=16, depth=2)
        >>> net(torch.randn(5, 3)).abs().max().item()
        0.0
        >>> sum(p.numel() for p in net.parameters())
        404
    """
    in_features, out_features = check_dim(in_features, "in_features"), check_dim(out_features, "out_features")
    hidden = check_dim(hidden, "hidden")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    sizes = [in_features] + [hidden] * depth + [out_features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < depth:
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    if zero_init:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


def _activation(cls: type[nn.Module]) -> nn.Module:
    # ReLU in place: its input is a linear layer's fresh output, which nothing else reads
    return cls(inplace=True) if cls is nn.ReLU else cls()


def hidden_degrees(width: int, max_degree: int) -> torch.Tensor:
    """Degrees of ``width`` hidden units: ``1, 2, ..., max_degree - 1`` in turn, sorted.

    Every degree a hidden unit may have is used about equally often. With one level only
    (``max_degree == 1``) the units get degree 1 and reach no output.

    Example:
        >>> hidden_degrees(5, 3).tolist()
        [1, 1, 1, 2, 2]
    """
    if max_degree == 1:
        return torch.ones(width, dtype=torch.long)
    return (1 + torch.arange(width) % (max_degree - 1)).sort().values


def made_mask(in_degrees: torch.Tensor, out_degrees: torch.Tensor,
              output: bool = False) -> torch.Tensor:
    r"""The ``(out, in)`` 0/1 mask of a MADE layer.

    Hidden layers keep the weight :math:`k \leftarrow i` iff :math:`m(k) \ge m(i)`; the output layer
    (``output=True``) iff :math:`m(k) > m(i)`, strictly, so no output sees its own feature.

    Example:
        >>> made_mask(torch.tensor([1, 2]), torch.tensor([1, 2]), output=True)
        tensor([[0., 0.],
                [1., 0.]])
    """
    keep = (out_degrees[:, None] > in_degrees[None, :] if output
            else out_degrees[:, None] >= in_degrees[None, :])
    return keep.float()


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` (a buffer) on every call.

    The masked-out weights exist (and count as parameters) but never receive a gradient.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.MaskedLinear(2, 2, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        >>> layer(torch.randn(3, 2)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder: ``outputs_per_feature`` outputs per feature, each depending only on earlier features.

    Args:
        features: number of input features D.
        hidden: width of each hidden layer (an int, repeated ``depth`` times, or a tuple of widths).
        depth: number of hidden layers when ``hidden`` is an int.
        context_features: width of an optional conditioning vector, fed unmasked to the first hidden layer (0: none).
        outputs_per_feature: outputs per feature (2 for an affine layer: shift and log-scale).
        degrees: optional input degrees (D integers >= 1); features of equal degree do not see
            each other. Default ``1..D``. ``[1]*d + [2]*(D-d)`` gives a coupling layer's pattern.
        activation: the hidden nonlinearity (a module class).
        zero_init: start the output layer at zero, so every output is 0.
        dropout: drop probability of the hidden units in train mode (a regularizer for small data).

    ``forward(x, context=None)`` returns a ``(batch, outputs_per_feature, features)`` tensor.

    Example:
        >>> import torch, flowbook
        >>> made = flowbook.MADE(3, hidden=16, zero_init=False)
        >>> x = torch.randn(5, 3, requires_grad=True)
        >>> made(x)[:, :, 1].sum().backward()     # the outputs of feature 2 ...
        >>> (x.grad[:, 1:] == 0).all().item()     # ... ignore features 2 and 3
        True
    """

    def __init__(self, features: int, hidden=64, depth: int = 2,
                 context_features: int = 0, outputs_per_feature: int = 2,
                 degrees=None, activation=nn.ReLU, zero_init: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        self.features = check_dim(features, "features")
        self.outputs_per_feature = check_dim(outputs_per_feature, "outputs_per_feature")
        self.context_features = check_count(context_features, "context_features")
        widths = (check_dim(hidden, "hidden"),) * check_dim(depth, "depth") if not isinstance(hidden, (list, tuple)) \
            else tuple(check_dim(h, "hidden") for h in hidden)
        if not widths:
            raise ValueError("hidden must name at least one hidden layer")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        degrees = torch.arange(1, self.features + 1) if degrees is None else torch.as_tensor(degrees)
        if degrees.shape != (self.features,) or degrees.is_floating_point() or (degrees < 1).any():
            raise ValueError(f"degrees must be {self.features} integers >= 1, got {degrees.tolist()}")
        # rank the degrees 1, 2, ...: the number of distinct levels is then max(degrees)
        degrees = torch.unique(degrees, return_inverse=True)[1] + 1
        self.register_buffer("degrees", degrees)
        layers, prev = [], degrees
        for w in widths:
            deg = hidden_degrees(w, self.n_levels)
            layers.append(MaskedLinear(len(prev), w, made_mask(prev, deg)))
            prev = deg
        # output p*D + j belongs to feature j
        out_degrees = degrees.repeat(self.outputs_per_feature)
        self.input_layer = layers[0]
        self.hidden_layers = nn.ModuleList(layers[1:])
        self.output = MaskedLinear(len(prev), len(out_degrees),
                                   made_mask(prev, out_degrees, output=True))
        self.context_layer = nn.Linear(self.context_features, widths[0]) if self.context_features else None
        self.activation = _activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        if zero_init:
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)

    @property
    def n_levels(self) -> int:
        """Number of distinct degrees: an autoregressive inverse needs this many passes."""
        return int(self.degrees.max())

    def masks(self) -> list[torch.Tensor]:
        """The 0/1 masks of every layer, input to output (each ``(out, in)``)."""
        return [self.input_layer.mask] + [layer.mask for layer in self.hidden_layers] + [self.output.mask]

    def connectivity(self) -> torch.Tensor:
        """``(D, D)`` 0/1 matrix: entry ``(j, i)`` is 1 when output j can depend on input i.

        It is the product of the masks, so it must be strictly lower triangular in degree order.
        """
        path = torch.eye(self.features, dtype=self.output.mask.dtype, device=self.output.mask.device)
        for m in self.masks():
            path = (m @ path).clamp(max=1)
        return path.reshape(self.outputs_per_feature, self.features, self.features).amax(0)

    def forward(self, x: torch.Tensor, context=None) -> torch.Tensor:
        check_features(x, self.features, "x")
        check_context(context, self.context_features, "MADE")
        h = self.input_layer(x)
        if self.context_layer is not None:
            h = h + self.context_layer(context)
        h = self.activate(h)
        for layer in self.hidden_layers:
            h = self.activate(layer(h))
        return self.output(h).view(x.shape[0], self.outputs_per_feature, self.features)

    def activate(self, h):
        """The hidden nonlinearity, then dropout when the MADE has some."""
        h = self.activation(h)
        return h if self.dropout is None else self.dropout(h)

    def extra_repr(self):
        return f"features={self.features}, context_features={self.context_features}, levels={self.n_levels}"


class VectorField(nn.Module):
    r"""A time-dependent vector field :math:`v(t, z) = \mathrm{MLP}([z, t])` for ODE flows and flow matching.

    The time is one more input of a plain ``mlp`` with a smooth activation (SiLU): an ODE flow
    differentiates the field's trace, so the field must be differentiable twice, which ReLU is not.
    Called as ``field(t, z)`` or ``field(t, z, context)``: ``t`` a number or ``(batch,)`` (one time per row).

    Args:
        features: size of ``z`` (and of the output).
        hidden, depth: width and number of hidden layers.
        context_features: width of an optional conditioning input, appended to ``[z, t]``.
        zero_init: start the last layer at zero: the field is 0, a fresh ``ODEFlow`` the identity.

    Example:
        >>> import torch, flowbook
        >>> field = flowbook.nn.VectorField(2, hidden=16, zero_init=False)
        >>> field(0.5, torch.randn(5, 2)).shape, field(torch.rand(5), torch.randn(5, 2)).shape
        (torch.Size([5, 2]), torch.Size([5, 2]))
    """

    def __init__(self, features: int, hidden: int = 64, depth: int = 2, context_features: int = 0, zero_init=True):
        super().__init__()
        self.features = check_dim(features)
        self.context_features = check_count(context_features, "context_features")
        self.net = mlp(self.features + 1 + self.context_features, self.features, hidden, depth,
                       zero_init=zero_init, activation=nn.SiLU)

    def forward(self, t, z, context=None):
        check_features(z, self.features, "z")
        check_context(context, self.context_features, "VectorField")
        try:  # t: a number, or one time per row of z (and a context row per row of z)
            times = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0]).unsqueeze(1)
            h = torch.cat([z, times] if context is None else [z, times, context], 1)
        except RuntimeError:
            raise ValueError(f"VectorField takes t as a number or {len(z)} times (one per row of z) and {len(z)} context "
                             f"rows; got t {tuple(torch.as_tensor(t).shape)}, context {tuple(getattr(context, 'shape', ()))}") from None
        return self.net(h)

    def extra_repr(self):
        return f"features={self.features}, context_features={self.context_features}"


class LinearField(nn.Module):
    r"""The linear vector field :math:`v(t, z) = A z`: its flow is :math:`e^{tA}` with log-det :math:`t\,\mathrm{tr}A`.

    The one field whose ODE flow is known in closed form, so solvers and trace estimators can be
    checked against it. ``A`` is a learnable ``(features, features)`` matrix.

    Example:
        >>> import torch
        >>> field = LinearField(torch.eye(2))
        >>> field(0.0, torch.ones(1, 2)).tolist()
        [[1.0, 1.0]]
    """

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        matrix = torch.as_tensor(matrix)
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got shape {tuple(matrix.shape)}")
        self.features = matrix.shape[0]
        self.A = nn.Parameter(matrix.detach().clone())

    def forward(self, t, z):
        return z @ self.A.T
