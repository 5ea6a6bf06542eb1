r"""The multiscale machinery of RealNVP and Glow on ``(N, C, H, W)`` images: squeeze and factor-out.

``squeeze`` turns each 2 x 2 block of pixels into 4 channels, (C, H, W) -> (4C, H/2, W/2), so
that channel couplings at the next scale mix pixels that were neighbours. ``Partial`` runs a
bijection on some channels only (some features, for a vector): after a scale the others leave
as latents, and the deeper layers work on fewer numbers.
"""
from __future__ import annotations

import torch

from ..core import Bijection, check_event
from ..validation import check_dim

__all__ = ["squeeze", "unsqueeze", "Squeeze", "Partial"]


def _image_size(channels, height, width):
    c, h, w = check_dim(channels, "channels"), check_dim(height, "height"), check_dim(width, "width")
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs an even height and width, got {h}x{w}")
    return c, h, w


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """RealNVP's squeeze: ``(N, C, H, W)`` -> ``(N, 4C, H/2, W/2)``, each 2x2 block to 4 channels.

    Channel ``4c + 2i + j`` of the result holds pixel ``(i, j)`` of every 2x2 block of channel c.

    Example:
        >>> import torch, flowbook
        >>> flowbook.squeeze(torch.arange(16.).reshape(1, 1, 4, 4))[0, 0]
        tensor([[ 0.,  2.],
                [ 8., 10.]])
    """
    check_event(x, (None, None, None), "x")
    n, c, h, w = x.shape
    _image_size(c, h, w)
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Undo ``squeeze``: ``(N, 4C, H, W)`` -> ``(N, C, 2H, 2W)``."""
    check_event(x, (None, None, None), "x")
    n, c4, h, w = x.shape
    if c4 % 4:
        raise ValueError(f"unsqueeze needs a number of channels divisible by 4, got {c4}")
    return x.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c4 // 4, 2 * h, 2 * w)


class Squeeze(Bijection):
    """``squeeze`` as a bijection for ``(channels, height, width)`` images: ``inverse`` squeezes.

    ``inverse`` (data -> latent) takes ``(N, C, H, W)`` to ``(N, 4C, H/2, W/2)``; ``forward``
    unsqueezes. It only moves numbers around: log-det 0. Put it between the checkerboard
    couplings of one scale and the channel couplings of the next.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.Squeeze(1, 4, 4)
        >>> z, logabsdet = layer.inverse(torch.arange(16.).reshape(1, 1, 4, 4))
        >>> z.shape, z[0, :, 0, 0].tolist(), logabsdet.item()
        (torch.Size([1, 4, 2, 2]), [0.0, 1.0, 4.0, 5.0], 0.0)
    """

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        c, h, w = _image_size(channels, height, width)
        self.event_shape = (c, h, w)                  # the data side; the latent side is squeezed
        self.squeezed_shape = (4 * c, h // 2, w // 2)
        self.features = c * h * w

    def forward(self, z, context=None):
        check_event(z, self.squeezed_shape, "z")
        return unsqueeze(z), z.new_zeros(z.shape[0])

    def inverse(self, x, context=None):
        check_event(x, self.event_shape, "x")
        return squeeze(x), x.new_zeros(x.shape[0])

    def extra_repr(self):
        return "channels={}, height={}, width={}".format(*self.event_shape)


class Partial(Bijection):
    """Apply ``bijection`` to the channels ``index`` of an image (features of a vector); the rest pass.

    This is RealNVP's and Glow's *factor-out*: after a scale, the channels not in ``index`` go
    straight to the latent, and the later (deeper) layers only work on the ``index`` channels,
    which halves their cost at every scale. log-det = the inner bijection's.

    Args:
        bijection: the inner bijection, on ``(N, len(index), H, W)`` images (or ``(N, len(index))``).
        index: distinct indices along dim 1 (channels of an image, features of a vector).
        features: for vectors, the number of features.
        channels, height, width: for images (keyword arguments), the image's size.

    Example:
        >>> import torch, flowbook
        >>> inner = flowbook.AffineCoupling(flowbook.half_mask(2), hidden=4)
        >>> flowbook.Partial(inner, [1, 3], features=4)(torch.randn(3, 4))[0].shape
        torch.Size([3, 4])
        >>> step = flowbook.GlowStep(2, hidden=4)
        >>> flowbook.Partial(step, [0, 1], channels=4, height=2, width=2)(torch.randn(3, 4, 2, 2))[0].shape
        torch.Size([3, 4, 2, 2])
    """

    def __init__(self, bijection: Bijection, index, features: int | None = None, *, channels: int | None = None,
                 height: int | None = None, width: int | None = None):
        super().__init__()
        if not isinstance(bijection, Bijection):
            raise TypeError(f"bijection must be a flowbook.Bijection, got {type(bijection).__name__}")
        if (features is None) == (channels is None):
            raise ValueError("Partial needs features= (vectors) or channels=, height=, width= (images), not both")
        if features is not None:
            self.features = size = check_dim(features)
        else:
            self.event_shape = (check_dim(channels, "channels"), check_dim(height, "height"), check_dim(width, "width"))
            self.features, size = channels * height * width, channels
        try:
            index = torch.as_tensor(index)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"index must be a list or tensor of integers, got {type(index).__name__}") from None
        if index.numel() and (index.is_floating_point() or index.is_complex() or index.dtype == torch.bool):
            raise TypeError(f"index must hold integers (channel or feature numbers), got dtype {index.dtype}")
        if (index.dim() != 1 or len(index) == 0 or len(index.unique()) != len(index) or index.min() < 0
                or index.max() >= size):
            raise ValueError(f"index must hold one or more distinct indices in 0..{size - 1}, got {index.tolist()}")
        index = index.long()
        inner = len(index) * (1 if features is not None else height * width)
        if bijection.features is not None and bijection.features != inner:
            raise ValueError(f"bijection works on {bijection.features} features but index selects {inner}")
        self.bijection = bijection
        self.register_buffer("index", index)

    def _run(self, v, context, fn):
        out, logabsdet = fn(v[:, self.index], context)
        return v.index_copy(1, self.index, out), logabsdet

    def forward(self, z, context=None):
        self.check_input(z, "z")
        return self._run(z, context, self.bijection.forward)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        return self._run(x, context, self.bijection.inverse)
