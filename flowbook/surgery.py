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

import math
from dataclasses import dataclass

import torch

from .distributions import StandardNormal
from .utils import check_features
from .vae import VAE, gaussian_kl, gaussian_log_prob

__all__ = ["Surgery", "elbo_surgery", "AggregatedPosterior"]


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
    n: int
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
        out.append(f"{'log n':32s} {self.log_n:10.3f}   (n = {self.n})")
        return "\n".join(out)


class AggregatedPosterior:
    r"""The exact mixture :math:`q_\text{agg}(z) = \frac1n\sum_i q(z|x_i)` of a Gaussian-posterior VAE.

    ``log_prob(z)`` costs :math:`O(n)` per point (a log-sum-exp over the data set, in chunks);
    ``sample(m)`` picks a data point uniformly and draws from its posterior.

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
        check_features(x_all, vae.dim, "x_all")
        with torch.no_grad():
            self.mu, self.log_sigma, _ = vae.encoder(x_all, context)
        self.n, self.dim = len(x_all), vae.latent

    def log_components(self, z, chunk: int = 1024):
        """``(m, n)`` matrix of :math:`\\log q(z_a|x_i)`."""
        return torch.cat([gaussian_log_prob(c.unsqueeze(1), self.mu, self.log_sigma) for c in z.split(chunk)])

    def log_prob(self, z):
        return torch.logsumexp(self.log_components(z), 1) - math.log(self.n)

    def sample(self, m: int):
        i = torch.randint(self.n, (m,), device=self.mu.device)
        return self.mu[i] + self.log_sigma[i].exp() * torch.randn_like(self.mu[i])


@torch.no_grad()
def elbo_surgery(vae: VAE, x_all: torch.Tensor, context=None, n_samples: int = 8) -> Surgery:
    r"""Estimate the ELBO-surgery terms of ``vae`` on the data set ``x_all`` (``n`` rows).

    Estimator: for every data point draw ``S = n_samples`` samples :math:`z_{is} \sim q(z|x_i)` and
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
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 to give error bars, got {n_samples}")
    was_training = vae.training
    vae.eval()
    q = AggregatedPosterior(vae, x_all, context)
    n, S = q.n, n_samples
    mu, ls = q.mu.repeat_interleave(S, 0), q.log_sigma.repeat_interleave(S, 0)
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
    stderr = {k: (v.reshape(n, S).var(1).sum() / S).sqrt().item() / n for k, v in terms.items()}
    exact = None
    if isinstance(vae.prior, StandardNormal):
        exact = gaussian_kl(q.mu, q.log_sigma).mean().item()
    vae.train(was_training)
    return Surgery(means["reconstruction"], means["mutual_info"], means["marginal_kl"], means["avg_kl"],
                   exact, means["elbo"], stderr, n, math.log(n))
