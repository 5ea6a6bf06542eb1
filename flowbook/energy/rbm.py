r"""The restricted Boltzmann machine: binary visible units ``v``, binary hidden units ``h``.

.. math::
    E(v, h) = -v^\top W h - b^\top v - c^\top h, \qquad P(v, h) = e^{-E(v, h)}/Z.

No visible-visible or hidden-hidden weights, so each layer is conditionally independent given
the other, :math:`P(h_j = 1\mid v) = \sigma(c_j + (v^\top W)_j)` and
:math:`P(v_i = 1\mid h) = \sigma(b_i + (W h)_i)`, and a whole layer is sampled at once
(block Gibbs). Summing out ``h`` gives the free energy
:math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + (v^\top W)_j)`, with
:math:`\log P(v) = -F(v) - \log Z`. ``Z`` is exact when the smaller layer has at most 20 units;
annealed importance sampling (``ais_log_partition``) estimates it otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..batches import batch_stream
from ..engine import History, check_optimizer, check_schedule, optimize
from ..validation import check_count, check_dim
from .boltzmann import MAX_ENUM, bernoulli, check_binary, state_chunks

__all__ = ["RBM", "RBMHistory"]


@dataclass(repr=False)
class RBMHistory(History):
    """``RBM.fit``'s history: ``train_loss`` is the free-energy gap minimized (its gradient is CD's, its
    value no likelihood); ``reconstruction`` the per-step reconstruction error, which ``plot()`` draws."""

    reconstruction: list = field(default_factory=list)

    def curve(self) -> tuple[list, str, str]:
        return self.reconstruction, "reconstruction error", "mean squared reconstruction error"


class RBM(nn.Module):
    r"""Restricted Boltzmann machine with ``features`` visible and ``hidden`` hidden units.

    Parameters: ``weight`` (features, hidden), ``visible_bias`` b, ``hidden_bias`` c.

    Example:
        >>> import torch, flowbook
        >>> _ = torch.manual_seed(0)
        >>> rbm = flowbook.RBM(6, 3).randomize(0.5)
        >>> v = (torch.rand(4, 6) < 0.5).float()
        >>> rbm.log_prob(v).shape  # exact: sums over the 2^3 hidden states
        torch.Size([4])
        >>> round(rbm.log_partition().item(), 4) == round(rbm.log_partition(over="visible").item(), 4)
        True
    """

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.features = check_dim(features, "features")
        self.hidden = check_dim(hidden, "hidden")
        # small random weights break the symmetry between hidden units (zero stays zero under CD)
        self.weight = nn.Parameter(0.01 * torch.randn(self.features, self.hidden))
        self.visible_bias = nn.Parameter(torch.zeros(self.features))
        self.hidden_bias = nn.Parameter(torch.zeros(self.hidden))

    @torch.no_grad()
    def randomize(self, scale: float = 0.1, generator: torch.Generator | None = None):
        """Fill all parameters with Gaussian values of std ``scale`` (biases too)."""
        for p in self.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
        return self

    # -- energies and conditionals -------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Joint energy :math:`E(v, h)` of each row pair, shape ``(batch,)``."""
        return -((v @ self.weight) * h).sum(1) - v @ self.visible_bias - h @ self.hidden_bias

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`F(v) = -\\log \\sum_h e^{-E(v,h)}`, shape ``(batch,)``."""
        v = check_binary(v, self.features, "v", self.weight.dtype)
        return -v @ self.visible_bias - F.softplus(v @ self.weight + self.hidden_bias).sum(1)

    def p_h(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`P(h_j = 1 \\mid v)` for every hidden unit, shape ``(batch, hidden)``."""
        return torch.sigmoid(v @ self.weight + self.hidden_bias)

    def p_v(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`P(v_i = 1 \\mid h)` for every visible unit, shape ``(batch, features)``."""
        return torch.sigmoid(h @ self.weight.T + self.visible_bias)

    @torch.no_grad()
    def gibbs(self, v: torch.Tensor, sweeps: int = 1, generator=None) -> torch.Tensor:
        """``sweeps`` rounds of block Gibbs sampling v -> h -> v, from the rows of ``v``."""
        v = check_binary(v, self.features, "v", self.weight.dtype)
        for _ in range(check_count(sweeps, "sweeps")):
            v = bernoulli(self.p_v(bernoulli(self.p_h(v), generator)), generator)
        return v

    @torch.no_grad()
    def sample(self, n: int, sweeps: int = 1000, generator=None) -> torch.Tensor:
        """``n`` approximate samples: ``sweeps`` block-Gibbs rounds from uniform random v."""
        v0 = bernoulli(self.weight.new_full((check_count(n, "n"), self.features), 0.5), generator)
        return self.gibbs(v0, sweeps, generator)

    # -- exact normalization -------------------------------------------------------------------
    def _smaller(self, over: str | None) -> str:
        if over is None:
            over = "hidden" if self.hidden <= self.features else "visible"
        if over not in ("hidden", "visible"):
            raise ValueError(f"over must be 'hidden', 'visible' or None, got {over!r}")
        n = self.hidden if over == "hidden" else self.features
        if n > MAX_ENUM:
            raise ValueError(f"the {over} layer's {n} units are too many to sum over its 2^{n} states "
                             f"(exact log Z needs a layer with <= {MAX_ENUM} units); "
                             "use ais_log_partition() for an estimate")
        return over

    def _enumerate(self, over):
        """Yield (states of layer ``over``, their unnormalized log-marginal, E[other layer | states])."""
        for s in state_chunks(self.hidden if over == "hidden" else self.features, self.weight):
            if over == "hidden":
                a = s @ self.weight.T + self.visible_bias
                yield s, s @ self.hidden_bias + F.softplus(a).sum(1), torch.sigmoid(a)
            else:
                yield s, -self.free_energy(s), self.p_h(s)

    def log_partition(self, over: str | None = None) -> torch.Tensor:
        """Exact :math:`\\log Z`, summing over the smaller layer (or the one named by ``over``)."""
        over = self._smaller(over)
        return torch.logsumexp(torch.stack([torch.logsumexp(lp, 0) for _, lp, _ in self._enumerate(over)]), 0)

    def log_prob(self, v: torch.Tensor, log_z: torch.Tensor | None = None) -> torch.Tensor:
        """Exact :math:`\\log P(v) = -F(v) - \\log Z` (pass ``log_z`` to reuse a computed one)."""
        return -self.free_energy(v) - (self.log_partition() if log_z is None else log_z)

    @torch.no_grad()
    def exact_grad(self, data: torch.Tensor) -> dict:
        """Exact mean log-likelihood gradient: <v h^T>_data - <v h^T>_model (and the biases)."""
        data = check_binary(data, self.features, "data", self.weight.dtype)
        over = self._smaller(None)
        log_z = self.log_partition(over)
        vh, ev, eh = self.weight.new_zeros(self.weight.shape), 0.0, 0.0
        for s, lp, m in self._enumerate(over):
            p = (lp - log_z).exp()
            v, h = (m, s) if over == "hidden" else (s, m)
            vh, ev, eh = vh + (v * p[:, None]).T @ h, ev + p @ v, eh + p @ h
        ph = self.p_h(data)
        return {"weight": data.T @ ph / len(data) - vh, "visible_bias": data.mean(0) - ev,
                "hidden_bias": ph.mean(0) - eh}

    # -- contrastive divergence ----------------------------------------------------------------
    @torch.no_grad()
    def cd_grad(self, data: torch.Tensor, k: int = 1,
                chains: torch.Tensor | None = None, generator=None) -> dict:
        """CD-k gradient estimate; with ``chains`` (persistent CD) the negative phase continues them.

        Positive phase: <v P(h|v)^T> over the data. Negative phase: the same after ``k`` block
        Gibbs steps started at the data (CD) or at the persistent ``chains`` (PCD).
        """
        data = check_binary(data, self.features, "data", self.weight.dtype)
        k = check_count(k, "k", 1)
        neg = self.gibbs(data if chains is None else chains, k, generator)
        ph, nh = self.p_h(data), self.p_h(neg)
        return {"weight": data.T @ ph / len(data) - neg.T @ nh / len(neg),
                "visible_bias": data.mean(0) - neg.mean(0),
                "hidden_bias": ph.mean(0) - nh.mean(0), "chains": neg}

    def fit(self, data: torch.Tensor, *, steps: int | None = None, epochs: int | None = None,
            batch_size: int = 100, lr: float = 0.01, clip_grad: float | None = None, threads: int | None = None,
            progress: bool = True, val_data=None, eval_every: int = 50, patience: int | None = None,
            generator=None, k: int = 1, persistent: bool = False) -> RBMHistory:
        """Train by (persistent) contrastive divergence with Adam (``flowbook.engine.optimize``); return the history.

        Each step takes a minibatch (the data shuffled once per epoch), runs ``k`` block-Gibbs
        sweeps from it (CD-k) or from the persistent chains (PCD), and minimizes the free-energy
        gap ``F(batch).mean() - F(negatives).mean()``, whose gradient is minus ``cd_grad``. Its
        value is not the likelihood (CD never computes it); ``history.reconstruction`` records the
        mean squared error of a one-step reconstruction, a rough progress signal (its ``plot``).
        With ``val_data`` the exact validation NLL (needs a layer of at most 20 units) is watched
        and the best parameters kept. The other arguments are ``fit``'s.
        """
        data = check_binary(data, self.features, "data", self.weight.dtype)
        steps, epochs = check_schedule(steps, epochs)
        k, eval_every = check_count(k, "k", 1), check_count(eval_every, "eval_every", 1)
        lr, _, clip_grad = check_optimizer(lr, 0.0, clip_grad)
        if patience is not None:
            patience = check_count(patience, "patience", 1)
            if val_data is None:
                raise ValueError("patience needs val_data: early stopping watches the validation loss")
        batches, steps = batch_stream(data, (self.features,), self.weight.dtype, self.weight.device, steps=steps,
                                      epochs=epochs, batch_size=batch_size, generator=generator)
        chains = self.sample(check_count(batch_size, "batch_size", 1), sweeps=0, generator=generator) \
            if persistent else None

        def cd_loss(batch):
            nonlocal chains
            v = batch[0]
            negatives = self.gibbs(v if chains is None else chains, k, generator)
            if persistent:
                chains = negatives
            with torch.no_grad():
                reconstruction = (self.p_v(self.p_h(v)) - v).pow(2).mean()
            return self.free_energy(v).mean() - self.free_energy(negatives).mean(), {"reconstruction": reconstruction}

        validate = None
        if val_data is not None:
            val_data = check_binary(val_data, self.features, "val_data", self.weight.dtype).to(self.weight.device)
            self._smaller(None)  # an exact log Z must exist: refuse now, not at the first evaluation
            validate = lambda: -self.log_prob(val_data).mean().item()  # noqa: E731
        return optimize(self, cd_loss, batches, steps, lr=lr, clip_grad=clip_grad, threads=threads, progress=progress,
                        validate=validate, eval_every=eval_every, patience=patience,
                        history=RBMHistory(loss_name="free-energy gap F(data) - F(samples)"),
                        desc="PCD" if persistent else f"CD-{k}")

    # -- annealed importance sampling ----------------------------------------------------------
    @torch.no_grad()
    def ais_log_partition(self, chains: int = 100, betas: int = 1000, base_bias=None, generator=None):
        r"""Annealed importance sampling estimate of :math:`\log Z` (any size); returns (estimate, std err).

        Anneals from a base model with no weights and visible biases ``base_bias`` (default 0:
        uniform), :math:`\log Z_0 = \sum_i \operatorname{softplus}(b^0_i) + n_h \log 2`, to this
        RBM through the parameters scaled by :math:`\beta \in [0, 1]`, one block-Gibbs step per
        :math:`\beta`. The estimate of Z is unbiased, so the one of log Z is biased low on average.
        ``betas >= 2`` (the path needs its two ends: with one temperature nothing is annealed and
        the base model's log Z would come back with a standard error of 0) and ``chains >= 2``.
        """
        chains, betas = check_count(chains, "chains", 2), check_count(betas, "betas", 2)
        if base_bias is not None and getattr(base_bias, "shape", None) != (self.features,):
            raise ValueError(f"base_bias must have shape ({self.features},), got {getattr(base_bias, 'shape', base_bias)}")
        base = self.visible_bias.new_zeros(self.features) if base_bias is None else base_bias.to(self.weight)
        bs = torch.linspace(0, 1, betas, dtype=self.weight.dtype)
        v = bernoulli(torch.sigmoid(base).expand(chains, -1).contiguous(), generator)
        log_w = self.weight.new_zeros(chains)
        for b0, b1 in zip(bs[:-1].tolist(), bs[1:].tolist()):
            log_w += self._log_pstar_rows(v, b1, base) - self._log_pstar_rows(v, b0, base)
            h = bernoulli(torch.sigmoid(b1 * (v @ self.weight + self.hidden_bias)), generator)
            v = bernoulli(torch.sigmoid((1 - b1) * base + b1 * (h @ self.weight.T + self.visible_bias)), generator)
        log_z0 = F.softplus(base).sum() + self.hidden * math.log(2)
        est = torch.logsumexp(log_w, 0) - math.log(chains) + log_z0
        # delta-method standard error of log(mean w)
        w = (log_w - log_w.max()).exp()
        return est, (w.std() / (w.mean() * math.sqrt(chains))).item()

    def _log_pstar_rows(self, v, beta, base_bias):
        return v @ ((1 - beta) * base_bias + beta * self.visible_bias) + \
            F.softplus(beta * (v @ self.weight + self.hidden_bias)).sum(1)
