r"""The pieces every flow is made of: a bijection, its inverse, and a composition (``Flow`` is in ``flowbook.flow``).

Direction convention (the one of ``torch.distributions``):

* ``forward(z)`` is the *generative* map :math:`z \mapsto x` and returns
  ``(x, log|det ∂x/∂z|)``;
* ``inverse(x)`` is the *normalizing* map :math:`x \mapsto z` and returns
  ``(z, log|det ∂z/∂x|)``.

So for any bijection ``b``, ``b.inverse(b(z)[0])[1] == -b(z)[1]``, and a flow's density is

.. math:: \log p_X(x) = \log p_Z(f^{-1}(x)) + \log\left|\det \frac{\partial f^{-1}}{\partial x}\right|.
"""
from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from .validation import check_features, dtype_error, model_dtype

__all__ = ["Bijection", "Inverse", "Compose", "check_event"]

_AXES = {3: ("channels", "height", "width")}


def check_event(x, event_shape, name: str = "x") -> None:
    """Raise unless ``x`` is a ``(batch, *event_shape)`` tensor; a ``None`` entry accepts any size.

    The shape check of images (``event_shape = (C, H, W)``): Python-only, it costs nothing. A
    flat ``(batch, C*H*W)`` tensor gets the fix ``x.reshape(-1, C, H, W)`` in the message.

    Example:
        >>> import torch
        >>> check_event(torch.zeros(2, 64), (1, 8, 8))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: x must have shape (batch, 1, 8, 8), got a tensor of shape (2, 64); ...
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == len(event_shape) + 1 and all(e is None or s == e for s, e in zip(x.shape[1:], event_shape)):
        return
    names = _AXES.get(len(event_shape), ("size",) * len(event_shape))
    want = ", ".join(n if e is None else str(e) for e, n in zip(event_shape, names))
    hint = ""
    if None not in event_shape and x.dim() == 2 and x.shape[1] == math.prod(event_shape):
        hint = f"; images come as (N, C, H, W) batches: {name}.reshape(-1, {want})"
    raise ValueError(f"{name} must have shape (batch, {want}), got a tensor of shape {tuple(x.shape)}{hint}")


class Bijection(nn.Module):
    r"""Base class of an invertible map with a tractable log-Jacobian-determinant.

    Subclasses override ``forward(z, context=None) -> (x, logabsdet)`` and, when the
    inverse is tractable, ``inverse(x, context=None) -> (z, logabsdet)``. Both
    log-determinants have shape ``(batch,)``. ``features`` is the number of features, or
    ``None`` for a layer that works in any dimension. A layer on images sets ``event_shape``
    (``(C, H, W)``, ``None`` for a size it accepts any of) and takes ``(batch, C, H, W)`` tensors;
    a vector layer leaves it ``None`` and takes ``(batch, features)``.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.Affine(2)
        >>> x, logabsdet = b(torch.randn(5, 2))
        >>> x.shape, logabsdet.shape
        (torch.Size([5, 2]), torch.Size([5]))
        >>> b.inv.inv is b
        True
    """

    features: int | None = None
    event_shape: tuple | None = None

    def __init_subclass__(cls, **kwargs):
        # The contract is checked once, when a layer class is written, not on every call.
        super().__init_subclass__(**kwargs)
        for method in ("forward", "inverse"):
            fn = cls.__dict__.get(method)
            if fn is not None and not _takes_context(fn):
                raise TypeError(
                    f"{cls.__name__}.{method}{inspect.signature(fn)} must also take the context: a Bijection's "
                    "contract is forward(self, z, context=None) -> (x, logabsdet) and inverse(self, x, "
                    "context=None) -> (z, logabsdet). Compose and Flow pass a context (None when there is "
                    "none) to every layer; a layer that does not use it just ignores it."
                )

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

    def check_input(self, x, name):
        """Raise unless ``x`` is a ``(batch, features)`` floating tensor of this layer's dtype (Python-only checks).

        ``(batch, *event_shape)`` for a layer on images. A layer does not convert: data is
        converted where it enters (``Flow.log_prob``, ``fit``).
        """
        if self.event_shape is None:
            check_features(x, self.features, name)
        else:
            check_event(x, self.event_shape, name)
        dtype = model_dtype(self)
        if x.dtype != dtype and (dtype is not None or not x.is_floating_point()):
            raise dtype_error(x, name, dtype or torch.get_default_dtype(), type(self).__name__)


def _takes_context(fn) -> bool:
    """Whether ``fn(self, z, context)`` can be called: three positional parameters, or ``*args``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or an odd wrapper: nothing to check
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 3


def checked_pair(out, n, owner, index, method):
    """A layer's ``(output, logabsdet)`` pair, after checking it is one and the log-det has shape ``(n,)``.

    Only Python attribute checks: cheap enough for every layer of every call.
    """
    if type(out) is not tuple or len(out) != 2:
        raise TypeError(f"{_where(owner, index, method)} returned {_describe(out)}; expected a pair "
                        "(output, logabsdet): forward(z, context=None) returns (x, log|det dx/dz|) and "
                        "inverse(x, context=None) returns (z, log|det dz/dx|)")
    logabsdet = out[1]
    if getattr(logabsdet, "shape", None) != (n,):
        raise ValueError(f"{_where(owner, index, method)} returned as log-det {_describe(logabsdet)}; expected shape "
                         f"({n},): one value per row of the batch (sum the per-feature terms with .sum(1), "
                         f"or expand a constant with .expand({n}))")
    return out


def _rows(v, name: str) -> int:
    """The batch size of the tensor ``v`` (``TypeError`` naming ``name`` for anything else)."""
    if not isinstance(v, torch.Tensor) or v.dim() == 0:
        raise TypeError(f"{name} must be a (batch, ...) torch.Tensor, got "
                        f"{'a 0-d tensor' if isinstance(v, torch.Tensor) else type(v).__name__}")
    return v.shape[0]


def _where(owner, index, method):
    if index is None:
        return f"{type(owner).__name__}.{method}()"
    layer = owner.layers[index]
    return f"layer {index} ({type(layer).__name__}) of the Compose, in {method}(),"


def _describe(v):
    if isinstance(v, torch.Tensor):
        return f"a tensor of shape {tuple(v.shape)}"
    if isinstance(v, tuple):
        return f"a tuple of {len(v)} values"
    return f"a {type(v).__name__}"


class Inverse(Bijection):
    """Swap the two directions of a bijection: ``Inverse(b).forward == b.inverse``.

    Example:
        >>> import torch, flowbook
        >>> b = flowbook.randomize_parameters(flowbook.Affine(2))
        >>> z = torch.randn(3, 2)
        >>> torch.equal(flowbook.Inverse(b)(z)[0], b.inverse(z)[0]), b.inv.inv is b
        (True, True)
    """

    def __init__(self, bijection: Bijection):
        super().__init__()
        if not isinstance(bijection, Bijection):
            raise TypeError(f"bijection must be a flowbook.Bijection, got {type(bijection).__name__}")
        self.bijection = bijection
        self.features = bijection.features
        self.event_shape = bijection.event_shape

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

    Example:
        >>> import torch, flowbook
        >>> both = flowbook.Compose(flowbook.Affine(2), flowbook.LULinear(2))
        >>> x, logabsdet = both(torch.randn(4, 2))
        >>> len(both), x.shape, logabsdet.shape
        (2, torch.Size([4, 2]), torch.Size([4]))
    """

    def __init__(self, *bijections: Bijection):
        super().__init__()
        if len(bijections) == 1 and isinstance(bijections[0], (list, tuple)):
            bijections = tuple(bijections[0])
        sizes = set()
        for i, b in enumerate(bijections):
            if not isinstance(b, Bijection):
                raise TypeError(f"bijections[{i}] must be a flowbook.Bijection, got {type(b).__name__}")
            if b.features is not None:
                sizes.add(b.features)
        if len(sizes) > 1:
            raise ValueError(f"bijections must share one number of features, got {sorted(sizes)}")
        self.layers = nn.ModuleList(bijections)
        self.features = sizes.pop() if sizes else None

    def forward(self, z, context=None):
        n = _rows(z, "z")
        total = z.new_zeros(n)
        for i, layer in enumerate(self.layers):
            z, logabsdet = checked_pair(layer(z, context), n, self, i, "forward")
            total = total + logabsdet
        return z, total

    def inverse(self, x, context=None):
        n = _rows(x, "x")
        total = x.new_zeros(n)
        for i, layer in reversed(list(enumerate(self.layers))):
            x, logabsdet = checked_pair(layer.inverse(x, context), n, self, i, "inverse")
            total = total + logabsdet
        return x, total

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]
