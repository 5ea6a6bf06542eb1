r"""The parts of a VAE: a Gaussian encoder, two decoders, the Gaussian KL and an IAF posterior flow.

The encoder is the amortized posterior :math:`q(z|x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))`
(``log_std`` is :math:`\log\sigma`); a decoder gives the likelihood :math:`\log p(x|z)` of the data
and its mean. With a flow in the posterior, the encoder also emits a context vector :math:`h(x)`
(``flow_context_features`` wide) on which every flow layer is conditioned.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..core import Compose
from ..distributions import gaussian_log_prob
from ..nn import mlp
from ..transforms.autoregressive import MaskedAffineAutoregressive
from ..transforms.linear import ReversePermutation
from ..validation import check_count, check_dim, check_features, check_positive

__all__ = ["GaussianEncoder", "BernoulliDecoder", "GaussianDecoder", "gaussian_kl", "posterior_iaf"]


def gaussian_kl(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    r"""Closed-form :math:`\mathrm{KL}(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I))`, summed over the last axis.

    .. math:: \mathrm{KL} = \tfrac12 \sum_i \bigl(\mu_i^2 + \sigma_i^2 - 1 - 2\log\sigma_i\bigr),
              \qquad \sigma = e^{\mathtt{log\_std}}.

    Example:
        >>> import math, torch, flowbook
        >>> kl = flowbook.gaussian_kl(torch.tensor([1.0]), torch.tensor([math.log(2.0)]))
        >>> round(kl.item(), 4), round(2 - math.log(2), 4)       # KL(N(1, 4) || N(0, 1))
        (1.3069, 1.3069)
    """
    return 0.5 * (mu**2 + torch.exp(2 * log_std) - 1 - 2 * log_std).sum(-1)


def _cat(x, context):
    return x if context is None else torch.cat([x, context], -1)


def posterior_iaf(latent: int, n_layers: int = 2, hidden: int = 32, depth: int = 1,
                  context_features: int = 16) -> Compose:
    """An IAF posterior flow ``z_0 -> z_T`` conditioned on ``h(x)`` that is the identity when fresh.

    Reversals go between the IAF layers (each layer's first feature gets only a constant affine
    map, so the next layer must see the order reversed) and one more closes an odd count: with an
    odd number of reversals a fresh flow would permute the code, and a trained encoder's
    posterior would start from the wrong place. Pair it with a ``GaussianEncoder`` whose
    ``flow_context_features`` equals ``context_features``.

    Example:
        >>> import torch, flowbook
        >>> z = torch.randn(4, 2)
        >>> torch.equal(flowbook.posterior_iaf(2, context_features=3)(z, torch.randn(4, 3))[0], z)
        True
    """
    layers = []
    for i in range(check_dim(n_layers, "n_layers")):
        layers += [ReversePermutation(latent)] if i else []
        layers.append(MaskedAffineAutoregressive(latent, hidden, depth, context_features, mode="iaf"))
    if n_layers % 2 == 0:  # n_layers - 1 reversals so far: make it even
        layers.append(ReversePermutation(latent))
    return Compose(*layers)


class GaussianEncoder(nn.Module):
    r"""``x (+ context) -> (mu, log_std, flow_context)``: the posterior :math:`q(z|x) = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)`.

    One ``mlp`` maps ``x`` (and, for a conditional VAE, its ``context``) to :math:`\mu(x)`,
    :math:`\log\sigma(x)` (clamped to ``[-8, 4]``) and, when ``flow_context_features > 0``, the
    context :math:`h(x)` of a posterior flow (else ``None``).

    Args:
        features: width of ``x``; latent: width of ``z``.
        hidden, depth: the network's width and number of hidden layers.
        context_features: width of the condition of a conditional VAE (0: unconditional).
        flow_context_features: width of the context :math:`h(x)` emitted for a flow posterior.

    Example:
        >>> import torch, flowbook
        >>> enc = flowbook.GaussianEncoder(64, 2, flow_context_features=8)
        >>> [t.shape[1] for t in enc(torch.rand(5, 64))]
        [2, 2, 8]
    """

    def __init__(self, features: int, latent: int, hidden: int = 128, depth: int = 2,
                 context_features: int = 0, flow_context_features: int = 0):
        super().__init__()
        self.features, self.latent = check_dim(features, "features"), check_dim(latent, "latent")
        self.context_features = check_count(context_features, "context_features")
        self.flow_context_features = check_count(flow_context_features, "flow_context_features")
        self.net = mlp(self.features + self.context_features, 2 * self.latent + self.flow_context_features,
                       hidden, depth, zero_init=False)

    def forward(self, x, context=None):
        check_features(x, self.features, "x")
        out = self.net(_cat(x, context))
        mu, log_std, flow_context = out.split([self.latent, self.latent, self.flow_context_features], -1)
        return mu, log_std.clamp(-8.0, 4.0), (flow_context if self.flow_context_features else None)


class BernoulliDecoder(nn.Module):
    r"""``z (+ context) -> logits``: :math:`\log p(x|z) = \sum_d x_d\log\pi_d + (1-x_d)\log(1-\pi_d)` for binary x.

    :math:`\pi = \mathrm{sigmoid}(\text{net}(z))`; ``mean(z)`` returns :math:`\pi`.

    Example:
        >>> import torch, flowbook
        >>> dec = flowbook.BernoulliDecoder(2, 64)
        >>> z = torch.randn(3, 2)
        >>> dec.log_prob(torch.ones(3, 64), z).shape, dec.mean(z).shape
        (torch.Size([3]), torch.Size([3, 64]))
    """

    def __init__(self, latent: int, features: int, hidden: int = 128, depth: int = 2,
                 context_features: int = 0):
        super().__init__()
        self.latent, self.features = check_dim(latent, "latent"), check_dim(features, "features")
        self.context_features = check_count(context_features, "context_features")
        self.net = mlp(self.latent + self.context_features, self.features, hidden, depth, zero_init=False)

    def log_prob(self, x, z, context=None):
        r""":math:`\log p(x|z)` of binary rows ``x``; any other value raises ``ValueError`` (not a probability)."""
        if not ((x == 0) | (x == 1)).all():
            raise ValueError(f"BernoulliDecoder: x must be binary (entries 0 or 1), the support of a Bernoulli "
                             f"likelihood, got values from {x.min().item():g} to {x.max().item():g}; binarize it "
                             "(e.g. (x > 8).float() for the 0..16 digits) or use a GaussianDecoder")
        return -F.binary_cross_entropy_with_logits(self.net(_cat(z, context)), x, reduction="none").sum(-1)

    def mean(self, z, context=None):
        return torch.sigmoid(self.net(_cat(z, context)))


class GaussianDecoder(nn.Module):
    r"""``z (+ context) -> mean``: :math:`p(x|z) = \mathcal N(x;\ m(z), \mathrm{diag}\,s^2)`, one ``log_std`` per feature.

    ``depth=0`` makes :math:`m(z) = Wz + b` (the linear-Gaussian model). The standard deviation
    :math:`s` starts at ``std``; it is learned unless ``learn_std=False`` keeps it fixed.

    Example:
        >>> import torch, flowbook
        >>> dec = flowbook.GaussianDecoder(2, 5, depth=0, std=0.5, learn_std=False)
        >>> dec.log_prob(torch.zeros(3, 5), torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(self, latent: int, features: int, hidden: int = 128, depth: int = 2,
                 context_features: int = 0, std: float = 1.0, learn_std: bool = True):
        super().__init__()
        self.latent, self.features = check_dim(latent, "latent"), check_dim(features, "features")
        self.context_features = check_count(context_features, "context_features")
        self.net = mlp(self.latent + self.context_features, self.features, hidden, depth, zero_init=False)
        log_std = torch.full((self.features,), math.log(check_positive(std, "std")))
        if learn_std:
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)

    def log_prob(self, x, z, context=None):
        return gaussian_log_prob(x, self.net(_cat(z, context)), self.log_std)

    def mean(self, z, context=None):
        return self.net(_cat(z, context))
