r"""Autoregressive layers: one masked network, two directions (MAF and IAF), any elementwise law.

Every layer here writes the generative step as an invertible elementwise *law* :math:`\tau`
whose parameters :math:`\theta_i` a ``MADE`` computes from *earlier* features:

.. math:: x_i = \tau(z_i; \theta_i), \qquad z_i = \tau^{-1}(x_i; \theta_i).

``Autoregressive`` holds the MADE, the order (its degrees) and the choice of the side the
MADE reads; a subclass gives only its law: the affine law :math:`x_i = z_i e^{\alpha_i} + \mu_i`
(``MaskedAffineAutoregressive``, lecture 001's notation, :math:`\alpha` the log-scale) or the
rational-quadratic spline (``SplineAutoregressive``).

* **MAF** (``mode="maf"``): :math:`\theta_i` is a function of :math:`x_{<i}`. Given x every
  conditional is known, so the density (``inverse``) takes **one** MADE pass; sampling
  (``forward``) must build :math:`x_1, x_2, \dots` in turn: **D** passes.
* **IAF** (``mode="iaf"``): a function of :math:`z_{<i}`. Sampling is one pass, the density of an
  arbitrary x takes D passes. ``Flow.sample_and_log_prob`` never needs the inverse.

The Jacobian is triangular in the autoregressive order, so
:math:`\log|\det \partial x/\partial z| = \sum_i \log|\partial\tau/\partial z_i|` in both modes
(:math:`\sum_i \alpha_i` for the affine law). The MADE's last layer starts at zero and zero
parameters give the identity law, so a fresh layer is the identity map.

**The sequential direction.** Write the unknown side as u. One MADE pass on the current guess
of u gives exact parameters for every feature whose earlier features are already exact, so
after k passes the features of the k lowest degrees are exact: ``n_levels`` passes (D for the
usual order) solve the whole vector, vectorized over the batch and the features.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import Bijection
from ..nn import MADE
from ..validation import check_clamp, check_dim
from .elementwise import soft_clamp

__all__ = ["Autoregressive", "MaskedAffineAutoregressive", "reparametrized", "alternating_orders"]


class Autoregressive(Bijection):
    r"""What the autoregressive layers share: the MADE, the order and the MAF/IAF dispatch.

    A subclass writes its law as ``law(v, u, context=None, inverse=False)``: one MADE pass on
    the conditioning side u gives the parameters, and the law maps v elementwise
    (:math:`\tau` or, with ``inverse``, :math:`\tau^{-1}`), returning the output and the
    elementwise log-derivatives :math:`\log|\partial\,\text{out}_i/\partial v_i|`. ``forward``
    and ``inverse`` call it once with u = v (the parallel direction) or ``n_levels`` times
    through ``solve`` (the sequential one).

    Args:
        features: number of features D.
        outputs_per_feature: numbers per feature the MADE returns (the law's parameters).
        hidden, depth, context_features, degrees, activation, dropout: passed to ``MADE``.
        mode: ``"maf"`` (the MADE reads x) or ``"iaf"`` (it reads z).

    Example:
        >>> import torch, flowbook
        >>> class Shift(flowbook.Autoregressive):  # a law of one's own: x_i = z_i + mu_i
        ...     def __init__(self, features):
        ...         super().__init__(features, outputs_per_feature=1, hidden=8)
        ...     def law(self, v, u, context=None, inverse=False):
        ...         shift = self.made(u, context)[:, 0]
        ...         return (v - shift if inverse else v + shift), torch.zeros_like(v)
        >>> layer = flowbook.randomize_parameters(Shift(3))
        >>> report = flowbook.check_bijection(layer, torch.randn(5, 3))
        >>> report = flowbook.check_autoregressive(layer, 3)
    """

    def __init__(self, features: int, outputs_per_feature: int, hidden=64, depth: int = 2,
                 context_features: int = 0, mode: str = "maf", degrees=None, activation=nn.ReLU,
                 dropout: float = 0.0):
        super().__init__()
        self.features = check_dim(features)
        if mode not in ("maf", "iaf"):
            raise ValueError(f"mode must be 'maf' or 'iaf', got {mode!r}")
        self.mode = mode
        self.made = MADE(self.features, hidden, depth, context_features, outputs_per_feature, degrees=degrees,
                         activation=activation, zero_init=True, dropout=dropout)

    def law(self, v, u, context=None, inverse: bool = False):
        """``(out, logabsdet)``: v mapped by the law whose parameters one MADE pass computes from u."""
        raise NotImplementedError(f"{type(self).__name__} must define law(v, u, context=None, inverse=False)")

    def solve(self, given, context, inverse: bool):
        """The unknown side u from ``given``, by ``n_levels`` passes of ``u = law(given, u)``.

        Returns u and the log-derivatives of the last pass, which are exact for every feature.
        """
        u = torch.zeros_like(given)
        for _ in range(self.made.n_levels):
            u, logabsdet = self.law(given, u, context, inverse)
        return u, logabsdet

    def forward(self, z, context=None):
        self.check_input(z, "z")
        if self.mode == "iaf":  # x_i = tau(z_i; theta(z_<i)): one pass
            x, logabsdet = self.law(z, z, context)
        else:  # MAF sampling: x_i = tau(z_i; theta(x_<i)), one degree per pass
            x, logabsdet = self.solve(z, context, inverse=False)
        return x, logabsdet.sum(1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        if self.mode == "maf":  # z_i = tau^-1(x_i; theta(x_<i)): one pass
            z, logabsdet = self.law(x, x, context, inverse=True)
        else:  # IAF density: z_i = tau^-1(x_i; theta(z_<i)), one degree level per pass
            z, logabsdet = self.solve(x, context, inverse=True)
        return z, logabsdet.sum(1)

    def extra_repr(self):
        return f"features={self.features}, mode={self.mode!r}"


class MaskedAffineAutoregressive(Autoregressive):
    r"""Masked affine autoregressive layer: MAF (parallel density) or IAF (parallel sampling).

    The law is :math:`x_i = z_i\, e^{\alpha_i} + \mu_i`, with the shift :math:`\mu_i` and the
    log-scale :math:`\alpha_i` from the MADE (two outputs per feature); the raw log-scale is
    bounded by ``soft_clamp`` (``clamp`` = 3 by default).

    Args:
        features: number of features D.
        hidden, depth, activation, degrees, dropout: passed to ``MADE`` (hidden width, or a tuple).
        context_features: width of an optional conditioning vector fed to the MADE (0: none).
        mode: ``"maf"`` (the conditioner reads x) or ``"iaf"`` (it reads z).
        clamp: bound of the log-scale, :math:`\alpha = c\tanh(a/c)` (``None``: unbounded).

    Example:
        >>> import torch, flowbook
        >>> maf = flowbook.MaskedAffineAutoregressive(4, hidden=16, mode="maf")
        >>> x = torch.randn(3, 4)
        >>> z, logabsdet = maf.inverse(x)                # one MADE pass
        >>> torch.equal(z, x) and logabsdet.abs().max().item() == 0.0   # identity at initialization
        True
        >>> report = flowbook.check_bijection(flowbook.randomize_parameters(maf), x)
    """

    def __init__(self, features: int, hidden=64, depth: int = 2, context_features: int = 0, mode: str = "maf",
                 clamp: float | None = 3.0, degrees=None, activation=nn.ReLU, dropout: float = 0.0):
        super().__init__(features, 2, hidden, depth, context_features, mode, degrees, activation, dropout)
        check_clamp(clamp)
        self.clamp = clamp

    def shift_and_log_scale(self, u: torch.Tensor, context=None):
        r"""One MADE pass: ``(shift, log_scale)`` (:math:`\mu, \alpha`), each ``(batch, D)``, from the side u.

        ``shift[:, i]`` and ``log_scale[:, i]`` depend only on the features of u before i (in degree order).
        """
        shift, raw = self.made(u, context).unbind(1)
        return shift, soft_clamp(raw, self.clamp)

    def law(self, v, u, context=None, inverse: bool = False):
        r"""The affine law with :math:`(\mu, \alpha)` from u: v = z gives x, v = x gives z (``inverse``)."""
        shift, log_scale = self.shift_and_log_scale(u, context)
        if not inverse:  # x = z e^alpha + mu
            return v * torch.exp(log_scale) + shift, log_scale
        return (v - shift) * torch.exp(-log_scale), -log_scale  # (x - mu) e^-alpha

    def extra_repr(self):
        return super().extra_repr() + f", clamp={self.clamp}"


class _Reparametrized(MaskedAffineAutoregressive):
    """Shares another layer's MADE and maps its parameters to the inverse's (see ``reparametrized``)."""

    def __init__(self, layer: MaskedAffineAutoregressive):
        Bijection.__init__(self)
        self.features, self.clamp = layer.features, layer.clamp
        self.mode = "iaf" if layer.mode == "maf" else "maf"
        self.made = layer.made  # the same module: same parameters, same masks

    def shift_and_log_scale(self, u, context=None):
        shift, log_scale = super().shift_and_log_scale(u, context)
        return -shift * torch.exp(-log_scale), -log_scale  # mu~ = -mu/sigma, sigma~ = 1/sigma


def reparametrized(layer: MaskedAffineAutoregressive) -> MaskedAffineAutoregressive:
    r"""The layer of the other mode that computes ``layer``'s inverse (lecture 003's IAF trick).

    With :math:`\sigma = e^{\alpha}`, inverting :math:`x_i = \sigma_i z_i + \mu_i` gives
    :math:`z_i = \tilde\sigma_i x_i + \tilde\mu_i` with :math:`\tilde\sigma = 1/\sigma`,
    :math:`\tilde\mu = -\mu/\sigma`. Swapping the names of x and z turns a MAF layer into an IAF
    layer (and back): ``reparametrized(maf).forward == maf.inverse``. The MADE is shared.

    Example:
        >>> import torch, flowbook
        >>> maf = flowbook.MaskedAffineAutoregressive(3, hidden=8, mode="maf")
        >>> _ = torch.nn.init.normal_(maf.made.output.weight)
        >>> iaf = flowbook.reparametrized(maf)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(iaf(x)[0], maf.inverse(x)[0], atol=1e-6), iaf.mode
        (True, 'iaf')
    """
    if not isinstance(layer, MaskedAffineAutoregressive):
        raise TypeError(f"layer must be a MaskedAffineAutoregressive, got {type(layer).__name__}")
    return _Reparametrized(layer)


def alternating_orders(features: int, n_layers: int,
                       degrees=None) -> list[torch.Tensor]:
    """Degrees for ``n_layers`` autoregressive layers: ``degrees`` (default 1..D), then reversed, and so on.

    Each layer must see first the features the previous one saw last. Reversing the degrees
    inside the MADE is the same as a ``ReversePermutation`` on both sides of the layer, without
    the copies, and the fresh flow stays the identity map.

    Example:
        >>> [o.tolist() for o in alternating_orders(3, 3)]
        [[1, 2, 3], [3, 2, 1], [1, 2, 3]]
    """
    order = _degrees(check_dim(features), degrees)
    n_layers = check_dim(n_layers, "n_layers")
    return [order if i % 2 == 0 else order.max() + 1 - order
            for i in range(n_layers)]


def _degrees(features: int, degrees) -> torch.Tensor:
    """``degrees`` (default 1..D) as a ``(features,)`` long tensor, or ``TypeError``/``ValueError``."""
    if degrees is not None and not isinstance(degrees, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"degrees must be {features} integers (a list or tensor), got {type(degrees).__name__}")
    order = torch.arange(1, features + 1) if degrees is None else torch.as_tensor(degrees)
    if order.is_floating_point() or order.is_complex() or order.dtype == torch.bool:
        raise TypeError(f"degrees must be {features} integers (the order of the features), got dtype {order.dtype}")
    if order.shape != (features,):
        raise ValueError(f"degrees must be {features} integers, got shape {tuple(order.shape)}")
    return order.long()
