"""Data as users hold it, turned into training batches: a tensor, a ``Density2D``, a ``Dataset``, a ``DataLoader``.

* a **tensor** ``(n, *event_shape)`` (with an optional ``context`` tensor, one row per data
  row) is shuffled once per epoch and walked without replacement, ``batch_size`` rows at a
  time (the last batch of an epoch holds the rest); ``generator`` draws the permutations;
* a **TensorDataset** is walked like its tensors, ``(x,)`` or ``(x, context)``;
* any other **Dataset** is read through a shuffling ``DataLoader(dataset, batch_size)``;
* a **DataLoader**'s batches are used as given: a tensor ``x``, or a tuple ``(x,)`` or
  ``(x, context)``; each one is checked as it arrives (shape, dtype, finite);
* a ``flowbook.data.Density2D`` gives a fresh sample every step (unlimited data, so no epochs).

``batch_stream`` returns an endless iterator of checked ``(x, context)`` pairs on the model's
device and the number of steps (``steps``, or ``epochs`` times the batches per epoch).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .data import Density2D
from .validation import check_count, check_tensor

__all__ = ["batch_stream", "data_batches", "check_data", "model_shape", "passes"]

WHAT = ("a torch.Tensor of shape (n, features), a flowbook.data.Density2D, a torch.utils.data.Dataset "
        "or a DataLoader")


def model_shape(model) -> tuple | None:
    """The shape of one example: ``model.event_shape``, else ``(model.features,)``, else ``None`` (unknown)."""
    shape = getattr(model, "event_shape", None)
    if shape is not None:
        return tuple(shape)
    features = getattr(model, "features", None)
    return (features,) if isinstance(features, int) else None


def check_data(x, name: str, shape: tuple | None, dtype) -> torch.Tensor:
    """``x`` where it enters a trainer: a finite tensor of at least one row of ``shape``, in ``dtype`` when exact.

    ``shape`` ``None`` (a model that does not say) takes any ``(n, features)`` tensor; an image
    model's ``(C, H, W)`` takes ``(n, C, H, W)`` batches; ``False`` (data that a ``transform_batch``
    reshapes before the model sees it) takes rows of any shape.
    """
    if isinstance(x, np.ndarray):
        raise TypeError(f"{name} is a NumPy array; convert it with torch.as_tensor({name}) "
                        f"(torch.as_tensor({name}, dtype=torch.float32) for a float32 model)")
    if isinstance(x, torch.Tensor) and x.dim() >= 1 and len(x) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); expected at least one row")
    if shape is False and isinstance(x, torch.Tensor) and x.dim() >= 1:
        x = check_tensor(x.reshape(len(x), -1), name, None, dtype).reshape(x.shape)
    elif shape and len(shape) > 1 and isinstance(x, torch.Tensor):
        if tuple(x.shape[1:]) != shape:
            want = ", ".join(map(str, shape))
            raise ValueError(f"{name} must have shape (batch, {want}), got a tensor of shape {tuple(x.shape)}; "
                             f"images come as (N, C, H, W) batches: {name}.reshape(-1, {want})")
        x = check_tensor(x.reshape(len(x), -1), name, None, dtype).reshape(x.shape)
    else:
        flat = math.prod(shape) if shape else None
        x = check_tensor(x, name, flat, dtype)
    if len(x) == 0:
        raise ValueError(f"{name} is empty; expected at least one row")
    return x


def _check_context(context, name, rows, data_name, dtype):
    context = check_tensor(context, name, None, dtype)
    if len(context) != rows:
        raise ValueError(f"{name} has {len(context)} rows, expected {rows}: one per row of {data_name}")
    return context


def passes(loader) -> int:
    """Batches per pass of a ``DataLoader`` (``TypeError`` naming ``epochs`` when it has no length)."""
    try:
        return len(loader)
    except TypeError:
        raise TypeError("epochs= needs a DataLoader with a length (this one reads an IterableDataset); "
                        "pass steps= instead") from None


def _check_not_empty(data, name: str) -> None:
    """``ValueError`` for a Dataset or DataLoader of length 0 (one without a length, e.g. iterable, passes)."""
    try:
        size = len(data) if isinstance(data, (Dataset, DataLoader)) else None
    except TypeError:
        size = None
    if size == 0:
        raise ValueError(f"{name} is empty ({type(data).__name__} of length 0); expected at least one row")


def _tensors(data: TensorDataset, name: str):
    """``(x, context)`` of a TensorDataset of one or two tensors (``ValueError`` for more)."""
    if len(data.tensors) not in (1, 2):
        raise ValueError(f"{name} is a TensorDataset of {len(data.tensors)} tensors; expected (x,) or (x, context)")
    return data.tensors[0], (data.tensors[1] if len(data.tensors) == 2 else None)


def _tensor_batches(x, context, batch_size, generator, transform):
    while True:
        for idx in torch.randperm(len(x), generator=generator).to(x.device).split(batch_size):
            batch = x[idx] if transform is None else transform(x[idx])
            yield batch, None if context is None else context[idx]


def _density_batches(density, batch_size, generator, device, dtype, transform):
    while True:
        batch = density.sample(batch_size, generator).to(device, dtype)
        yield batch if transform is None else transform(batch), None


def _loader_batches(loader, shape, dtype, device, transform, name="data"):
    while True:
        i = -1
        for i, batch in enumerate(loader):
            if isinstance(batch, (tuple, list)) and len(batch) in (1, 2):
                x, context = batch[0], (batch[1] if len(batch) == 2 else None)
            elif isinstance(batch, torch.Tensor):
                x, context = batch, None
            else:
                size = f" of length {len(batch)}" if hasattr(batch, "__len__") else ""
                fix = " (let the Dataset return x or (x, context), not a dict)" if isinstance(batch, dict) else ""
                raise TypeError("a DataLoader batch must be a tensor x, or a tuple (x,) or (x, context); "
                                f"got {type(batch).__name__}{size}{fix}")
            where = f"{name} (batch {i} of the DataLoader)"
            x = check_data(x, where, shape, dtype).to(device)
            if context is not None:
                context = _check_context(context, f"the context of {where}", len(x), where, dtype).to(device)
            yield x if transform is None else transform(x), context
        if i < 0:
            raise ValueError(f"{name} is empty: its DataLoader gave no batch; expected at least one")


def batch_stream(data, shape, dtype, device, *, steps, epochs, batch_size, default_batch_size: int = 256,
                 context=None, generator=None, transform=None, name: str = "data", context_name: str = "context"):
    """``(batches, steps)``: an endless iterator of checked ``(x, context)`` batches, and the steps to take.

    ``steps``/``epochs`` come checked by ``engine.check_schedule`` (exactly one of them set).
    ``batch_size`` ``None`` means ``default_batch_size`` (a DataLoader refuses one: it has its own).
    """
    shape = False if transform is not None else shape   # the model checks what transform returns
    if transform is not None and not callable(transform):
        raise TypeError(f"transform_batch must be a function of a batch, got {type(transform).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    _check_not_empty(data, name)
    if isinstance(data, DataLoader):
        for arg, value, fix in (("batch_size", batch_size, "DataLoader(..., batch_size=...)"),
                                ("generator", generator, "DataLoader(..., generator=...)"),
                                (context_name, context, "batches (x, context) from the DataLoader")):
            if value is not None:
                raise ValueError(f"{arg}= does not apply to a DataLoader, whose batches are used as given; "
                                 f"use {fix}")
        steps = steps if epochs is None else epochs * passes(data)
        return _loader_batches(data, shape, dtype, device, transform, name), steps
    batch_size = check_count(default_batch_size if batch_size is None else batch_size, "batch_size", 1)
    if isinstance(data, Density2D):
        if epochs is not None:
            raise ValueError(f"epochs= needs a finite data set; {name} is a Density2D, which gives a fresh "
                             "sample every step (unlimited data): pass steps= instead")
        if context is not None:
            raise ValueError(f"{context_name} needs {name} as a tensor (one context row per data row)")
        if shape not in (None, False, (2,)):
            raise ValueError(f"{name} is a 2-D density but the model's examples have shape {shape}")
        return _density_batches(data, batch_size, generator, device, dtype, transform), steps
    if isinstance(data, TensorDataset) and context is None:
        data, context = _tensors(data, name)
    elif isinstance(data, Dataset):
        if context is not None:
            raise ValueError(f"{context_name}= does not apply to a Dataset; let its items be (x, context) pairs")
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)
        steps = steps if epochs is None else epochs * passes(loader)
        return _loader_batches(loader, shape, dtype, device, transform, name), steps
    if not isinstance(data, (torch.Tensor, np.ndarray)):
        fix = f"; for a list use torch.as_tensor({name})" if isinstance(data, (list, tuple)) else ""
        raise TypeError(f"{name} must be {WHAT}, got {type(data).__name__}{fix}")
    data = check_data(data, name, shape, dtype).to(device)
    if context is not None:
        context = _check_context(context, context_name, len(data), name, dtype).to(device)
    steps = steps if epochs is None else epochs * math.ceil(len(data) / batch_size)
    return _tensor_batches(data, context, batch_size, generator, transform), steps


def data_batches(data, shape, dtype, device, batch_size: int, context=None, name: str = "x"):
    """One pass over ``data`` (tensor, Dataset or DataLoader), in order: checked ``(x, context)`` batches."""
    batch_size = check_count(batch_size, "batch_size", 1)
    _check_not_empty(data, name)
    if isinstance(data, Dataset) and not isinstance(data, TensorDataset):
        data = DataLoader(data, batch_size=batch_size)
    if isinstance(data, DataLoader):
        stream = _loader_batches(data, shape, dtype, device, None, name)
        return (next(stream) for _ in range(passes(data)))
    if isinstance(data, TensorDataset):
        data, context = _tensors(data, name)
    data = check_data(data, name, shape, dtype).to(device)
    if context is not None:
        context = _check_context(context, "context", len(data), name, dtype).to(device)
    return ((data[i:i + batch_size], None if context is None else context[i:i + batch_size])
            for i in range(0, len(data), batch_size))
