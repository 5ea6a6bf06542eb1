r"""Affine autoregressive flows: one masked layer, two directions (MAF and IAF).

Both layers write the generative step the same way (lecture 001's notation):

.. math:: x_i = z_i \, e^{\alpha_i} + \mu_i, \qquad z_i = (x_i - \mu_i)\, e^{-\alpha_i},

with :math:`(\alpha_i, \mu_i)` produced by a ``MADE`` from *earlier* features. They differ only
in which side the conditioner reads:

* **MAF** (``mode="maf"``): :math:`\alpha_i, \mu_i` are functions of :math:`x_{<i}`. Given x every
  conditional is known, so the density (``inverse``) takes **one** MADE pass; sampling
  (``forward``) must build :math:`x_1, x_2, \dots` in turn: **D** passes.
* **IAF** (``mode="iaf"``): functions of :math:`z_{<i}`. Sampling is one pass, the density of an
  arbitrary x takes D passes. ``Flow.sample_and_log_prob`` never needs the inverse.

The Jacobian is triangular in the autoregressive order with diagonal :math:`e^{\alpha_i}`, so
:math:`\log|\det \partial x/\partial z| = \sum_i \alpha_i` in both modes.

**Scale parametrization.** The MADE's raw output :math:`a` becomes
:math:`\alpha = b \tanh(a / b)` with ``scale_bound`` b (default 3): the per-layer scale stays in
:math:`[e^{-b}, e^{b}]` (no overflow, no division by ~0 in the inverse), and near 0 it is the
identity, :math:`\alpha \approx a`. The MADE's last layer starts at zero, so a fresh layer is
the identity map.

**Sequential direction.** Writing the unknown side as u, the update ``u <- solve(u)`` computed
with one MADE pass is exact for every feature whose conditioners were already exact: after k
passes the features of the k lowest degrees are exact. The lowest-degree features need no pass
(their parameters are the MADE's last-layer bias), so the inverse costs ``n_levels - 1`` MADE
passes (D - 1 for the usual order), vectorized over the batch and the features, with no
per-element Python work. A coupling-shaped degree pattern (two levels) needs one pass.
"""
from __future__ import annotations

import torch
from torch import nn

from .core import Bijection, Flow
from .distributions import StandardNormal
from .made import MADE
from .utils import check_dim

__all__ = ["MaskedAffineAutoregressive", "MAF", "IAF", "reparametrized"]


class MaskedAffineAutoregressive(Bijection):
    r"""Masked affine autoregressive layer: MAF (parallel density) or IAF (parallel sampling).

    Args:
        dim: number of features D.
        hidden, depth, activation, degrees: passed to ``MADE`` (hidden width or tuple of widths).
        context: size of an optional conditioning vector fed to the MADE (0: unconditional).
        mode: ``"maf"`` (conditioner reads x) or ``"iaf"`` (conditioner reads z).
        scale_bound: b in :math:`\alpha = b\tanh(a/b)`; the per-layer log-scale lies in [-b, b].
        dropout: MADE hidden-unit dropout in train mode (see ``MADE``).

    Attributes:
        passes: number of MADE evaluations made so far (a counter, for measuring the cost).

    Example:
        >>> import torch, flowbook
        >>> maf = flowbook.MaskedAffineAutoregressive(4, hidden=16, mode="maf")
        >>> x = torch.randn(3, 4)
        >>> z, ladj = maf.inverse(x)                # one MADE pass
        >>> torch.equal(z, x) and ladj.abs().max().item() == 0.0   # identity at initialization
        True
    """

    def __init__(self, dim: int, hidden=64, depth: int = 2, context: int = 0, mode: str = "maf",
                 scale_bound: float = 3.0, degrees=None, activation=nn.ReLU, dropout: float = 0.0):
        super().__init__()
        self.dim = check_dim(dim)
        if mode not in ("maf", "iaf"):
            raise ValueError(f"mode must be 'maf' or 'iaf', got {mode!r}")
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        self.mode, self.scale_bound = mode, float(scale_bound)
        self.made = MADE(self.dim, hidden, depth, context, out_per_feature=2, degrees=degrees,
                         activation=activation, zero_init=True, dropout=dropout)
        self.passes = 0

    # --- the conditioner ------------------------------------------------------------------
    def _bound(self, a):
        return self.scale_bound * torch.tanh(a / self.scale_bound)

    def params(self, u: torch.Tensor, context=None):
        r"""One MADE pass: ``(alpha, mu)``, each ``(batch, D)``, from the conditioning side u.

        ``alpha[:, i]`` and ``mu[:, i]`` depend only on the features of u before i (in degree order).
        """
        self.passes += 1
        a, mu = self.made(u, context).unbind(1)
        return self._finish(self._bound(a), mu)

    def _finish(self, alpha, mu):  # hook: the reparametrized layer maps (alpha, mu) here
        return alpha, mu

    def _constant_params(self):
        a, mu = self.made.constant_output()
        return self._finish(self._bound(a).unsqueeze(0), mu.unsqueeze(0))

    # --- the two computations: parallel and sequential ---------------------------------------
    def _gen_parallel(self, z, context):
        """IAF forward: x = z e^alpha(z) + mu(z), one pass."""
        alpha, mu = self.params(z, context)
        return z * alpha.exp() + mu, alpha.sum(1)

    def _norm_parallel(self, x, context):
        """MAF inverse: z = (x - mu(x)) e^-alpha(x), one pass."""
        alpha, mu = self.params(x, context)
        neg_alpha = -alpha  # negated once, used twice
        return (x - mu) * neg_alpha.exp(), neg_alpha.sum(1)

    def _sequential(self, given, context, update):
        """Solve for the conditioning side u from ``given`` with ``n_levels - 1`` MADE passes.

        ``update(given, alpha, mu)`` computes u from the parameters; each pass makes one more
        degree level exact, and the last pass used exact parameters for every feature.
        """
        alpha, mu = self._constant_params()  # exact for the lowest level, no pass needed
        u = update(given, alpha, mu)
        if torch.is_grad_enabled() or self.made.dropout and self.training:
            for _ in range(self.made.n_levels - 1):
                alpha, mu = self.params(u, context)
                u = update(given, alpha, mu)
            return u, alpha.expand_as(given).sum(1)
        # no gradient needed: compute only the features of the next level in each pass (they
        # need only the hidden units of lower degree), and write them in place
        alpha = alpha.expand_as(given).clone()
        for level in range(2, self.made.n_levels + 1):
            self.passes += 1
            idx, out = self.made.level_output(u, level, context)
            a, m = self._finish(self._bound(out[:, 0]), out[:, 1])
            u[:, idx] = update(given[:, idx], a, m)
            alpha[:, idx] = a
        return u, alpha.sum(1)

    def forward(self, z, context=None):
        self._check(z, "z")
        if self.mode == "iaf":
            return self._gen_parallel(z, context)
        # MAF sampling: x_i = z_i e^alpha(x_<i) + mu(x_<i), built level by level.
        return self._sequential(z, context, lambda z_, a, m: z_ * a.exp() + m)

    def inverse(self, x, context=None):
        self._check(x, "x")
        if self.mode == "maf":
            return self._norm_parallel(x, context)
        # IAF density: z_i = (x_i - mu(z_<i)) e^-alpha(z_<i), built level by level.
        z, ladj = self._sequential(x, context, lambda x_, a, m: (x_ - m) * torch.exp(-a))
        return z, -ladj

    def extra_repr(self):
        return f"dim={self.dim}, mode={self.mode!r}, scale_bound={self.scale_bound}"


class _Reparametrized(MaskedAffineAutoregressive):
    """Shares another layer's MADE and uses sigma~ = 1/sigma, mu~ = -mu/sigma (see ``reparametrized``)."""

    def __init__(self, layer: MaskedAffineAutoregressive):
        Bijection.__init__(self)
        self.dim, self.scale_bound, self.passes = layer.dim, layer.scale_bound, 0
        self.mode = "iaf" if layer.mode == "maf" else "maf"
        self.made = layer.made  # the same module: same parameters, same masks

    def _finish(self, alpha, mu):
        return -alpha, -mu * torch.exp(-alpha)


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


def _autoregressive_flow(mode, dim, n_layers, hidden, depth, context, degrees=None, **kwargs) -> Flow:
    dim, n_layers = check_dim(dim), check_dim(n_layers, "n_layers")
    order = torch.arange(1, dim + 1) if degrees is None else torch.as_tensor(degrees, dtype=torch.long)
    if order.shape != (dim,):
        raise ValueError(f"degrees must be {dim} integers, got shape {tuple(order.shape)}")
    # Each layer must see first the features the previous one saw last, so the orders alternate.
    # Reversing the degrees inside the MADE is the same as a ReversePermutation on both sides of
    # the layer, without the two copies: the flow is the identity when fresh, and costs less.
    orders = [order, order.max() + 1 - order]
    layers = [MaskedAffineAutoregressive(dim, hidden, depth, context, mode=mode, degrees=orders[i % 2], **kwargs)
              for i in range(n_layers)]
    return Flow(StandardNormal(dim), layers)


def MAF(dim: int, n_layers: int = 5, hidden=64, depth: int = 2, context: int = 0, **kwargs) -> Flow:
    """Masked autoregressive flow: ``n_layers`` MAF layers whose orders alternate (1..D, D..1, ...).

    The alternation is what nflows and normflows get from a ``ReversePermutation`` between the
    layers; here each MADE's degrees are reversed instead (the same family of maps, no copies).
    Density evaluation costs one MADE pass per layer, sampling D - 1 per layer. Extra keyword
    arguments (``degrees`` for the first layer's order, ``scale_bound``, ``activation``,
    ``dropout``) go to ``MaskedAffineAutoregressive``.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.MAF(2, n_layers=3, hidden=16)
        >>> flow.log_prob(torch.randn(5, 2)).shape, flow.sample(4).shape
        (torch.Size([5]), torch.Size([4, 2]))
    """
    return _autoregressive_flow("maf", dim, n_layers, hidden, depth, context, **kwargs)


def IAF(dim: int, n_layers: int = 5, hidden=64, depth: int = 2, context: int = 0, **kwargs) -> Flow:
    """Inverse autoregressive flow: sampling and ``sample_and_log_prob`` in one pass per layer,
    ``log_prob`` of an arbitrary x in D - 1 passes per layer.

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.IAF(3, n_layers=2, hidden=16)
        >>> x, log_p = flow.sample_and_log_prob(6)
        >>> torch.allclose(log_p, flow.log_prob(x), atol=1e-5)
        True
    """
    return _autoregressive_flow("iaf", dim, n_layers, hidden, depth, context, **kwargs)
