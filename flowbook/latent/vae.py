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

The encoder, decoders and the Gaussian KL live in ``flowbook.latent.networks``; the priors are
``StandardNormal`` (default), ``MixtureBase`` (a learnable Gaussian mixture) and ``VampPrior``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from ..core import Bijection
from ..distributions import _LOG_2PI, StandardNormal, mixture_log_prob, mixture_rsample
from ..flow import Flow
from ..validation import check_context, check_count, check_features, check_tensor, model_dtype
from .networks import GaussianEncoder, gaussian_kl

__all__ = ["VampPrior", "ELBOTerms", "VAE"]


class VampPrior(nn.Module):
    r"""VampPrior: the encoder's posteriors at ``K`` learnable pseudo-inputs, :math:`p(z) = \frac1K\sum_k q(z|u_k)`.

    It is the aggregated posterior of a K-point "data set" ``u``, the closest cheap stand-in for
    the optimal prior :math:`q_\text{agg}`: an equal-weight mixture of diagonal Gaussians whose
    means and log standard deviations are the encoder's outputs at ``u``
    (``flowbook.distributions.mixture_log_prob``). The encoder is shared, not copied.

    Example:
        >>> import torch, flowbook
        >>> enc = flowbook.GaussianEncoder(4, 2)
        >>> prior = flowbook.VampPrior(enc, torch.rand(5, 4))
        >>> prior.log_prob(prior.sample(3)).shape
        torch.Size([3])
    """

    def __init__(self, encoder: GaussianEncoder, pseudo_inputs: torch.Tensor):
        super().__init__()
        if getattr(encoder, "context_features", 0):
            raise ValueError("VampPrior needs an unconditional encoder (context_features=0): its pseudo-inputs "
                             f"have no condition, got context_features={encoder.context_features}")
        self.encoder, self.features = encoder, encoder.latent
        pseudo_inputs = check_tensor(pseudo_inputs, "pseudo_inputs", encoder.features)
        self.pseudo_inputs = nn.Parameter(pseudo_inputs.detach().clone())

    def log_prob(self, z):
        check_features(z, self.features, "z")
        mu, log_std, _ = self.encoder(self.pseudo_inputs)
        return mixture_log_prob(z, mu, log_std)

    def sample(self, n: int):
        with torch.no_grad():
            mu, log_std, _ = self.encoder(self.pseudo_inputs)
            return mixture_rsample(n, mu, log_std)


@dataclass
class ELBOTerms:
    r"""Per-example terms of the ELBO (each of shape ``(batch,)``), averaged over the samples drawn.

    ``elbo = reconstruction - kl`` and, in lecture 002's form,
    ``elbo = reconstruction + logabsdet - (log_q0 - log_prior)``, with ``logabsdet`` the flow's
    :math:`\sum_t\log|\det \partial f_t/\partial z_{t-1}|` (0 without a flow).
    ``kl`` is :math:`\mathrm{KL}(q_T(z|x)\|p(z))`: closed form for a Gaussian posterior with a standard
    normal prior, else the Monte Carlo :math:`\log q_0(z_0|x) - \sum_t\log|\det| - \log p(z_T)`.
    """

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    logabsdet: torch.Tensor
    log_q0: torch.Tensor
    log_prior: torch.Tensor

    def means(self) -> dict:
        """The batch averages as plain floats."""
        return {f.name: getattr(self, f.name).mean().item() for f in fields(self)}


class VAE(nn.Module):
    r"""A VAE: encoder ``q(z|x)``, decoder ``p(x|z)``, prior ``p(z)``, optional posterior flow.

    Args:
        encoder: a ``GaussianEncoder`` (its ``flow_context_features`` feed the flow's context).
        decoder: a ``BernoulliDecoder`` or ``GaussianDecoder``.
        prior: anything with ``features``, ``log_prob(z)`` and ``sample(n)``: ``StandardNormal``
            (the default), ``MixtureBase``, ``VampPrior``.
        flow: optional ``Bijection`` (or ``Flow``, whose ``transform`` is used) applied as
            ``z_T, logabsdet = flow(z_0, context=h(x))``.

    A conditional VAE is built from an encoder and a decoder that take ``context_features``; the
    condition ``y`` is then passed as ``context`` to ``elbo``, ``log_prob`` and ``sample``. A
    context is needed exactly when ``context_features > 0`` (``ValueError`` otherwise, naming the
    method), and the encoder and decoder must agree on ``latent``, ``features`` and ``context_features``.

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
        for name, mine in (("latent", self.latent), ("features", self.features),
                           ("context_features", encoder.context_features)):
            if getattr(decoder, name, mine) != mine:
                raise ValueError(f"decoder has {name}={getattr(decoder, name)}, the encoder {mine}: they must agree")
        widths = {m.context_features for m in (flow.modules() if flow is not None else ())
                  if isinstance(getattr(m, "context_features", 0), int) and getattr(m, "context_features", 0) > 0}
        if widths and encoder.flow_context_features not in widths:
            raise ValueError(f"the posterior flow is conditioned on a context of width {max(widths)}, but the "
                             f"encoder emits flow_context_features={encoder.flow_context_features}; build the "
                             f"encoder with flow_context_features={max(widths)}")
        self.context_features = encoder.context_features
        self.flow = flow

    def posterior_sample(self, x, context=None, n: int = 1):
        r"""``n`` reparameterized draws per row of ``x`` (rows repeated ``n`` times).

        Returns ``(z_T, log_q0, logabsdet, (mu, log_std))``: the posterior sample, the base
        density :math:`\log q_0(z_0|x)` of its starting point, the flow's log-det (0 without a
        flow), and the encoder's Gaussian parameters.
        """
        mu, log_std, h = self.encoder(x, context)
        if n > 1:
            mu, log_std = mu.repeat_interleave(n, 0), log_std.repeat_interleave(n, 0)
            h = None if h is None else h.repeat_interleave(n, 0)
        eps = torch.randn_like(mu)
        z = mu + log_std.exp() * eps  # the reparameterization trick
        log_q0 = -0.5 * (eps**2 + 2 * log_std + _LOG_2PI).sum(-1)
        logabsdet = z.new_zeros(len(z))
        if self.flow is not None:
            z, logabsdet = self.flow(z, h)
        return z, log_q0, logabsdet, (mu, log_std)

    def _data(self, x, context, method="elbo"):
        """``x`` and ``context`` checked where they enter, converted to the model's dtype when exact."""
        dtype = model_dtype(self)
        check_context(context, self.context_features, "the VAE", method)
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
        z, log_q0, logabsdet, (mu, log_std) = self.posterior_sample(x, context, n)
        xr = x.repeat_interleave(n, 0) if n > 1 else x
        cr = None if context is None else context.repeat_interleave(n, 0) if n > 1 else context
        rec = self.decoder.log_prob(xr, z, cr)
        log_prior = self.prior.log_prob(z)
        if self.flow is None and isinstance(self.prior, StandardNormal):
            kl = gaussian_kl(mu, log_std)  # exact: no Monte Carlo noise in this term
        else:
            kl = log_q0 - logabsdet - log_prior
        avg = lambda t: t.reshape(len(x), n).mean(1)
        return ELBOTerms(avg(rec - kl), avg(rec), avg(kl), avg(logabsdet), avg(log_q0), avg(log_prior))

    def log_prob(self, x, context=None):
        """The one-sample ELBO per row (a lower bound on log p(x)), for ``flowbook.fit``."""
        check_context(context, self.context_features, "the VAE", "log_prob")
        return self.elbo(x, context).elbo

    @torch.no_grad()
    def log_marginal(self, x, context=None, n: int = 100):
        r"""Importance-weighted estimate :math:`\log\frac1n\sum_j p(x, z_j)/q(z_j|x)`, ``z_j ~ q``.

        A lower bound on :math:`\log p(x)` that tightens as ``n`` grows; with ``n=1`` it is the ELBO.
        """
        x, context = self._data(x, context, "log_marginal")
        n = check_count(n, "n", 1)
        z, log_q0, logabsdet, _ = self.posterior_sample(x, context, n)
        xr, cr = x.repeat_interleave(n, 0), None if context is None else context.repeat_interleave(n, 0)
        log_w = self.decoder.log_prob(xr, z, cr) + self.prior.log_prob(z) - (log_q0 - logabsdet)
        return torch.logsumexp(log_w.reshape(len(x), n), 1) - math.log(n)

    @torch.no_grad()
    def sample(self, n: int, context=None):
        """Decoder means at ``n`` prior draws (images look better as means than as Bernoulli noise)."""
        n = check_count(n, "n")
        check_context(context, self.context_features, "the VAE", "sample", rows=n)
        if context is not None:   # one (c,) or (1, c) condition for every sample, or n rows
            context = context.reshape(1, -1) if isinstance(context, torch.Tensor) and context.dim() == 1 else context
            context = check_tensor(context, "context", self.context_features, model_dtype(self), owner="the VAE")
            if len(context) not in (1, n):
                raise ValueError(f"context has {len(context)} rows, expected 1 (shared) or n={n}")
        z = self.prior.sample(n)
        return self.decoder.mean(z, None if context is None else context.expand(n, -1))
