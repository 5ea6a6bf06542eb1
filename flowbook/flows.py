r"""Ready-made flows, each a ``flowbook.Flow`` with a standard normal base.

The vector flows (``NICE``, ``RealNVP``, ``MultiscaleRealNVP``, ``MAF``, ``IAF``, ``NSF``,
``NSFCoupling``) take ``(N, features)`` batches; ``Glow`` takes ``(N, C, H, W)`` images.

Every vector flow here takes ``base=`` for another base of as many features, e.g. ``RealNVP(2,
base=MixtureBase(2, k=8))`` for data with separated modes (chapter 9); the layers do not change.

``hidden`` is the width and ``depth`` the number of hidden layers of every conditioner (hidden sizes
``(hidden,) * depth``, as other libraries count), so ``RealNVP(D, 8, H, 2)`` has the parameter count
of a RealNVP with 8 couplings and conditioner hidden sizes (H, H) in nflows or zuko.
"""
from __future__ import annotations

import torch
from torch import nn

from .core import Compose, Inverse
from .distributions import StandardNormal
from .flow import Flow
from .transforms.autoregressive import MaskedAffineAutoregressive, alternating_orders
from .transforms.coupling import AdditiveCoupling, AffineCoupling, alternating_mask, channel_mask, checkerboard_mask
from .transforms.elementwise import Scaling
from .transforms.image import GlowStep
from .transforms.linear import Permutation
from .transforms.multiscale import Partial, Squeeze, unsqueeze
from .transforms.normalization import ActNorm
from .transforms.spline import SplineAutoregressive, SplineCoupling
from .validation import check_count, check_dim

__all__ = ["NICE", "RealNVP", "MultiscaleRealNVP", "MAF", "IAF", "NSF", "NSFCoupling", "Glow", "alternating_orders"]


def _masks(features, n_layers):
    if check_dim(features) < 2:
        raise ValueError(f"a coupling flow needs features >= 2, got {features}")
    return [alternating_mask(features, even=(i % 2 == 0)) for i in range(check_dim(n_layers, "n_layers"))]


def _conditioner(hidden, context_features, activation=None):
    """``(hidden, context_features)`` of a ready-made flow, checked: hidden a positive int (or a list of them)."""
    for h in hidden if isinstance(hidden, (list, tuple)) else (hidden,):
        check_dim(h, "hidden")
    if activation is not None and not callable(activation):
        raise TypeError(f"activation must be a module class such as torch.nn.ReLU, got {type(activation).__name__}")
    return hidden, check_count(context_features, "context_features")


def _base(features, base):
    """The base of a ready-made flow: ``base`` if given (e.g. ``MixtureBase(features, k)``), else N(0, I)."""
    return StandardNormal(features) if base is None else base


class NICE(Flow):
    r"""NICE (Dinh et al. 2014): ``n_layers`` additive couplings with alternating masks, then rescaling.

    Generative direction :math:`z \to x`: ``Scaling`` first (it acts on the latent side, NICE's
    "top" layer), then the couplings. The couplings preserve volume, so
    :math:`\log p(x) = \log \mathcal N(z; 0, I) - \sum_i \log\theta_i`: the scaling is the only place
    where the model can make some directions wider than others. ``scaling=False`` drops it (the
    ablation of lecture 001). ``base`` replaces the standard normal base.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.NICE(2, hidden=16)
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(self, features: int, n_layers: int = 4, hidden: int = 64, depth: int = 2, scaling: bool = True,
                 context_features: int = 0, base=None):
        hidden, context_features = _conditioner(hidden, context_features)
        if not isinstance(scaling, bool):
            raise TypeError(f"scaling must be True or False, got {type(scaling).__name__} {scaling!r}")
        layers = [AdditiveCoupling(m, hidden=hidden, depth=depth,
                                   context_features=context_features)
                  for m in _masks(features, n_layers)]
        if scaling:
            layers.insert(0, Scaling(features))
        super().__init__(_base(features, base), layers)


class RealNVP(Flow):
    r"""RealNVP (Dinh et al. 2016) for vectors: ``n_layers`` affine couplings with alternating masks.

    Each conditioner is ``mlp(D/2 + context_features, 2 * D/2, hidden, depth)`` with a zero last
    layer (the fresh flow is the identity); the log-scale is soft-clamped to :math:`(-c, c)`,
    ``clamp`` = c (see ``AffineCoupling``). ``base`` replaces the standard normal base.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.RealNVP(2, hidden=16)
        >>> isinstance(flow, flowbook.Flow), flow.sample(4).shape
        (True, torch.Size([4, 2]))
    """

    def __init__(self, features: int, n_layers: int = 8, hidden: int = 64, depth: int = 2,
                 context_features: int = 0, clamp: float | None = 3.0, dropout: float = 0.0, base=None):
        hidden, context_features = _conditioner(hidden, context_features)
        layers = [AffineCoupling(m, hidden=hidden, depth=depth,
                                 context_features=context_features,
                                 clamp=clamp, dropout=dropout)
                  for m in _masks(features, n_layers)]
        super().__init__(_base(features, base), layers)


class MultiscaleRealNVP(Flow):
    r"""RealNVP with two scales for the 8 x 8 digits, a *vector* flow on the flattened 64 features.

    From the data side: ActNorm, two checkerboard couplings on the 8 x 8 image (each pixel
    conditioned on its neighbours), the squeeze to 4 x 4 x 4 (a fixed permutation of the 64
    features, the one of ``squeeze``), two channel couplings; then half the features (channels
    2-3) leave as latents and only channels 0-1 get two more checkerboard couplings and an
    ActNorm (``Partial``): Dinh et al.'s multiscale design with MLP conditioners. The list below
    is in the generative (latent -> data) order that ``Flow`` expects. For ``(N, C, H, W)``
    images and convolutional conditioners, see ``Glow``.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.MultiscaleRealNVP(hidden=8)
        >>> flow.log_prob(torch.randn(3, 64)).shape
        torch.Size([3])
    """

    def __init__(self, hidden: int = 64):
        layers = []
        keep = torch.arange(32)  # channels 0-1 of the squeezed 4x4x4 image
        scale2 = [AffineCoupling(checkerboard_mask(2, 4, 4, even=e),
                                 hidden=hidden)
                  for e in (False, True)]
        layers.append(Partial(Compose(*scale2, ActNorm(32)), keep,
                              features=64))
        layers += [AffineCoupling(channel_mask(4, 4, 4, first=f),
                                  hidden=hidden)
                   for f in (False, True)]
        # the squeeze 1x8x8 -> 4x4x4, as a permutation of the 64 features
        layers.append(Permutation(
            unsqueeze(torch.arange(64).reshape(1, 4, 4, 4)).flatten()))
        layers += [AffineCoupling(checkerboard_mask(1, 8, 8, even=e),
                                  hidden=hidden)
                   for e in (False, True)]
        layers.append(ActNorm(64))
        super().__init__(StandardNormal(64), layers)


class _AutoregressiveFlow(Flow):
    """``n_layers`` masked affine autoregressive layers of one mode, orders alternating; with ``actnorm``
    (``None``: the class's default) an ActNorm before each in the generative order, after it in the density's."""

    mode, actnorm = "", False

    def __init__(self, features: int, n_layers: int = 5, hidden=64, depth: int = 2, context_features: int = 0,
                 degrees=None, base=None, clamp: float | None = 3.0, activation=nn.ReLU, dropout: float = 0.0,
                 actnorm: bool | None = None):
        orders = alternating_orders(features, n_layers, degrees)
        hidden, context_features = _conditioner(hidden, context_features, activation)
        if actnorm is not None and not isinstance(actnorm, bool):
            raise TypeError(f"actnorm must be True, False or None, got {type(actnorm).__name__} {actnorm!r}")
        actnorm, layers = self.actnorm if actnorm is None else actnorm, []
        for order in orders:
            if actnorm:
                layers.append(ActNorm(features))
            layers.append(MaskedAffineAutoregressive(features, hidden, depth, context_features, mode=self.mode,
                                                     clamp=clamp, degrees=order, activation=activation,
                                                     dropout=dropout))
        super().__init__(_base(features, base), layers)


class MAF(_AutoregressiveFlow):
    """Masked autoregressive flow: ``n_layers`` MAF layers whose orders alternate (1..D, D..1, ...).

    Density evaluation costs one MADE pass per layer, sampling D passes per layer. ``clamp``,
    ``activation`` and ``dropout`` go to every ``MaskedAffineAutoregressive`` layer;
    ``degrees`` sets the first layer's order; ``base`` replaces the standard normal base. On the
    data side every MAF layer is followed by an ``ActNorm`` (``actnorm=False`` drops them): the
    data-initialized form of the batch normalization between the layers of Papamakarios et al.
    (2017); measured, it lowers the ring's KL by about a fifth and the digits' NLL by about a nat.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.MAF(2, n_layers=3, hidden=16)
        >>> flow.log_prob(torch.randn(5, 2)).shape, flow.sample(4).shape
        (torch.Size([5]), torch.Size([4, 2]))
    """

    mode, actnorm = "maf", True


class IAF(_AutoregressiveFlow):
    """Inverse autoregressive flow: sampling and ``sample_and_log_prob`` in one pass per layer,
    ``log_prob`` of an arbitrary x in D passes per layer. Arguments as ``MAF``, but no ActNorm
    unless ``actnorm=True`` (an IAF is mostly trained by reverse KL, from its own samples).

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.IAF(3, n_layers=2, hidden=16)
        >>> x, log_p = flow.sample_and_log_prob(6)
        >>> torch.allclose(log_p, flow.log_prob(x), atol=1e-5)
        True
    """

    mode = "iaf"


class NSF(Flow):
    r"""Neural spline flow (Durkan et al. 2019): ``n_layers`` autoregressive rational-quadratic spline layers.

    Each layer is a ``SplineAutoregressive`` (MAF mode: density in one MADE pass per layer) with
    ``bins`` bins on ``[-bound, bound]`` and the identity outside; the orders alternate
    (1..D, D..1, ...) as in ``MAF``. ``base`` replaces the standard normal, e.g.
    ``MixtureBase(features, k)`` for data with separated modes.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.NSF(2, n_layers=2, hidden=16, bins=4)
        >>> flow.log_prob(torch.randn(5, 2)).shape, flow.sample(3).shape
        (torch.Size([5]), torch.Size([3, 2]))
    """

    def __init__(self, features: int, n_layers: int = 5, hidden: int = 64,
                 depth: int = 2, bins: int = 8, bound: float = 5.0,
                 context_features: int = 0, base=None):
        hidden, context_features = _conditioner(hidden, context_features)
        layers = [SplineAutoregressive(features, bins, bound, hidden, depth,
                                       context_features, degrees=order)
                  for order in alternating_orders(features, n_layers)]
        super().__init__(_base(features, base), layers)


class NSFCoupling(Flow):
    r"""Neural spline flow with coupling layers: ``n_layers`` ``SplineCoupling`` with alternating masks.

    RealNVP's structure with the spline law: one conditioner pass in both directions, so
    sampling is as cheap as the density. Arguments as ``NSF``.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.NSFCoupling(4, n_layers=2, hidden=16, bins=4)
        >>> x, log_p = flow.sample_and_log_prob(5)
        >>> torch.allclose(log_p, flow.log_prob(x), atol=1e-5)
        True
    """

    def __init__(self, features: int, n_layers: int = 5, hidden: int = 64, depth: int = 2, bins: int = 8,
                 bound: float = 5.0, context_features: int = 0, base=None):
        hidden, context_features = _conditioner(hidden, context_features)
        layers = [SplineCoupling(m, bins, bound, hidden=hidden, depth=depth, context_features=context_features)
                  for m in _masks(features, n_layers)]
        super().__init__(_base(features, base), layers)


class Glow(Flow):
    r"""Glow (Kingma and Dhariwal 2018): a multiscale flow of ``GlowStep`` on ``(N, C, H, W)`` images.

    From the data side, each of the ``levels`` scales squeezes the image ((C, H, W) ->
    (4C, H/2, W/2), ``Squeeze``), runs ``n_layers`` Glow steps (per-channel ActNorm, invertible
    1x1 convolution, affine coupling with a convolutional network) and, except at the last
    scale, factors out half of the channels to the latent (``Partial``): the next scale works
    on (2C, H/2, W/2). Each scale then unsqueezes (a permutation, log-det 0), so the latent has
    the image's shape and the base is ``StandardNormal((C, H, W))``. H and W must be divisible
    by :math:`2^{\text{levels}}`; ``levels=None`` takes 2 where H and W are multiples of 4, else
    1 (any even H and W). The factored-out halves get a standard normal prior (Glow learns one
    conditioned on the rest). ``sample(n, temperature=T)`` is ``Flow``'s.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.Glow(1, 8, 8, n_layers=1, hidden=8)      # the digits' shape
        >>> flow.log_prob(torch.rand(3, 1, 8, 8)).shape, flow.sample(2, temperature=0.7).shape
        (torch.Size([3]), torch.Size([2, 1, 8, 8]))
    """

    def __init__(self, channels: int, height: int, width: int, levels: int | None = None, n_layers: int = 2,
                 hidden: int = 32):
        c, h, w = (check_dim(v, name) for v, name in ((channels, "channels"), (height, "height"), (width, "width")))
        if levels is None:
            levels = 2 if h % 4 == 0 and w % 4 == 0 else 1
        levels, n_layers = check_dim(levels, "levels"), check_dim(n_layers, "n_layers")
        if h % 2 ** levels or w % 2 ** levels:
            raise ValueError(f"Glow with levels={levels} needs height and width divisible by {2 ** levels}, got "
                             f"{h}x{w}; use fewer levels (levels=1 needs only an even height and width)")
        self.levels, self.n_layers = levels, n_layers
        super().__init__(StandardNormal((c, h, w)), self.scale(c, h, w, levels, n_layers, hidden))

    @staticmethod
    def scale(c, h, w, levels: int, n_layers: int, hidden: int) -> Compose:
        """One scale and, inside a ``Partial``, the scales below it: (C, H, W) -> (C, H, W), generative order."""
        h2, w2 = h // 2, w // 2
        steps = [GlowStep(4 * c, hidden) for _ in range(n_layers)]
        data_to_latent = [Squeeze(c, h, w), *steps]
        if levels > 1:  # 2C channels go on to the next scale, 2C are latents
            inner = Glow.scale(2 * c, h2, w2, levels - 1, n_layers, hidden)
            kept = torch.arange(2 * c)
            inner = Partial(inner, kept, channels=4 * c, height=h2, width=w2)
            data_to_latent.append(inner)
        data_to_latent.append(Inverse(Squeeze(c, h, w)))  # the latent is an image
        return Compose(*reversed(data_to_latent))
