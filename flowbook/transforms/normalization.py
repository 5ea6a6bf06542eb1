r"""Normalization as a flow layer: ActNorm (Glow) and batch normalization (RealNVP).

Both are elementwise affine maps, so the log-det is a sum of log-scales. They differ in where
the scale comes from:

* ``ActNorm``: learnable per-feature scale and shift, *initialized from data*: on the first
  training batch it sees, it sets them so that the latent side has zero mean and unit variance
  per feature. After that they are ordinary parameters (the batch no longer matters), so the
  layer is an exact bijection in training and in evaluation.
* ``BatchNorm``: in training mode it normalizes with the current batch's statistics (so the
  density of one point depends on its batch, as in RealNVP), and keeps running averages that
  evaluation mode uses; evaluation mode is an exact, fixed bijection.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import Bijection
from ..validation import check_dim
from .linear import Affine

__all__ = ["ActNorm", "BatchNorm"]


class ActNorm(Affine):
    r"""``Affine`` (:math:`x = z \odot e^{\ell} + b`, per feature) with data-dependent initialization.

    The first call of ``inverse`` (the data -> latent direction used by ``log_prob``) in training
    mode sets :math:`b = \text{mean}(x)` and :math:`\ell = \log \text{std}(x)`, so that batch maps
    to zero mean and unit variance. Whether that has happened is the buffer ``initialized``, which
    is part of ``state_dict()``: a saved and reloaded layer does not re-initialize (and a fresh
    layer that loads trained weights does not overwrite them). log-det :math:`\sum_i \ell_i`.

    Example:
        >>> import torch, flowbook
        >>> layer = flowbook.ActNorm(2)
        >>> x = torch.randn(500, 2) * 3 + 1
        >>> z, _ = layer.inverse(x)          # training mode: initializes from this batch
        >>> z.mean(0).abs().max().item() < 1e-5, bool(layer.initialized)
        (True, True)
    """

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__(features)  # log_scale and shift, both zero
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set shift and log-scale from a data batch ``x`` (at least 2 rows)."""
        if x.shape[0] < 2:
            raise ValueError(f"ActNorm needs a batch of at least 2 rows to initialize, got {x.shape[0]}")
        self.shift.copy_(x.mean(0))
        self.log_scale.copy_((x.std(0) + self.eps).log())
        self.initialized.fill_(True)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        if self.training and not self.initialized:
            self.initialize(x.detach())
        return super().inverse(x, context)


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
