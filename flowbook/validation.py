"""Checks where data and arguments enter the package: one place for every entry-point check ("Nothing silent").

Each check names the argument and says what was expected; see CONTRIBUTING.md, "Nothing silent".
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_dim", "check_features", "check_context", "check_finite", "check_count", "check_positive",
           "check_tensor", "dtype_error", "model_dtype", "check_clamp", "check_binary", "check_levels", "check_schedule"]


def check_dim(value, name: str = "features") -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name`` if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_features(x: torch.Tensor, features: int | None, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a ``(batch, features)`` tensor (any width for ``None``).

    Only the shape is checked, which costs nothing; finiteness is checked where data
    enters (``Flow.log_prob``, ``fit``), not inside every layer.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(
            f"{name} must have shape (batch, {features if features else 'features'}), "
            f"got a tensor of shape {tuple(x.shape)}"
        )
    if features is not None and x.shape[1] != features:
        raise ValueError(
            f"{name} has {x.shape[1]} features, expected {features} "
            f"(shape (batch, {features}), got {tuple(x.shape)})"
        )


def check_context(context, context_features: int, owner: str, method: str | None = None,
                  rows: int | None = None) -> None:
    """Raise ``ValueError`` unless a context is given exactly when ``context_features > 0``.

    The one rule of every conditional piece (couplings, MADE, vector fields, flows): a piece built
    with ``context_features=w > 0`` needs a ``(batch, w)`` context, one built with 0 takes none.
    The error names ``owner`` (and ``method``, e.g. ``"sample"``) and the shape to pass. With
    ``rows`` (a flow's entry point) a single ``(w,)`` context shared by the rows is offered too and
    the caller checks the shape; otherwise ``context`` must have shape ``(batch, w)``.
    Python-only, cheap enough for every call of a layer.

    Example:
        >>> import torch
        >>> check_context(None, 3, "MADE")
        Traceback (most recent call last):
        ...
        ValueError: MADE is conditional (context_features=3): pass a context, a tensor of shape (batch, 3)
    """
    if context is None:
        if context_features:
            shape = (f"({context_features},) shared by every row, or ({rows}, {context_features})" if rows is not None
                     else f"(batch, {context_features})")
            raise ValueError(f"{owner} is conditional (context_features={context_features}): pass a context"
                             f"{f' to {method}()' if method else ''}, a tensor of shape {shape}")
    elif not context_features:
        raise ValueError(f"{owner} takes no context (context_features=0), but {method + '() ' if method else ''}"
                         f"got one of shape {tuple(getattr(context, 'shape', ()))}; to condition on one, build it "
                         "with context_features=<width>")
    elif rows is None:
        check_features(context, context_features, "context")


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinite value (one reduction when it does not)."""
    if not torch.isfinite(x).all():
        bad = ~torch.isfinite(x)
        where = bad.reshape(bad.shape[0], -1).any(1).nonzero()[0, 0].item() if x.dim() else None
        first = f" (first in row {where})" if where is not None else ""
        raise ValueError(f"{name} contains {bad.sum().item()} NaN or infinite value(s){first}; expected finite numbers")


def check_count(n, name: str = "n", minimum: int = 0) -> int:
    """Return the count ``n`` as a Python int, or raise naming ``name``.

    Integer-like counts just work: Python and NumPy integers, 0-d integer tensors, and floats
    with an integral value (``1e4``, ``3.0``). A fractional value (2.5), a value below
    ``minimum`` (negative counts by default), NaN or infinity raise ``ValueError``; ``bool`` and
    non-numbers raise ``TypeError``.

    Example:
        >>> import numpy as np, torch
        >>> check_count(np.int64(3)), check_count(torch.tensor(3)), check_count(1e4)
        (3, 3, 10000)
        >>> check_count(2.5)
        Traceback (most recent call last):
        ...
        ValueError: n must be a whole number >= 0, got 2.5
    """
    value = n
    if isinstance(n, torch.Tensor):
        if n.dim() != 0 or n.dtype == torch.bool or n.is_complex():
            raise TypeError(f"{name} must be a number (a count), got a tensor of shape {tuple(n.shape)} "
                            f"and dtype {n.dtype}")
        value = n.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a whole number >= {minimum} (a count), got {type(n).__name__} {n!r}")
    if isinstance(value, (float, np.floating)):
        if not (np.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"{name} must be a whole number >= {minimum}, got {n!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {n!r}")
    return value


def check_positive(value, name: str, allow_none: bool = False, allow_zero: bool = False):
    """Return ``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``), else raise.

    ``None`` is returned as is when ``allow_none`` (an option switched off). Errors name ``name``.

    Example:
        >>> check_positive(0, "lr")
        Traceback (most recent call last):
        ...
        ValueError: lr must be a finite number > 0, got 0
    """
    if value is None and allow_none:
        return None
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number {bound}{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__} {value!r}")
    if not (np.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise ValueError(f"{name} must be a finite number {bound}{' (or None)' if allow_none else ''}, got {value!r}")
    return float(value)


def model_dtype(module) -> torch.dtype | None:
    """The dtype of the first floating-point parameter or buffer of ``module`` (``None`` if it has none).

    A plain walk over the module's own dictionaries (about 1-2 microseconds), cheap enough to run
    on every call of a layer.
    """
    for t in module._parameters.values():
        if t is not None and t.is_floating_point():
            return t.dtype
    for t in module._buffers.values():
        if t is not None and t.is_floating_point():
            return t.dtype
    for child in module._modules.values():
        if child is not None:
            found = model_dtype(child)
            if found is not None:
                return found
    return None


_CAST = {torch.float32: "float()", torch.float64: "double()", torch.float16: "half()", torch.bfloat16: "bfloat16()"}


def _cast(dtype) -> str:
    return _CAST.get(dtype, f"to({dtype})")


def dtype_error(x: torch.Tensor, name: str, dtype: torch.dtype, owner: str = "the model") -> TypeError:
    """The ``TypeError`` for data ``x`` whose dtype does not fit a model of ``dtype``: both dtypes and both fixes."""
    return TypeError(f"{name} has dtype {x.dtype} but {owner} computes in {dtype}; convert the data with "
                     f"{name}.{_cast(dtype)}, or the model with .{_cast(x.dtype) if x.is_floating_point() else 'float()'}"
                     if x.is_floating_point() else
                     f"{name} has dtype {x.dtype} but {owner} computes in {dtype}; convert the data with "
                     f"{name}.{_cast(dtype)}")


def check_tensor(x, name: str = "x", features: int | None = None, dtype: torch.dtype | None = None,
                 finite: bool = True, owner: str = "the model") -> torch.Tensor:
    """Validate data where it enters the package; return it, converted to ``dtype`` when that is exact.

    * ``x`` must be a ``(batch, features)`` tensor (``TypeError`` / ``ValueError`` otherwise; a NumPy
      array is refused with the fix ``torch.as_tensor(x)``);
    * **the dtype rule**: integer, boolean and lower-precision floating data are converted to the
      model's ``dtype`` (exact: ``torch.promote_types(x.dtype, dtype) == dtype``); data that would
      be rounded (float64 data into a float32 model) raises ``TypeError`` naming ``name``, both
      dtypes and the two fixes (``x.float()`` or ``model.double()``). ``dtype=None``: no dtype check;
    * with ``finite`` (default), a NaN or infinite entry raises ``ValueError`` (one reduction).

    Example:
        >>> import torch
        >>> check_tensor(torch.ones(2, 3, dtype=torch.long), "x", 3, torch.float32).dtype
        torch.float32
        >>> check_tensor(torch.ones(2, 3, dtype=torch.float64), "x", 3, torch.float32)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: x has dtype torch.float64 but the model computes in torch.float32; ... x.float(), ...
    """
    if not isinstance(x, torch.Tensor):
        fix = "; convert it with torch.as_tensor(...)" if isinstance(x, (np.ndarray, list, tuple)) else ""
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}{fix}")
    check_features(x, features, name)
    if dtype is not None and x.dtype != dtype:
        if x.is_complex() or torch.promote_types(x.dtype, dtype) != dtype:
            raise dtype_error(x, name, dtype, owner)
        x = x.to(dtype)
    if finite:
        check_finite(x, name)
    return x


def check_clamp(clamp):
    """Return the bound ``clamp`` of a soft-clamped log-scale: a finite number > 0, or ``None`` (no clamp).

    An infinite bound would make ``c tanh(s / c)`` compute ``inf * 0 = NaN``; a bound <= 0 would flip
    or kill every scale.

    Example:
        >>> check_clamp(3), check_clamp(None)
        (3, None)
    """
    if clamp is not None and (isinstance(clamp, bool) or not isinstance(clamp, (int, float, np.number))):
        raise TypeError(f"clamp must be a number > 0 or None, got {type(clamp).__name__} {clamp!r}")
    if clamp is not None and not 0 < clamp < float("inf"):
        raise ValueError(f"clamp must be positive and finite, or None, got {clamp}")
    return clamp


def check_binary(y: torch.Tensor, features: int, name: str = "y", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``y`` if it is a ``(batch, features)`` tensor of 0s and 1s, else raise ``ValueError`` naming ``name``.

    The entry-point check of binary data. Converting 0s and 1s is exact in every dtype, so data
    of any real dtype (bool, integers, float64 for a float32 model) is converted to ``dtype``
    (the model's; ``None``: left as is).
    """
    y = check_tensor(y, name, features, None, finite=False)
    if y.is_complex():
        raise TypeError(f"{name} must be a real tensor of 0s and 1s, got dtype {y.dtype}")
    if not ((y == 0) | (y == 1)).all():
        bad = (~((y == 0) | (y == 1))).sum().item()
        raise ValueError(f"{name} must be binary (entries 0 or 1); found {bad} other value(s), "
                         "e.g. binarize with (x > threshold).float()")
    return y if dtype is None or y.dtype == dtype else y.to(dtype)


def check_levels(x: torch.Tensor, levels: int, name: str = "x", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` (any shape) if every entry is an integer in ``0..levels-1``, converted to ``dtype``.

    The entry-point check of discrete data (pixels before dequantization), one reduction:
    ``x == clamp(floor(x), 0, levels - 1)`` fails for NaN, infinities, fractions and values out of
    range alike. The integers are exact in every dtype, so any real dtype is converted to ``dtype``
    (``None``: left as is). Otherwise ``ValueError`` naming ``name`` and ``levels``, with the values found.

    Example:
        >>> import torch
        >>> check_levels(torch.tensor([[0, 16]]), 17, dtype=torch.float32)
        tensor([[ 0., 16.]])
        >>> check_levels(torch.tensor([[0., 16.]]), 16)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: x holds the value 16 but levels=16 allows only the integers 0..15; pass levels=17 ...
    """
    if not isinstance(x, torch.Tensor) or x.is_complex():
        raise TypeError(f"{name} must be a real torch.Tensor of integers 0..{levels - 1}, "
                        f"got {type(x).__name__}{f' of dtype {x.dtype}' if isinstance(x, torch.Tensor) else ''}")
    v = x.floor() if x.is_floating_point() else x
    if not (x == v.clamp(0, levels - 1)).all():
        raise _levels_error(x, levels, name)
    return x if dtype is None or x.dtype == dtype else x.to(dtype)


def _levels_error(x, levels, name) -> ValueError:
    """The ``ValueError`` of ``check_levels``: non-finite, fractional or out-of-range values, in that order."""
    expected = f"the integers 0..{levels - 1} (levels={levels})"
    x = x.double()
    if not torch.isfinite(x).all():
        return ValueError(f"{name} contains {(~torch.isfinite(x)).sum().item()} NaN or infinite value(s); "
                          f"expected {expected}")
    fraction = x != x.floor()
    if fraction.any():
        hint = ("; the data looks already scaled to [0, 1]: pass the integer values themselves (e.g. the "
                "digits 0..16, not x / 16), the model adds the noise and divides by levels" if x.min() >= 0 and
                x.max() <= 1 else "")
        return ValueError(f"{name} must hold {expected}, got non-integer values such as "
                          f"{x[fraction][0].item():g}{hint}")
    low, high = x.min().item(), x.max().item()
    if low < 0:
        return ValueError(f"{name} holds the negative value {low:g}; expected {expected}")
    return ValueError(f"{name} holds the value {high:g} but levels={levels} allows only the integers "
                      f"0..{levels - 1}; pass levels={int(high) + 1} (the number of values, largest + 1)")


def check_schedule(steps, epochs, default_steps: int = 1000):
    """``(steps, None)`` or ``(None, epochs)``, checked: one given (neither: ``default_steps``), a count >= 1."""
    if steps is not None and epochs is not None:
        raise ValueError(f"give steps= or epochs=, not both (got steps={steps!r}, epochs={epochs!r}): "
                         "an epoch is one pass over the data, so either fixes the length of training")
    if epochs is not None:
        return None, check_count(epochs, "epochs", 1)
    return check_count(default_steps if steps is None else steps, "steps", 1), None
