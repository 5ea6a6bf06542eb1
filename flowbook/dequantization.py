r"""Dequantization: a flow (a density) as a model of discrete data, and three ways to score it.

Pixels are integers :math:`x \in \{0, \dots, K-1\}^D`. A flow gives a density :math:`p` on the
continuous :math:`v = x + u`, :math:`u \in [0, 1)^D` (flowbook's image flows model :math:`y = v/K`
in the unit cube, so :math:`p(v) = p_y(v/K)/K^D`). The discrete model it defines is the mass of
the unit cell above each x,

.. math:: P(x) = \int_{[0,1)^D} p(x + u)\, du .

For any density :math:`q(u \mid x)` on the cell, :math:`P(x) = \mathbb E_{q}[p(x+u)/q(u\mid x)]`, and:

* **uniform dequantization** (q = 1; Theis, van den Oord and Bethge 2016): by Jensen,
  :math:`\log P(x) \ge \mathbb E_{u\sim U}[\log p(x + u)]`, the number that training on
  :math:`(x + u)/K` maximizes and that ``Digits.bits_per_dim`` reports;
* **variational dequantization** (Ho, Chen, Srinivas, Duan and Abbeel 2019, Flow++): a learned
  :math:`q(u\mid x)`, trained jointly with p on the bound
  :math:`\log P(x) \ge \mathbb E_q[\log p(x+u) - \log q(u\mid x)]`, whose gap is
  :math:`\mathrm{KL}(q(u\mid x)\,\Vert\,p(x+u)/P(x))`: the uniform bound is loose where p is not
  flat over a cell, and a learned q can follow p instead;
* **importance weighting** (as in Burda, Grosse and Salakhutdinov 2016):
  :math:`\log \frac1n\sum_{i=1}^n p(x+u_i)/q(u_i\mid x)`, :math:`u_i \sim q`, is a lower bound
  on :math:`\log P(x)` in expectation, grows with n, and tends to :math:`\log P(x)`.

``DequantizedFlow`` wraps a flow on the unit cube with either dequantizer; its ``log_prob`` is a
one-sample estimate of the bound, so ``flowbook.fit`` trains it like any flow.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .core import Compose, check_event
from .flows import alternating_orders
from .transforms.autoregressive import MaskedAffineAutoregressive
from .transforms.elementwise import Logit
from .validation import check_context, check_count, check_dim, check_features, check_levels, model_dtype

__all__ = ["VariationalDequantizer", "DequantizedFlow"]


class VariationalDequantizer(nn.Module):
    r"""A conditional flow :math:`q(u \mid x)` on the unit cell :math:`[0, 1)^D`, for discrete x.

    :math:`u = \sigma(g(\varepsilon; x))` with :math:`\varepsilon` standard logistic,
    :math:`g` ``n_layers`` IAF layers (``MaskedAffineAutoregressive(mode="iaf")``, one MADE pass
    each to sample) that read x (rescaled to [-1, 1]) as context, and :math:`\sigma` the sigmoid
    (``Logit(alpha=0).forward``). Then
    :math:`\log q(u\mid x) = \log p_\text{logistic}(\varepsilon) - \log|\det \partial u/\partial\varepsilon|`.
    A fresh dequantizer (g the identity) is *uniform*: the sigmoid of a logistic variable is
    uniform, and :math:`\log q = 0`.

    Args:
        features: D.
        levels: K, the number of values of each x_i (>= 2).
        n_layers, hidden, depth: the IAF layers and their MADEs.

    Example:
        >>> import torch, flowbook
        >>> q = flowbook.VariationalDequantizer(3, levels=2, hidden=8)
        >>> u, log_q = q(torch.tensor([[0., 1., 1.], [1., 0., 0.]]))
        >>> bool(((0 <= u) & (u <= 1)).all()), log_q.abs().max().item() < 1e-5    # fresh: uniform
        (True, True)
    """

    def __init__(self, features: int, levels: int, n_layers: int = 2, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.features = d = check_dim(features)
        self.levels = check_count(levels, "levels", 2)
        self.transform = Compose(*[MaskedAffineAutoregressive(d, hidden, depth, context_features=d, mode="iaf",
                                                              degrees=order)
                                   for order in alternating_orders(d, n_layers)], Logit(d, alpha=0.0))

    def forward(self, x):
        """Draw one ``u ~ q(u | x)`` per row of ``x`` (integers 0..K-1, any real dtype); return ``(u, log q(u | x))``."""
        check_features(x, self.features, "x")
        x = check_levels(x, self.levels, "x", model_dtype(self))
        s = torch.rand_like(x).clamp(1e-6, 1 - 1e-6)
        eps = torch.log(s) - torch.log1p(-s)                  # standard logistic
        log_base = (F.logsigmoid(eps) + F.logsigmoid(-eps)).sum(1)
        u, logabsdet = self.transform(eps, 2 * x / (self.levels - 1) - 1)
        return u, log_base - logabsdet


class DequantizedFlow(nn.Module):
    r"""A model of integers :math:`x \in \{0..K-1\}^D` from a flow on :math:`y = (x + u)/K` in the unit cube.

    ``log_prob(x)`` is a one-sample estimate of the lower bound
    :math:`\log p(x + u) - \log q(u\mid x)` on :math:`\log P(x)` (nats), with
    :math:`\log p(x + u) = \log p_y((x+u)/K) - D \log K` and u uniform (``dequantizer=None``,
    :math:`\log q = 0`) or from a ``VariationalDequantizer``; ``flowbook.fit(model, x_train, ...)``
    then trains the flow and the dequantizer jointly. ``lower_bound(x, n)`` averages n draws,
    ``log_likelihood(x, n)`` is the importance-weighted estimate.

    The flow may be a vector flow (``x`` of shape ``(N, D)``) or an image flow (``(N, C, H, W)``,
    D = C H W; the dequantizer sees the images flattened). ``sample(n, temperature=T)`` draws
    :math:`y` from the flow and returns the integers :math:`\min(\lfloor K y \rfloor, K-1)`
    (clamped to 0..K-1) as a ``torch.long`` tensor. There is no ``sample_and_log_prob``: the
    model's :math:`\log P(x)` is an integral with no closed form; score samples with
    ``log_likelihood(x, n)`` (pass ``x.float()``, or any dtype: integers are converted).

    Args:
        flow: a ``Flow`` on the unit cube (e.g. ending in ``Logit``), ``features`` = D.
        levels: K.
        dequantizer: ``None`` (uniform) or a ``VariationalDequantizer(D, K)``.

    Example:
        >>> import math, torch, flowbook
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.Logit(2)])
        >>> model = DequantizedFlow(flow, levels=2)
        >>> x = torch.tensor([[0., 1.], [1., 1.]])
        >>> log_w = model.log_weights(x, n=8)                  # 8 draws of u for each row
        >>> iw = torch.logsumexp(log_w, 0) - math.log(8)        # what log_likelihood(x, 8) computes
        >>> bool((log_w.mean(0) <= iw).all())                   # Jensen: above the bound (the mean)
        True
        >>> model.sample(3, temperature=0.5).dtype
        torch.int64
    """

    def __init__(self, flow: nn.Module, levels: int, dequantizer: VariationalDequantizer | None = None):
        super().__init__()
        if not (isinstance(flow, nn.Module) and hasattr(flow, "log_prob") and hasattr(flow, "sample")):
            raise TypeError(f"flow must be a flowbook.Flow on the unit cube (log_prob, sample), got {type(flow).__name__}")
        if dequantizer is not None and not isinstance(dequantizer, VariationalDequantizer):
            raise TypeError(f"dequantizer must be None (uniform) or a VariationalDequantizer, got {type(dequantizer).__name__}")
        self.flow, self.dequantizer = flow, dequantizer
        self.features, self.levels = flow.features, check_count(levels, "levels", 2)
        self.event_shape = tuple(getattr(flow, "event_shape", (self.features,)))
        if dequantizer is not None and (dequantizer.features, dequantizer.levels) != (self.features, self.levels):
            raise ValueError(f"the dequantizer is for {dequantizer.features} features and {dequantizer.levels} "
                             f"levels, the model for {self.features} and {self.levels}")

    def noise(self, x):
        """``(u, log q(u | x))``: one draw per example, uniform (log q = 0) or from the dequantizer."""
        if not x.is_floating_point():          # integers: u in the flow's dtype
            x = x.to(model_dtype(self) or torch.get_default_dtype())
        if self.dequantizer is None:
            return torch.rand_like(x), x.new_zeros(x.shape[0])
        u, log_q = self.dequantizer(x.flatten(1))
        return u.view_as(x), log_q

    def log_density(self, v):
        r""":math:`\log p(v)` of points :math:`v = x + u` in :math:`[0, K)^D`: :math:`\log p_y(v/K) - D\log K`."""
        return self.flow.log_prob(v / self.levels) - self.features * math.log(self.levels)

    def log_prob(self, x, context=None):
        """One-sample estimate of the lower bound on log P(x), per example (what ``fit`` maximizes).

        ``x`` must hold the integers 0..K-1 (any real dtype, converted to the flow's):
        ``ValueError`` naming ``levels`` for a fraction (e.g. data already scaled to [0, 1]), a value
        out of range, NaN or infinity (``flowbook.validation.check_levels``, one reduction).
        """
        check_context(context, 0, "DequantizedFlow", "log_prob")
        if len(self.event_shape) == 1:
            check_features(x, self.features, "x")
        else:
            check_event(x, self.event_shape, "x")
        x = check_levels(x, self.levels, "x", model_dtype(self) or torch.get_default_dtype())
        u, log_q = self.noise(x)
        return self.log_density(x + u) - log_q

    @torch.no_grad()
    def sample(self, n=1, temperature: float = 1.0) -> torch.Tensor:
        r"""``n`` integer samples in 0..K-1 (a ``torch.long`` tensor of shape ``(*n, *event_shape)``).

        ``y = flow.sample(n, temperature=T)``, then :math:`x = \min(\lfloor K y\rfloor, K - 1)`
        clamped at 0 (a flow on the unit cube stays inside; the clamp only catches round-off).
        """
        y = self.flow.sample(n, temperature=temperature)
        return torch.floor(self.levels * y).clamp(0, self.levels - 1).long()

    def sample_and_log_prob(self, n=1, temperature: float = 1.0):
        """Not available: log P(x) of a dequantized model has no closed form (see the class docstring)."""
        raise NotImplementedError("DequantizedFlow has no sample_and_log_prob: log P(x) is an integral over the "
                                  "cell with no closed form; use x = model.sample(n) and "
                                  "model.log_likelihood(x, n=100) (an importance-weighted estimate)")

    def log_weights(self, x, n: int) -> torch.Tensor:
        """``(n, batch)`` values of ``log p(x + u_i) - log q(u_i | x)`` for n draws per row."""
        return torch.stack([self.log_prob(x) for _ in range(check_count(n, "n", 1))])

    @torch.no_grad()
    def lower_bound(self, x, n: int = 1) -> torch.Tensor:
        r"""The bound :math:`\mathbb E_q[\log p(x+u) - \log q(u\mid x)]` per row, averaged over n draws."""
        return self.log_weights(x, n).mean(0)

    @torch.no_grad()
    def log_likelihood(self, x, n: int = 100) -> torch.Tensor:
        r"""Importance-weighted estimate :math:`\log\frac1n\sum_i p(x+u_i)/q(u_i\mid x)` of log P(x), per row."""
        return torch.logsumexp(self.log_weights(x, n), 0) - math.log(n)
