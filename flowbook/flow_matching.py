r"""Flow matching with straight paths, minibatch optimal-transport pairing, and rectified flow.

**Conditional flow matching** (Lipman et al., *Flow Matching for Generative Modeling*, 2023; Liu et
al., *Flow Straight and Fast*, 2023). Pair a noise point :math:`x_0 \sim \mathcal N(0, I)` with a data
point :math:`x_1`, and move along the straight line :math:`x_t = (1 - t)\,x_0 + t\,x_1`, whose velocity
is :math:`x_1 - x_0`. Regressing a field on that velocity,

.. math:: \mathcal L(\theta) = \mathbb E_{t \sim U[0,1],\,(x_0, x_1)}
          \bigl\lVert v_\theta(t, x_t) - (x_1 - x_0)\bigr\rVert^2,

has the same minimizer as regressing on the *marginal* field
:math:`u(t, x) = \mathbb E[x_1 - x_0 \mid x_t = x]`, whose ODE carries :math:`\mathcal N(0, I)` at
:math:`t = 0` to the data at :math:`t = 1`. No ODE is solved during training.

**Minibatch OT** (Tong et al., *Improving and Generalizing Flow-Based Generative Models with
Minibatch Optimal Transport*, 2023; Pooladian et al., 2023). Pair the noise and data points of a
batch by the assignment that minimizes :math:`\sum_i \lVert x_0^{(i)} - x_1^{(\sigma(i))}\rVert^2`
(the Hungarian algorithm): paths cross less, so the learned trajectories are straighter.

**Straightness and reflow** (Liu et al.). A trajectory :math:`z_t` is straight when its velocity is
constant, :math:`S = \int_0^1 \mathbb E\lVert (z_1 - z_0) - \dot z_t\rVert^2 dt = 0`; then one Euler
step is exact. *Reflow* trains a new field on the pairs :math:`(z_0, z_1)` that the current ODE
produces, which straightens the paths.
"""
from __future__ import annotations

import time

import torch
from scipy.optimize import linear_sum_assignment

from .data import Density2D
from .train import History, adam, default_threads, optimizer_step
from .transforms.ode import rk4
from .runtime import progress_bar, threads as use_threads

__all__ = ["cfm_loss", "ot_pairing", "euler_sample", "straightness", "reflow_pairs", "fit_flow_matching",
           "energy_distance"]


def cfm_loss(field, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    r"""Conditional flow-matching loss with straight paths: mean of :math:`\lVert v(t, x_t) - (x_1 - x_0)\rVert^2`.

    Args:
        field: called as ``field(t, x)`` with one time per row.
        x0, x1: ``(n, D)`` paired noise and data points.
        t: ``(n,)`` times; uniform on [0, 1] when not given.

    Example:
        >>> import torch, flowbook
        >>> x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
        >>> exact = lambda t, x: x1 - x0          # a "field" that knows each pair's velocity
        >>> flowbook.cfm_loss(exact, x0, x1).item()
        0.0
    """
    if t is None:
        t = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    return (field(t, xt) - (x1 - x0)).pow(2).sum(1).mean()


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor):
    r"""Reorder ``x1`` so that the pairs :math:`(x_0^{(i)}, x_1^{(i)})` minimize the total squared distance.

    An exact optimal-transport plan between two equal-size batches with equal weights is a
    permutation; ``scipy.optimize.linear_sum_assignment`` finds it in :math:`O(n^3)`.

    Example:
        >>> import torch, flowbook
        >>> x0 = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
        >>> flowbook.ot_pairing(x0, torch.tensor([[11.0, 0.0], [1.0, 0.0]]))[1]
        tensor([[ 1.,  0.],
                [11.,  0.]])
    """
    cost = torch.cdist(x0, x1).pow(2)
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    return x0[torch.as_tensor(rows)], x1[torch.as_tensor(cols)]


@torch.no_grad()
def euler_sample(field, z: torch.Tensor, steps: int, trajectory: bool = False):
    r"""Integrate :math:`dz/dt = v(t, z)` from 0 to 1 with ``steps`` Euler steps :math:`z \leftarrow z + h\,v`.

    Returns the end points, or with ``trajectory=True`` all ``steps + 1`` states, ``(steps + 1, n, D)``.

    Example:
        >>> import torch, flowbook
        >>> flowbook.euler_sample(lambda t, z: torch.ones_like(z), torch.zeros(1, 2), steps=4)
        tensor([[1., 1.]])
    """
    h, path = 1.0 / steps, [z]
    for k in range(steps):
        z = z + h * field(k * h, z)
        path.append(z)
    return torch.stack(path) if trajectory else z


@torch.no_grad()
def straightness(field, z: torch.Tensor, steps: int = 100) -> float:
    r"""Liu et al.'s straightness :math:`\int_0^1 \mathbb E\lVert (z_1 - z_0) - v(t, z_t)\rVert^2 dt` along Euler paths.

    Zero exactly when every trajectory moves at constant velocity (a straight line, travelled
    uniformly); the integral is the average over the ``steps`` Euler steps.

    Example:
        >>> import torch, flowbook
        >>> flowbook.straightness(lambda t, z: torch.ones_like(z), torch.randn(5, 2)) < 1e-10   # straight
        True
        >>> flowbook.straightness(lambda t, z: torch.ones_like(z) * 2 * t, torch.randn(5, 2)) > 0.6   # speeding up
        True
    """
    path = euler_sample(field, z, steps, trajectory=True)
    velocities = (path[1:] - path[:-1]) * steps                  # v(t_k, z_k), one per step
    return (velocities - (path[-1] - path[0])).pow(2).sum(-1).mean().item()


@torch.no_grad()
def reflow_pairs(field, z: torch.Tensor, steps: int = 20):
    r"""Couple each noise point with where the field's ODE takes it: the pairs :math:`(z_0, z_1)` of one reflow.

    The ODE is solved with ``steps`` RK4 steps. Training a new field on these pairs
    (``fit_flow_matching(field, pairs)``) keeps the same end distribution with straighter paths.

    Example:
        >>> import torch, flowbook
        >>> z0, z1 = flowbook.reflow_pairs(lambda t, z: -z, torch.ones(1, 2), steps=20)
        >>> round(z1[0, 0].item(), 6)                 # z' = -z: z(1) = exp(-1)
        0.367879
    """
    return z, rk4(field, z, 0.0, 1.0, steps)


@torch.no_grad()
def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""Energy distance between two samples, :math:`2\,\mathbb E\lVert X - Y\rVert - \mathbb E\lVert X - X'\rVert - \mathbb E\lVert Y - Y'\rVert`.

    Zero iff the two distributions are equal (Székely and Rizzo); it needs samples only, so it scores
    samplers that have no density, such as a few Euler steps. The within-sample means exclude the
    zero diagonal (unbiased U-statistics).

    Example:
        >>> import torch, flowbook
        >>> g = torch.Generator().manual_seed(0)
        >>> same = flowbook.energy_distance(torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g))
        >>> shifted = flowbook.energy_distance(torch.randn(2000, 2, generator=g), 1 + torch.randn(2000, 2, generator=g))
        >>> abs(same) < 0.01 < shifted
        True
    """
    within = lambda a: torch.cdist(a, a).sum().item() / (len(a) * (len(a) - 1))
    return 2 * torch.cdist(x, y).mean().item() - within(x) - within(y)


def fit_flow_matching(field, data, *, steps: int = 1000, batch_size: int = 256, lr: float = 1e-3,
                      pairing: str = "independent", transform_batch=None, clip_grad: float | None = None,
                      threads: int | None = None, progress: bool = True,
                      generator: torch.Generator | None = None) -> History:
    r"""Train ``field`` by conditional flow matching from :math:`\mathcal N(0, I)` to ``data``; return a ``History``.

    Args:
        field: a vector field module, ``field(t, x)``, e.g. ``flowbook.nn.VectorField``.
        data: a ``Density2D`` (a fresh batch every step), an ``(n, D)`` tensor (batches drawn
            with replacement), or a pair ``(x0, x1)`` of ``(n, D)`` tensors: a fixed coupling
            (reflow), whose rows are drawn together.
        pairing: ``"independent"`` (noise and data drawn independently) or ``"ot"`` (minibatch
            optimal transport, ``ot_pairing``). Ignored for a fixed coupling.
        transform_batch: optional function applied to each data batch (e.g. dequantization).
        threads: intra-op threads while training (``None``: ``flowbook.train.default_threads``).

    Example:
        >>> import flowbook
        >>> field = flowbook.nn.VectorField(2, hidden=16)
        >>> hist = flowbook.fit_flow_matching(field, flowbook.data.Ring(), steps=5, progress=False)
        >>> len(hist.train_loss)
        5
    """
    if pairing not in ("independent", "ot"):
        raise ValueError(f"pairing must be 'independent' or 'ot', got {pairing!r}")
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    params = [p for p in field.parameters() if p.requires_grad]
    opt, hist = adam(params, lr), History()
    dev, dtype = params[0].device, params[0].dtype
    with use_threads(default_threads(field) if threads is None else threads):
        start = time.perf_counter()
        bar = progress_bar(range(1, steps + 1), progress, "flow matching")
        for step in bar:
            x0, x1 = _batch(data, batch_size, generator)
            x0, x1 = x0.to(dev, dtype), x1.to(dev, dtype)
            if transform_batch is not None:
                x1 = transform_batch(x1)
            if pairing == "ot" and not isinstance(data, tuple):
                x0, x1 = ot_pairing(x0, x1)
            loss = cfm_loss(field, x0, x1)
            optimizer_step(loss, opt, params, clip_grad, step, "try a smaller lr")
            hist.train_loss.append(loss.item())
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        hist.seconds = time.perf_counter() - start
    return hist


def _batch(data, batch_size, generator):
    """A (noise, data) batch: fresh noise, or the rows of a fixed coupling."""
    if isinstance(data, tuple):
        idx = torch.randint(len(data[0]), (batch_size,), generator=generator)
        return data[0][idx], data[1][idx]
    if isinstance(data, Density2D):
        x1 = data.sample(batch_size, generator)
    else:
        x1 = data[torch.randint(len(data), (batch_size,), generator=generator)]
    return torch.randn(x1.shape, generator=generator, dtype=x1.dtype), x1
