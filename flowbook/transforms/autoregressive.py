r"""Affine autoregressive layers: one masked network, two directions (MAF and IAF).

Both write the generative step the same way (lecture 001's notation, :math:`\alpha` the log-scale):

.. math:: x_i = z_i \, e^{\alpha_i} + \mu_i, \qquad z_i = (x_i - \mu_i)\, e^{-\alpha_i},

with the shift :math:`\mu_i` and log-scale :math:`\alpha_i` produced by a ``MADE`` from *earlier*
features. They differ only in which side the conditioner reads:

* **MAF** (``mode="maf"``): :math:`\mu_i, \alpha_i` are functions of :math:`x_{<i}`. Given x every
  conditional is known, so the density (``inverse``) takes **one** MADE pass; sampling
  (``forward``) must build :math:`x_1, x_2, \dots` in turn: **D** passes.
* **IAF** (``mode="iaf"``): functions of :math:`z_{<i}`. Sampling is one pass, the density of an
  arbitrary x takes D passes. ``Flow.sample_and_log_prob`` never needs the inverse.

The Jacobian is triangular in the autoregressive order with diagonal :math:`e^{\alpha_i}`, so
:math:`\log|\det \partial x/\partial z| = \sum_i \alpha_i` in both modes. The raw log-scale is
bounded by ``soft_clamp`` (``clamp`` = 3 by default), and the MADE's last layer starts at zero,
so a fresh layer is the identity map.

**The sequential direction.** Write the unknown side as u. One MADE pass on the current guess
of u gives exact parameters for every feature whose earlier features are already exact, so
after k passes the features of the k lowest degrees are exact: ``n_levels`` passes (D for the
usual order) solve the whole vector, vectorized over the batch and the features.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import Bijection
from ..nn import MADE
from ..validation import check_dim
from .elementwise import soft_clamp

__all__ = ["MaskedAffineAutoregressive", "reparametrized"]


class MaskedAffineAutoregressive(Bijection):
    r"""Masked affine autoregressive layer: MAF (parallel density) or IAF (parallel sampling).

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
        >>> z, ladj = maf.inverse(x)                # one MADE pass
        >>> torch.equal(z, x) and ladj.abs().max().item() == 0.0   # identity at initialization
        True
        >>> report = flowbook.check_bijection(flowbook.randomize_parameters(maf), x)
    """

    def __init__(self, features: int, hidden=64, depth: int = 2, context_features: int = 0, mode: str = "maf",
                 clamp: float | None = 3.0, degrees=None, activation=nn.ReLU, dropout: float = 0.0):
        super().__init__()
        self.features = check_dim(features)
        if mode not in ("maf", "iaf"):
            raise ValueError(f"mode must be 'maf' or 'iaf', got {mode!r}")
        if clamp is not None and not 0 < clamp < float("inf"):  # an infinite bound would give inf * 0 = NaN
            raise ValueError(f"clamp must be positive and finite, or None, got {clamp}")
        self.mode, self.clamp = mode, clamp
        self.made = MADE(self.features, hidden, depth, context_features, outputs_per_feature=2, degrees=degrees,
                         activation=activation, zero_init=True, dropout=dropout)

    def shift_and_log_scale(self, u: torch.Tensor, context=None):
        r"""One MADE pass: ``(mu, alpha)``, each ``(batch, D)``, from the conditioning side u.

        ``mu[:, i]`` and ``alpha[:, i]`` depend only on the features of u before i (in degree order).
        """
        shift, raw = self.made(u, context).unbind(1)
        return shift, soft_clamp(raw, self.clamp)

    def solve(self, given: torch.Tensor, context, step):
        """Find the conditioning side u from ``given`` by ``n_levels`` passes of ``u = step(given, mu(u), alpha(u))``.

        Returns u and the log-scales of the last pass, which are exact for every feature.
        """
        u = torch.zeros_like(given)
        for _ in range(self.made.n_levels):
            shift, log_scale = self.shift_and_log_scale(u, context)
            u = step(given, shift, log_scale)
        return u, log_scale

    def forward(self, z, context=None):
        self.check_input(z, "z")
        if self.mode == "iaf":  # x = z e^alpha(z) + mu(z): one pass
            shift, log_scale = self.shift_and_log_scale(z, context)
            return z * torch.exp(log_scale) + shift, log_scale.sum(1)
        # MAF sampling: x_i = z_i e^alpha(x_<i) + mu(x_<i), one degree level per pass
        x, log_scale = self.solve(z, context, lambda z_, shift, log_scale: z_ * torch.exp(log_scale) + shift)
        return x, log_scale.sum(1)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        if self.mode == "maf":  # z = (x - mu(x)) e^-alpha(x): one pass
            shift, log_scale = self.shift_and_log_scale(x, context)
            return (x - shift) * torch.exp(-log_scale), -log_scale.sum(1)
        # IAF density: z_i = (x_i - mu(z_<i)) e^-alpha(z_<i), one degree level per pass
        z, log_scale = self.solve(x, context, lambda x_, shift, log_scale: (x_ - shift) * torch.exp(-log_scale))
        return z, -log_scale.sum(1)

    def extra_repr(self):
        return f"features={self.features}, mode={self.mode!r}, clamp={self.clamp}"


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
