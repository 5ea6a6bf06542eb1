r"""Fitting a flow to an unnormalized density by reverse KL (variational inference).

With a target :math:`p(x) = \tilde p(x)/Z` known only through :math:`\log\tilde p`, and the flow's
:math:`q_\theta`,

.. math:: \mathrm{KL}(q_\theta\,\|\,p) = \mathbb E_{q_\theta}[\log q_\theta(x) - \log\tilde p(x)] + \log Z,

so maximizing the ELBO :math:`\mathcal L(\theta) = \mathbb E_{q_\theta}[\log\tilde p(x) - \log q_\theta(x)]
= \log Z - \mathrm{KL}(q_\theta\|p) \le \log Z` minimizes the reverse KL without knowing Z.
The expectation is over the flow's own samples :math:`x = g_\theta(z)`, :math:`z \sim p_Z`, and
:math:`\log q_\theta(x) = \log p_Z(z) - \log|\det \partial x/\partial z|`: only the forward
(sampling) direction is needed, so flows without an inverse (planar) train this way.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .engine import CLIP_GRAD, History, check_optimizer, check_schedule, optimize, tail_mean
from .validation import check_count, check_tensor, model_dtype

__all__ = ["fit_reverse_kl", "evaluate_elbo", "ReverseKLHistory", "ELBOEstimate"]


@dataclass(repr=False)
class ReverseKLHistory(History):
    """``train_loss`` is the loss optimized (with annealing, ``E[log q - beta log p~]``);
    ``elbo`` the ELBO of each step's batch, a lower bound on log Z. ``plot()`` draws the ELBO."""

    elbo: list = field(default_factory=list)

    @property
    def final_elbo(self) -> float:
        """Mean ELBO over the last 50 steps (a noisy lower bound on log Z; see ``evaluate_elbo``)."""
        return tail_mean(self.elbo)

    def summary(self) -> list[str]:
        return [f"steps={self.steps}", f"final_elbo={self.final_elbo:.3f}"]

    def curve(self) -> tuple[list, str, str]:
        return self.elbo, "ELBO", "ELBO (nats), a lower bound on log Z"


class ELBOEstimate(NamedTuple):
    elbo: float      #: mean of log p~ - log q over the samples (<= log Z in expectation)
    stderr: float    #: its Monte Carlo standard error
    iw_log_z: float  #: log mean exp(log p~ - log q): importance-weighted, tighter, still <= log Z in expectation


def _log_density(target):
    """The function ``log p~(x[, context])`` of a target object or callable."""
    for name in ("log_unnormalized", "log_prob"):
        if hasattr(target, name):
            return getattr(target, name)
    if callable(target):
        return target
    raise TypeError("target must have log_unnormalized(x) or log_prob(x), or be a callable; "
                    f"got {type(target).__name__}")


def _target_values(log_p, x, context):
    """``log p~(x[, context])``, checked to be one value per sample (Python only: a shape check)."""
    lp = log_p(x) if context is None else log_p(x, context)
    if not isinstance(lp, torch.Tensor):
        raise TypeError(f"the target's log-density must return a tensor of shape ({len(x)},), one value per "
                        f"sample, got {type(lp).__name__}")
    if lp.shape != (len(x),):
        fix = "; drop the last axis (e.g. .squeeze(-1) or .sum(-1))" if lp.dim() == 2 and lp.shape[0] == len(x) else ""
        raise ValueError(f"the target's log-density must return shape (n,) = ({len(x)},), one value per sample, "
                         f"got {tuple(lp.shape)}{fix}")
    return lp


def _batches(context, n, like, generator, anneal_steps):
    """Endless ``(beta, context)`` per step: the annealing's inverse temperature and ``n`` context rows.

    ``context`` is ``None``, a function of n, or a tensor whose rows are drawn at random.
    """
    for step in itertools.count(1):
        beta = min(1.0, 0.01 + step / anneal_steps) if anneal_steps > 0 else 1.0
        if context is None:
            yield beta, None
        else:
            c = context(n) if callable(context) else context[torch.randint(len(context), (n,), generator=generator)]
            yield beta, c.to(like.device, like.dtype)


def _sampler(flow) -> None:
    """``TypeError`` unless ``flow`` has ``sample_and_log_prob`` (what reverse KL draws from)."""
    if not callable(getattr(flow, "sample_and_log_prob", None)):
        raise TypeError(f"flow must have sample_and_log_prob(n) (a flowbook.Flow), got {type(flow).__name__}")


def _anchor(flow):
    p = next(iter(flow.parameters()), None)
    return p if p is not None else torch.zeros(())


def fit_reverse_kl(flow, target, *, steps: int | None = None, batch_size: int = 256, lr: float = 1e-3,
                   clip_grad: float | None = CLIP_GRAD, threads: int | None = None, progress: bool = True,
                   generator: torch.Generator | None = None, anneal_steps: int = 0, context=None,
                   epochs=None, val_data=None, patience=None) -> ReverseKLHistory:
    r"""Maximize the ELBO :math:`\mathbb E_q[\log\tilde p - \log q]` of ``flow`` with Adam.

    Args:
        flow: a ``flowbook.Flow``; only ``sample_and_log_prob`` is called (no inverse needed).
        target: an object with ``log_unnormalized(x)`` (or ``log_prob(x)``), or such a function.
            With ``context`` it is called as ``log_unnormalized(x, context)``.
        steps, batch_size, lr: optimizer steps (default 1000), samples per step, Adam learning rate.
        clip_grad, threads, progress: as in ``fit``.
        generator: draws the context rows from a context tensor (the flow's own samples use
            torch's global generator: seed with ``flowbook.seed``).
        anneal_steps: if > 0, the target's log-density is scaled by an inverse temperature
            rising linearly from 0.01 to 1 over these steps (Rezende & Mohamed's annealing),
            which lets the flow spread out before the target's fine structure pulls it in.
        context: for conditional flows and targets, a function ``n -> (n, c)`` tensor, or a
            tensor whose rows are drawn at random; each sample gets its own context row.
        epochs, val_data, patience: refused (``ValueError``): the flow learns from its own
            samples, so there is no data set to pass over or hold out.

    Returns:
        a ``ReverseKLHistory``; ``final_elbo`` is the ELBO-style lower bound on :math:`\log Z`.

    Example:
        >>> import flowbook
        >>> from flowbook.targets import U1
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Planar(2) for _ in range(4)])
        >>> hist = flowbook.fit_reverse_kl(flow, U1(), steps=20, batch_size=64, progress=False)
        >>> len(hist.elbo), hist.final_elbo < U1().log_normalizer() + 0.5
        (20, True)
    """
    for name, value in (("epochs", epochs), ("val_data", val_data), ("patience", patience)):
        if value is not None:
            raise ValueError(f"fit_reverse_kl takes no {name}: the flow learns from its own samples, so there is "
                             "no data set to pass over or hold out; give steps= (and watch hist.elbo)")
    steps, _ = check_schedule(steps, None)
    batch_size, anneal_steps = check_count(batch_size, "batch_size", 1), check_count(anneal_steps, "anneal_steps")
    lr, _, clip_grad = check_optimizer(lr, 0.0, clip_grad)
    _sampler(flow)
    log_p = _log_density(target)
    if isinstance(context, torch.Tensor):
        context = check_tensor(context, "context", None, model_dtype(flow))
        if len(context) == 0:
            raise ValueError("context has 0 rows; give at least one row to draw the samples' contexts from")
    elif context is not None and not callable(context):
        raise TypeError(f"context must be None, a tensor of context rows or a function n -> (n, c) tensor, "
                        f"got {type(context).__name__}")
    anchor = _anchor(flow)

    last = {}  # the terms of the latest step, for the diagnosis of a non-finite loss

    def negative_elbo(batch):
        beta, ctx = batch
        x, log_q = flow.sample_and_log_prob(batch_size, context=ctx)
        lp = _target_values(log_p, x, ctx)
        last.update(x=x, log_q=log_q, lp=lp)
        return (log_q - beta * lp).mean(), {"elbo": (lp - log_q).detach().mean()}

    return optimize(flow, negative_elbo, _batches(context, batch_size, anchor, generator, anneal_steps), steps, lr=lr,
                    clip_grad=clip_grad, threads=threads, progress=progress,
                    history=ReverseKLHistory(loss_name="E[log q - log p~] (nats)"),
                    diagnose=lambda batch: _which_side(**last),
                    hint="try a smaller lr, clip_grad or annealing (anneal_steps=)", desc="reverse KL")


def _which_side(x, log_q, lp):
    """Which term of a non-finite reverse-KL loss is to blame, in words (parameters are checked before)."""
    if not torch.isfinite(x).all() or not torch.isfinite(log_q).all():
        return "the flow's samples or their log-density log q (sample_and_log_prob) are not finite"
    if not torch.isfinite(lp).all():
        return ("the target's log-density is NaN or infinite at some of the flow's samples "
                "(is it defined on all of R^D? -inf where it is zero? NaN in the target itself?)")
    return None


@torch.no_grad()
def evaluate_elbo(flow, target, n: int = 20000, context=None) -> ELBOEstimate:
    r"""Monte Carlo ELBO, its standard error, and the importance-weighted bound on :math:`\log Z`.

    ``context`` is a single ``(c,)`` or ``(1, c)`` context shared by all ``n`` samples, or ``n`` rows.
    The target must return one value per sample, shape ``(n,)`` (``ValueError`` otherwise, also in
    ``fit_reverse_kl``); a NaN among the weights raises ``ValueError`` naming the side it comes
    from, while ``-inf`` (samples where the target is zero) gives the ELBO ``-inf``.

    Example:
        >>> import flowbook
        >>> from flowbook.targets import Bimodal
        >>> flowbook.seed(0)
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2)])
        >>> est = flowbook.evaluate_elbo(flow, Bimodal(), n=100000)
        >>> est.elbo < est.iw_log_z < 0.1   # log Z = 0 for this normalized target
        True
    """
    n = check_count(n, "n", 2)  # a standard error needs two samples
    _sampler(flow)
    log_p = _log_density(target)
    anchor = _anchor(flow)
    if context is not None:
        context = torch.as_tensor(context).to(anchor.device, anchor.dtype)
        context = context.reshape(1, -1).expand(n, -1) if context.dim() == 1 or len(context) == 1 else context
    x, log_q = flow.sample_and_log_prob(n, context=context)
    lp = _target_values(log_p, x, context)
    w = lp - log_q
    if torch.isnan(w).any():             # -inf (a zero target) is right, NaN is not
        raise ValueError(f"evaluate_elbo: {_which_side(x, log_q, lp) or 'log p~ - log q is NaN'}")
    elbo = w.mean().item()               # -inf where the target is 0
    stderr = (w.std() / math.sqrt(n)).item() if math.isfinite(elbo) else math.inf
    return ELBOEstimate(elbo, stderr, (torch.logsumexp(w, 0) - math.log(n)).item())
