"""Small helpers shared by every module: device choice, seeding, input validation."""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["device", "seed", "randomize_parameters", "check_dim", "check_features", "check_finite"]


def device() -> torch.device:
    """The device a chapter should use: CUDA when present, else the CPU.

    Example:
        >>> import flowbook
        >>> flowbook.device().type in ("cpu", "cuda")
        True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a chapter is reproducible."""
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


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


def check_dim(dim, name: str = "dim") -> int:
    """Return ``dim`` as an int, or raise ``ValueError`` if it is not a positive integer."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise ValueError(f"{name} must be a positive integer, got {dim!r}")
    return int(dim)


def check_features(x: torch.Tensor, dim: int | None, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a ``(batch, dim)`` tensor.

    Only the shape is checked, which costs nothing; finiteness is checked where data
    enters (``Flow.log_prob``, ``fit``), not inside every layer.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(
            f"{name} must have shape (batch, {dim if dim else 'features'}), "
            f"got a tensor of shape {tuple(x.shape)}"
        )
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} has {x.shape[1]} features, expected {dim} "
            f"(shape (batch, {dim}), got {tuple(x.shape)})"
        )


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinite value."""
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")
