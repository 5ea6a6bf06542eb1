r"""The three pieces every flow is made of: a bijection, a composition, and a flow.

Direction convention (the one of ``torch.distributions``):

* ``forward(z)`` is the *generative* map :math:`z \mapsto x` and returns
  ``(x, log|det ∂x/∂z|)``;
* ``inverse(x)`` is the *normalizing* map :math:`x \mapsto z` and returns
  ``(z, log|det ∂z/∂x|)``.

So for any bijection ``b``, ``b.inverse(b(z)[0])[1] == -b(z)[1]``, and a flow's density is

.. math:: \log p_X(x) = \log p_Z(f^{-1}(x)) + \log\left|\det \frac{\partial f^{-1}}{\partial x}\right|.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .utils import check_features, check_finite

__all__ = ["Bijection", "Inverse", "Compose", "Flow"]


class Bijection(nn.Module):
    r"""Base class of an invertible map with a tractable log-Jacobian-determinant.

    Subclasses override ``forward(z, context=None) -> (x, logabsdet)`` and, when the
    inverse is tractable, ``inverse(x, context=None) -> (z, logabsdet)``. Both
    log-determinants have shape ``(batch,)``. ``dim`` is the number of features, or
    ``None`` for a layer that works in any dimension.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.Affine(2)
        >>> x, ladj = b(torch.randn(5, 2))
        >>> x.shape, ladj.shape
        (torch.Size([5, 2]), torch.Size([5]))
        >>> b.inv.inv is b
        True
    """

    dim: int | None = None

    def forward(self, z, context=None):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def inverse(self, x, context=None):
        raise NotImplementedError(
            f"{type(self).__name__} has no tractable inverse; use the forward direction "
            "(e.g. Flow.sample_and_log_prob), or a layer that defines inverse()"
        )

    @property
    def inv(self) -> "Bijection":
        """The inverse bijection, whose ``forward`` is this one's ``inverse``."""
        return Inverse(self)

    def _check(self, x, name):
        check_features(x, self.dim, name)


class Inverse(Bijection):
    """Swap the two directions of a bijection: ``Inverse(b).forward == b.inverse``."""

    def __init__(self, bijection: Bijection):
        super().__init__()
        if not isinstance(bijection, Bijection):
            raise TypeError(f"bijection must be a flowbook.Bijection, got {type(bijection).__name__}")
        self.bijection = bijection
        self.dim = bijection.dim

    def forward(self, z, context=None):
        return self.bijection.inverse(z, context)

    def inverse(self, x, context=None):
        return self.bijection(x, context)

    @property
    def inv(self) -> Bijection:
        return self.bijection

    def extra_repr(self):
        return "of " + type(self.bijection).__name__


class Compose(Bijection):
    r"""Apply bijections in order: ``Compose(f1, f2)(z) = f2(f1(z))``.

    The log-determinants add up (chain rule: the Jacobian of a composition is the product
    of the layers' Jacobians); ``inverse`` runs the layers backwards.
    """

    def __init__(self, *bijections: Bijection):
        super().__init__()
        if len(bijections) == 1 and isinstance(bijections[0], (list, tuple)):
            bijections = tuple(bijections[0])
        dims = set()
        for i, b in enumerate(bijections):
            if not isinstance(b, Bijection):
                raise TypeError(f"bijections[{i}] must be a flowbook.Bijection, got {type(b).__name__}")
            if b.dim is not None:
                dims.add(b.dim)
        if len(dims) > 1:
            raise ValueError(f"bijections must share one feature dimension, got dims {sorted(dims)}")
        self.layers = nn.ModuleList(bijections)
        self.dim = dims.pop() if dims else None

    def forward(self, z, context=None):
        total = z.new_zeros(z.shape[0])
        for layer in self.layers:
            z, ladj = layer(z, context)
            total = total + ladj
        return z, total

    def inverse(self, x, context=None):
        total = x.new_zeros(x.shape[0])
        for layer in reversed(self.layers):
            x, ladj = layer.inverse(x, context)
            total = total + ladj
        return x, total

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]


def _as_batch(sample_shape) -> tuple[int, tuple[int, ...]]:
    shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"sample_shape must be an int or a tuple of ints >= 0, got {sample_shape!r}")
    return math.prod(shape), shape


class Flow(nn.Module):
    r"""A normalizing flow: a base distribution pushed through a bijection.

    ``x = transform(z)`` with ``z ~ base``, so
    :math:`\log p(x) = \log p_Z(z) + \log|\det \partial z/\partial x|` with ``z = transform.inverse(x)``.

    Args:
        base: a module with ``dim``, ``sample(n)`` and ``log_prob(z)``, e.g. ``StandardNormal(dim)``.
        transform: a ``Bijection`` or a list of them (composed left to right, base to data).

    Example:
        >>> import torch, flowbook
        >>> flow = flowbook.Flow(flowbook.StandardNormal(2), [flowbook.Affine(2), flowbook.LULinear(2)])
        >>> flow.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
        >>> flow.sample((4, 5)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(self, base: nn.Module, transform):
        super().__init__()
        if isinstance(transform, (list, tuple)):
            transform = Compose(*transform)
        if not isinstance(transform, Bijection):
            raise TypeError(f"transform must be a flowbook.Bijection or a list of them, got {type(transform).__name__}")
        base_dim = getattr(base, "dim", None)
        if base_dim is None:
            raise TypeError("base must have a 'dim' attribute (e.g. flowbook.StandardNormal(dim))")
        if transform.dim is not None and transform.dim != base_dim:
            raise ValueError(
                f"transform works on {transform.dim} features but base has dim {base_dim}; "
                f"expected transform dim == base dim"
            )
        self.base = base
        self.transform = transform
        self.dim = base_dim

    def _context(self, context, n):
        """Broadcast a single context to ``n`` rows, or check one context per row."""
        if context is None:
            return None
        if context.dim() == 1:
            context = context.unsqueeze(0)
        if context.shape[0] == 1 and n != 1:
            return context.expand(n, -1)
        if context.shape[0] != n:
            raise ValueError(
                f"context has {context.shape[0]} rows, expected 1 (shared) or {n} (one per sample)"
            )
        return context

    def log_prob(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """Exact log-density of each row of ``x`` (shape ``(batch, dim)``) -> ``(batch,)``."""
        check_features(x, self.dim, "x")
        check_finite(x, "x")
        z, ladj = self.transform.inverse(x, self._context(context, x.shape[0]))
        return self.base.log_prob(z) + ladj

    def rsample(self, sample_shape=1, context=None) -> torch.Tensor:
        """Differentiable samples of shape ``(*sample_shape, dim)``."""
        n, shape = _as_batch(sample_shape)
        x, _ = self.transform(self.base.sample(n), self._context(context, n))
        return x.reshape(*shape, self.dim)

    def sample(self, sample_shape=1, context=None) -> torch.Tensor:
        """Samples of shape ``(*sample_shape, dim)``, without gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape, context)

    def sample_and_log_prob(self, sample_shape=1, context=None):
        """Samples and their log-density from one forward pass (no inverse needed).

        This is what reverse-KL training and flows without a tractable inverse use.
        """
        n, shape = _as_batch(sample_shape)
        z = self.base.sample(n)
        x, ladj = self.transform(z, self._context(context, n))
        log_p = self.base.log_prob(z) - ladj
        return x.reshape(*shape, self.dim), log_p.reshape(shape)

    def forward(self, x, context=None):
        """Calling a flow returns ``log_prob(x)``, so ``-flow(x).mean()`` is the NLL loss."""
        return self.log_prob(x, context)
