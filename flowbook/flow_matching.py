r"""Flow matching with straight paths, minibatch optimal-transport pairing, and rectified flow.

Vocabulary: a noise point is :math:`z \sim \mathcal N(0, I)` (time :math:`t = 0`), a data point is
:math:`x` (time :math:`t = 1`), and ``field(t, x_t)`` is the velocity field :math:`v_\theta`.

**Conditional flow matching** (Lipman et al., *Flow Matching for Generative Modeling*, 2023; Liu et
al., *Flow Straight and Fast*, 2023). Pair a noise point :math:`z` with a data point :math:`x`, and
move along the straight line :math:`x_t = (1 - t)\,z + t\,x`, whose velocity is :math:`x - z`.
Regressing a field on that velocity,

.. math:: \mathcal L(\theta) = \mathbb E_{t \sim U[0,1],\,(z, x)}
          \bigl\lVert v_\theta(t, x_t) - (x - z)\bigr\rVert^2,

has the same minimizer as regressing on the *marginal* field
:math:`u(t, y) = \mathbb E[x - z \mid x_t = y]`, whose ODE carries :math:`\mathcal N(0, I)` at
:math:`t = 0` to the data at :math:`t = 1`. No ODE is solved during training.

**Minibatch OT** (Tong et al., *Improving and Generalizing Flow-Based Generative Models with
Minibatch Optimal Transport*, 2023; Pooladian et al., 2023). Pair the noise and data points of a
batch by the assignment that minimizes :math:`\sum_i \lVert z^{(i)} - x^{(\sigma(i))}\rVert^2`
(the Hungarian algorithm): paths cross less, so the learned trajectories are straighter.

**Straightness and reflow** (Liu et al.). Write :math:`\phi_t(z)` for the solution of the field's
ODE at time :math:`t` started from :math:`z`. A trajectory is straight when its velocity is
constant, :math:`S = \int_0^1 \mathbb E\lVert (\phi_1(z) - z) - v(t, \phi_t(z))\rVert^2 dt = 0`;
then one Euler step is exact. *Reflow* trains a new field on the pairs :math:`(z, \phi_1(z))` that
the current ODE produces, which straightens the paths. Sampling integrates the ODE with the
fixed-step solvers of ``flowbook.integrators`` (``euler``, ``rk4``).
"""
from __future__ import annotations

import math

import torch
from scipy.optimize import linear_sum_assignment

from .batches import batch_stream, check_data, model_shape
from .engine import CLIP_GRAD, History, check_optimizer, check_schedule, optimize
from .integrators import euler, rk4
from .validation import check_count, check_tensor, model_dtype

__all__ = ["cfm_loss", "ot_pairing", "straightness", "reflow_pairs", "fit_flow_matching", "energy_distance"]


def cfm_loss(field, z: torch.Tensor, x: torch.Tensor, t=None) -> torch.Tensor:
    r"""Conditional flow-matching loss with straight paths: mean of :math:`\lVert v(t, x_t) - (x - z)\rVert^2`.

    The point at time :math:`t` on the line from the noise point to the data point is
    :math:`x_t = (1 - t)\,z + t\,x`, and its velocity is :math:`x - z`.

    Args:
        field: the velocity field, called as ``field(t, x_t)`` with one time per row.
        z: ``(n, D)`` noise points (:math:`t = 0`).
        x: ``(n, D)`` data points (:math:`t = 1`), paired row by row with ``z``.
        t: ``(n,)`` times; uniform on [0, 1] when not given.

    ``z``, ``x`` and the field's output have one shape (nothing is broadcast) and ``z``, ``x`` one dtype.

    Example:
        >>> import torch, flowbook
        >>> z, x = torch.randn(8, 2), torch.randn(8, 2)
        >>> exact = lambda t, x_t: x - z          # a "field" that knows each pair's velocity
        >>> flowbook.cfm_loss(exact, z, x).item()
        0.0
    """
    check_pairs(z, x, "cfm_loss", t)
    if t is None:
        t = torch.rand(z.shape[0], dtype=z.dtype, device=z.device)
    x_t = (1 - t[:, None]) * z + t[:, None] * x
    v = field(t, x_t)
    check_velocity(v, x_t)
    return (v - (x - z)).pow(2).sum(1).mean()


def ot_pairing(z: torch.Tensor, x: torch.Tensor):
    r"""Reorder ``x`` so that the pairs :math:`(z^{(i)}, x^{(i)})` minimize the total squared distance.

    An exact optimal-transport plan between two equal-size batches with equal weights is a
    permutation; ``scipy.optimize.linear_sum_assignment`` finds it in :math:`O(n^3)` (on the CPU;
    the pairs are returned on the inputs' device). Equal row counts only: a rectangular one would drop points.

    Example:
        >>> import torch, flowbook
        >>> z = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
        >>> flowbook.ot_pairing(z, torch.tensor([[11.0, 0.0], [1.0, 0.0]]))[1]
        tensor([[ 1.,  0.],
                [11.,  0.]])
    """
    check_pairs(z, x, "ot_pairing", finite=True)
    cost = torch.cdist(z, x).pow(2)
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
    return z[rows.to(z.device)], x[cols.to(x.device)]


@torch.no_grad()
def straightness(field, z: torch.Tensor, solver_steps: int = 100) -> float:
    r"""Liu et al.'s straightness :math:`\int_0^1 \mathbb E\lVert (\phi_1(z) - z) - v(t, \phi_t(z))\rVert^2 dt`.

    :math:`\phi_t(z)` is the Euler path of the field's ODE from the noise points ``z``. Zero exactly
    when every trajectory moves at constant velocity (a straight line, travelled uniformly); the
    integral is the average over the ``solver_steps`` Euler steps (``z``: at least one finite row).

    Example:
        >>> import torch, flowbook
        >>> z = torch.randn(5, 2)
        >>> flowbook.straightness(lambda t, x: torch.ones_like(x), z) < 1e-10        # straight
        True
        >>> flowbook.straightness(lambda t, x: 2 * t * torch.ones_like(x), z) > 0.6  # speeds up
        True
    """
    if not len(check_tensor(z, "z")):
        raise ValueError("straightness needs at least one noise point z, got 0 rows")
    path = euler(field, z, solver_steps=solver_steps, trajectory=True)
    # v(t_k, phi_k), one per step
    velocities = (path[1:] - path[:-1]) * solver_steps
    s = (velocities - (path[-1] - path[0])).pow(2).sum(-1).mean().item()
    if not math.isfinite(s):
        raise field_failed("straightness")
    return s


@torch.no_grad()
def reflow_pairs(field, z: torch.Tensor, solver_steps: int = 20):
    r"""Couple each noise point with where the field's ODE takes it: the pairs :math:`(z, \phi_1(z))` of one reflow.

    The ODE is solved with ``solver_steps`` RK4 steps. Training a new field on these pairs
    (``fit_flow_matching(field, pairs)``) keeps the same end distribution with straighter paths.
    ``z`` must be finite; an end point that is not raises ``FloatingPointError`` naming the field.

    Example:
        >>> import torch, flowbook
        >>> z, x = flowbook.reflow_pairs(lambda t, z: -z, torch.ones(1, 2), solver_steps=20)
        >>> round(x[0, 0].item(), 6)                 # z' = -z: z(1) = exp(-1)
        0.367879
    """
    x = rk4(field, check_tensor(z, "z"), 0.0, 1.0, solver_steps=solver_steps)
    if not torch.isfinite(x).all():
        raise field_failed("reflow_pairs")
    return z, x


@torch.no_grad()
def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""Energy distance between two samples: :math:`2\,\mathbb E\lVert X - Y\rVert - \mathbb E\lVert X - X'\rVert
    - \mathbb E\lVert Y - Y'\rVert`.

    Zero iff the two distributions are equal (Székely and Rizzo); it needs samples only, so it scores
    samplers that have no density, such as a few Euler steps. The within-sample means exclude the
    zero diagonal (unbiased U-statistics), so each sample needs at least 2 rows. ``x`` and ``y`` are
    ``(n, features)`` and ``(m, features)`` finite tensors; their dtypes are promoted to a common one.

    Example:
        >>> import torch, flowbook
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b, c = (torch.randn(2000, 2, generator=g) for _ in range(3))
        >>> same, shifted = flowbook.energy_distance(a, b), flowbook.energy_distance(a, 1 + c)
        >>> abs(same) < 0.01 < shifted
        True
    """
    x, y = check_samples(x, y)
    within = lambda a: torch.cdist(a, a).sum().item() / (len(a) * (len(a) - 1))
    return 2 * torch.cdist(x, y).mean().item() - within(x) - within(y)


def fit_flow_matching(field, data, *, steps: int | None = None, epochs: int | None = None,
                      batch_size: int | None = None, lr: float = 1e-3, clip_grad: float | None = CLIP_GRAD,
                      threads: int | None = None, progress: bool = True, val_data=None, eval_every: int = 50,
                      patience: int | None = None, generator: torch.Generator | None = None,
                      pairing: str = "independent", transform_batch=None) -> History:
    r"""Train ``field`` by conditional flow matching from :math:`\mathcal N(0, I)` to ``data``; return a ``History``.

    Args:
        field: a vector field module, ``field(t, x)``, e.g. ``flowbook.nn.VectorField``.
        data: what ``fit`` takes (a tensor, shuffled once per epoch and walked without
            replacement; a ``Density2D``, a fresh batch every step; a ``Dataset``; a ``DataLoader``
            of ``x`` batches), or a pair ``(z, x)`` of ``(n, D)`` tensors: a fixed coupling
            (reflow), whose rows are drawn together.
        steps, epochs, batch_size, lr, clip_grad, threads, progress, patience: as in ``fit``.
        val_data: optional validation tensor; its flow-matching loss, with noise and times drawn
            once (so that evaluations compare), is computed every ``eval_every`` steps, and the
            field with the best one is kept.
        generator: draws the shuffles, the noise and ``Density2D`` samples.
        pairing: ``"independent"`` (noise and data drawn independently) or ``"ot"`` (minibatch
            optimal transport, ``ot_pairing``). Ignored for a fixed coupling.
        transform_batch: optional function applied to each data batch (e.g. dequantization).

    Example:
        >>> import flowbook
        >>> field = flowbook.nn.VectorField(2, hidden=16)
        >>> hist = flowbook.fit_flow_matching(field, flowbook.data.Ring(), steps=5, progress=False)
        >>> len(hist.train_loss)
        5
    """
    if pairing not in ("independent", "ot"):
        raise ValueError(f"pairing must be 'independent' or 'ot', got {pairing!r}")
    steps, epochs = check_schedule(steps, epochs)
    eval_every = check_count(eval_every, "eval_every", 1)
    lr, _, clip_grad = check_optimizer(lr, 0.0, clip_grad)
    if patience is not None:
        patience = check_count(patience, "patience", 1)
        if val_data is None:
            raise ValueError("patience needs val_data: early stopping watches the validation loss")
    params = [p for p in field.parameters() if p.requires_grad] if isinstance(field, torch.nn.Module) else []
    if not params:
        raise ValueError(f"field must be a torch.nn.Module with trainable parameters (e.g. flowbook.nn.VectorField); "
                         f"this {type(field).__name__} has none (all frozen?): nothing to fit")
    dev, dtype, shape = params[0].device, model_dtype(field) or params[0].dtype, model_shape(field)
    coupled = isinstance(data, tuple)
    if coupled and len(data) != 2:
        raise ValueError(f"a fixed coupling is a pair (z, x) of tensors, got a tuple of {len(data)}")
    x, z = (data[1], data[0]) if coupled else (data, None)
    batches, steps = batch_stream(x, shape, dtype, dev, steps=steps, epochs=epochs, batch_size=batch_size,
                                  context=z, generator=generator, transform=transform_batch,
                                  name="data[1] (x)" if coupled else "data", context_name="data[0] (z)")
    ot = pairing == "ot" and not coupled

    def flow_matching_loss(batch):
        x, z = batch
        if z is None:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            if ot:
                z, x = ot_pairing(z, x)
        return cfm_loss(field, z, x)

    validate = None
    if val_data is not None:
        val = _validation_pairs(check_data(val_data, "val_data", shape, dtype).to(dev), batch_size or 256, ot)
        validate = lambda: _validation_loss(field, val)  # noqa: E731
    return optimize(field, flow_matching_loss, batches, steps, lr=lr, clip_grad=clip_grad, threads=threads,
                    progress=progress, validate=validate, eval_every=eval_every, patience=patience,
                    history=History(loss_name="flow-matching loss"), diagnose=_which_input,
                    desc="flow matching", hint="try a smaller lr or clip_grad")


def _which_input(batch):
    """Which input of a non-finite flow-matching loss is to blame (parameters are checked before)."""
    x, z = batch
    if not torch.isfinite(x).all():
        return "the batch x holds NaN or infinite values, although the data was checked finite: check transform_batch"
    if z is not None and not torch.isfinite(z).all():
        return "the noise z of the fixed coupling holds NaN or infinite values"
    return None


def _validation_pairs(x, batch_size, ot):
    """Fixed ``(t, z, x)`` chunks of the validation data: the same noise and times at every evaluation."""
    g = torch.Generator().manual_seed(0)
    chunks = []
    for xc in x.split(batch_size):
        z = torch.randn(xc.shape, generator=g, dtype=xc.dtype).to(xc.device)
        t = torch.rand(len(xc), generator=g, dtype=xc.dtype).to(xc.device)
        chunks.append((t, *(ot_pairing(z, xc) if ot else (z, xc))))
    return chunks


@torch.no_grad()
def _validation_loss(field, chunks) -> float:
    field.eval()
    total = sum(cfm_loss(field, z, x, t).item() * len(x) for t, z, x in chunks)
    field.train()
    return total / sum(len(x) for _, _, x in chunks)


def check_pairs(z, x, owner: str, t=None, finite: bool = False) -> None:
    """``z`` and ``x`` are ``(n, features)`` tensors of one shape and dtype (Python-only unless ``finite``)."""
    check_tensor(z, "z", finite=finite), check_tensor(x, "x", finite=finite)
    if z.shape != x.shape or not len(z):
        raise ValueError(f"{owner} pairs the rows of z and x: z has {len(z)} rows and x has {len(x)} (shapes "
                         f"{tuple(z.shape)} and {tuple(x.shape)}); expected the same shape, at least one row")
    if z.dtype != x.dtype:
        raise TypeError(f"{owner}: z has dtype {z.dtype} and x has dtype {x.dtype}; convert one, e.g. z.to(x.dtype)")
    if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != (len(z),)):
        raise ValueError(f"t must have shape ({len(z)},), a time per pair; got {tuple(getattr(t, 'shape', ())) or t!r}")


def check_velocity(v, x_t) -> None:  # Python-only: a broadcast (n, 1) velocity would be silent
    if getattr(v, "shape", None) != x_t.shape:
        raise ValueError(f"the field returned {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__} "
                         f"for points x_t of shape {tuple(x_t.shape)}; a velocity field returns the points' shape")


def field_failed(owner: str) -> FloatingPointError:
    """The error for a non-finite result from finite points ``z``: the field is to blame."""
    return FloatingPointError(f"{owner}: the field returned a non-finite value (NaN or inf) along the ODE path "
                              "from the finite points z; check the field (its parameters, a division or log)")


def check_samples(x, y):
    """``energy_distance``'s inputs: finite ``(n, D)`` and ``(m, D)`` tensors, at least 2 rows each, one dtype."""
    for name, a in (("x", x), ("y", y)):
        if len(check_tensor(a, name)) < 2:
            raise ValueError(f"{name} has {len(a)} row(s); the energy distance needs at least 2 points per sample")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features and y has {y.shape[1]}; expected the same")
    dtype = torch.promote_types(x.dtype, y.dtype) if x.is_floating_point() or y.is_floating_point() else None
    return x.to(dtype or torch.get_default_dtype()), y.to(dtype or torch.get_default_dtype())
