r"""Coupling layers (NICE, RealNVP) and their masks.

A coupling layer splits the features with a boolean ``mask``: the masked part :math:`z_A`
passes through unchanged and is the *only* input of the conditioner network; the other part
:math:`z_B` is transformed elementwise with parameters computed from :math:`z_A`
(generative direction, lecture 001 writes :math:`x_{1:d} = z_{1:d}`):

* additive (NICE): :math:`x_B = z_B + m(z_A)`, Jacobian unit triangular, log-det exactly 0;
* affine (RealNVP): :math:`x_B = z_B \odot e^{s(z_A)} + t(z_A)`, log-det :math:`\sum_i s_i(z_A)`.

Both are inverted in one pass, because :math:`x_A = z_A` gives the conditioner's input back.
One layer leaves :math:`z_A` alone, so stacks alternate the mask.

A user's own conditioner can be passed as ``net=``: any module mapping
``(batch, #True [+ context_features])`` to ``(batch, outputs_per_feature * #False)``. Images are flattened in
(C, H, W) order (``index = c*H*W + h*W + w``), like ``torch.flatten``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import Bijection
from ..nn import mlp
from ..validation import check_clamp, check_context, check_count, check_dim
from .elementwise import soft_clamp

__all__ = ["Coupling", "AdditiveCoupling", "AffineCoupling", "half_mask", "alternating_mask",
           "checkerboard_mask", "channel_mask"]


# ----------------------------------------------------------------------------- masks
def half_mask(features: int, first: bool = True) -> torch.Tensor:
    """``True`` on the first ``features // 2`` features (or on the rest when ``first=False``)."""
    features = check_dim(features)
    m = torch.arange(features) < features // 2
    return m if first else ~m


def alternating_mask(features: int, even: bool = True) -> torch.Tensor:
    """``True`` on the even features (or the odd ones when ``even=False``): 1,0,1,0,..."""
    m = torch.arange(check_dim(features)) % 2 == 0
    return m if even else ~m


def checkerboard_mask(channels: int, height: int, width: int, even: bool = True) -> torch.Tensor:
    """Flat (C*H*W,) mask, ``True`` where ``(h + w)`` is even (odd with ``even=False``), every channel."""
    height, width = check_dim(height, "height"), check_dim(width, "width")
    if height * width < 2:
        raise ValueError(f"checkerboard_mask needs at least 2 pixels (height * width >= 2), got {height} x {width}")
    h, w = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    m = ((h + w) % 2 == 0).expand(check_dim(channels, "channels"), -1, -1).reshape(-1)
    return m if even else ~m


def channel_mask(channels: int, height: int, width: int, first: bool = True) -> torch.Tensor:
    """Flat (C*H*W,) mask, ``True`` on the first ``C // 2`` channels (the rest with ``first=False``)."""
    c = check_dim(channels, "channels")
    if c < 2:
        raise ValueError(f"channel_mask needs at least 2 channels, got {c}")
    m = (torch.arange(c) < c // 2).repeat_interleave(check_dim(height, "height") * check_dim(width, "width"))
    return m if first else ~m


# ----------------------------------------------------------------------------- couplings
class Coupling(Bijection):
    r"""What every coupling layer shares: the split by ``mask``, the conditioner, the merge.

    Subclasses write ``forward`` and ``inverse`` with these three steps and their own law.

    Args:
        mask: ``(D,)`` booleans; ``True`` features (part A) pass through and condition the rest (B).
        outputs_per_feature: conditioner outputs per transformed feature (1 for additive, 2 for affine).
        net: the conditioner, mapping ``(batch, #A [+ context_features])`` to
            ``(batch, outputs_per_feature * #B)``; by default ``mlp(#A + context_features,
            outputs_per_feature * #B, hidden, depth, dropout=dropout)`` with a zero last layer, so
            the fresh layer is the identity.
        hidden, depth, dropout: the default conditioner's width, number of hidden layers, dropout.
        context_features: width of a context vector concatenated to the conditioner's input.
    """

    def __init__(self, mask, outputs_per_feature: int = 1, net: nn.Module | None = None, hidden: int = 64,
                 depth: int = 2, context_features: int = 0, dropout: float = 0.0):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.dim() != 1 or mask.all() or not mask.any():
            raise ValueError("mask must be a 1-D boolean tensor with at least one True and one False "
                             f"entry, got {mask.int().tolist() if mask.dim() == 1 else tuple(mask.shape)}")
        self.features = mask.numel()
        self.context_features = check_count(context_features, "context_features")
        self.outputs_per_feature = check_dim(outputs_per_feature, "outputs_per_feature")
        self.net_outputs = self.outputs_per_feature * int((~mask).sum())  # what the conditioner returns per row
        self.register_buffer("mask", mask)
        self.register_buffer("idx_a", mask.nonzero().squeeze(1))
        self.register_buffer("idx_b", (~mask).nonzero().squeeze(1))
        if net is None:
            net = mlp(len(self.idx_a) + self.context_features, self.net_outputs, hidden, depth, dropout=dropout)
        elif not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.net = net

    def split(self, v):
        """``(v_A, v_B)``: the features that condition and the features that are transformed."""
        return v[:, self.idx_a], v[:, self.idx_b]

    def merge(self, v, new_b):
        """``v`` with its B features replaced by ``new_b`` (the A features pass through)."""
        return v.index_copy(1, self.idx_b, new_b)

    def run_net(self, a, context=None):
        """The network's output for the conditioning half ``a`` (and the context, if any).

        Checks (Python-only) that a context comes exactly when the layer was built with
        ``context_features`` (``check_context``), and that the net returns
        ``(batch, outputs_per_feature * #B)``: a net with too few outputs would otherwise be
        broadcast silently into a wrong transform and log-det.
        """
        check_context(context, self.context_features, type(self).__name__)
        h = a if context is None else torch.cat([a, context], 1)
        out = self.net(h)
        shape = getattr(out, "shape", ())
        if len(shape) != 2 or shape[1] != self.net_outputs or shape[0] != a.shape[0]:
            raise ValueError(f"{type(self).__name__}'s net returned {tuple(shape)}, expected "
                             f"{(a.shape[0], self.net_outputs)}: {self.outputs_per_feature} output(s) for each of the "
                             f"{len(self.idx_b)} transformed features, for a (batch, {h.shape[1]}) input")
        return out

    def extra_repr(self):
        return f"features={self.features}, conditioned_on={len(self.idx_a)}"


class AdditiveCoupling(Coupling):
    r"""NICE's additive coupling: :math:`x_A = z_A,\ x_B = z_B + m(z_A)`; log-det exactly 0.

    Args: see ``Coupling`` (the conditioner outputs one shift per B feature).

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.AdditiveCoupling(flowbook.half_mask(4), hidden=8)
        >>> x, logabsdet = layer(torch.randn(3, 4))
        >>> logabsdet.tolist()
        [0.0, 0.0, 0.0]
    """

    def __init__(self, mask, net: nn.Module | None = None, hidden: int = 64, depth: int = 2,
                 context_features: int = 0, dropout: float = 0.0):
        super().__init__(mask, 1, net, hidden, depth, context_features, dropout)

    def forward(self, z, context=None):
        self.check_input(z, "z")
        z_a, z_b = self.split(z)
        x_b = z_b + self.run_net(z_a, context)
        return self.merge(z, x_b), z.new_zeros(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        x_a, x_b = self.split(x)
        z_b = x_b - self.run_net(x_a, context)
        return self.merge(x, z_b), x.new_zeros(x.shape[0])


class AffineCoupling(Coupling):
    r"""RealNVP's affine coupling: :math:`x_B = z_B \odot e^{s(z_A)} + t(z_A)`, log-det :math:`\sum_i s_i`.

    The conditioner outputs the shift :math:`t` and a raw log-scale :math:`\tilde s`, bounded by
    ``soft_clamp``: :math:`s = c \tanh(\tilde s / c)` with ``clamp`` :math:`c = 3` by default, so
    one layer scales by at most :math:`e^3 \approx 20`. Why a bound: with a plain ``exp`` one
    large conditioner output can overflow, and the likelihood rewards shrinking directions around
    training points, which overfits small data sets. ``clamp=None`` gives the plain :math:`e^{s}`.

    Args: see ``Coupling`` (the conditioner outputs ``2 * #B`` numbers: shifts, then raw
    log-scales), plus ``clamp``.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.AffineCoupling(flowbook.alternating_mask(4), hidden=8)
        >>> report = flowbook.check_bijection(flowbook.randomize_parameters(layer), torch.randn(5, 4))
        >>> report.roundtrip_error < 1e-12
        True
    """

    def __init__(self, mask, net: nn.Module | None = None, hidden: int = 64, depth: int = 2,
                 context_features: int = 0, clamp: float | None = 3.0, dropout: float = 0.0):
        super().__init__(mask, 2, net, hidden, depth, context_features, dropout)
        check_clamp(clamp)
        self.clamp = clamp

    def shift_and_log_scale(self, a, context=None):
        """The conditioner's ``(shift, log_scale)`` for the conditioning half ``a``, the log-scale soft-clamped."""
        shift, raw = self.run_net(a, context).chunk(2, dim=1)
        return shift, soft_clamp(raw, self.clamp)

    def forward(self, z, context=None):
        self.check_input(z, "z")
        z_a, z_b = self.split(z)
        shift, log_scale = self.shift_and_log_scale(z_a, context)
        x_b = z_b * torch.exp(log_scale) + shift
        return self.merge(z, x_b), log_scale.sum(1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        x_a, x_b = self.split(x)
        shift, log_scale = self.shift_and_log_scale(x_a, context)
        z_b = (x_b - shift) * torch.exp(-log_scale)
        return self.merge(x, z_b), -log_scale.sum(1)
