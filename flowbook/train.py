r"""Maximum-likelihood training (forward KL) with validation and early stopping.

Minimizing the average negative log-likelihood of data is minimizing
:math:`\mathrm{KL}(p_\text{data}\,\|\,p_\theta)` up to the (constant) data entropy. The loop is
``flowbook.engine.optimize``; the data may be held as users hold it (``flowbook.batches``).
"""
from __future__ import annotations

import copy
import math

import torch

from .batches import batch_stream, data_batches, model_shape
from .core import Compose
from .data import Density2D
from .engine import (CLIP_GRAD, History, adam, check_optimizer, check_schedule, default_threads, nonfinite_parameter,
                     optimize)
from .flow import Flow
from .validation import check_count, model_dtype

__all__ = ["fit", "evaluate_nll", "first_nonfinite", "default_lr", "History", "adam", "default_threads"]


def default_lr(model) -> float:
    """``fit``'s peak learning rate when not told: 3e-3 below 100k trainable parameters, else 1e-3.

    Measured (performance page): the 2-D flows (23-37k parameters) reach a lower NLL from 3e-3
    with the final decay of ``lr_schedule="anneal"``; the digits flows (0.6-0.7M) over-fit within
    100-200 steps from 2e-3 or 3e-3 and do best from 1e-3.

    Example:
        >>> import flowbook
        >>> from flowbook.train import default_lr
        >>> default_lr(flowbook.RealNVP(2)), default_lr(flowbook.MAF(64, hidden=256))
        (0.003, 0.001)
    """
    return 3e-3 if sum(p.numel() for p in model.parameters() if p.requires_grad) < 100_000 else 1e-3


def _check_model(model):
    """``TypeError`` unless ``model`` is a module with a ``log_prob`` (what maximum likelihood needs)."""
    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "log_prob", None)):
        raise TypeError(f"model must be a torch.nn.Module with a log_prob(x) method (e.g. a flowbook.Flow), "
                        f"got {type(model).__name__}")


def _nll(model, x, context):
    """Mean negative log-likelihood of a batch; ``log_prob(x)`` for a model given no context."""
    return -(model.log_prob(x) if context is None else model.log_prob(x, context)).mean()


def fit(model, data, *, steps: int | None = None, epochs: int | None = None, batch_size: int | None = None,
        lr: float | None = None, lr_schedule: str = "anneal", weight_decay: float = 0.0,
        clip_grad: float | None = CLIP_GRAD, threads: int | None = None, progress: bool = True, val_data=None,
        eval_every: int = 50, patience: int | None = None, generator: torch.Generator | None = None, context=None,
        val_context=None, transform_batch=None) -> History:
    r"""Train ``model`` by maximum likelihood with Adam; return a ``History``.

    Args:
        model: a ``flowbook.Flow``, or any ``nn.Module`` with ``log_prob(x[, context])`` and
            parameters (the shape of an example is ``model.event_shape`` or ``(model.features,)``
            when it has one, else taken from the data).
        data: a tensor ``(n, features)``, shuffled once per epoch and walked without replacement;
            a ``flowbook.data.Density2D`` (a fresh sample every step: unlimited data); a
            ``torch.utils.data.Dataset``; or a ``DataLoader``, whose batches are used as given
            (``x``, ``(x,)`` or ``(x, context)`` for a conditional model). See ``flowbook.batches``.
        steps: the length of training in optimizer steps (give ``steps`` or ``epochs``;
            neither: 1000 steps).
        epochs: the length of training in passes over the data, instead of ``steps``.
        batch_size: rows per step (default 256; a DataLoader has its own).
        lr: Adam's (peak) learning rate (> 0); ``None``: ``default_lr(model)``, 3e-3 for a model of
            under 100k parameters, 1e-3 for a larger one.
        lr_schedule: ``"anneal"`` (default: ``lr`` for the first four fifths of the steps, then
            decayed to 0 along a half cosine), ``"cosine"`` (decayed over the whole run) or
            ``"constant"``. Measured (performance page): the final decay settles the parameters,
            and with it the test NLL of RealNVP(2) on the two moons after 1000 steps fell from
            0.54 to 0.34 nats (mean of five seeds), its spread across seeds from 0.43 to 0.04.
        weight_decay: Adam's weight decay (>= 0).
        clip_grad: clip the gradient norm to this positive number (``None`` to disable; 0 or a
            negative value is refused: it would stop or reverse every update).
        threads: PyTorch intra-op threads during training, restored afterwards. ``None``: one
            thread for a model on the CPU with fewer than a million parameters (see
            ``default_threads``), torch's own setting otherwise.
        progress: show a ``tqdm`` bar.
        val_data: optional validation data (a tensor, ``Density2D``, ``Dataset`` or ``DataLoader``);
            its mean NLL is computed every ``eval_every`` steps and after the last, and the
            parameters with the best validation loss are restored at the end.
        patience: stop after this many evaluations without improvement (``None``: never; needs ``val_data``).
        generator: the ``torch.Generator`` of the shuffles (or of a ``Density2D``'s samples).
        context: per-row conditioning tensor of ``data``, for a conditional model.
        val_context: per-row conditioning tensor of ``val_data``.
        transform_batch: optional function applied to each training batch (e.g. dequantization).
            ``val_data`` is used as given, so dequantize it once beforehand.

    Checks, before any step: counts (``steps``, ``epochs``, ``batch_size``, ``eval_every``,
    ``patience``) are integer-like and positive; ``data``, ``val_data`` and the contexts are
    finite tensors with the right shape, converted to the model's dtype when that is exact
    (integer, boolean, lower precision), else ``TypeError`` (float64 data into a float32 model:
    ``data.float()`` or ``model.double()``); a DataLoader's batches are checked as they come. If
    the loss becomes NaN or infinite, the ``FloatingPointError`` names the first place a
    non-finite value appears: a parameter, the batch, or the first layer (index and class) whose
    inverse returns one (e.g. data outside a ``Logit``'s (0, 1)).

    Example:
        >>> import flowbook
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.LULinear(2)])
        >>> hist = flowbook.fit(flow, flowbook.data.Ring(), steps=20, progress=False)
        >>> len(hist.train_loss)
        20
        >>> x = flowbook.data.Ring().sample(100)
        >>> hist = flowbook.fit(flow, x, epochs=2, batch_size=40, progress=False)
        >>> hist.steps    # 3 batches per epoch: 40 + 40 + 20 rows
        6
    """
    _check_model(model)
    steps, epochs = check_schedule(steps, epochs)
    eval_every = check_count(eval_every, "eval_every", 1)
    lr, weight_decay, clip_grad = check_optimizer(default_lr(model) if lr is None else lr, weight_decay, clip_grad,
                                                  lr_schedule)
    if patience is not None:
        patience = check_count(patience, "patience", 1)
        if val_data is None:
            raise ValueError("patience needs val_data: early stopping watches the validation loss; "
                             "pass val_data=... or leave patience=None")
    if val_context is not None and val_data is None:
        raise ValueError("val_context needs val_data (one context row per validation row)")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all frozen?); nothing to fit")
    dev, dtype, shape = params[0].device, model_dtype(model) or params[0].dtype, model_shape(model)
    batches, steps = batch_stream(data, shape, dtype, dev, steps=steps, epochs=epochs, batch_size=batch_size,
                                  context=context, generator=generator, transform=transform_batch)
    validate = None
    if val_data is not None:
        if isinstance(val_data, Density2D):
            val_data = val_data.sample(10000)  # one fixed validation set
        data_batches(val_data, shape, dtype, dev, 4096, val_context, "val_data")  # a tensor is checked here
        validate = lambda: evaluate_nll(model, val_data, val_context)  # noqa: E731
    return optimize(model, lambda batch: _nll(model, *batch), batches, steps, lr=lr, weight_decay=weight_decay,
                    clip_grad=clip_grad, lr_schedule=lr_schedule, threads=threads, progress=progress,
                    validate=validate, eval_every=eval_every, patience=patience,
                    history=History(loss_name="NLL (nats)"),
                    diagnose=lambda batch: first_nonfinite(model, *batch), desc="fit",
                    hint="try a smaller lr, clip_grad, or check the data scale")


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
    problem = nonfinite_parameter(model.named_parameters())
    if problem:
        return problem
    for name, v in (("the batch x", x), ("the context", context)):
        if isinstance(v, torch.Tensor) and not torch.isfinite(v).all():
            return (f"{name} holds NaN or infinite values, although the data was checked finite: "
                    "check transform_batch")
    if not isinstance(model, Flow):
        return None
    model = copy.deepcopy(model)  # running statistics and initializations stay as they were
    transform = model.transform
    layers = list(transform.layers) if isinstance(transform, Compose) else [transform]
    v = x
    for i in range(len(layers) - 1, -1, -1):
        v, logabsdet = layers[i].inverse(v, context)
        where = (f"layer {i} ({type(layers[i]).__name__}) of the flow, in inverse() (data -> latent),"
                 if isinstance(transform, Compose) else f"the flow's transform ({type(transform).__name__})")
        problem = _layer_problem(where, v, logabsdet)
        if problem:
            return problem
    log_p = model.base.log_prob(v)
    if not torch.isfinite(log_p).all():
        return f"the base density ({type(model.base).__name__}) is not finite at the latents of some rows"
    return None


@torch.no_grad()
def evaluate_nll(model, x, context=None, batch_size: int = 4096) -> float:
    """Mean negative log-likelihood of ``x`` (nats), in eval mode, in batches.

    ``x`` (a tensor, a ``Dataset``, a ``DataLoader`` of ``x`` or ``(x, context)`` batches, or a
    ``Density2D``, which gives 10000 samples) is checked like ``fit``'s data: finite, with the
    model's shape and ``n >= 1`` rows (the mean of nothing is undefined: ``ValueError``),
    converted to the model's dtype when that is exact, else ``TypeError``. ``inf`` if some row
    lies outside the model's support.
    """
    _check_model(model)
    batch_size = check_count(batch_size, "batch_size", 1)
    if isinstance(x, Density2D):
        x = x.sample(10000)
    anchor = next(iter(model.parameters()), None)
    dev = anchor.device if anchor is not None else None
    was_training = model.training
    model.eval()
    total, rows = 0.0, 0
    for xb, cb in data_batches(x, model_shape(model), model_dtype(model), dev, batch_size, context, "x"):
        total += -(model.log_prob(xb) if cb is None else model.log_prob(xb, cb)).sum().item()
        rows += len(xb)
    model.train(was_training)
    return total / rows

