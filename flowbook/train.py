r"""Maximum-likelihood training (forward KL) with validation and early stopping.

Minimizing the average negative log-likelihood of data is minimizing
:math:`\mathrm{KL}(p_\text{data}\,\|\,p_\theta)` up to the (constant) data entropy.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .data import Density2D
from .utils import check_features, check_finite

__all__ = ["fit", "History"]


@dataclass
class History:
    """What ``fit`` recorded: losses per step, validation losses, the step kept, the time taken."""

    train_loss: list = field(default_factory=list)
    val_step: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_step: int | None = None
    best_val: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def final_train(self) -> float:
        """Mean training loss over the last 50 steps (less noisy than the last one)."""
        tail = self.train_loss[-50:]
        return sum(tail) / len(tail)


def _check_data(data, dim, name):
    if isinstance(data, Density2D):
        if dim != 2:
            raise ValueError(f"{name} is a 2-D density but the flow has dim {dim}")
        return data
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a flowbook.data.Density2D, got {type(data).__name__}")
    check_features(data, dim, name)
    check_finite(data, name)
    if len(data) == 0:
        raise ValueError(f"{name} is empty; expected at least one row")
    return data


def fit(flow, data, *, steps: int = 1000, batch_size: int = 256, lr: float = 1e-3,
        weight_decay: float = 0.0, val_data=None, eval_every: int = 50, patience: int | None = None,
        transform_batch=None, context=None, val_context=None, clip_grad: float | None = 10.0,
        progress: bool = True, generator: torch.Generator | None = None) -> History:
    r"""Train ``flow`` by maximum likelihood with Adam; return a ``History``.

    Args:
        flow: a ``flowbook.Flow`` (anything with ``log_prob(x, context)`` and ``parameters()``).
        data: a ``(n, dim)`` tensor (minibatches drawn with replacement), or a ``Density2D``
            (a fresh sample every step: unlimited data).
        steps: number of optimizer steps.
        val_data: optional validation tensor; its mean NLL is computed every ``eval_every``
            steps, and the parameters with the best validation loss are restored at the end.
        patience: stop after this many evaluations without improvement (``None``: never).
        transform_batch: optional function applied to each training batch (e.g. dequantization).
            ``val_data`` is used as given, so dequantize it once beforehand.
        context, val_context: per-row conditioning tensors for conditional flows.
        clip_grad: clip the gradient norm (``None`` to disable).
        progress: show a ``tqdm`` bar.

    Example:
        >>> import flowbook
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.LULinear(2)])
        >>> hist = flowbook.fit(flow, flowbook.data.Ring(), steps=20, progress=False)
        >>> len(hist.train_loss)
        20
    """
    dim = flow.dim
    data = _check_data(data, dim, "data")
    if val_data is not None:
        val_data = _check_data(val_data, dim, "val_data")
    if context is not None and (not isinstance(data, torch.Tensor) or len(context) != len(data)):
        raise ValueError("context must have one row per row of data (a tensor)")
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    params = [p for p in flow.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    dev, dtype = params[0].device, params[0].dtype  # Adam has refused an empty list already
    if isinstance(data, torch.Tensor):
        data = data.to(dev, dtype)
        context = None if context is None else context.to(dev, dtype)
    hist, best_state, bad_evals = History(), None, 0
    start = time.perf_counter()
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="fit", leave=False)
    flow.train()  # evaluate_nll puts train mode back after each validation
    for step in bar:
        ctx = None
        if isinstance(data, Density2D):
            batch = data.sample(batch_size, generator).to(dev, dtype)
        else:
            idx = torch.randint(len(data), (batch_size,), generator=generator).to(dev)
            batch = data[idx]
            ctx = None if context is None else context[idx]
        if transform_batch is not None:
            batch = transform_batch(batch)
        loss = -flow.log_prob(batch, ctx).mean()
        optimizer_step(loss, opt, params, clip_grad, step, "try a smaller lr or check the data scale")
        hist.train_loss.append(loss.item())
        if val_data is not None and (step % eval_every == 0 or step == steps):
            val = evaluate_nll(flow, val_data, val_context)
            hist.val_step.append(step)
            hist.val_loss.append(val)
            if val < hist.best_val:
                hist.best_val, hist.best_step, bad_evals = val, step, 0
                best_state = copy.deepcopy(flow.state_dict())
            else:
                bad_evals += 1
                if patience is not None and bad_evals >= patience:
                    hist.stopped_early = True
                    break
            bar.set_postfix(train=f"{loss.item():.3f}", val=f"{val:.3f}")
        elif step % 25 == 0:
            bar.set_postfix(train=f"{loss.item():.3f}")
    bar.close()
    if best_state is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    hist.seconds = time.perf_counter() - start
    return hist


def optimizer_step(loss, opt, params, clip_grad, step, hint):
    """One Adam step on ``loss``; a NaN or infinite loss stops training with a clear error."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"training loss became {loss.item()} at step {step}; {hint}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad is not None:
        torch.nn.utils.clip_grad_norm_(params, clip_grad)
    opt.step()


@torch.no_grad()
def evaluate_nll(flow, x, context=None, batch_size: int = 4096) -> float:
    """Mean negative log-likelihood of ``x`` (nats), in eval mode, in batches."""
    if isinstance(x, Density2D):
        x = x.sample(10000)
    was_training = flow.training
    flow.eval()
    anchor = next(iter(flow.parameters()), None)
    if anchor is not None:
        x = x.to(anchor.device, anchor.dtype)
    total = 0.0
    for i in range(0, len(x), batch_size):
        c = None if context is None else context[i:i + batch_size].to(x.device, x.dtype)
        total += -flow.log_prob(x[i:i + batch_size], c).sum().item()
    flow.train(was_training)
    return total / len(x)
