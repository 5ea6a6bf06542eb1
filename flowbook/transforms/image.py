r"""Glow's layers (Kingma and Dhariwal 2018), on ``(N, C, H, W)`` images.

Each layer acts on every pixel alike:

* ``InvertibleConv1x1``: the same invertible :math:`C\times C` matrix :math:`W` applied to the
  channel vector of every pixel, :math:`x_{:,h,w} = W z_{:,h,w}`, a 1x1 convolution. Its
  Jacobian is block diagonal with :math:`HW` copies of :math:`W` (after reordering), so
  :math:`\log|\det| = H\,W\,\log|\det W|`; with :math:`W = PLU` (``LULinear``) that is
  :math:`H W \sum_i \log|u_{ii}|`. A permutation of the channels is the special case
  :math:`W = P`: the 1x1 convolution is a *learned* permutation.
* ``ActNorm(C, dims=(0, 2, 3))`` (in ``normalization``): one scale and shift per channel.
* ``ConvAffineCoupling``: RealNVP's affine coupling written with a mask :math:`b` on the image,
  :math:`x = z \odot e^{s(b \odot z)} + t(b \odot z)` with :math:`s, t` zero where :math:`b = 1`,
  computed at every pixel by a small CNN that sees the conditioning pixels around it.
* ``GlowStep``: ActNorm, then the 1x1 convolution, then the coupling (data -> latent order).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import Bijection, Compose
from ..validation import check_clamp, check_context, check_count, check_dim
from .elementwise import soft_clamp
from .linear import LULinear
from .normalization import ActNorm

__all__ = ["InvertibleConv1x1", "ConvAffineCoupling", "GlowStep"]


class InvertibleConv1x1(Bijection):
    r"""Glow's invertible 1x1 convolution: :math:`x_{:, h, w} = W z_{:, h, w}` at every pixel, :math:`W = PLU`.

    ``W`` is an ``LULinear(channels, bias=False)`` (a fixed permutation P, unit lower triangular L,
    upper triangular U with diagonal :math:`\pm e^{\ell_i}`). Images of any height and width;
    log-det :math:`HW \sum_i \ell_i`, the same for every input. Starts as a random rotation.

    Args:
        channels: C.
        matrix: optional ``(C, C)`` starting matrix (default: a random rotation, as in Glow).

    Example:
        >>> import torch, flowbook
        >>> conv = flowbook.InvertibleConv1x1(3, matrix=torch.diag(torch.tensor([1., 2., 3.])))
        >>> x, logabsdet = conv(torch.ones(1, 3, 2, 2))
        >>> x[0, :, 0, 0].tolist(), torch.allclose(logabsdet, 4 * torch.tensor(6.).log())
        ([1.0, 2.0, 3.0], True)
    """

    def __init__(self, channels: int, matrix: torch.Tensor | None = None):
        super().__init__()
        self.event_shape = (check_dim(channels, "channels"), None, None)
        self.linear = LULinear(channels, matrix, bias=False)

    def weight(self) -> torch.Tensor:
        """The dense ``(C, C)`` matrix W."""
        return self.linear.matrix()

    def logabsdet(self, height: int, width: int) -> torch.Tensor:
        r""":math:`H W \log|\det W|` for ``height`` x ``width`` images, from W's LU diagonal."""
        return height * width * self.linear.logabsdet()

    def forward(self, z, context=None):
        self.check_input(z, "z")
        x = torch.einsum("ij,njhw->nihw", self.weight(), z)  # W z at each pixel
        return x, self.logabsdet(*z.shape[2:]).expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        z = torch.linalg.solve(self.weight(), x.flatten(2)).view_as(x)   # W^-1 at every pixel
        return z, (-self.logabsdet(*x.shape[2:])).expand(x.shape[0])

    def extra_repr(self):
        return f"channels={self.event_shape[0]}"


def _check_mask(mask) -> torch.Tensor:
    """A coupling's mask as a ``(C, H, W)`` boolean tensor with both values, or a ``TypeError``/``ValueError``."""
    if not isinstance(mask, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"mask must be a (C, H, W) boolean tensor, got {type(mask).__name__}")
    try:
        values = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"mask must be a (C, H, W) boolean tensor, got {type(mask).__name__} {mask!r:.60}") from None
    if values.dtype != torch.bool and not ((values == 0) | (values == 1)).all():
        raise ValueError("mask must hold booleans (or 0s and 1s: True on the conditioning part), got other values")
    mask = values.bool()
    if mask.dim() != 3 or mask.all() or not mask.any():
        raise ValueError("mask must be a (C, H, W) (or (C, 1, 1)) boolean tensor with at least one True and "
                         f"one False entry, got shape {tuple(mask.shape)}"
                         + (" with every entry " + str(bool(mask.all())) if mask.dim() == 3 else ""))
    return mask


class ConvAffineCoupling(Bijection):
    r"""RealNVP's affine coupling on images, with a mask and a convolutional network.

    With the boolean ``mask`` :math:`b` (``True`` on the conditioning part A),

    .. math:: x = z \odot e^{s} + t, \qquad (t, s) = \mathrm{net}(b \odot z) \text{ set to 0 where } b = 1,

    so :math:`x_A = z_A` and :math:`x_B = z_B \odot e^{s(z_A)} + t(z_A)` (Dinh et al.'s
    :math:`y = b\odot x + (1-b)\odot(x \odot e^{s(b \odot x)} + t(b\odot x))`); log-det
    :math:`\sum_{B} s`. The inverse uses :math:`b \odot x = b \odot z`:
    :math:`z = (x - t) \odot e^{-s}`. The log-scale is soft-clamped (``clamp``, see ``AffineCoupling``).

    Args:
        mask: ``(C, H, W)`` booleans (e.g. a checkerboard,
            ``checkerboard_mask(C, H, W).reshape(C, H, W)``), or ``(C, 1, 1)`` for a channel mask
            on images of any size.
        net: the network (``layer.net`` is this object): ``(N, C + context_features, H, W)``, the
            masked image and the context as constant planes, to ``(N, 2C, H, W)``, the shift maps
            then the raw log-scale maps. Default Glow's: 3x3 conv, ReLU, 1x1 conv, ReLU, 3x3 conv
            with ``hidden`` channels, the last one zero (the fresh coupling is the identity).
        hidden: channels of the default network.
        context_features: width of the context (0: none).
        clamp: bound of the log-scale (``None``: plain exp).

    Example:
        >>> import torch, flowbook
        >>> mask = flowbook.checkerboard_mask(1, 4, 4).reshape(1, 4, 4)
        >>> layer = flowbook.ConvAffineCoupling(mask, hidden=8)
        >>> report = flowbook.check_bijection(layer, torch.randn(3, 1, 4, 4))   # fresh: checked perturbed
        >>> report.perturbed, report.roundtrip_error < 1e-10
        (True, True)
    """

    def __init__(self, mask, net: nn.Module | None = None, hidden: int = 32, context_features: int = 0,
                 clamp: float | None = 3.0):
        super().__init__()
        mask = _check_mask(mask)
        check_clamp(clamp)
        c, h, w = mask.shape
        self.event_shape = (c, None, None) if (h, w) == (1, 1) else (c, h, w)
        self.context_features, self.clamp = check_count(context_features, "context_features"), clamp
        self.register_buffer("mask", mask)
        if net is None:
            hidden = check_dim(hidden, "hidden")
            net = nn.Sequential(nn.Conv2d(c + self.context_features, hidden, 3, padding=1), nn.ReLU(),
                                nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 2 * c, 3, padding=1))
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)
        elif not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.net = net

    def shift_and_log_scale(self, z_a, context=None):
        """The network's maps ``(t, s)`` for the masked image ``z_a``, ``s`` soft-clamped, both 0 on A."""
        check_context(context, self.context_features, "ConvAffineCoupling")
        if context is not None and len(context) != len(z_a):
            raise ValueError(f"context has {len(context)} rows, expected {len(z_a)}: one per image of the batch")
        h = z_a if context is None else torch.cat([z_a, context[:, :, None, None].expand(-1, -1, *z_a.shape[2:])], 1)
        out = self.net(h)
        n, c = z_a.shape[:2]
        if getattr(out, "shape", None) != (n, 2 * c, *z_a.shape[2:]):
            raise ValueError(f"ConvAffineCoupling's net returned {tuple(getattr(out, 'shape', ()))}, expected "
                             f"{(n, 2 * c, *z_a.shape[2:])}: shift and log-scale maps for the C = {c} channels "
                             f"of a ({n}, {h.shape[1]}, {z_a.shape[2]}, {z_a.shape[3]}) input")
        shift, raw = out.chunk(2, dim=1)
        return torch.where(self.mask, 0.0, shift), torch.where(self.mask, 0.0, soft_clamp(raw, self.clamp))

    def forward(self, z, context=None):
        self.check_input(z, "z")
        shift, log_scale = self.shift_and_log_scale(z * self.mask, context)
        return z * torch.exp(log_scale) + shift, log_scale.sum((1, 2, 3))

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        shift, log_scale = self.shift_and_log_scale(x * self.mask, context)  # x_A = z_A
        return (x - shift) * torch.exp(-log_scale), -log_scale.sum((1, 2, 3))

    def extra_repr(self):
        return f"channels={self.event_shape[0]}, conditioned_on={int(self.mask.sum())} of {self.mask.numel()}"


class GlowStep(Compose):
    r"""One step of Glow on ``(N, C, H, W)`` images: ActNorm, 1x1 convolution, affine coupling.

    That is the data -> latent order (``inverse``); ``forward`` (generative) runs the coupling,
    then the convolution, then the ActNorm. log-det: the sum of the three. Images of any size.

    Args:
        channels: C.
        hidden: channels of the coupling's network.
        mask: the coupling's mask (default: a channel mask, ``True`` on the first C // 2 channels,
            shape (C, 1, 1); the 1x1 convolution mixes the channels between steps). C = 1 needs
            one, e.g. ``checkerboard_mask(1, H, W).reshape(1, H, W)``.
        net: optional network for the coupling (see ``ConvAffineCoupling``).
        context_features, clamp: passed to the coupling.

    Example:
        >>> import torch, flowbook
        >>> step = flowbook.GlowStep(4, hidden=8)
        >>> [type(layer).__name__ for layer in step.layers]      # generative order
        ['ConvAffineCoupling', 'InvertibleConv1x1', 'ActNorm']
        >>> step(torch.randn(3, 4, 2, 2))[0].shape
        torch.Size([3, 4, 2, 2])
    """

    def __init__(self, channels: int, hidden: int = 32, mask=None, net: nn.Module | None = None,
                 context_features: int = 0, clamp: float | None = 3.0):
        c = check_dim(channels, "channels")
        if mask is None:
            if c < 2:
                raise ValueError("GlowStep with 1 channel needs a mask= (a channel mask needs channels >= 2), "
                                 "e.g. checkerboard_mask(1, H, W).reshape(1, H, W)")
            mask = (torch.arange(c) < c // 2).reshape(c, 1, 1)
        mask = _check_mask(mask)
        if mask.shape[0] != c:
            raise ValueError(f"mask has {mask.shape[0]} channels (shape {tuple(mask.shape)}), expected channels={c}")
        super().__init__(ConvAffineCoupling(mask, net, hidden, context_features, clamp),
                         InvertibleConv1x1(c), ActNorm(c, dims=(0, 2, 3)))

    @property
    def coupling(self) -> ConvAffineCoupling:
        return self.layers[0]

    @property
    def conv(self) -> InvertibleConv1x1:
        return self.layers[1]

    @property
    def actnorm(self) -> ActNorm:
        return self.layers[2]
