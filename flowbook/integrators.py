r"""Fixed-step integrators for the ODE :math:`dz/dt = v(t, z)`: Euler and classic Runge-Kutta (RK4).

Both march from :math:`t_0` to :math:`t_1` in :math:`N` = ``solver_steps`` equal steps of size
:math:`h = (t_1 - t_0)/N`, at the times :math:`t_k = t_0 + k h`:

* **Euler**, one evaluation of the field per step, global error :math:`O(h)`:

  .. math:: z_{k+1} = z_k + h\, v(t_k, z_k).

* **RK4**, four evaluations per step, global error :math:`O(h^4)`:

  .. math:: \begin{aligned}
            k_1 &= v(t_k, z_k), & k_2 &= v(t_k + \tfrac h2, z_k + \tfrac h2 k_1),\\
            k_3 &= v(t_k + \tfrac h2, z_k + \tfrac h2 k_2), & k_4 &= v(t_k + h, z_k + h k_3),\\
            z_{k+1} &= z_k + \tfrac h6 (k_1 + 2 k_2 + 2 k_3 + k_4). &&
            \end{aligned}

The field is called as ``field(t, z)`` with ``t`` a Python float. With ``trajectory=True`` both
return every state :math:`z_0, \dots, z_N` stacked along a new first axis. They
follow the caller's autograd mode: wrap a call in ``torch.no_grad()`` to sample, leave it on to
differentiate through the steps. ``t1 < t0`` integrates backwards (the inverse map), ``t1 = t0`` returns
the start. ``t0`` and ``t1`` must be finite numbers (``ValueError`` otherwise). Adaptive solvers
and the adjoint method come from ``torchdiffeq`` (``flowbook.ODEFlow``); the two loops here are
written out for reading, and flow matching samples with them.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .validation import check_count

__all__ = ["euler", "rk4"]


def euler(field, z: torch.Tensor, t0: float = 0.0, t1: float = 1.0, *,
          solver_steps: int, trajectory: bool = False) -> torch.Tensor:
    r"""Integrate :math:`dz/dt = v(t, z)` from ``t0`` to ``t1`` with Euler steps :math:`z \leftarrow z + h\,v(t, z)`.

    Args:
        field: the velocity field, called as ``field(t, z)``.
        z: the state at ``t0``, any shape (e.g. ``(n, features)``).
        t0, t1: start and end time.
        solver_steps: number of equal steps.
        trajectory: return all ``solver_steps + 1`` states, shape ``(solver_steps + 1, *z.shape)``.

    Example:
        >>> import torch, flowbook
        >>> flowbook.euler(lambda t, z: torch.ones_like(z), torch.zeros(1, 2), solver_steps=4)
        tensor([[1., 1.]])
        >>> flowbook.euler(lambda t, z: z, torch.ones(1), solver_steps=2, trajectory=True).flatten()
        tensor([1.0000, 1.5000, 2.2500])
    """
    t0, t1, solver_steps = check_solve(z, t0, t1, solver_steps)
    h, path = (t1 - t0) / solver_steps, [z]
    for k in range(solver_steps):
        z = z + h * field(t0 + k * h, z)
        if trajectory:
            path.append(z)
    return torch.stack(path) if trajectory else z


def rk4(field, z: torch.Tensor, t0: float = 0.0, t1: float = 1.0, *,
        solver_steps: int, trajectory: bool = False) -> torch.Tensor:
    r"""Integrate :math:`dz/dt = v(t, z)` from ``t0`` to ``t1`` with classic Runge-Kutta steps.

    Each step of size :math:`h` evaluates the field four times and averages the slopes with weights
    1, 2, 2, 1 (Simpson's rule in time); the error after a fixed time falls like :math:`h^4`.
    Arguments as for ``euler``.

    Example:
        >>> import math, torch, flowbook
        >>> y = flowbook.rk4(lambda t, y: y, torch.tensor(1.0), 0.0, 1.0, solver_steps=10)  # y(1) = e
        >>> abs(y.item() - math.e) < 1e-5
        True
    """
    t0, t1, solver_steps = check_solve(z, t0, t1, solver_steps)
    h, path = (t1 - t0) / solver_steps, [z]
    for k in range(solver_steps):
        t = t0 + k * h
        k1 = field(t, z)
        k2 = field(t + h / 2, z + h / 2 * k1)
        k3 = field(t + h / 2, z + h / 2 * k2)
        k4 = field(t + h, z + h * k3)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if trajectory:
            path.append(z)
    return torch.stack(path) if trajectory else z


def check_times(t0, t1) -> tuple[float, float]:
    """``(t0, t1)`` as Python floats; ``TypeError``/``ValueError`` naming the one that is not a finite number.

    A time may be a Python or NumPy number or a one-element tensor (read once, with ``.item()``).

    Example:
        >>> check_times(0, 1)
        (0.0, 1.0)
    """
    times = []
    for name, t in (("t0", t0), ("t1", t1)):
        value = t.item() if isinstance(t, torch.Tensor) and t.numel() == 1 else t
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number (a time), got {type(t).__name__} {t!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number (a time), got {t!r}")
        times.append(float(value))
    return times[0], times[1]


def check_solve(z, t0, t1, solver_steps):
    """The entry checks of ``euler`` and ``rk4``: ``z`` a tensor, finite times, ``solver_steps`` a count >= 1."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor (the state at t0), got {type(z).__name__}")
    return (*check_times(t0, t1), check_count(solver_steps, "solver_steps", minimum=1))
