r"""The variational autoencoder, with an optional flow in its posterior and a pluggable prior.

A VAE models :math:`p(x) = \int p(x|z)\,p(z)\,dz` and trains an encoder
:math:`q(z|x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))` by maximizing the ELBO

.. math::
    \begin{aligned}
    \mathcal L(x) &= \mathbb E_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z)) \\
    &= \log p(x) - \mathrm{KL}(q(z|x)\,\|\,p(z|x)) \le \log p(x).
    \end{aligned}

Samples are reparameterized, :math:`z = \mu + \sigma\odot\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`,
so the Monte Carlo ELBO is differentiable in the encoder's parameters.

**Flow posterior** (lecture 002). Push :math:`z_0 \sim q_0(z_0|x)` through bijections
:math:`z_t = f_t(z_{t-1})` (our ``forward`` direction, amortized by a context ``h(x)`` from the
encoder). Then :math:`\log q_T(z_T|x) = \log q_0(z_0|x) - \sum_t \log|\det \partial f_t/\partial z_{t-1}|` and

.. math:: \mathcal L(x) = \mathbb E_{q_0(z_0|x)}\Big[\log p(x|z_T) + \sum_{t=1}^T \log\Big|\det
          \frac{\partial f_t}{\partial z_{t-1}}\Big| + \log p(z_T) - \log q_0(z_0|x)\Big],

where every density is evaluated at the sample's own point: :math:`p` at :math:`z_T`, :math:`q_0` at
:math:`z_0`. The last two terms are *not* a closed-form KL between two Gaussians in :math:`z_0`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from ..core import Bijection, Compose
from ..flow import Flow
from ..distributions import StandardNormal
from ..nn import mlp
from ..transforms.autoregressive import MaskedAffineAutoregressive
from ..transforms.linear import ReversePermutation
from ..validation import check_count, check_dim, check_features, check_tensor, model_dtype

__all__ = ["GaussianEncoder", "BernoulliDecoder", "GaussianDecoder", "MixturePrior", "VampPrior",
           "ELBOTerms", "VAE", "gaussian_log_prob", "gaussian_kl", "mixture_log_prob", "mixture_sample", "posterior_iaf"]

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z, mu, log_sigma):
    """log N(z; mu, diag sigma^2), summed over the last axis (broadcasts)."""
    return -0.5 * (((z - mu) * torch.exp(-log_sigma)) ** 2 + 2 * log_sigma + _LOG_2PI).sum(-1)


def mixture_log_prob(z, mu, log_sigma):
    """log of the equal-weight mixture of the diagonal Gaussians ``(mu[k], sigma[k])`` at each row of ``z``."""
    return torch.logsumexp(gaussian_log_prob(z.unsqueeze(1), mu, log_sigma), 1) - math.log(len(mu))


def mixture_sample(mu, log_sigma, n: int):
    """``n`` draws from the equal-weight mixture of the diagonal Gaussians ``(mu[k], sigma[k])``."""
    k = torch.randint(len(mu), (n,), device=mu.device)
    return mu[k] + log_sigma[k].exp() * torch.randn_like(mu[k])


def gaussian_kl(mu, log_sigma):
    r"""Closed-form :math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2)\|\mathcal N(0, I)) = \tfrac12\sum(\mu^2+\sigma^2-1-2\log\sigma)`."""
    return 0.5 * (mu**2 + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).sum(-1)


def _cat(x, context):
    return x if context is None else torch.cat([x, context], -1)


def posterior_iaf(latent: int, n_layers: int = 2, hidden: int = 32, depth: int = 1,
                  context_features: int = 16) -> Compose:
    """An IAF posterior flow ``z_0 -> z_T`` conditioned on ``h(x)`` that is the identity when fresh.

    Reversals go between the IAF layers (each layer's first feature gets only a constant affine
    map, so the next layer must see the order reversed) and one more closes an odd count: with an
    odd number of reversals a fresh flow would permute the code, and a trained encoder's
    posterior would start from the wrong place.

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
    """``x (+ context) -> (mu, log_sigma, h)``: a diagonal Gaussian and ``h_features`` of context for a flow.

    Example:
        >>> import torch, flowbook
        >>> enc = flowbook.GaussianEncoder(64, 2, h_features=8)
        >>> [t.shape[1] for t in enc(torch.rand(5, 64))]
        [2, 2, 8]
    """

    def __init__(self, features: int, latent: int, hidden: int = 128, depth: int = 2,
                 context_features: int = 0, h_features: int = 0):
        super().__init__()
        self.features, self.latent = check_dim(features, "features"), check_dim(latent, "latent")
        self.context_features, self.h_features = int(context_features), int(h_features)
        self.net = mlp(self.features + self.context_features, 2 * self.latent + self.h_features,
                       hidden, depth, zero_init=False)

    def forward(self, x, context=None):
        check_features(x, self.features, "x")
        out = self.net(_cat(x, context))
        mu, log_sigma, h = out.split([self.latent, self.latent, self.h_features], -1)
        return mu, log_sigma.clamp(-8.0, 4.0), (h if self.h_features else None)


class BernoulliDecoder(nn.Module):
    r"""``z (+ context) -> logits``; :math:`\log p(x|z) = \sum_d x_d\log\pi_d + (1-x_d)\log(1-\pi_d)` for binary x."""

    def __init__(self, latent: int, features: int, hidden: int = 128, depth: int = 2,
                 context_features: int = 0):
        super().__init__()
        self.latent, self.features = check_dim(latent, "latent"), check_dim(features, "features")
        self.net = mlp(self.latent + int(context_features), self.features, hidden, depth,
                       zero_init=False)

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
    r"""``z (+ context) -> mean``; :math:`p(x|z) = \mathcal N(x; m(z), \mathrm{diag}\,s^2)`, one learned ``s`` per feature.

    ``depth=0`` makes ``m(z) = W z + b`` (the linear-Gaussian model); ``learn_sigma=False`` keeps
    ``s = sigma`` fixed.
    """

    def __init__(self, latent: int, features: int, hidden: int = 128, depth: int = 2,
                 context_features: int = 0, sigma: float = 1.0, learn_sigma: bool = True):
        super().__init__()
        self.latent, self.features = check_dim(latent, "latent"), check_dim(features, "features")
        self.net = mlp(self.latent + int(context_features), self.features, hidden, depth,
                       zero_init=False)
        log_s = torch.full((self.features,), math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_s)
        else:
            self.register_buffer("log_sigma", log_s)

    def log_prob(self, x, z, context=None):
        return gaussian_log_prob(x, self.net(_cat(z, context)), self.log_sigma)

    def mean(self, z, context=None):
        return self.net(_cat(z, context))


class MixturePrior(nn.Module):
    r"""A learnable mixture of ``k`` diagonal Gaussians, :math:`p(z) = \sum_k \pi_k \mathcal N(z; m_k, s_k^2)`.

    It starts close to :math:`\mathcal N(0, I)` (unit scales, means ``init_scale * randn``), so
    fitting it shows how far the optimal prior is from the standard one.

    Example:
        >>> import torch, flowbook
        >>> prior = flowbook.MixturePrior(2, k=5)
        >>> prior.log_prob(prior.sample(3)).shape
        torch.Size([3])
    """

    def __init__(self, features: int, k: int = 10, init_scale: float = 0.1):
        super().__init__()
        self.features, self.k = check_dim(features), check_dim(k, "k")
        self.means = nn.Parameter(init_scale * torch.randn(self.k, self.features))
        self.log_std = nn.Parameter(torch.zeros(self.k, self.features))
        self.logits = nn.Parameter(torch.zeros(self.k))

    def log_prob(self, z, context=None):  # context is ignored; accepted so flowbook.fit can train it
        check_features(z, self.features, "z")
        comp = gaussian_log_prob(z.unsqueeze(1), self.means, self.log_std)  # (batch, k)
        return torch.logsumexp(comp + F.log_softmax(self.logits, 0), 1)

    def sample(self, n: int):
        with torch.no_grad():
            k = torch.multinomial(F.softmax(self.logits, 0), n, replacement=True)
            return self.means[k] + self.log_std[k].exp() * torch.randn(n, self.features, device=self.means.device,
                                                                        dtype=self.means.dtype)


class VampPrior(nn.Module):
    r"""VampPrior: the encoder's posteriors at ``K`` learnable pseudo-inputs, :math:`p(z) = \frac1K\sum_k q(z|u_k)`.

    It is the aggregated posterior of a K-point "data set" ``u``, the closest cheap stand-in for
    the optimal prior :math:`q_\text{agg}`. The encoder is shared, not copied.
    """

    def __init__(self, encoder: GaussianEncoder, pseudo_inputs: torch.Tensor):
        super().__init__()
        self.encoder, self.features = encoder, encoder.latent
        self.pseudo_inputs = nn.Parameter(pseudo_inputs.detach().clone())

    def log_prob(self, z, context=None):  # context is ignored; accepted so flowbook.fit can train it
        check_features(z, self.features, "z")
        mu, log_sigma, _ = self.encoder(self.pseudo_inputs)
        return mixture_log_prob(z, mu, log_sigma)

    def sample(self, n: int):
        with torch.no_grad():
            mu, log_sigma, _ = self.encoder(self.pseudo_inputs)
            return mixture_sample(mu, log_sigma, n)


@dataclass
class ELBOTerms:
    r"""Per-example terms of the ELBO (each of shape ``(batch,)``), averaged over the samples drawn.

    ``elbo = reconstruction - kl`` and, in lecture 002's form,
    ``elbo = reconstruction + log_det - (log_q0 - log_prior)``.
    ``kl`` is :math:`\mathrm{KL}(q_T(z|x)\|p(z))`: closed form for a Gaussian posterior with a standard
    normal prior, else the Monte Carlo :math:`\log q_0(z_0|x) - \sum_t\log|\det| - \log p(z_T)`.
    """

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    log_det: torch.Tensor
    log_q0: torch.Tensor
    log_prior: torch.Tensor

    def means(self) -> dict:
        """The batch averages as plain floats."""
        return {f.name: getattr(self, f.name).mean().item() for f in fields(self)}


class VAE(nn.Module):
    r"""A VAE: encoder ``q(z|x)``, decoder ``p(x|z)``, prior ``p(z)``, optional posterior flow.

    Args:
        encoder: a ``GaussianEncoder`` (its ``h_features`` feed the flow's context).
        decoder: a ``BernoulliDecoder`` or ``GaussianDecoder``.
        prior: anything with ``features``, ``log_prob(z)`` and ``sample(n)``; default ``StandardNormal``.
        flow: optional ``Bijection`` (or ``Flow``, whose ``transform`` is used) applied as
            ``z_T, log_det = flow(z_0, context=h(x))``.

    A conditional VAE is built from an encoder and a decoder that take ``context_features``; the
    condition ``y`` is then passed as ``context`` to ``elbo``, ``log_prob`` and ``sample``.

    ``log_prob(x)`` returns the one-sample ELBO (a stochastic *lower bound*, not the exact
    log-likelihood); it exists so that ``flowbook.fit(vae, x)`` maximizes the ELBO.

    Example:
        >>> import torch, flowbook
        >>> vae = flowbook.VAE(flowbook.GaussianEncoder(64, 2), flowbook.BernoulliDecoder(2, 64))
        >>> terms = vae.elbo(torch.bernoulli(torch.full((5, 64), 0.3)))
        >>> torch.allclose(terms.elbo, terms.reconstruction - terms.kl)
        True
    """

    def __init__(self, encoder: GaussianEncoder, decoder: nn.Module, prior: nn.Module | None = None,
                 flow=None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.latent, self.features = encoder.latent, encoder.features
        self.prior = prior if prior is not None else StandardNormal(self.latent)
        if isinstance(flow, Flow):
            flow = flow.transform
        if flow is not None and not isinstance(flow, Bijection):
            raise TypeError(f"flow must be a flowbook.Bijection or Flow, got {type(flow).__name__}")
        if flow is not None and flow.features not in (None, self.latent):
            raise ValueError(f"flow works on {flow.features} features, expected latent={self.latent}")
        if getattr(self.prior, "features", self.latent) != self.latent:
            raise ValueError(f"prior has {self.prior.features} features, expected latent={self.latent}")
        self.flow = flow

    def posterior_sample(self, x, context=None, n: int = 1):
        r"""``n`` reparameterized draws per row of ``x`` (rows repeated ``n`` times).

        Returns ``(z_T, log_q0, log_det, (mu, log_sigma))``: the posterior sample, the base
        density :math:`\log q_0(z_0|x)` of its starting point, the flow's log-det (0 without a
        flow), and the encoder's Gaussian parameters.
        """
        mu, log_sigma, h = self.encoder(x, context)
        if n > 1:
            mu, log_sigma = mu.repeat_interleave(n, 0), log_sigma.repeat_interleave(n, 0)
            h = None if h is None else h.repeat_interleave(n, 0)
        eps = torch.randn_like(mu)
        z = mu + log_sigma.exp() * eps  # the reparameterization trick
        log_q0 = -0.5 * (eps**2 + 2 * log_sigma + _LOG_2PI).sum(-1)
        log_det = z.new_zeros(len(z))
        if self.flow is not None:
            z, log_det = self.flow(z, h)
        return z, log_q0, log_det, (mu, log_sigma)

    def _data(self, x, context):
        """``x`` and ``context`` checked where they enter, converted to the model's dtype when exact."""
        dtype = model_dtype(self)
        x = check_tensor(x, "x", self.features, dtype, owner="the VAE")
        if context is not None:
            context = check_tensor(context, "context", None, dtype, owner="the VAE")
            if len(context) != len(x):
                raise ValueError(f"context has {len(context)} rows, expected {len(x)}: one per row of x")
        return x, context

    def elbo(self, x, context=None, n: int = 1) -> ELBOTerms:
        """The ELBO of each row of ``x`` and its named terms, averaged over ``n`` posterior draws.

        ``x`` is checked where it enters (finite, ``(batch, features)``, converted to the model's dtype
        when exact, else ``TypeError``; binary for a ``BernoulliDecoder``); ``n`` is a count >= 1.
        """
        x, context = self._data(x, context)
        n = check_count(n, "n", 1)
        z, log_q0, log_det, (mu, log_sigma) = self.posterior_sample(x, context, n)
        xr = x.repeat_interleave(n, 0) if n > 1 else x
        cr = None if context is None else context.repeat_interleave(n, 0) if n > 1 else context
        rec = self.decoder.log_prob(xr, z, cr)
        log_prior = self.prior.log_prob(z)
        if self.flow is None and isinstance(self.prior, StandardNormal):
            kl = gaussian_kl(mu, log_sigma)  # exact: no Monte Carlo noise in this term
        else:
            kl = log_q0 - log_det - log_prior
        avg = lambda t: t.reshape(len(x), n).mean(1)
        return ELBOTerms(avg(rec - kl), avg(rec), avg(kl), avg(log_det), avg(log_q0), avg(log_prior))

    def log_prob(self, x, context=None):
        """The one-sample ELBO per row (a lower bound on log p(x)), for ``flowbook.fit``."""
        return self.elbo(x, context).elbo

    @torch.no_grad()
    def log_marginal(self, x, context=None, n: int = 100):
        r"""Importance-weighted estimate :math:`\log\frac1n\sum_j p(x, z_j)/q(z_j|x)`, ``z_j ~ q``.

        A lower bound on :math:`\log p(x)` that tightens as ``n`` grows; with ``n=1`` it is the ELBO.
        """
        x, context = self._data(x, context)
        n = check_count(n, "n", 1)
        z, log_q0, log_det, _ = self.posterior_sample(x, context, n)
        xr, cr = x.repeat_interleave(n, 0), None if context is None else context.repeat_interleave(n, 0)
        log_w = self.decoder.log_prob(xr, z, cr) + self.prior.log_prob(z) - (log_q0 - log_det)
        return torch.logsumexp(log_w.reshape(len(x), n), 1) - math.log(n)

    @torch.no_grad()
    def sample(self, n: int, context=None):
        """Decoder means at ``n`` prior draws (images look better as means than as Bernoulli noise)."""
        z = self.prior.sample(check_count(n, "n"))
        return self.decoder.mean(z, None if context is None else context.expand(n, -1))
