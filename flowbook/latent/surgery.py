r"""ELBO surgery (lecture 003): split a VAE's average ELBO into reconstruction, information and prior terms.

For a data set :math:`x_1..x_n`, the aggregated posterior is the mixture
:math:`q_\text{agg}(z) = \frac1n\sum_i q(z|x_i)`, and

.. math::
    \frac1n\sum_i \mathrm{KL}(q(z|x_i)\|p(z)) = \underbrace{\frac1n\sum_i\mathrm{KL}(q(z|x_i)\|q_\text{agg}(z))}_{
    \mathbb I_q[x, z]\ \in\ [0, \log n]} + \mathrm{KL}(q_\text{agg}(z)\|p(z)),

so the average ELBO is reconstruction - mutual information - marginal KL. The prior enters only
the marginal KL, which vanishes for :math:`p = q_\text{agg}`: the optimal prior is the aggregated
posterior. (:math:`\mathbb I_q \le \log n` because :math:`q_\text{agg} \ge q(\cdot|x_i)/n` pointwise.)
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from ..distributions import _LOG_2PI, StandardNormal, gaussian_log_prob, mixture_log_prob, mixture_rsample
from ..engine import optimize
from ..validation import check_features
from .networks import gaussian_kl
from .vae import VAE

__all__ = ["Surgery", "elbo_surgery", "AggregatedPosterior", "local_posterior_elbo"]


@dataclass
class Surgery:
    """What ``elbo_surgery`` measured (nats, averages over the data set) and their standard errors."""

    reconstruction: float
    mutual_info: float
    marginal_kl: float
    avg_kl: float
    avg_kl_exact: float | None
    elbo: float
    stderr: dict
    n_data: int
    log_n: float

    def __str__(self):
        se = self.stderr
        rows = [("reconstruction  E log p(x|z)", self.reconstruction, se["reconstruction"]),
                ("mutual info     I_q[x, z]", self.mutual_info, se["mutual_info"]),
                ("marginal KL     KL(q_agg||p)", self.marginal_kl, se["marginal_kl"]),
                ("average KL      MI + marginal", self.avg_kl, se["avg_kl"]),
                ("ELBO            rec - MI - mKL", self.elbo, se["elbo"])]
        out = [f"{name:32s} {v:10.3f} ± {s:.3f}" for name, v, s in rows]
        if self.avg_kl_exact is not None:
            out.append(f"{'average KL      closed form':32s} {self.avg_kl_exact:10.3f}")
        out.append(f"{'log n':32s} {self.log_n:10.3f}   (n = {self.n_data})")
        return "\n".join(out)


class AggregatedPosterior:
    r"""The exact mixture :math:`q_\text{agg}(z) = \frac1n\sum_i q(z|x_i)` of a Gaussian-posterior VAE.

    ``log_prob(z)`` costs :math:`O(n)` per point (a log-sum-exp over the data set, in chunks);
    ``sample(n)`` picks a data point uniformly and draws from its posterior.

    Example:
        >>> import torch, flowbook
        >>> vae = flowbook.VAE(flowbook.GaussianEncoder(4, 2), flowbook.BernoulliDecoder(2, 4))
        >>> q = flowbook.AggregatedPosterior(vae, torch.rand(10, 4))
        >>> q.log_prob(q.sample(3)).shape
        torch.Size([3])
    """

    def __init__(self, vae: VAE, x_all: torch.Tensor, context=None):
        if vae.flow is not None:
            raise NotImplementedError("AggregatedPosterior needs a Gaussian posterior (vae.flow is None): "
                                      "a flow posterior's density at arbitrary z needs its inverse for every x_i")
        check_features(x_all, vae.features, "x_all")
        with torch.no_grad():
            self.mu, self.log_std, _ = vae.encoder(x_all, context)
        self.n_data, self.features = len(x_all), vae.latent

    def log_prob(self, z, chunk: int = 1024):
        # in chunks of z: the (chunk, n) matrix of log q(z_a | x_i) would not fit for all z at once
        return torch.cat([mixture_log_prob(c, self.mu, self.log_std) for c in z.split(chunk)])

    def sample(self, n: int):
        return mixture_rsample(n, self.mu, self.log_std)


@torch.no_grad()
def elbo_surgery(vae: VAE, x_all: torch.Tensor, context=None,
                 n: int = 8) -> Surgery:
    r"""Estimate the ELBO-surgery terms of ``vae`` on the data set ``x_all`` (its rows are the n data points).

    Estimator: for every data point draw ``S`` = ``n`` samples :math:`z_{is} \sim q(z|x_i)` and
    average, over all ``(i, s)``, the per-sample terms

    * reconstruction :math:`\log p(x_i|z_{is})`,
    * mutual information :math:`\log q(z_{is}|x_i) - \log q_\text{agg}(z_{is})`,
    * marginal KL :math:`\log q_\text{agg}(z_{is}) - \log p(z_{is})`,

    with :math:`\log q_\text{agg}(z) = \mathrm{logsumexp}_j \log q(z|x_j) - \log n` computed *exactly*
    over the whole data set (cost :math:`O(n^2 S d)`). Sampling ``i`` uniformly and then ``z`` from
    :math:`q(z|x_i)` is sampling from :math:`q_\text{agg}`, so all three estimates are unbiased (unlike
    minibatch estimates of :math:`q_\text{agg}`). The average KL is their ``MI + marginal KL`` (it
    equals :math:`\frac1n\sum_i\log q(z_{is}|x_i)-\log p(z_{is})` sample by sample) and, with a standard
    normal prior, is also reported in closed form (``avg_kl_exact``) as an independent check.

    Error bars: the data set is fixed, so the only randomness is the draws of ``z``; draws for
    different ``i`` are independent and the standard error of a term ``t`` is
    :math:`\sqrt{\sum_i \hat s_i^2 / S}\,/\,n` with :math:`\hat s_i^2` the sample variance of
    :math:`t(z_{i1..iS})` (needs ``S >= 2``). The MI estimate never exceeds :math:`\log n`: every
    per-sample term is at most :math:`\log n`.

    Example:
        >>> import torch, flowbook
        >>> vae = flowbook.VAE(flowbook.GaussianEncoder(4, 2), flowbook.BernoulliDecoder(2, 4))
        >>> s = flowbook.elbo_surgery(vae, torch.bernoulli(torch.full((50, 4), 0.5)))
        >>> abs(s.avg_kl - s.mutual_info - s.marginal_kl) < 1e-4
        True
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 samples per data point to give error bars, got {n}")
    was_training = vae.training
    vae.eval()
    q = AggregatedPosterior(vae, x_all, context)
    n_data, S = q.n_data, n
    mu, ls = q.mu.repeat_interleave(S, 0), q.log_std.repeat_interleave(S, 0)
    z = mu + ls.exp() * torch.randn_like(mu)
    xr = x_all.repeat_interleave(S, 0)
    cr = None if context is None else context.repeat_interleave(S, 0)
    rec = vae.decoder.log_prob(xr, z, cr)
    log_q = gaussian_log_prob(z, mu, ls)
    log_agg = q.log_prob(z)
    log_p = vae.prior.log_prob(z)
    terms = {"reconstruction": rec, "mutual_info": log_q - log_agg, "marginal_kl": log_agg - log_p,
             "avg_kl": log_q - log_p, "elbo": rec - log_q + log_p}
    means = {k: v.mean().item() for k, v in terms.items()}
    stderr = {k: (v.reshape(n_data, S).var(1).sum() / S).sqrt().item() / n_data for k, v in terms.items()}
    exact = None
    if isinstance(vae.prior, StandardNormal):
        exact = gaussian_kl(q.mu, q.log_std).mean().item()
    vae.train(was_training)
    return Surgery(means["reconstruction"], means["mutual_info"], means["marginal_kl"], means["avg_kl"],
                   exact, means["elbo"], stderr, n_data, math.log(n_data))


def local_posterior_elbo(vae: VAE, x: torch.Tensor, flow=None, flow_context_features: int = 8, steps: int = 500,
                         n: int = 32, lr: float = 2e-2, eval_n: int = 2000,
                         eval_seed: int = 0) -> torch.Tensor:
    r"""ELBO of each row of ``x`` under its *own*, separately optimized posterior (no amortization).

    The inference gap splits in two (Cremer et al., *Inference Suboptimality in VAEs*, 2018):

    .. math:: \log p(x) - \mathcal L_\text{amortized}(x)
              = \underbrace{\log p(x) - \mathcal L^*(x)}_\text{approximation gap}
              + \underbrace{\mathcal L^*(x) - \mathcal L_\text{amortized}(x)}_\text{amortization gap},

    with :math:`\mathcal L^*(x)` the best ELBO the posterior *family* reaches for this x. This
    function estimates :math:`\mathcal L^*` by giving every row free parameters
    :math:`(\mu_i, \log\sigma_i)`, started at the encoder's output, and, if ``flow`` is given (a
    fresh, identity-at-init flow taking a ``flow_context_features`` context), a free context vector
    :math:`h_i` (started at 0) fed to that flow, whose own weights are shared by the rows and
    trained too. Decoder and prior stay fixed (they receive no gradient). Adam runs ``steps``
    steps on the ``n``-draw ELBO; the result is then evaluated with ``eval_n`` draws from a generator seeded with
    ``eval_seed``, so two calls with the same seed share their base noise (common random numbers)
    and their difference is less noisy than either value.

    Example:
        >>> import torch, flowbook
        >>> from flowbook.latent.surgery import local_posterior_elbo
        >>> vae = flowbook.VAE(flowbook.GaussianEncoder(4, 2), flowbook.BernoulliDecoder(2, 4))
        >>> local_posterior_elbo(vae, torch.ones(3, 4), steps=5, eval_n=10).shape
        torch.Size([3])
    """
    check_features(x, vae.features, "x")
    with torch.no_grad():
        mu0, ls0, _ = vae.encoder(x)
    mu, ls = mu0.clone().requires_grad_(), ls0.clone().requires_grad_()
    h = x.new_zeros(len(x), flow_context_features, requires_grad=True)
    params = [mu, ls] + ([h] + [p for p in flow.parameters()] if flow is not None else [])

    def elbo(k, generator=None):
        eps = torch.randn(len(x) * k, vae.latent, generator=generator, device=x.device, dtype=x.dtype)
        m, l = mu.repeat_interleave(k, 0), ls.repeat_interleave(k, 0)
        z, log_q = m + l.exp() * eps, -0.5 * (eps**2 + _LOG_2PI).sum(-1) - l.sum(-1)
        if flow is not None:
            z, logabsdet = flow(z, h.repeat_interleave(k, 0))
            log_q = log_q - logabsdet                                   # log q_T(z_T) = log q_0(z_0) - log|det|
        out = vae.decoder.log_prob(x.repeat_interleave(k, 0), z) + vae.prior.log_prob(z) - log_q
        return out.reshape(len(x), k).mean(1)

    # Adam on the free parameters only: optimize's backward(inputs=params) leaves the VAE's .grad untouched
    optimize(None, lambda _: -elbo(n).mean(), itertools.repeat(None), steps, params=params, lr=lr,
             clip_grad=None, progress=False)
    gen = torch.Generator(device=x.device).manual_seed(eval_seed)
    with torch.no_grad():
        return elbo(eval_n, gen)
