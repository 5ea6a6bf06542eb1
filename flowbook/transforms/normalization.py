r"""Normalization as a flow layer: ActNorm (Glow) and batch normalization (RealNVP).

Both are elementwise affine maps, so the log-det is a sum of log-scales. They differ in where
the scale comes from:

* ``ActNorm``: learnable scale and shift per feature (per channel on images), *initialized
  from data*: on the first training batch it sees, in either direction, it sets them so that
  its output has zero mean and unit variance per feature (per channel). After that they are ordinary
  parameters (the batch no longer matters), so the layer is an exact bijection in training and
  in evaluation.
* ``BatchNorm``: in training mode it normalizes with the current batch's statistics (so the
  density of one point depends on its batch, as in RealNVP), and keeps running averages that
  evaluation mode uses; evaluation mode is an exact, fixed bijection.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core import Bijection
from ..validation import check_dim, check_positive

__all__ = ["ActNorm", "BatchNorm"]


class ActNorm(Bijection):
    r"""Glow's ActNorm: :math:`x = z \odot e^{\ell} + b` per feature (vectors) or per channel (images).

    The scale and shift are initialized from data: the first call that trains the layer (training
    mode, autograd on), in either direction, standardizes that call's output per feature (per
    channel) over ``dims``. ``inverse`` (data -> latent, ``log_prob`` and ``fit``) sets :math:`b`
    to the mean and :math:`\ell` to the log standard deviation of its input x; ``forward``
    (latent -> data, ``sample_and_log_prob`` in ``fit_reverse_kl``) sets :math:`\ell = -\log
    \mathrm{std}(z)`, :math:`b = -\bar z e^{\ell}`. A look (``eval()``, ``torch.no_grad()``, so
    ``Flow.sample``) never initializes. Whether it has happened is the buffer ``initialized``,
    part of ``state_dict()``: a saved and reloaded layer never re-initializes (and a fresh layer
    that loads trained weights does not overwrite them). A state dict without the flag, or with
    it unset but parameters that are not the fresh zeros (saved by an older flowbook after
    reverse-KL training), loads as initialized; one of a fresh layer loads as fresh. An empty
    batch passes through without initializing.

    ``dims`` are the axes the statistics average over: ``(0,)`` (default) for ``(N, features)``
    vectors; ``(0, 2, 3)`` for ``(N, C, H, W)`` images (``features`` = C, one scale and shift
    per channel, shared by all pixels). log-det :math:`P \sum_i \ell_i`, with :math:`P` the
    number of positions sharing a scale (1 for vectors, H W for images).

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.ActNorm(2)
        >>> z, _ = layer.inverse(torch.randn(500, 2) * 3 + 1)   # training mode: initializes
        >>> z.mean(0).abs().max().item() < 1e-5, bool(layer.initialized)
        (True, True)
        >>> images = flowbook.ActNorm(3, dims=(0, 2, 3))         # per channel
        >>> z, _ = images.inverse(torch.randn(8, 3, 4, 4) * 5)
        >>> z.mean((0, 2, 3)).abs().max().item() < 1e-5
        True
    """

    def __init__(self, features: int, dims=(0,), eps: float = 1e-6):
        super().__init__()
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if dims != (0,) + tuple(range(2, len(dims) + 1)):
            raise ValueError(f"dims must be (0,) for (N, features) vectors or (0, 2, 3) for (N, C, H, W) images "
                             f"(the batch and every axis after the features), got {dims}")
        self.features, self.dims, self.eps = check_dim(features), dims, check_positive(eps, "eps")
        if len(dims) > 1:              # images: (C, any height, any width)
            self.event_shape = (self.features,) + (None,) * (len(dims) - 1)
            self.features = None       # the number of numbers depends on the image size
        self.log_scale = nn.Parameter(torch.zeros(check_dim(features)))
        self.shift = nn.Parameter(torch.zeros(check_dim(features)))
        self.register_buffer("initialized", torch.tensor(False))

    def _view(self, p):
        """A ``(features,)`` parameter shaped to broadcast along dim 1: ``(C, 1, 1)`` on images."""
        return p.view(-1, *[1] * (len(self.dims) - 1))

    def _positions(self, v):
        """How many numbers share each scale: 1 for vectors, H*W for images."""
        return math.prod(v.shape[2:])

    @torch.no_grad()
    def initialize(self, v: torch.Tensor, direction: str = "inverse") -> None:
        """Set shift and log-scale so that a batch ``v`` (the input of ``direction``) comes out standardized.

        ``ValueError`` for one row (no spread) or a NaN or infinite statistic; the parameters and
        the flag then stay as they were.
        """
        mean, log_std = self._statistics(v, direction)
        if direction == "inverse":
            # z = (x - b) e^-l: b = mean(x), l = log std(x)
            self.shift.copy_(mean)
            self.log_scale.copy_(log_std)
        else:
            # x = z e^l + b: l = -log std(z), b = -e^l mean(z)
            self.log_scale.copy_(-log_std)
            self.shift.copy_(-mean * torch.exp(-log_std))
        self.initialized.fill_(True)

    def _statistics(self, v, direction):
        """Mean and log standard deviation over ``dims`` of a batch fit to initialize from (else ``ValueError``)."""
        if direction not in ("inverse", "forward"):
            raise ValueError(f"direction must be 'inverse' or 'forward', got {direction!r}")
        if v.shape[0] < 2:
            raise ValueError(f"ActNorm initializes from its first training batch and needs at least 2 rows, got "
                             f"{len(v)}; use a larger batch, or call .eval() to keep the current parameters")
        mean, log_std = v.mean(self.dims), (v.std(self.dims) + self.eps).log()
        if not (torch.isfinite(mean).all() and torch.isfinite(log_std).all()):   # once: not a hot path
            raise ValueError("ActNorm cannot initialize from a batch with NaN or infinite values "
                             f"(the input of {direction}())")
        return mean, log_std

    def needs_initialization(self, v) -> bool:
        """True on the first call that trains the layer (training mode, autograd on, rows in ``v``)."""
        return self.training and torch.is_grad_enabled() and len(v) > 0 and not bool(self.initialized)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        # a trained layer saved without the flag (or unset: reverse KL before it was set) loads as initialized
        key, params = prefix + "initialized", [state_dict.get(prefix + k) for k in ("log_scale", "shift")]
        if key not in state_dict or not bool(state_dict[key]):
            state_dict[key] = torch.tensor(any(p is not None and bool((p != 0).any()) for p in params))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, z, context=None):
        self.check_input(z, "z")
        if self.needs_initialization(z):
            self.initialize(z.detach(), "forward")
        x = z * self._view(self.log_scale.exp()) + self._view(self.shift)
        return x, (self._positions(z) * self.log_scale.sum()).expand(z.shape[0])

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        if self.needs_initialization(x):
            self.initialize(x.detach())
        z = (x - self._view(self.shift)) * self._view(torch.exp(-self.log_scale))
        return z, (-self._positions(x) * self.log_scale.sum()).expand(x.shape[0])

    def extra_repr(self):
        return f"features={self.log_scale.numel()}" + (f", dims={self.dims}" if len(self.dims) > 1 else "")


class BatchNorm(Bijection):
    r"""Batch normalization as a bijection (RealNVP): :math:`z = (x - \mu) / \sqrt{v + \epsilon}\, e^{\gamma} + \beta`.

    ``inverse`` (data -> latent) uses the batch mean and variance in training mode, and updates
    running averages (``momentum``); in evaluation mode it uses the running averages.
    log-det of ``inverse``: :math:`\sum_i \gamma_i - \tfrac12 \log(v_i + \epsilon)`. In training mode
    the batch statistics' own dependence on the batch is ignored in the log-det, as in RealNVP;
    it vanishes for large batches. ``forward`` (sampling) always uses the running averages.
    In training mode a batch needs at least 2 rows (``ValueError`` otherwise), so an empty batch
    cannot fill the running averages with NaN.

    Example:
        >>> import torch, flowbook
        >>> bn = flowbook.BatchNorm(3)
        >>> z, _ = bn.inverse(torch.randn(100, 3) * 4)
        >>> round(z.std(0, unbiased=False).mean().item(), 3)
        1.0
    """

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.features, self.momentum, self.eps = check_dim(features), momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(self.features))
        self.beta = nn.Parameter(torch.zeros(self.features))
        self.register_buffer("running_mean", torch.zeros(self.features))
        self.register_buffer("running_var", torch.ones(self.features))

    def _stats(self, x):
        if self.training:
            if x.shape[0] < 2:  # the running averages would take a NaN (0 rows) or a zero variance (1 row)
                raise ValueError(f"BatchNorm in training mode needs a batch of at least 2 rows to estimate "
                                 f"its statistics, got x with {x.shape[0]}; call .eval() to use the running averages")
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
            return mean, var
        return self.running_mean, self.running_var

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        mean, var = self._stats(x)
        log_s = self.log_gamma - 0.5 * torch.log(var + self.eps)
        return (x - mean) * log_s.exp() + self.beta, log_s.sum().expand(x.shape[0])

    def forward(self, z, context=None):
        self.check_input(z, "z")
        log_s = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        return (z - self.beta) * torch.exp(-log_s) + self.running_mean, (-log_s.sum()).expand(z.shape[0])
