r"""Layers for images (Glow, Kingma and Dhariwal 2018) on flat vectors in (C, H, W) order.

flowbook keeps an image as a flat vector, ``index = c*H*W + h*W + w`` (``torch.flatten`` of a
``(C, H, W)`` tensor). The layers here act on every pixel alike:

* ``InvertibleConv1x1``: the same invertible :math:`C\times C` matrix :math:`W` applied to the
  channel vector of every pixel, a 1x1 convolution. Its Jacobian is block diagonal with
  :math:`HW` copies of :math:`W` (after reordering), so
  :math:`\log|\det| = H\,W\,\log|\det W|`; with :math:`W = PLU` (``LULinear``) that is
  :math:`H W \sum_i \log|u_{ii}|`. A permutation of the channels is the special case
  :math:`W = P`: the 1x1 convolution is a *learned* permutation.
* ``ActNormChannels``: ActNorm with one scale and shift per channel, shared by all pixels,
  set from the first training batch; log-det :math:`HW\sum_c \ell_c`.
* ``ConvAffineCoupling``: RealNVP's affine coupling with a convolutional conditioner
  (``ConvConditioner``): the conditioning pixels are put back in their place in the image, zeros
  elsewhere, and a small CNN computes a shift and a log-scale at every pixel.
* ``GlowStep``: ActNorm, then the 1x1 convolution, then the coupling (data -> latent order).
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import Bijection, Compose
from ..validation import check_dim
from .coupling import AffineCoupling, channel_mask, checkerboard_mask
from .linear import LULinear

__all__ = ["to_pixels", "from_pixels", "InvertibleConv1x1", "ActNormChannels", "ConvConditioner",
           "ConvAffineCoupling", "GlowStep"]


def _shape(channels, height, width):
    return check_dim(channels, "channels"), check_dim(height, "height"), check_dim(width, "width")


def to_pixels(v: torch.Tensor, shape) -> torch.Tensor:
    """Flat ``(n, C*H*W)`` images to one row per pixel: ``(n*H*W, C)``, the channel vector of each pixel.

    Example:
        >>> import torch
        >>> to_pixels(torch.arange(8.).unsqueeze(0), (2, 2, 2))[:2]
        tensor([[0., 4.],
                [1., 5.]])
    """
    c, h, w = shape
    return v.reshape(-1, c, h * w).transpose(1, 2).reshape(-1, c)


def from_pixels(rows: torch.Tensor, shape) -> torch.Tensor:
    """Undo ``to_pixels``: ``(n*H*W, C)`` rows back to flat ``(n, C*H*W)`` images."""
    c, h, w = shape
    return rows.reshape(-1, h * w, c).transpose(1, 2).reshape(-1, c * h * w)


class InvertibleConv1x1(Bijection):
    r"""Glow's invertible 1x1 convolution: :math:`x_{:, h, w} = W z_{:, h, w}` at every pixel, :math:`W = PLU`.

    ``W`` is an ``LULinear(channels, bias=False)`` (a fixed permutation P, unit lower triangular L,
    upper triangular U with diagonal :math:`\pm e^{\ell_i}`), applied to the ``(H*W, C)`` rows of
    pixels. log-det :math:`HW \sum_i \ell_i`, the same for every input. Starts as a random rotation.

    Args:
        channels, height, width: the image shape (C, H, W); the layer has ``C*H*W`` features.
        matrix: optional ``(C, C)`` starting matrix (default: a random rotation, as in Glow).

    Example:
        >>> import torch, flowbook
        >>> conv = flowbook.InvertibleConv1x1(3, 2, 2, matrix=torch.diag(torch.tensor([1., 2., 3.])))
        >>> x, ladj = conv(torch.ones(1, 12))
        >>> x.reshape(3, 2, 2)[:, 0, 0].tolist(), round(ladj.item(), 4) == round(4 * torch.log(torch.tensor(6.)).item(), 4)
        ([1.0, 2.0, 3.0], True)
    """

    def __init__(self, channels: int, height: int, width: int, matrix: torch.Tensor | None = None):
        super().__init__()
        self.shape = _shape(channels, height, width)
        self.features = channels * height * width
        self.linear = LULinear(channels, matrix, bias=False)

    def weight(self) -> torch.Tensor:
        """The dense ``(C, C)`` matrix W (for display and tests)."""
        return self.linear.matrix()

    def log_abs_det(self) -> torch.Tensor:
        r""":math:`H W \log|\det W|`, from W's LU diagonal."""
        c, h, w = self.shape
        return h * w * self.linear.log_abs_det()

    def forward(self, z, context=None):
        self.check_input(z, "z")
        x, _ = self.linear(to_pixels(z, self.shape))        # W times the channel vector of every pixel
        return from_pixels(x, self.shape), self.log_abs_det().expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        z, _ = self.linear.inverse(to_pixels(x, self.shape))  # two triangular solves per pixel row
        return from_pixels(z, self.shape), (-self.log_abs_det()).expand(x.shape[0])

    def extra_repr(self):
        return "shape=({}, {}, {})".format(*self.shape)


class ActNormChannels(Bijection):
    r"""Per-channel ActNorm: :math:`x_{c,h,w} = z_{c,h,w}\, e^{\ell_c} + b_c`, initialized from data.

    As ``ActNorm``, but one scale and shift per *channel*, shared by all pixels (Glow's layer).
    The first call of ``inverse`` in training mode sets :math:`b_c` and :math:`\ell_c` to the mean
    and log standard deviation of channel c over the batch and the pixels, so that batch leaves
    with zero mean and unit variance per channel; the buffer ``initialized`` (saved in
    ``state_dict()``) records it. log-det :math:`HW \sum_c \ell_c`.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.ActNormChannels(2, 3, 3)
        >>> x = torch.randn(100, 18) * 4 + 1
        >>> z, _ = layer.inverse(x)          # training mode: initializes from this batch
        >>> z.reshape(100, 2, 9).mean((0, 2)).abs().max().item() < 1e-5, bool(layer.initialized)
        (True, True)
    """

    def __init__(self, channels: int, height: int, width: int, eps: float = 1e-6):
        super().__init__()
        self.shape = _shape(channels, height, width)
        self.features = channels * height * width
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set shift and log-scale from a data batch ``x`` (statistics over rows and pixels)."""
        c = self.shape[0]
        values = x.reshape(x.shape[0], c, -1).transpose(0, 1).reshape(c, -1)
        if values.shape[1] < 2:
            raise ValueError("ActNormChannels needs at least 2 values per channel to initialize")
        self.shift.copy_(values.mean(1))
        self.log_scale.copy_((values.std(1) + self.eps).log())
        self.initialized.fill_(True)

    def forward(self, z, context=None):
        self.check_input(z, "z")
        c, h, w = self.shape
        x = z.reshape(-1, c, h * w) * self.log_scale.exp().unsqueeze(1) + self.shift.unsqueeze(1)
        return x.reshape(z.shape), (h * w * self.log_scale.sum()).expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        if self.training and not self.initialized:
            self.initialize(x.detach())
        c, h, w = self.shape
        z = (x.reshape(-1, c, h * w) - self.shift.unsqueeze(1)) * torch.exp(-self.log_scale).unsqueeze(1)
        return z.reshape(x.shape), (-h * w * self.log_scale.sum()).expand(x.shape[0])

    def extra_repr(self):
        return "shape=({}, {}, {})".format(*self.shape)


class ConvConditioner(nn.Module):
    r"""A coupling conditioner that sees the conditioning features as an image.

    It takes what ``Coupling`` gives a conditioner, ``(batch, #A [+ context_features])``, and
    returns ``(batch, outputs * #B)`` (all shifts, then all raw log-scales, as ``AffineCoupling``
    expects), computed by a CNN ``body`` on an image:

    * a *channel* mask (every channel entirely A or entirely B, Glow's split): the body reads the
      :math:`C_A` conditioning channels and writes ``outputs`` maps for each of the :math:`C_B`
      others;
    * any other mask (checkerboard): the A features are put back at their pixels of the
      ``(C, H, W)`` image (zeros at the B pixels), the mask is added as C more channels (so a
      masked zero differs from a dark pixel), and the body writes ``outputs`` maps for all C
      channels, read at the B features.

    A context adds ``context_features`` constant channels to the body's input. ``in_channels``
    and ``out_channels`` say what the body takes and returns.

    Args:
        mask: flat ``(C*H*W,)`` booleans, ``True`` on the conditioning features (A).
        shape: ``(C, H, W)``.
        outputs: numbers per transformed feature (2 for an affine coupling).
        body: a network from ``(batch, in_channels, H, W)`` to ``(batch, out_channels, H, W)``;
            default Glow's: 3x3 conv, ReLU, 1x1 conv, ReLU, 3x3 conv with ``hidden`` channels, the
            last one zero (so the fresh coupling is the identity).
        hidden: channels of the default body.
        context_features: width of the context (0: none).

    Example:
        >>> import torch, flowbook
        >>> net = flowbook.ConvConditioner(flowbook.checkerboard_mask(1, 4, 4), (1, 4, 4), hidden=8)
        >>> net.in_channels, net.out_channels, net(torch.randn(3, 8)).shape   # 8 pixels in, 2 numbers per other pixel
        (2, 2, torch.Size([3, 16]))
        >>> flowbook.ConvConditioner(flowbook.channel_mask(4, 2, 2), (4, 2, 2)).in_channels
        2
    """

    def __init__(self, mask, shape, outputs: int = 2, body: nn.Module | None = None, hidden: int = 32,
                 context_features: int = 0):
        super().__init__()
        c, h, w = _shape(*shape)
        self.shape, self.outputs, self.context_features = (c, h, w), outputs, int(context_features)
        mask = torch.as_tensor(mask, dtype=torch.bool).clone()
        if mask.shape != (c * h * w,):
            raise ValueError(f"mask must have shape ({c * h * w},) for images of shape {(c, h, w)}, "
                             f"got {tuple(mask.shape)}")
        self.register_buffer("mask", mask)
        self.register_buffer("idx_a", mask.nonzero().squeeze(1))
        self.register_buffer("idx_b", (~mask).nonzero().squeeze(1))
        by_channel = mask.reshape(c, -1)
        self.channelwise = bool((by_channel.all(1) | ~by_channel.any(1)).all())
        if self.channelwise:
            a_channels = int(by_channel.all(1).sum())
            self.in_channels, self.out_channels = a_channels, outputs * (c - a_channels)
        else:
            self.in_channels, self.out_channels = 2 * c, outputs * c
        self.in_channels += self.context_features
        if body is None:
            hidden = check_dim(hidden, "hidden")
            body = nn.Sequential(nn.Conv2d(self.in_channels, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, self.out_channels, 3, padding=1))
            nn.init.zeros_(body[-1].weight)
            nn.init.zeros_(body[-1].bias)
        elif not isinstance(body, nn.Module):
            raise TypeError(f"body must be a torch.nn.Module, got {type(body).__name__}")
        self.body = body

    def forward(self, h):
        c, height, width = self.shape
        n, n_a = h.shape[0], len(self.idx_a)
        if self.channelwise:   # the A channels, as they are
            planes = [h[:, :n_a].reshape(n, -1, height, width)]
        else:                  # the whole image, zeros at B, and the mask
            image = h.new_zeros(n, c * height * width).index_copy(1, self.idx_a, h[:, :n_a])
            planes = [image.reshape(n, c, height, width),
                      self.mask.to(h.dtype).reshape(1, c, height, width).expand(n, -1, -1, -1)]
        if self.context_features:
            planes.append(h[:, n_a:, None, None].expand(-1, -1, height, width))
        out = self.body(torch.cat(planes, 1))
        if out.shape != (n, self.out_channels, height, width):
            raise ValueError(f"ConvConditioner's body returned {tuple(out.shape)}, expected "
                             f"{(n, self.out_channels, height, width)}")
        out = out.reshape(n, self.outputs, -1)
        return (out if self.channelwise else out[:, :, self.idx_b]).reshape(n, -1)


class ConvAffineCoupling(AffineCoupling):
    r"""Affine coupling on flat (C, H, W) images with a convolutional conditioner.

    The law is ``AffineCoupling``'s, :math:`x_B = z_B \odot e^{s(z_A)} + t(z_A)`, log-det
    :math:`\sum_{i\in B} s_i`; the conditioner is a ``ConvConditioner``, so ``s`` and ``t`` at a
    pixel depend on the conditioning pixels around it.

    Args:
        mask: flat ``(C*H*W,)`` booleans, e.g. ``checkerboard_mask(C, H, W)`` or ``channel_mask(C, H, W)``.
        shape: ``(C, H, W)``.
        net: optional image network, ``ConvConditioner``'s ``body``: for a channel mask from
            ``(batch, C_A + context_features, H, W)`` to ``(batch, 2 C_B, H, W)``, otherwise from
            ``(batch, 2C + context_features, H, W)`` to ``(batch, 2C, H, W)`` (shift maps first,
            then raw log-scale maps); ``layer.net.in_channels`` and ``out_channels`` say which.
        hidden: channels of the default network.
        context_features, clamp: as ``AffineCoupling``.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.ConvAffineCoupling(flowbook.checkerboard_mask(1, 4, 4), (1, 4, 4), hidden=8)
        >>> z = torch.randn(3, 16)
        >>> report = flowbook.check_bijection(layer, z)      # fresh: identity, checked perturbed
        >>> report.perturbed, report.roundtrip_error < 1e-10
        (True, True)
    """

    def __init__(self, mask, shape, net: nn.Module | None = None, hidden: int = 32, context_features: int = 0,
                 clamp: float | None = 3.0):
        conditioner = ConvConditioner(mask, shape, 2, net, hidden, context_features)
        super().__init__(mask, net=conditioner, context_features=context_features, clamp=clamp)
        self.shape = conditioner.shape


class GlowStep(Compose):
    r"""One step of Glow on flat (C, H, W) images: ActNorm, 1x1 convolution, affine coupling.

    That is the data -> latent order (``inverse``); ``forward`` (generative) runs the coupling,
    then the convolution, then the ActNorm. log-det: the sum of the three.

    Args:
        channels, height, width: the image shape.
        hidden: channels of the coupling's convolutional conditioner.
        mask: the coupling's mask (default: ``channel_mask`` for C >= 2, the 1x1 convolution
            mixing the channels between steps; ``checkerboard_mask`` for C = 1).
        net: optional image network for the coupling (see ``ConvAffineCoupling``).
        context_features, clamp: passed to the coupling.

    Example:
        >>> import torch, flowbook
        >>> step = flowbook.GlowStep(4, 2, 2, hidden=8)
        >>> [type(layer).__name__ for layer in step.layers]      # generative order
        ['ConvAffineCoupling', 'InvertibleConv1x1', 'ActNormChannels']
        >>> step(torch.randn(3, 16))[0].shape
        torch.Size([3, 16])
    """

    def __init__(self, channels: int, height: int, width: int, hidden: int = 32, mask=None,
                 net: nn.Module | None = None, context_features: int = 0, clamp: float | None = 3.0):
        c, h, w = _shape(channels, height, width)
        if mask is None:
            mask = channel_mask(c, h, w) if c >= 2 else checkerboard_mask(c, h, w)
        super().__init__(ConvAffineCoupling(mask, (c, h, w), net, hidden, context_features, clamp),
                         InvertibleConv1x1(c, h, w), ActNormChannels(c, h, w))
        self.shape = (c, h, w)

    @property
    def coupling(self) -> ConvAffineCoupling:
        return self.layers[0]

    @property
    def conv(self) -> InvertibleConv1x1:
        return self.layers[1]

    @property
    def actnorm(self) -> ActNormChannels:
        return self.layers[2]
