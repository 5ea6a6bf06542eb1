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

import inspect
import math

import torch
from torch import nn

from .utils import check_count, check_features, check_tensor, dtype_error, model_dtype

__all__ = ["Bijection", "Inverse", "Compose", "Flow"]


class Bijection(nn.Module):
    r"""Base class of an invertible map with a tractable log-Jacobian-determinant.

    Subclasses override ``forward(z, context=None) -> (x, logabsdet)`` and, when the
    inverse is tractable, ``inverse(x, context=None) -> (z, logabsdet)``. Both
    log-determinants have shape ``(batch,)``. ``features`` is the number of features, or
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

    features: int | None = None

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

        A layer does not convert: data is converted where it enters (``Flow.log_prob``, ``fit``).
        """
        check_features(x, self.features, name)
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
    ladj = out[1]
    if getattr(ladj, "shape", None) != (n,):
        raise ValueError(f"{_where(owner, index, method)} returned as log-det {_describe(ladj)}; expected shape "
                         f"({n},): one value per row of the batch (sum the per-feature terms with .sum(1), "
                         f"or expand a constant with .expand({n}))")
    return out


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
        >>> x, ladj = both(torch.randn(4, 2))
        >>> len(both), x.shape, ladj.shape
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
        n = z.shape[0]
        total = z.new_zeros(n)
        for i, layer in enumerate(self.layers):
            z, ladj = checked_pair(layer(z, context), n, self, i, "forward")
            total = total + ladj
        return z, total

    def inverse(self, x, context=None):
        n = x.shape[0]
        total = x.new_zeros(n)
        for i, layer in reversed(list(enumerate(self.layers))):
            x, ladj = checked_pair(layer.inverse(x, context), n, self, i, "inverse")
            total = total + ladj
        return x, total

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]


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

    **Checks where data enters** (``log_prob``, ``latent``, ``sample``...): ``x`` must be a finite
    ``(batch, features)`` tensor; integer, boolean and lower-precision data are converted to the
    flow's dtype (exact), data that would be rounded (float64 into a float32 flow) raises
    ``TypeError`` naming both dtypes and the fixes ``x.float()`` / ``flow.double()``. Every layer
    must return a pair whose log-det has shape ``(batch,)`` (``ValueError`` naming the layer).
    ``context`` is ``(context_features,)`` (shared) or ``(batch, context_features)``, finite; a
    conditional flow (``context_features > 0``, the largest one its layers declare) refuses a
    missing context, and a flow of built-in unconditional layers refuses a given one.

    Args:
        base: a module with ``features``, ``sample(n)`` and ``log_prob(z)``, e.g. ``StandardNormal(features)``.
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
        if context is None:
            if width:
                raise ValueError(f"this flow is conditional (context_features={width}): pass a context to "
                                 f"{method}(), a tensor of shape ({width},) shared by every row, or ({n}, {width})")
            return None
        if not isinstance(context, torch.Tensor):
            raise TypeError(f"context must be a torch.Tensor, got {type(context).__name__}")
        if self._takes_no_context:
            raise ValueError(f"this flow takes no context (no layer was built with context_features > 0), but "
                             f"{method}() got one of shape {tuple(context.shape)}; build the layers with "
                             "context_features=<width> to condition on it")
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
        x = check_tensor(x, "x", self.features, dtype, owner="the flow")
        return x, self._context(context, x.shape[0], method, dtype)

    def base_log_prob(self, z):
        """``base.log_prob(z)``, checked to be one value per row."""
        log_p = self.base.log_prob(z)
        if log_p.shape != (z.shape[0],):
            raise ValueError(f"base.log_prob ({type(self.base).__name__}) returned shape {tuple(log_p.shape)}; "
                             f"expected ({z.shape[0]},): one value per row")
        return log_p

    def log_prob(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """Exact log-density of each row of ``x`` (shape ``(batch, features)``) -> ``(batch,)``.

        ``-inf`` where ``x`` is outside the flow's support (e.g. outside ``(0, 1)`` after a ``Logit``).
        """
        x, context = self.validate(x, context, "log_prob")
        z, log_det = self.transform.inverse(x, context)          # log|det dz/dx|
        return self.base_log_prob(z) + log_det

    def latent(self, x: torch.Tensor, context=None) -> torch.Tensor:
        """The latent point ``z = transform.inverse(x)`` of each row of ``x``."""
        x, context = self.validate(x, context, "latent")
        return self.transform.inverse(x, context)[0]

    def rsample(self, n=1, context=None) -> torch.Tensor:
        """``n`` differentiable samples (``n`` a count or a shape), of shape ``(*n, features)``.

        A count is anything integer-like (``3``, ``np.int64(3)``, ``torch.tensor(3)``, ``1e4``); a
        fractional or negative one raises ``ValueError``. Base samples are drawn with the base's
        ``rsample`` when it has one (a learnable base then gets gradients), else ``sample``.
        """
        count, shape = _as_batch(n)
        context = self._context(context, count, "sample", model_dtype(self))
        x, _ = self.transform(self._base_sample(count), context)
        return x.reshape(*shape, self.features)

    def sample(self, n=1, context=None) -> torch.Tensor:
        """``n`` samples (``n`` an int or a shape), of shape ``(*n, features)``, without gradients."""
        with torch.no_grad():
            return self.rsample(n, context)

    def sample_and_log_prob(self, n=1, context=None):
        """Samples and their log-density from one forward pass (no inverse needed).

        This is what reverse-KL training and flows without a tractable inverse use.
        """
        count, shape = _as_batch(n)
        context = self._context(context, count, "sample_and_log_prob", model_dtype(self))
        z = self._base_sample(count)
        x, log_det = self.transform(z, context)                  # log|det dx/dz|
        log_p = self.base_log_prob(z) - log_det
        return x.reshape(*shape, self.features), log_p.reshape(shape)

    def _base_sample(self, count):
        rsample = getattr(self.base, "rsample", None)
        return rsample(count) if callable(rsample) else self.base.sample(count)

    def forward(self, x, context=None):
        """``flow(x)`` is ``log_prob(x)`` (see the class docstring); use ``latent(x)`` for z."""
        return self.log_prob(x, context)
