r"""Coupling layers (NICE, RealNVP), their masks, NICE's rescaling, and RealNVP's squeeze.

A coupling layer splits the features with a boolean ``mask``: the masked part :math:`z_A`
passes through unchanged and is the *only* input of the conditioner network; the other part
:math:`z_B` is transformed elementwise with parameters computed from :math:`z_A`
(generative direction, lecture 001 writes :math:`x_{1:d} = z_{1:d}`):

* additive (NICE): :math:`x_B = z_B + m(z_A)`, Jacobian unit triangular, log-det exactly 0;
* affine (RealNVP): :math:`x_B = z_B \odot e^{s(z_A)} + t(z_A)`, log-det :math:`\sum_i s_i(z_A)`.

Both are inverted in one pass, because :math:`x_A = z_A` gives the conditioner's input back.
One layer leaves :math:`z_A` alone, so stacks alternate the mask.

Images are flattened in (C, H, W) order (``index = c*H*W + h*W + w``), like ``torch.flatten``.
"""
from __future__ import annotations

import torch
from torch import nn

from .core import Bijection
from .linear import Permutation
from .nets import FlatParameters, mlp, run_packed
from .utils import check_dim

__all__ = ["AdditiveCoupling", "AffineCoupling", "Scaling", "Squeeze", "Partial", "half_mask", "alternating_mask",
           "checkerboard_mask", "channel_mask", "squeeze", "unsqueeze"]


# ----------------------------------------------------------------------------- masks
def half_mask(dim: int, first: bool = True) -> torch.Tensor:
    """``True`` on the first ``dim // 2`` features (or on the rest when ``first=False``)."""
    dim = check_dim(dim)
    m = torch.arange(dim) < dim // 2
    return m if first else ~m


def alternating_mask(dim: int, even: bool = True) -> torch.Tensor:
    """``True`` on the even features (or the odd ones when ``even=False``): 1,0,1,0,..."""
    m = torch.arange(check_dim(dim)) % 2 == 0
    return m if even else ~m


def checkerboard_mask(channels: int, height: int, width: int, even: bool = True) -> torch.Tensor:
    """Flat (C*H*W,) mask, ``True`` where ``(h + w)`` is even (odd with ``even=False``), every channel."""
    h, w = torch.meshgrid(torch.arange(check_dim(height)), torch.arange(check_dim(width)), indexing="ij")
    m = ((h + w) % 2 == 0).expand(check_dim(channels), -1, -1).reshape(-1)
    return m if even else ~m


def channel_mask(channels: int, height: int, width: int, first: bool = True) -> torch.Tensor:
    """Flat (C*H*W,) mask, ``True`` on the first ``C // 2`` channels (the rest with ``first=False``)."""
    c = check_dim(channels)
    if c < 2:
        raise ValueError(f"channel_mask needs at least 2 channels, got {c}")
    m = (torch.arange(c) < c // 2).repeat_interleave(check_dim(height) * check_dim(width))
    return m if first else ~m


# ----------------------------------------------------------------------------- couplings
class _Coupling(Bijection, FlatParameters):
    """Shared split/merge logic; subclasses define the elementwise law on the passive part."""

    n_params = 1  # conditioner outputs per transformed feature

    def __init__(self, mask, net=None, hidden: int = 64, depth: int = 2, context_features: int = 0,
                 dropout: float = 0.0):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.dim() != 1 or mask.all() or not mask.any():
            raise ValueError("mask must be a 1-D boolean tensor with at least one True and one False "
                             f"entry, got {mask.int().tolist() if mask.dim() == 1 else tuple(mask.shape)}")
        self.dim = mask.numel()
        idx_a, idx_b = mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1)
        self.register_buffer("mask", mask)
        self.register_buffer("idx_a", idx_a)
        self.register_buffer("idx_b", idx_b)
        n_in, n_out = len(idx_a) + context_features, len(idx_b) * self.n_params
        self.net = net if net is not None else mlp(n_in, n_out, hidden, depth, dropout=dropout)
        if net is None:  # our own MLP: one flat parameter (see nets.FlatParameters)
            self._pack()
        self._packed_net = (self.net,) if net is None else ()  # a tuple: not a registered submodule

    def _params(self, a, context):
        h = a if context is None else torch.cat([a, context], 1)
        if self._packed_net and self._packed_net[0] is self.net:
            return run_packed(self.net, self._views(), h)
        return self.net(h)  # a user's net, or the default one replaced after construction

    def _law(self, b, params, inverse):  # -> (new b, log-det per row)
        raise NotImplementedError

    def _couple(self, v, context, inverse):
        a, b = v[:, self.idx_a], v[:, self.idx_b]
        b, ladj = self._law(b, self._params(a, context), inverse)
        return v.index_copy(1, self.idx_b, b), ladj  # x_A = z_A: write only the B columns

    def forward(self, z, context=None):
        self._check(z, "z")
        return self._couple(z, context, inverse=False)

    def inverse(self, x, context=None):
        self._check(x, "x")
        return self._couple(x, context, inverse=True)

    def extra_repr(self):
        return f"dim={self.dim}, conditioned_on={len(self.idx_a)}"


class AdditiveCoupling(_Coupling):
    r"""NICE's additive coupling: :math:`x_A = z_A,\ x_B = z_B + m(z_A)`; log-det exactly 0.

    Args:
        mask: ``(D,)`` booleans; ``True`` features pass through and condition the rest.
        net: conditioner mapping ``(batch, #True [+ context])`` to ``(batch, #False)``; by default
            ``mlp(#True + context_features, #False, hidden, depth)`` with a zero last layer,
            so the fresh layer is the identity.
        context_features: width of a context vector concatenated to the conditioner's input.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.AdditiveCoupling(flowbook.half_mask(4), hidden=8)
        >>> x, ladj = layer(torch.randn(3, 4))
        >>> ladj.tolist()
        [0.0, 0.0, 0.0]
    """

    def _law(self, b, m, inverse):
        return (b - m if inverse else b + m), b.new_zeros(b.shape[0])


class AffineCoupling(_Coupling):
    r"""RealNVP's affine coupling: :math:`x_B = z_B \odot e^{s(z_A)} + t(z_A)`, log-det :math:`\sum_i s_i`.

    The conditioner outputs :math:`(t, \tilde s)` and the log-scale is soft-clamped,
    :math:`s = c \tanh(\tilde s / c)` with ``clamp`` :math:`c = 3` by default: smooth, equal to
    :math:`\tilde s` near 0 (so the zero-initialized layer is the identity and early training is
    that of a plain ``exp``), and bounded in :math:`(-c, c)`, so one layer scales by at most
    :math:`e^3 \approx 20`. Why a clamp: with an unbounded ``exp`` (normflows' default) one large
    conditioner output can make ``exp`` overflow, and the likelihood rewards shrinking directions
    around training points, which overfits small data sets; a hard cap at scale 1 (nflows'
    ``sigmoid(a + 2)``) never blows up but makes the x->z direction contractive only, which limits
    what one layer can do. ``clamp=None`` gives the plain lecture formula :math:`e^{s}`.

    Args: as ``AdditiveCoupling`` (the conditioner outputs ``2 * #False`` numbers: shift then
    raw log-scale), plus ``clamp``.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.AffineCoupling(flowbook.alternating_mask(4), hidden=8)
        >>> flowbook.check_bijection(layer, torch.randn(5, 4)).roundtrip_error < 1e-12
        True
    """

    n_params = 2

    def __init__(self, mask, net=None, hidden: int = 64, depth: int = 2, context_features: int = 0,
                 clamp: float | None = 3.0, dropout: float = 0.0):
        super().__init__(mask, net, hidden, depth, context_features, dropout)
        if clamp is not None and not clamp > 0:
            raise ValueError(f"clamp must be positive or None, got {clamp}")
        self.clamp = clamp

    def log_scale(self, raw):
        """The soft clamp :math:`c \\tanh(\\tilde s / c)` (identity when ``clamp`` is None)."""
        return raw if self.clamp is None else self.clamp * torch.tanh(raw / self.clamp)

    def _law(self, b, params, inverse):
        t, raw = params.chunk(2, dim=1)
        s = self.log_scale(raw)
        if inverse:
            neg_s = -s
            return (b - t) * neg_s.exp(), neg_s.sum(1)
        return b * torch.exp(s) + t, s.sum(1)


# ----------------------------------------------------------------------------- NICE's rescaling
class Scaling(Bijection):
    r"""NICE's diagonal rescaling :math:`x_i = \theta_i z_i`, :math:`\det = \prod_i \theta_i`.

    :math:`\theta = e^{\ell}` is stored as ``log_scale`` :math:`\ell` (positive by construction,
    starts at 1), so :math:`\log|\det| = \sum_i \log|\theta_i| = \sum_i \ell_i` for every input.
    The couplings of NICE preserve volume; this is the only layer that can expand or shrink it.

    Example:
        >>> import torch, flowbook
        >>> s = flowbook.Scaling(2)
        >>> s.log_scale.data = torch.tensor([2.0, 0.5]).log()
        >>> round(s(torch.ones(1, 2))[1].exp().item(), 5)  # det = 2 * 0.5
        1.0
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim)
        self.log_scale = nn.Parameter(torch.zeros(self.dim))

    @property
    def scale(self) -> torch.Tensor:
        """:math:`\\theta`."""
        return self.log_scale.exp()

    def forward(self, z, context=None):
        self._check(z, "z")
        return z * self.log_scale.exp(), self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x, context=None):
        self._check(x, "x")
        return x * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[0])


# ----------------------------------------------------------------------------- squeeze
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
    """

    def __init__(self, shape):
        c, h, w = _check_shape(shape)
        super().__init__(unsqueeze(torch.arange(c * h * w).unsqueeze(0), (c, h, w))[0])
        self.shape = (c, h, w)


class Partial(Bijection):
    """Apply ``bijection`` to the features ``index`` of a ``dim``-vector; leave the others unchanged.

    This is RealNVP's *factor-out*: after a scale, the features not in ``index`` go straight to
    the latent, and the later (deeper) layers only work on the ``index`` features, which halves
    their cost at every scale. log-det = the inner bijection's.

    Example:
        >>> import torch, flowbook
        >>> inner = flowbook.AffineCoupling(flowbook.half_mask(2), hidden=4)
        >>> layer = flowbook.Partial(inner, [1, 3], dim=4)
        >>> layer(torch.randn(3, 4))[0].shape
        torch.Size([3, 4])
    """

    def __init__(self, bijection: Bijection, index, dim: int):
        super().__init__()
        self.dim = check_dim(dim)
        index = torch.as_tensor(index, dtype=torch.long)
        if index.dim() != 1 or len(index.unique()) != len(index) or index.min() < 0 or index.max() >= self.dim:
            raise ValueError(f"index must hold distinct feature indices in 0..{self.dim - 1}")
        if bijection.dim is not None and bijection.dim != len(index):
            raise ValueError(f"bijection works on {bijection.dim} features but index selects {len(index)}")
        self.bijection = bijection
        self.register_buffer("index", index)

    def _run(self, v, context, fn):
        out, ladj = fn(v[:, self.index], context)
        return v.index_copy(1, self.index, out), ladj

    def forward(self, z, context=None):
        self._check(z, "z")
        return self._run(z, context, self.bijection.forward)

    def inverse(self, x, context=None):
        self._check(x, "x")
        return self._run(x, context, self.bijection.inverse)
