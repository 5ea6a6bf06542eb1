r"""RealNVP's multiscale machinery on flat images: squeeze, and factor-out (``Partial``).

Images are flat vectors in (C, H, W) order. ``squeeze`` turns each 2 x 2 block of pixels into 4
channels, (C, H, W) -> (4C, H/2, W/2), so that channel couplings at the next scale mix pixels that
were neighbours. ``Partial`` runs a bijection on some of the features only: after a scale, the
others leave as latents and the deeper layers work on fewer numbers.
"""
from __future__ import annotations

import torch

from ..core import Bijection
from ..validation import check_dim
from .linear import Permutation

__all__ = ["squeeze", "unsqueeze", "Squeeze", "Partial"]


def _check_shape(shape):
    if len(shape) != 3:
        raise ValueError(f"shape must be (channels, height, width), got {tuple(shape)}")
    c, h, w = (check_dim(s, "shape entry") for s in shape)
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs even height and width, got {h}x{w}")
    return c, h, w


def squeeze(x: torch.Tensor, shape) -> torch.Tensor:
    """RealNVP's squeeze on flat images: (C, H, W) -> (4C, H/2, W/2), each 2x2 block to 4 channels.

    Example:
        >>> import torch, flowbook
        >>> flowbook.squeeze(torch.arange(16.).unsqueeze(0), (1, 4, 4)).reshape(4, 2, 2)[0]
        tensor([[ 0.,  2.],
                [ 8., 10.]])
    """
    c, h, w = _check_shape(shape)
    y = x.reshape(-1, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return y.reshape(x.shape[0], -1)


def unsqueeze(x: torch.Tensor, shape) -> torch.Tensor:
    """Undo ``squeeze``; ``shape`` is the *unsqueezed* (C, H, W)."""
    c, h, w = _check_shape(shape)
    y = x.reshape(-1, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(x.shape[0], -1)


class Squeeze(Permutation):
    """``squeeze`` as a bijection: ``inverse`` (data -> latent) squeezes, ``forward`` unsqueezes.

    It only moves pixels around, so it is a permutation (log-det 0). Put it between the
    checkerboard couplings of one scale and the channel couplings of the next.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.Squeeze((1, 4, 4))
        >>> z, ladj = layer.inverse(torch.arange(16.).unsqueeze(0))
        >>> z[0, :4].tolist(), ladj.item()
        ([0.0, 2.0, 8.0, 10.0], 0.0)
    """

    def __init__(self, shape):
        c, h, w = _check_shape(shape)
        super().__init__(unsqueeze(torch.arange(c * h * w).unsqueeze(0), (c, h, w))[0])
        self.shape = (c, h, w)


class Partial(Bijection):
    """Apply ``bijection`` to the features ``index`` of a vector of ``features``; leave the others unchanged.

    This is RealNVP's *factor-out*: after a scale, the features not in ``index`` go straight to
    the latent, and the later (deeper) layers only work on the ``index`` features, which halves
    their cost at every scale. log-det = the inner bijection's.

    Example:
        >>> import torch, flowbook
        >>> inner = flowbook.AffineCoupling(flowbook.half_mask(2), hidden=4)
        >>> layer = flowbook.Partial(inner, [1, 3], features=4)
        >>> layer(torch.randn(3, 4))[0].shape
        torch.Size([3, 4])
    """

    def __init__(self, bijection: Bijection, index, features: int):
        super().__init__()
        self.features = check_dim(features)
        index = torch.as_tensor(index, dtype=torch.long)
        if index.dim() != 1 or len(index.unique()) != len(index) or index.min() < 0 or index.max() >= self.features:
            raise ValueError(f"index must hold distinct feature indices in 0..{self.features - 1}")
        if bijection.features is not None and bijection.features != len(index):
            raise ValueError(f"bijection works on {bijection.features} features but index selects {len(index)}")
        self.bijection = bijection
        self.register_buffer("index", index)

    def _run(self, v, context, fn):
        out, ladj = fn(v[:, self.index], context)
        return v.index_copy(1, self.index, out), ladj

    def forward(self, z, context=None):
        self.check_input(z, "z")
        return self._run(z, context, self.bijection.forward)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        return self._run(x, context, self.bijection.inverse)
