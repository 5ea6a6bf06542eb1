r"""Gaussian paths, scores and the probability-flow ODE, exact for Gaussian-mixture data.

**The path.** Noise :math:`\varepsilon \sim \mathcal N(0, I)` and a data point :math:`x` are mixed as

.. math:: x_t = \alpha_t\, x + \sigma_t\, \varepsilon,

with :math:`\alpha_0 = 0, \sigma_0 = 1` (noise at :math:`t = 0`), :math:`\alpha_1 = 1, \sigma_1 = 0`
(data at :math:`t = 1`), and ``schedule="linear"`` (:math:`\alpha_t = t`, :math:`\sigma_t = 1 - t`:
chapter 11's straight paths) or ``"vp"`` (:math:`\alpha_t = \sin\frac{\pi t}2`, :math:`\sigma_t = \cos\frac{\pi t}2`:
variance preserving, the marginals of an Ornstein-Uhlenbeck diffusion run backwards in time).

**Mixture data.** For equal-weight data :math:`\frac1K\sum_k \mathcal N(\mu_k, s^2 I)` the marginal
is again a mixture, :math:`p_t = \frac1K\sum_k \mathcal N(\alpha_t\mu_k, v_t I)` with
:math:`v_t = \alpha_t^2 s^2 + \sigma_t^2`, so its score is exact:

.. math:: \nabla\log p_t(y) = \frac{\alpha_t \bar\mu(y) - y}{v_t}, \qquad
          \bar\mu(y) = \sum_k w_k(y)\,\mu_k,

with responsibilities :math:`w_k(y) \propto e^{-\lVert y - \alpha_t\mu_k\rVert^2 / 2 v_t}`.

**The field** is the mean velocity of the paths through :math:`y`,
:math:`u(t, y) = \mathbb E[\dot\alpha_t x + \dot\sigma_t\varepsilon \mid x_t = y]`, which is

.. math:: u(t, y) = \dot\alpha_t\,\bar\mu(y) + c_t\,\bigl(y - \alpha_t\bar\mu(y)\bigr),

with :math:`c_t = (\alpha_t\dot\alpha_t s^2 + \sigma_t\dot\sigma_t)/v_t`, finite at every :math:`t`, and equal, where :math:`\alpha_t > 0`, to the probability-flow ODE's field

.. math:: u(t, y) = a_t\, y + b_t\,\nabla\log p_t(y),

with :math:`a_t = \dot\alpha_t/\alpha_t` and
:math:`b_t = \sigma_t^2(\dot\alpha_t/\alpha_t - \dot\sigma_t/\sigma_t) = \frac12 g_t^2`,

which is :math:`-f + \frac12 g^2\nabla\log p` for the noising SDE :math:`dX = f\,d\tau + g\,dW`
run in diffusion time :math:`\tau = 1 - t`. The ODE :math:`\dot y = u(t, y)` carries
:math:`\mathcal N(0, I)` at :math:`t = 0` to the data at :math:`t = 1` through the marginals
:math:`p_t`, so ``flowbook.ODEFlow(field, D)`` is a flow whose exact log-likelihood is the
mixture's (Song et al., *Score-Based Generative Modeling through SDEs*, 2021).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .distributions import mixture_log_prob
from .validation import check_features, check_positive

__all__ = ["MixturePathField"]

SCHEDULES = ("linear", "vp")


class MixturePathField(nn.Module):
    r"""The exact velocity field :math:`u(t, y)` of a Gaussian path to equal-weight Gaussian-mixture data.

    Called as ``field(t, y)`` (what ``flowbook.ODEFlow``, ``flowbook.rk4`` and ``flowbook.euler``
    expect), it returns :math:`u(t, y)`; ``log_prob(t, y)`` and ``score(t, y)`` give the marginal
    :math:`p_t` and :math:`\nabla\log p_t` in closed form, ``coefficients(t)`` the schedule.

    Args:
        means: ``(K, features)`` component means :math:`\mu_k` of the data (``K >= 1``).
        std: the components' common standard deviation :math:`s > 0`.
        schedule: ``"linear"`` (:math:`\alpha_t = t,\ \sigma_t = 1 - t`) or ``"vp"``
            (:math:`\alpha_t = \sin\frac{\pi t}2,\ \sigma_t = \cos\frac{\pi t}2`).

    Example:
        >>> import torch, flowbook
        >>> from flowbook.diffusion import MixturePathField
        >>> field = MixturePathField(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), std=0.5).double()
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2),
        ...                      [flowbook.ODEFlow(field, 2, method="rk4", solver_steps=64)]).double()
        >>> x = torch.tensor([[-2.0, 0.3], [1.5, -0.2]], dtype=torch.float64)
        >>> error = flow.log_prob(x) - field.log_prob(1.0, x)   # the ODE's likelihood is exact
        >>> error.abs().max().item() < 1e-4
        True
    """

    def __init__(self, means, std: float, schedule: str = "linear"):
        super().__init__()
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if means.dim() != 2 or len(means) == 0 or means.shape[1] == 0:
            raise ValueError(f"means must have shape (K, features) with K >= 1, got {tuple(means.shape)}")
        if not torch.isfinite(means).all():
            raise ValueError("means must hold finite numbers")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.register_buffer("means", means.clone())
        self.std, self.schedule, self.features = check_positive(std, "std"), schedule, means.shape[1]

    def coefficients(self, t, like: torch.Tensor | None = None):
        r""":math:`(\alpha_t, \sigma_t, \dot\alpha_t, \dot\sigma_t)` as tensors of the dtype and device of ``like``."""
        like = self.means if like is None else like
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        if self.schedule == "linear":
            return t, 1 - t, torch.ones_like(t), -torch.ones_like(t)
        h = math.pi / 2
        return torch.sin(h * t), torch.cos(h * t), h * torch.cos(h * t), -h * torch.sin(h * t)

    def score_coefficients(self, t):
        r""":math:`(a_t, b_t)` with :math:`u = a_t\,y + b_t\,\nabla\log p_t(y)`; needs :math:`0 < t < 1`."""
        t = self.check_time(t)
        if not 0 < t < 1:
            raise ValueError(f"score_coefficients needs 0 < t < 1 (alpha_t and sigma_t nonzero), got t={t}")
        alpha, sigma, d_alpha, d_sigma = self.coefficients(t)
        return d_alpha / alpha, sigma**2 * (d_alpha / alpha - d_sigma / sigma)

    def log_prob(self, t, y: torch.Tensor) -> torch.Tensor:
        r"""The marginal :math:`\log p_t(y)`, shape ``(batch,)``: a mixture with means :math:`\alpha_t\mu_k`."""
        t, y = self.check_time(t), self.check_points(y)
        alpha, sigma = self.coefficients(t, y)[:2]
        means = alpha * self.means.to(y)
        log_std = 0.5 * torch.log(alpha**2 * self.std**2 + sigma**2)
        return mixture_log_prob(y, means, log_std.expand_as(means))

    def score(self, t, y: torch.Tensor) -> torch.Tensor:
        r"""The exact score :math:`\nabla_y\log p_t(y) = (\alpha_t\bar\mu(y) - y)/v_t`, shape of ``y``."""
        t, y = self.check_time(t), self.check_points(y)
        alpha, sigma = self.coefficients(t, y)[:2]
        variance = alpha**2 * self.std**2 + sigma**2
        return (alpha * self.posterior_mean(y, alpha, variance) - y) / variance

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:
        y = self.check_points(y)
        alpha, sigma, d_alpha, d_sigma = self.coefficients(t, y)
        variance = alpha**2 * self.std**2 + sigma**2
        mean = self.posterior_mean(y, alpha, variance)          # mu-bar(y)
        c = (alpha * d_alpha * self.std**2 + sigma * d_sigma) / variance
        return d_alpha * mean + c * (y - alpha * mean)

    def posterior_mean(self, y, alpha, variance):
        r""":math:`\bar\mu(y) = \sum_k w_k(y)\,\mu_k`, the responsibilities :math:`w_k` of the components of :math:`p_t`."""
        means = self.means.to(y)
        weights = torch.softmax(-(y.unsqueeze(1) - alpha * means).pow(2).sum(-1) / (2 * variance), dim=1)
        return weights @ means

    def check_points(self, y):
        """Python-only: ``y`` is ``(batch, features)`` and floating point (``ValueError``/``TypeError`` naming y)."""
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor of shape (batch, {self.features}), got {type(y).__name__}")
        if not y.is_floating_point():
            raise TypeError(f"y must be floating point (e.g. y.double()), got {y.dtype}")
        check_features(y, self.features, "y")
        return y

    @staticmethod
    def check_time(t) -> float:
        """``t`` as a float in [0, 1] (a number or a one-element tensor), else ``ValueError`` naming t."""
        try:
            t = float(t)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"t must be a number in [0, 1], got {t!r}") from None
        if not 0 <= t <= 1:
            raise ValueError(f"t must be in [0, 1] (noise at 0, data at 1), got {t}")
        return t

    def extra_repr(self):
        return f"components={len(self.means)}, features={self.features}, std={self.std:g}, schedule={self.schedule!r}"
