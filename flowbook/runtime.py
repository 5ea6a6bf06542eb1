"""Runtime helpers: the device, seeding, the thread count, progress bars, random parameters for tests."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from .validation import check_count, check_positive

__all__ = ["device", "device_of", "seed", "threads", "randomize_parameters", "progress_bar"]


def device() -> torch.device:
    """The device a chapter should use: CUDA when present, else the CPU.

    Example:
        >>> import flowbook
        >>> flowbook.device().type in ("cpu", "cuda")
        True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_of(model) -> torch.device | None:
    """Where ``model`` computes: the device of a module's first parameter or buffer, also for a bound
    method such as ``flow.log_prob``; ``None`` for a plain function or a module without tensors.

    Functions that take a model's log-density and make their own points (``Density2D.kl_to``,
    ``plot.density_grid``) send the points there, so the same call works on a CPU and a GPU.

    Example:
        >>> import flowbook
        >>> flow = flowbook.RealNVP(2)
        >>> flowbook.runtime.device_of(flow.log_prob) == flowbook.runtime.device_of(flow)
        True
        >>> flowbook.runtime.device_of(lambda x: x) is None
        True
    """
    owner = model if isinstance(model, torch.nn.Module) else getattr(model, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        for t in owner.parameters():
            return t.device
        for t in owner.buffers():
            return t.device
    return None


def _seed_value(n, name: str = "seed") -> int:
    """``n`` as an int seed (integer-like, as ``check_count``: ``3``, ``np.int64(3)``, ``3.0``), else raise naming ``name``."""
    message = f"{name} must be a whole number (an integer such as 1234), got {type(n).__name__} {n!r}"
    try:
        value = check_count(n, name, minimum=-2**63)
    except TypeError:
        raise TypeError(message) from None
    except ValueError:
        raise ValueError(message) from None
    if value >= 2**64:
        raise ValueError(f"{name} must be below 2**64, got {n!r}")
    return value


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a chapter is reproducible.

    ``n`` is a whole number (integer-like values such as ``np.int64(3)`` or ``3.0`` work); ``1.5``
    raises ``ValueError`` and a non-number ``TypeError``, naming ``seed``.

    Example:
        >>> import flowbook
        >>> flowbook.seed(1.5)
        Traceback (most recent call last):
        ...
        ValueError: seed must be a whole number (an integer such as 1234), got float 1.5
    """
    n = _seed_value(n)
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


def threads(n: int | None):
    """Run a block with PyTorch's intra-op thread count set to ``n``, then restore the old count.

    Why one thread for small models: torch's intra-op threads spin and wait for each other, so a
    small model gains nothing from a second thread and becomes many times slower as soon as
    another process is busy (a browser, a video call, a 2-vCPU Colab machine). ``None`` leaves
    the setting alone. ``n`` is checked when ``threads(n)`` is called (integer-like counts work;
    ``0``, ``2.5`` raise ``ValueError`` naming ``n``).

    Example:
        >>> import torch, flowbook
        >>> before = torch.get_num_threads()
        >>> with flowbook.threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    if n is not None:   # checked here, when called, not only when a with block enters
        try:
            n = check_count(n, "n", 1)
        except (TypeError, ValueError) as error:
            raise type(error)(f"threads must be a positive integer or None: {error}") from None
    return _thread_count(n)


@contextlib.contextmanager
def _thread_count(n: int | None):
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def randomize_parameters(module, scale: float = 0.5, seed: int = 0):
    """Overwrite every parameter with ``scale * N(0, 1)`` noise from a seeded generator; return ``module``.

    Flow layers start as the identity (zero-initialized last layers), where checks such as
    ``check_bijection`` pass trivially; random parameters make them test something. ``scale`` is a
    finite number >= 0 and ``seed`` a whole number (``ValueError`` otherwise).

    Example:
        >>> import flowbook
        >>> layer = flowbook.randomize_parameters(flowbook.Affine(2), scale=0.1)
        >>> bool(layer.log_scale.abs().sum() > 0)
        True
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    scale = check_positive(scale, "scale", allow_zero=True)
    g = torch.Generator().manual_seed(_seed_value(seed))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def progress_bar(iterable, progress: bool = True, desc: str | None = None):
    """A ``tqdm.auto`` bar over ``iterable`` (a widget in a notebook, text in a terminal).

    ``progress=False`` hides it; so does ``TQDM_DISABLE=1`` in the environment for every bar (the
    book's HTML build sets it: a saved progress widget would show as an empty box).
    """
    from tqdm.auto import tqdm
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        progress = False  # tqdm's notebook bar ignores this variable, so it is read here
    return tqdm(iterable, desc=desc, leave=False) if progress else tqdm(iterable, disable=True)
