r"""A normalizing flow: a base distribution pushed through a bijection.

With :math:`x = f(z)`, :math:`z \sim p_Z`, the density of :math:`x` is

.. math:: \log p_X(x) = \log p_Z(f^{-1}(x)) + \log\left|\det \frac{\partial f^{-1}}{\partial x}\right|,

which ``Flow.log_prob`` computes with the transform's ``inverse``; ``Flow.sample`` and
``Flow.sample_and_log_prob`` use its ``forward``, with the base samples scaled by a temperature.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .core import Bijection, Compose, check_event
from .validation import check_context, check_count, check_positive, check_tensor, model_dtype

__all__ = ["Flow"]


def _as_batch(n) -> tuple[int, tuple[int, ...]]:
    """``n`` samples as (count, shape): a count (see ``check_count``) or a tuple of counts."""
    if isinstance(n, (tuple, list, torch.Size)):
        shape = tuple(check_count(s, "n") for s in n)
    else:
        shape = (check_count(n, "n"),)
    return math.prod(shape), shape


class Flow(nn.Module):
    r"""A normalizing flow: a base distribution pushed through a bijection.

    ``x = transform(z)`` with ``z ~ base``, so
    :math:`\log p(x) = \log p_Z(z) + \log|\det \partial z/\partial x|` with ``z = transform.inverse(x)``.

    **Calling a flow** returns the log-density: ``flow(x)`` is ``flow.log_prob(x)``, shape
    ``(batch,)``, so ``-flow(x).mean()`` is the training loss. The latents of data are
    ``flow.latent(x)`` (that is ``flow.transform.inverse(x)[0]``).

    **Shapes.** One example has the base's ``event_shape``: ``(features,)`` for a vector flow, so
    ``x`` is ``(batch, features)``; ``(C, H, W)`` for an image flow (``Glow``), so ``x`` is
    ``(batch, C, H, W)``. ``sample(n)`` returns ``(*n, *event_shape)``.

    **Sampling at a temperature.** ``sample(n, temperature=T)`` returns :math:`x = f(Tz)`,
    :math:`z \sim p_Z`: T < 1 keeps the samples near the modes (Glow's trick), T = 0 gives
    :math:`f(0)` for a standard normal base, T = 1 plain sampling. T must be a finite number >= 0.

    **Checks where data enters** (``log_prob``, ``latent``, ``sample``...): ``x`` must be a finite
    ``(batch, *event_shape)`` tensor; integer, boolean and lower-precision data are converted to the
    flow's dtype (exact), data that would be rounded (float64 into a float32 flow) raises
    ``TypeError`` naming both dtypes and the fixes ``x.float()`` / ``flow.double()``. Every layer
    must return a pair whose log-det has shape ``(batch,)`` (``ValueError`` naming the layer).
    ``context`` is ``(context_features,)`` (shared) or ``(batch, context_features)``, finite; a
    conditional flow (``context_features > 0``, the largest one its layers declare) refuses a
    missing context, and a flow of built-in unconditional layers refuses a given one.

    Args:
        base: a module with ``features``, ``sample(n)`` and ``log_prob(z)``, e.g. ``StandardNormal(features)``;
            its ``event_shape`` (default ``(features,)``) is the shape of one example.
        transform: a ``Bijection`` or a list of them (composed left to right, base to data).

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.LULinear(2)])
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
        >>> flow.sample((4, 5)).shape
        torch.Size([4, 5, 2])
        >>> flow.latent(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
        >>> flow.sample(4, temperature=0.0).abs().max().item()      # f(0): the fresh flow is linear
        0.0
    """

    def __init__(self, base: nn.Module, transform):
        super().__init__()
        if isinstance(transform, (list, tuple)):
            transform = Compose(*transform)
        if not isinstance(transform, Bijection):
            raise TypeError(f"transform must be a flowbook.Bijection or a list of them, got {type(transform).__name__}")
        if not isinstance(transform, Compose):  # a Compose checks what every layer returns
            transform = Compose(transform)
        base_features = getattr(base, "features", None)
        if base_features is None:
            raise TypeError("base must have a 'features' attribute (e.g. flowbook.StandardNormal(features))")
        if transform.features is not None and transform.features != base_features:
            raise ValueError(
                f"transform works on {transform.features} features but base has {base_features}; "
                "expected the same number"
            )
        self.base = base
        self.transform = transform
        self.features = base_features
        self.event_shape = tuple(getattr(base, "event_shape", (base_features,)))
        self._vector = len(self.event_shape) == 1       # (batch, features) data: the plain check
        # What the layers declare, read once here: the width of the context a layer expects
        # (Coupling, MADE, Planar...); a flow of built-in layers that declare none takes no context.
        declared = [m.context_features for m in transform.modules()
                    if isinstance(getattr(m, "context_features", None), int)]
        self.context_features = max(declared, default=0)
        self._takes_no_context = self.context_features == 0 and all(
            type(m).__module__.startswith("flowbook.") for m in transform.modules() if isinstance(m, Bijection))

    def _context(self, context, n, method, dtype):
        """Check ``context`` where it enters; broadcast a single one to ``n`` rows."""
        width = self.context_features
        if context is None or self._takes_no_context:  # a user's layer may take a context it does not declare
            check_context(context, width, "this flow", method, rows=n)
            return None
        if not isinstance(context, torch.Tensor):
            raise TypeError(f"context must be a torch.Tensor, got {type(context).__name__}")
        if context.dim() not in (1, 2):
            raise ValueError(f"context must have shape ({width or 'context_features'},) (shared by every row) or "
                             f"({n}, {width or 'context_features'}), got a tensor of shape {tuple(context.shape)}")
        if context.dim() == 1:
            context = context.unsqueeze(0)
        context = check_tensor(context, "context", width or None, dtype, owner="the flow")
        if context.shape[0] == 1 and n != 1:
            return context.expand(n, -1)
        if context.shape[0] != n:
            raise ValueError(
                f"context has {context.shape[0]} rows, expected 1 (shared) or {n} (one per sample)"
            )
        return context

    def validate(self, x, context=None, method="log_prob"):
        """``x`` and ``context`` checked and converted where they enter (see the class docstring)."""
        dtype = model_dtype(self)
        if self._vector or not isinstance(x, torch.Tensor):
            x = check_tensor(x, "x", self.features, dtype, owner="the flow")
        else:                                    # images: the shape, then the same rule on a flat view
            check_event(x, self.event_shape, "x")
            x = check_tensor(x.flatten(1), "x", None, dtype, owner="the flow").view(x.shape)
        return x, self._context(context, x.shape[0], method, dtype)

    def base_log_prob(self, z):
        """``base.log_prob(z)``, checked to be one value per row."""
        log_p = self.base.log_prob(z)
        if log_p.shape != (z.shape[0],):
            raise ValueError(f"base.log_prob ({type(self.base).__name__}) returned shape {tuple(log_p.shape)}; "
                             f"expected ({z.shape[0]},): one value per row")
        return log_p

    def log_prob(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """Exact log-density of each example of ``x`` (shape ``(batch, *event_shape)``) -> ``(batch,)``.

        ``-inf`` where ``x`` is outside the flow's support (e.g. outside ``(0, 1)`` after a ``Logit``).
        """
        x, context = self.validate(x, context, "log_prob")
        z, logabsdet = self.transform.inverse(x, context)        # log|det dz/dx|
        return self.base_log_prob(z) + logabsdet

    def latent(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """The latent point ``z = transform.inverse(x)`` of each example of ``x``."""
        x, context = self.validate(x, context, "latent")
        return self.transform.inverse(x, context)[0]

    def rsample(self, n=1, context=None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` differentiable samples (``n`` a count or a shape), of shape ``(*n, *event_shape)``.

        :math:`x = f(Tz)` with ``temperature`` T (see the class docstring). A count is anything
        integer-like (``3``, ``np.int64(3)``, ``torch.tensor(3)``, ``1e4``); a fractional or
        negative one raises ``ValueError``. Base samples are drawn with the base's ``rsample``
        when it has one (a learnable base then gets gradients), else ``sample``.
        """
        count, shape, context, temperature = self._sampling(n, context, temperature, "sample")
        x, _ = self.transform(temperature * self._base_sample(count), context)     # x = f(T z)
        return x.reshape(*shape, *self.event_shape)

    def sample(self, n=1, context=None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` samples (an int or a shape) at ``temperature`` T, shape ``(*n, *event_shape)``, no gradients."""
        with torch.no_grad():
            return self.rsample(n, context, temperature)

    def sample_and_log_prob(self, n=1, context=None, temperature: float = 1.0):
        r"""Samples and their log-density from one forward pass (no inverse needed).

        Returns ``(x, log_p)``: :math:`x = f(Tz)` as ``sample`` returns it, and
        :math:`\log p_X(x) = \log p_Z(Tz) - \log|\det \partial f/\partial z|_{Tz}`, the flow's own
        density at the returned x (what ``log_prob(x)`` gives), at every temperature. It is not
        the density of the tempered sampling distribution (for T != 1 and a standard normal base
        that one is :math:`\log p_X(x) + (1 - 1/T^2)\|Tz\|^2/2 - D \log T`). This is what
        reverse-KL training and flows without a tractable inverse use.
        """
        count, shape, context, temperature = self._sampling(n, context, temperature,
                                                            "sample_and_log_prob")
        z = temperature * self._base_sample(count)               # T z
        x, logabsdet = self.transform(z, context)   # x = f(T z), log|det dx/dz|
        log_p = self.base_log_prob(z) - logabsdet   # the flow's own density at x
        return x.reshape(*shape, *self.event_shape), log_p.reshape(shape)

    def _sampling(self, n, context, temperature, method):
        """The sampling arguments, checked: ``(count, shape, context, temperature)``."""
        count, shape = _as_batch(n)
        temperature = check_positive(temperature, "temperature", allow_zero=True)
        return count, shape, self._context(context, count, method, model_dtype(self)), temperature

    def _base_sample(self, count):
        rsample = getattr(self.base, "rsample", None)
        return rsample(count) if callable(rsample) else self.base.sample(count)

    def forward(self, x, context=None):
        """``flow(x)`` is ``log_prob(x)`` (see the class docstring); use ``latent(x)`` for z."""
        return self.log_prob(x, context)
