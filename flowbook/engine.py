r"""The training engine: the one Adam loop behind every trainer of the package, and its ``History``.

``fit`` (maximum likelihood), ``fit_reverse_kl``, ``fit_flow_matching``, ``RBM.fit`` and the
per-point optimization of ``local_posterior_elbo`` differ only in the loss of one step and in
where its batches come from. What they share lives here:

* ``optimize(model, loss, batches, steps)``, the loop: take the next batch, compute
  ``loss(batch)``, stop with a ``FloatingPointError`` that names the cause if it is not finite,
  take an Adam step (gradient norm clipped to ``clip_grad``; learning rate ``lr`` times
  ``lr_factor(lr_schedule, t, steps)``), record the loss, and every
  ``eval_every`` steps call ``validate()`` and keep the parameters with the best validation loss;
* the entry checks of the arguments every trainer takes (``check_optimizer``; ``check_schedule`` is in ``validation``);
* ``History``, what a run recorded, with ``plot()``, a one-line ``repr`` and ``to_dict()``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .runtime import progress_bar, threads as use_threads
from .validation import check_count, check_positive, check_schedule

__all__ = ["History", "optimize", "adam", "default_threads", "check_optimizer", "lr_factor",
           "nonfinite_parameter", "CLIP_GRAD"]

CLIP_GRAD = 10.0  # the default gradient-norm clip of fit, fit_reverse_kl and fit_flow_matching
# Below this many parameters a second thread gains nothing on 2 cores (RealNVP(2) 278 vs 257 steps/s) and
# makes training many times slower when another process is busy (9x for RealNVP(2), 7x for MAF(64, hidden=256)).
SINGLE_THREAD_BELOW = 1_000_000


def tail_mean(values: list, k: int = 50) -> float:
    """The mean of the last ``k`` values (NaN for none): a per-step curve's level, less noisy than its last value."""
    return sum(values[-k:]) / len(values[-k:]) if values else math.nan


@dataclass(repr=False)
class History:
    """What a training run recorded: the loss of every step, validation losses, the step kept, the time.

    ``train_loss[i]`` is the loss of step ``i + 1``; ``val_loss[j]`` was measured after step
    ``val_step[j]``; ``best_step``/``best_val`` are the evaluation whose parameters were kept
    (``None``/``inf`` without validation data). ``loss_name`` labels the loss in plots.

    Example:
        >>> import flowbook
        >>> h = flowbook.History(train_loss=[3.0, 2.0, 1.5], val_step=[3], val_loss=[1.25], best_step=3,
        ...                      best_val=1.25, seconds=0.5)
        >>> h
        History(steps=3, final_train=2.167, best_val=1.250 at step 3, 0.5 s)
    """

    train_loss: list = field(default_factory=list)
    val_step: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    best_step: int | None = None
    best_val: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    loss_name: str = "loss"

    @property
    def steps(self) -> int:
        """The number of optimizer steps taken."""
        return len(self.train_loss)

    @property
    def final_train(self) -> float:
        """Mean training loss over the last 50 steps (less noisy than the last one)."""
        return tail_mean(self.train_loss)

    def summary(self) -> list[str]:  # the parts of the one-line repr
        return [f"steps={self.steps}", f"final_train={self.final_train:.3f}"]

    def __repr__(self):
        parts = self.summary()
        if self.best_step is not None:
            parts.append(f"best_val={self.best_val:.3f} at step {self.best_step}")
        if self.stopped_early:
            parts.append("stopped early")
        return f"{type(self).__name__}({', '.join(parts + [f'{self.seconds:.1f} s'])})"

    def to_dict(self) -> dict:
        """Every recorded field as plain Python lists and numbers (e.g. for ``json.dump``)."""
        return asdict(self)

    def curve(self) -> tuple[list, str, str]:
        """The per-step values ``plot`` draws, their legend label and the y-axis label: the training loss."""
        return self.train_loss, "train", self.loss_name

    def plot(self, ax=None, title: str | None = None):
        """Draw the per-step curve (faint, and its moving average), the validation curve and the kept step.

        On ``ax`` (a matplotlib axes) or on a new figure; returns the axes.
        """
        import matplotlib.pyplot as plt
        ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
        values, label, ylabel = self.curve()
        same = values is self.train_loss  # validation measures the plotted loss: same axes, else a second y-axis
        values = np.asarray(values, dtype=float)
        line, = ax.plot(np.arange(1, len(values) + 1), values, lw=0.6, alpha=0.35, label=f"{label}, each step")
        width = max(1, len(values) // 40)
        if width > 1:
            smooth = np.convolve(values, np.ones(width) / width, mode="valid")
            ax.plot(np.arange(width, len(values) + 1), smooth, color=line.get_color(),
                    label=f"{label}, mean of {width} steps")
        vax = ax if same or not self.val_step else ax.twinx()
        if self.val_step:
            vax.plot(self.val_step, self.val_loss, "o-", ms=3, color="C1", label="validation")
        if self.best_step is not None:
            ax.axvline(self.best_step, color="k", ls=":", lw=1)
            vax.plot([self.best_step], [self.best_val], "k*", ms=11, label=f"kept: step {self.best_step}")
        if vax is not ax:
            vax.set_ylabel("validation NLL (nats)")
            vax.legend(fontsize=8, loc="center right")
        shown = np.concatenate([values[len(values) // 20:], np.asarray(self.val_loss if same else [], dtype=float)])
        shown = shown[np.isfinite(shown)]
        if len(shown):  # the first steps' large losses would squash the rest of the curve
            lo, hi = shown.min(), np.percentile(shown, 99.5)
            ax.set_ylim(lo - 0.05 * (hi - lo + 1e-12), hi + 0.1 * (hi - lo + 1e-12))
        kept = f", kept step {self.best_step}" if self.best_step is not None else ""
        ax.set(xlabel="optimizer step", ylabel=ylabel, title=title or f"Training curve: {self.steps} steps{kept}"
               + (" (stopped early)" if self.stopped_early else ""))
        ax.legend(fontsize=8)
        return ax


def default_threads(model) -> int | None:
    """The intra-op thread count the trainers use when not told: 1 for a small model on the CPU, else ``None``.

    ``model`` is a module or a list of parameters. ``None`` means "leave torch's setting alone":
    a model on a GPU, or one with at least ``SINGLE_THREAD_BELOW`` parameters, whose matrix
    products are large enough to share.

    Example:
        >>> import flowbook
        >>> flowbook.train.default_threads(flowbook.RealNVP(2))
        1
    """
    params = list(model.parameters()) if hasattr(model, "parameters") else list(model)
    on_cpu = all(p.device.type == "cpu" for p in params)
    return 1 if on_cpu and sum(p.numel() for p in params) < SINGLE_THREAD_BELOW else None


def adam(params, lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Adam:
    """``torch.optim.Adam`` with its fused kernel where this torch has one for these tensors.

    The fused kernel updates every parameter tensor in one call instead of a Python loop of small
    operations (1.2x more steps/s for a 2-D MAF on the CPU); older torch without it: ``foreach``.
    """
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


LR_SCHEDULES = ("constant", "cosine", "anneal")  # the learning-rate schedules of every trainer (see lr_factor)


def lr_factor(lr_schedule: str, t: int, total: int) -> float:
    """The learning rate of step t + 1 of ``total``, as a fraction of ``lr``: 1 (``"constant"``), a half
    cosine from 1 to 0 (``"cosine"``), or 1 and then that half cosine over the last fifth (``"anneal"``)."""
    start = 0 if lr_schedule == "cosine" else (0.8 * total if lr_schedule == "anneal" else total)
    return 1.0 if t < start else 0.5 * (1 + math.cos(math.pi * (t - start) / max(total - start, 1)))


def check_optimizer(lr, weight_decay, clip_grad, lr_schedule: str = "constant"):
    """The arguments every trainer shares: ``lr > 0``, ``weight_decay >= 0``, ``clip_grad > 0`` or None, a schedule."""
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    return (check_positive(lr, "lr"), check_positive(weight_decay, "weight_decay", allow_zero=True),
            check_positive(clip_grad, "clip_grad", allow_none=True))


def nonfinite_parameter(named_params) -> str | None:
    """The first NaN or infinite parameter of ``named_params`` (pairs ``(name, tensor)``), in words."""
    for name, p in named_params:
        if not torch.isfinite(p).all():
            return (f"the parameter {name} is NaN or infinite (an earlier update diverged; "
                    "try a smaller lr or clip_grad)")
    return None


def _divergence(value, step, model, params, batch, diagnose, hint) -> str:
    """The message of a non-finite loss: the parameter, the input or the layer to blame, or ``hint``."""
    named = model.named_parameters() if model is not None else ((f"#{i}", p) for i, p in enumerate(params))
    with torch.no_grad():
        cause = nonfinite_parameter(named) or (diagnose(batch) if diagnose is not None else None)
    return (f"training loss became {value} at step {step}; "
            + (f"the first non-finite value: {cause}" if cause else hint))


def optimize(model, loss, batches, steps: int, *, params=None, lr: float = 1e-3, weight_decay: float = 0.0,
             clip_grad: float | None = CLIP_GRAD, lr_schedule: str = "constant", threads: int | None = None,
             progress: bool = True, validate=None, eval_every: int = 50, patience: int | None = None,
             history: History | None = None, diagnose=None, hint: str = "try a smaller lr or clip_grad",
             desc: str = "training") -> History:
    """Minimize ``loss(batch)`` with Adam over ``steps`` batches of the iterator ``batches``; return the ``History``.

    Args:
        model: the ``nn.Module`` trained (put in train mode, then eval mode; its best validation
            state is restored), or ``None`` when ``params`` are free tensors.
        loss: ``loss(batch)`` returns a scalar tensor, or ``(loss, extras)`` with ``extras`` a dict of
            numbers appended to the history's lists of the same names (e.g. ``{"elbo": ...}``).
        batches: an iterator with at least ``steps`` batches (``next`` is called once per step).
        params: the tensors to optimize (default: the model's trainable parameters); when given,
            only their gradients are computed (``backward(inputs=params)``).
        lr_schedule: ``"constant"`` (``lr`` throughout), ``"cosine"`` (``lr (1 + cos(pi t / T)) / 2``
            after step t of T = ``steps``) or ``"anneal"`` (``lr``, then that decay over the last
            fifth of the steps): see ``lr_factor``.
        validate: optional function returning a validation loss (a float), called every
            ``eval_every`` steps and after the last; ``patience`` evaluations without improvement stop.
        diagnose: optional ``diagnose(batch)`` naming, in words, where a non-finite loss came
            from (checked after the parameters); ``hint`` is said when nothing is found.

    The counts and the optimizer's numbers are checked as ``fit`` checks them. One ``.item()`` per step.

    Example:
        >>> import itertools, torch, flowbook
        >>> w = torch.zeros(2, requires_grad=True)
        >>> target = torch.tensor([1.0, -2.0])
        >>> hist = flowbook.optimize(None, lambda _: (w - target).pow(2).sum(), itertools.repeat(None),
        ...                          300, params=[w], lr=0.1, progress=False)
        >>> torch.allclose(w, target, atol=1e-2), hist.steps
        (True, 300)
    """
    steps, eval_every = check_count(steps, "steps"), check_count(eval_every, "eval_every", 1)  # 0 steps: none
    patience = None if patience is None else check_count(patience, "patience", 1)
    lr, weight_decay, clip_grad = check_optimizer(lr, weight_decay, clip_grad, lr_schedule)
    if model is None and (params is None or validate is not None):
        raise ValueError("model=None needs params= (the tensors to optimize) and no validate= (it keeps a model's state)")
    only = None if params is None else list(params)  # free tensors: their gradients and no others
    params = [p for p in model.parameters() if p.requires_grad] if params is None else only
    if not params:
        raise ValueError("the model has no trainable parameters (all frozen?); nothing to optimize")
    opt, batches = adam(params, lr, weight_decay), iter(batches)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(lr_schedule, t, steps))
    hist = History() if history is None else history
    best_state, bad_evals = None, 0
    with use_threads(default_threads(params) if threads is None else threads):
        if model is not None:
            model.train()  # evaluate_nll puts train mode back after each validation
        start = time.perf_counter()
        bar = progress_bar(range(1, steps + 1), progress, desc)
        for step in bar:
            try:
                batch = next(batches)
            except StopIteration:
                raise ValueError(f"batches ran out after {step - 1} batches; expected at least steps={steps}") from None
            out = loss(batch)
            value, extras = out if isinstance(out, tuple) else (out, None)
            try:
                train_loss = value.item()
            except (AttributeError, RuntimeError):
                raise TypeError(f"loss(batch) must return a scalar tensor (or (loss, extras)), got {value!r:.80}") from None
            if not math.isfinite(train_loss):
                raise FloatingPointError(_divergence(train_loss, step, model, params, batch, diagnose, hint))
            opt.zero_grad(set_to_none=True)
            value.backward(inputs=only)
            if clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_grad)
            opt.step()
            decay.step()
            hist.train_loss.append(train_loss)
            if extras:
                for name, v in extras.items():
                    if not isinstance(getattr(hist, name, None), list):
                        raise ValueError(f"loss returned the extra {name!r}, but {type(hist).__name__} has no list {name!r}")
                    getattr(hist, name).append(v.item() if isinstance(v, torch.Tensor) else float(v))
            if validate is not None and (step % eval_every == 0 or step == steps):
                val = validate()
                if math.isnan(val):
                    raise FloatingPointError(f"the validation loss is NaN after step {step}")
                hist.val_step.append(step)
                hist.val_loss.append(val)
                if val < hist.best_val:
                    hist.best_val, hist.best_step, bad_evals = val, step, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_evals += 1
                    if patience is not None and bad_evals >= patience:
                        hist.stopped_early = True
                        break
                bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val:.3f}")
            elif step % 25 == 0:
                bar.set_postfix(train=f"{train_loss:.3f}")
        bar.close()
        getattr(batches, "close", lambda: None)()  # a generator over a DataLoader lets its workers go
        if best_state is not None:
            model.load_state_dict(best_state)
        if model is not None:
            model.eval()
        hist.seconds = time.perf_counter() - start
    return hist
