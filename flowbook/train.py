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

from .core import Compose
from .flow import Flow
from .data import Density2D
from .runtime import progress_bar, threads as use_threads
from .validation import check_count, check_positive, check_tensor, model_dtype

__all__ = ["fit", "History", "adam", "default_threads"]

# Below this many parameters a second intra-op thread gains nothing on a 2-core CPU (measured:
# RealNVP(2) 278 vs 257 steps/s, MAF(64, hidden=128) 194 vs 197) and makes training many times
# slower as soon as another process is busy (9x for RealNVP(2), 7x for MAF(64, hidden=256)).
SINGLE_THREAD_BELOW = 1_000_000


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


def _check_data(data, features, name, dtype):
    """Data where it enters ``fit``/``evaluate_nll``: finite ``(n, features)``, converted to ``dtype`` when exact."""
    if isinstance(data, Density2D):
        if features != 2:
            raise ValueError(f"{name} is a 2-D density but the flow has {features} features")
        return data
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a flowbook.data.Density2D, got {type(data).__name__}")
    data = check_tensor(data, name, features, dtype)
    if len(data) == 0:
        raise ValueError(f"{name} is empty; expected at least one row")
    return data


def _check_context(context, name, rows, data_name, dtype):
    """A per-row context tensor: finite, ``(rows, c)``, converted like the data."""
    if context is None:
        return None
    if rows is None:
        raise ValueError(f"{name} needs {data_name} as a tensor (one context row per data row)")
    context = check_tensor(context, name, None, dtype)
    if len(context) != rows:
        raise ValueError(f"{name} has {len(context)} rows, expected {rows}: one per row of {data_name}")
    return context


def _check_optimizer(lr, weight_decay, clip_grad):
    """The arguments every trainer shares: ``lr > 0``, ``weight_decay >= 0``, ``clip_grad > 0`` or None."""
    return (check_positive(lr, "lr"), check_positive(weight_decay, "weight_decay", allow_zero=True),
            check_positive(clip_grad, "clip_grad", allow_none=True))


def default_threads(model) -> int | None:
    """The intra-op thread count ``fit`` uses when not told: 1 for a small model on the CPU, else ``None``.

    ``None`` means "leave torch's setting alone": a model on a GPU, or one with at least
    ``SINGLE_THREAD_BELOW`` parameters, whose matrix products are large enough to share.

    Example:
        >>> import flowbook
        >>> flowbook.train.default_threads(flowbook.RealNVP(2))
        1
    """
    params = list(model.parameters())
    on_cpu = all(p.device.type == "cpu" for p in params)
    return 1 if on_cpu and sum(p.numel() for p in params) < SINGLE_THREAD_BELOW else None


def adam(params, lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Adam:
    """``torch.optim.Adam`` with its fused kernel where this torch has one for these tensors.

    The fused kernel updates every parameter tensor in one call instead of a Python loop of
    small operations: measured 1.2x more training steps/s for a 2-D MAF on the CPU. Older torch
    versions have no fused CPU kernel; the multi-tensor (``foreach``) one is used there.
    """
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def fit(flow, data, *, steps: int = 1000, batch_size: int = 256, lr: float = 1e-3,
        weight_decay: float = 0.0, val_data=None, eval_every: int = 50, patience: int | None = None,
        transform_batch=None, context=None, val_context=None, clip_grad: float | None = 10.0,
        threads: int | None = None, progress: bool = True, generator: torch.Generator | None = None) -> History:
    r"""Train ``flow`` by maximum likelihood with Adam; return a ``History``.

    Args:
        flow: a ``flowbook.Flow`` (anything with ``log_prob(x, context)`` and ``parameters()``).
        data: a ``(n, features)`` tensor (minibatches drawn with replacement), or a ``Density2D``
            (a fresh sample every step: unlimited data).
        steps: number of optimizer steps.
        lr: Adam's learning rate (> 0); ``weight_decay`` >= 0.
        val_data: optional validation tensor; its mean NLL is computed every ``eval_every``
            steps, and the parameters with the best validation loss are restored at the end.
        patience: stop after this many evaluations without improvement (``None``: never; needs ``val_data``).
        transform_batch: optional function applied to each training batch (e.g. dequantization).
            ``val_data`` is used as given, so dequantize it once beforehand.
        context, val_context: per-row conditioning tensors for conditional flows.
        clip_grad: clip the gradient norm to this positive number (``None`` to disable; 0 or a
            negative value is refused: it would stop or reverse every update).
        threads: PyTorch intra-op threads during training, restored afterwards. ``None``: one
            thread for a model on the CPU with fewer than a million parameters (see
            ``default_threads``), torch's own setting otherwise.
        progress: show a ``tqdm`` bar.

    Checks, before any step: counts (``steps``, ``batch_size``, ``eval_every``, ``patience``) are
    integer-like and positive; ``data``, ``val_data`` and the contexts are finite tensors with the
    right shape, converted to the model's dtype when that is exact (integer, boolean, lower
    precision), else ``TypeError`` (float64 data into a float32 model: ``data.float()`` or
    ``flow.double()``). If the loss becomes NaN or infinite, the ``FloatingPointError`` names the
    first place a non-finite value appears: a parameter, the batch, or the first layer (index and
    class) whose inverse returns one (e.g. data outside a ``Logit``'s (0, 1)).

    Example:
        >>> import flowbook
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.LULinear(2)])
        >>> hist = flowbook.fit(flow, flowbook.data.Ring(), steps=20, progress=False)
        >>> len(hist.train_loss)
        20
    """
    features = flow.features
    steps, batch_size = check_count(steps, "steps", 1), check_count(batch_size, "batch_size", 1)
    eval_every = check_count(eval_every, "eval_every", 1)
    lr, weight_decay, clip_grad = _check_optimizer(lr, weight_decay, clip_grad)
    if patience is not None:
        patience = check_count(patience, "patience", 1)
        if val_data is None:
            raise ValueError("patience needs val_data: early stopping watches the validation loss; "
                             "pass val_data=... or leave patience=None")
    params = [p for p in flow.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the flow has no trainable parameters (all frozen?); nothing to fit")
    dev, dtype = params[0].device, model_dtype(flow) or params[0].dtype
    data = _check_data(data, features, "data", dtype)
    context = _check_context(context, "context", len(data) if isinstance(data, torch.Tensor) else None, "data", dtype)
    if val_data is not None:
        val_data = _check_data(val_data, features, "val_data", dtype)
    val_context = _check_context(val_context, "val_context",
                                 len(val_data) if isinstance(val_data, torch.Tensor) else None, "val_data", dtype)
    opt = adam(params, lr, weight_decay)
    with use_threads(default_threads(flow) if threads is None else threads):
        return _train(flow, data, opt, params, dev, dtype, steps, batch_size, val_data, eval_every, patience,
                      transform_batch, context, val_context, clip_grad, progress, generator)


def _train(flow, data, opt, params, dev, dtype, steps, batch_size, val_data, eval_every, patience,
           transform_batch, context, val_context, clip_grad, progress, generator) -> History:
    if isinstance(data, torch.Tensor):
        data = data.to(dev, dtype)
        context = None if context is None else context.to(dev, dtype)
    hist, best_state, bad_evals = History(), None, 0
    start = time.perf_counter()
    bar = progress_bar(range(1, steps + 1), progress, "fit")
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
        optimizer_step(loss, opt, params, clip_grad, step, "try a smaller lr or check the data scale",
                       diagnose=lambda: first_nonfinite(flow, batch, ctx))
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


def optimizer_step(loss, opt, params, clip_grad, step, hint, diagnose=None):
    """One Adam step on ``loss``; a NaN or infinite loss stops training with a clear error.

    ``diagnose()`` (optional) says in words where the first non-finite value came from; the
    generic ``hint`` is used when it finds nothing.
    """
    if not torch.isfinite(loss):
        cause = diagnose() if diagnose is not None else None
        raise FloatingPointError(f"training loss became {loss.item()} at step {step}; "
                                 + (f"the first non-finite value: {cause}" if cause else hint))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad is not None:
        torch.nn.utils.clip_grad_norm_(params, clip_grad)
    opt.step()


def _rows_nonfinite(v):
    return ~torch.isfinite(v.reshape(v.shape[0], -1)).all(1) if v.dim() else ~torch.isfinite(v).reshape(1)


def _layer_problem(where, out, ladj):
    bad_out, bad_ladj = _rows_nonfinite(out), _rows_nonfinite(ladj)
    if not (bad_out.any() or bad_ladj.any()):
        return None
    n = len(bad_out)
    if bad_ladj.any() and not bad_out.any() and (ladj[bad_ladj] == -math.inf).all():
        return (f"{where} returns log-det -inf for {int(bad_ladj.sum())} of {n} rows: those inputs lie outside "
                "its domain (zero density there), e.g. data outside (0, 1) before a Logit")
    what = "output" if bad_out.any() else "log-det"
    return f"{where} returns a NaN or infinite {what} for {int((bad_out | bad_ladj).sum())} of {n} rows"


@torch.no_grad()
def first_nonfinite(model, x, context=None) -> str | None:
    """Where the first NaN or infinity of ``model.log_prob(x, context)`` comes from, in words (``None``: not found).

    Looks at the parameters, then ``x`` and ``context``, then (for a ``Flow``) runs the layers of
    the data -> latent direction one by one on a copy of the model and names the first layer
    (index and class) whose output or log-det is not finite, then the base density.
    """
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            return (f"the parameter {name} is NaN or infinite (an earlier update diverged; "
                    "try a smaller lr or clip_grad)")
    for name, v in (("the batch x", x), ("the context", context)):
        if isinstance(v, torch.Tensor) and not torch.isfinite(v).all():
            return f"{name} holds NaN or infinite values (check transform_batch)"
    if not isinstance(model, Flow):
        return None
    model = copy.deepcopy(model)  # running statistics and initializations stay as they were
    transform = model.transform
    layers = list(transform.layers) if isinstance(transform, Compose) else [transform]
    v = x
    for i in range(len(layers) - 1, -1, -1):
        v, ladj = layers[i].inverse(v, context)
        where = (f"layer {i} ({type(layers[i]).__name__}) of the flow, in inverse() (data -> latent),"
                 if isinstance(transform, Compose) else f"the flow's transform ({type(transform).__name__})")
        problem = _layer_problem(where, v, ladj)
        if problem:
            return problem
    log_p = model.base.log_prob(v)
    if not torch.isfinite(log_p).all():
        return f"the base density ({type(model.base).__name__}) is not finite at the latents of some rows"
    return None


@torch.no_grad()
def evaluate_nll(flow, x, context=None, batch_size: int = 4096) -> float:
    """Mean negative log-likelihood of ``x`` (nats), in eval mode, in batches.

    ``x`` (a tensor or a ``Density2D``, which gives 10000 samples) is checked like ``fit``'s data:
    finite, ``(n, features)`` with ``n >= 1`` (the mean of nothing is undefined: ``ValueError``),
    converted to the model's dtype when that is exact, else ``TypeError``. ``inf`` if some row
    lies outside the model's support.
    """
    batch_size = check_count(batch_size, "batch_size", 1)
    if isinstance(x, Density2D):
        x = x.sample(10000)
    anchor = next(iter(flow.parameters()), None)
    dtype = model_dtype(flow)
    x = _check_data(x, flow.features, "x", dtype)
    context = _check_context(context, "context", len(x), "x", dtype)
    if anchor is not None:
        x = x.to(anchor.device)
    was_training = flow.training
    flow.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        c = None if context is None else context[i:i + batch_size].to(x.device)
        total += -flow.log_prob(x[i:i + batch_size], c).sum().item()
    flow.train(was_training)
    return total / len(x)
