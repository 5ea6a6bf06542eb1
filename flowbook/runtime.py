"""Runtime helpers: the device, seeding, the thread count, progress bars, random parameters for tests."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

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


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a chapter is reproducible."""
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


@contextlib.contextmanager
def threads(n: int | None):
    """Run a block with PyTorch's intra-op thread count set to ``n``, then restore the old count.

    Why one thread for small models: torch's intra-op threads spin and wait for each other, so a
    small model gains nothing from a second thread and becomes many times slower as soon as
    another process is busy (a browser, a video call, a 2-vCPU Colab machine). ``None`` leaves
    the setting alone.

    Example:
        >>> import torch, flowbook
        >>> before = torch.get_num_threads()
        >>> with flowbook.threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def randomize_parameters(module, scale: float = 0.5, seed: int = 0):
    """Overwrite every parameter with ``scale * N(0, 1)`` noise from a seeded generator; return ``module``.

    Flow layers start as the identity (zero-initialized last layers), where checks such as
    ``check_bijection`` pass trivially; random parameters make them test something.

    Example:
        >>> import flowbook
        >>> layer = flowbook.randomize_parameters(flowbook.Affine(2), scale=0.1)
        >>> bool(layer.log_scale.abs().sum() > 0)
        True
    """
    g = torch.Generator().manual_seed(seed)
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
