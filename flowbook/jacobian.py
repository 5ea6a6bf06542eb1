r"""Brute-force Jacobians by autograd, and the checker every bijection must pass.

A flow layer is correct when three things hold for inputs ``z``:

1. round trip: ``inverse(forward(z)) == z``;
2. the log-det that ``forward`` returns equals :math:`\log|\det J|` of the autograd Jacobian;
3. the two directions' log-dets cancel: ``forward`` + ``inverse`` log-dets sum to zero.

``check_bijection`` measures all three in float64 and explains what failed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

__all__ = ["jacobian", "logabsdet", "check_bijection", "BijectionReport"]


def _output(y):
    return y[0] if isinstance(y, tuple) else y


def jacobian(f, x: torch.Tensor) -> torch.Tensor:
    r"""Per-sample Jacobians :math:`\partial f(x)_i / \partial x_j` by autograd.

    Args:
        f: maps a ``(batch, D)`` tensor to a ``(batch, D')`` tensor, or to a tuple whose first
            element is that (so a ``Bijection`` can be passed directly). Rows must not interact.
        x: ``(batch, D)`` points, or a single ``(D,)`` point.

    Returns:
        ``(batch, D', D)`` Jacobians (``(D', D)`` for a single point).

    Example:
        >>> import torch
        >>> from flowbook import jacobian
        >>> f = lambda v: torch.stack([v[:, 0] ** 2 * v[:, 1], 5 * v[:, 0] + torch.sin(v[:, 1])], -1)
        >>> jacobian(f, torch.tensor([1.0, 0.0]))
        tensor([[0., 1.],
                [5., 1.]])
    """
    single = x.dim() == 1
    xb = x.unsqueeze(0) if single else x

    def one(row):
        return _output(f(row.unsqueeze(0)))[0]

    try:
        J = torch.func.vmap(torch.func.jacrev(one))(xb)
    except Exception:  # layers with in-place ops or data-dependent control flow
        J = torch.stack([torch.autograd.functional.jacobian(one, row) for row in xb])
    return J[0] if single else J


def logabsdet(f, x: torch.Tensor) -> torch.Tensor:
    """:math:`\\log|\\det J_f(x)|` per sample, by ``slogdet`` of the autograd Jacobian (O(D^3))."""
    return torch.linalg.slogdet(jacobian(f, x)).logabsdet


@dataclass
class BijectionReport:
    """What ``check_bijection`` measured (maximum absolute errors over the batch)."""

    roundtrip_error: float
    logdet_error: float
    logdet_sum_error: float
    atol: float

    def __str__(self):
        fmt = lambda v: "n/a (no inverse)" if v != v else f"{v:.2e}"
        return (
            f"round trip |inverse(forward(z)) - z|     : {fmt(self.roundtrip_error)}\n"
            f"log-det vs autograd slogdet              : {fmt(self.logdet_error)}\n"
            f"forward + inverse log-dets (should be 0) : {fmt(self.logdet_sum_error)}\n"
            f"tolerance                                : {self.atol:.0e}"
        )


def check_bijection(bijection, z: torch.Tensor, context=None, atol: float = 1e-6,
                    dtype=torch.float64) -> BijectionReport:
    """Check a bijection's inverse and log-determinants against brute force.

    The layer is deep-copied and run in ``dtype`` (float64 by default) and in eval mode, so
    the check neither changes the layer nor suffers float32 round-off.

    Args:
        bijection: a ``flowbook.Bijection`` (``forward`` returns ``(x, log|det ∂x/∂z|)``).
        z: ``(batch, D)`` inputs of the forward direction.
        context: optional conditioning input, passed to both directions.
        atol: largest error accepted.

    Returns:
        a ``BijectionReport``; raises ``AssertionError`` with a readable message on failure.

    Example:
        >>> import torch, flowbook
        >>> report = flowbook.check_bijection(flowbook.LULinear(3), torch.randn(8, 3))
        >>> report.logdet_error < 1e-10
        True
    """
    b = copy.deepcopy(bijection).to(dtype).eval()
    z = z.detach().to(dtype)
    if context is not None:
        context = context.detach().to(dtype)
    name = type(bijection).__name__
    x, ladj = b(z, context)
    if ladj.shape != (z.shape[0],):
        raise AssertionError(f"{name}.forward returned a log-det of shape {tuple(ladj.shape)}, "
                             f"expected ({z.shape[0]},): one value per sample")
    brute = logabsdet(lambda v: b(v, context), z) if context is None else torch.stack(
        [logabsdet(lambda v, c=c: b(v, c.unsqueeze(0)), row) for row, c in zip(z, context)])
    logdet_error = (ladj - brute).abs().max().item()
    try:
        z_back, ladj_inv = b.inverse(x, context)
        roundtrip = (z_back - z).abs().max().item()
        sum_error = (ladj + ladj_inv).abs().max().item()
    except NotImplementedError:
        roundtrip = sum_error = float("nan")
    report = BijectionReport(roundtrip, logdet_error, sum_error, atol)

    problems = []
    if roundtrip > atol:
        problems.append(f"inverse(forward(z)) differs from z by up to {roundtrip:.3g}: inverse() does "
                        "not undo forward()")
    if logdet_error > atol:
        i = (ladj - brute).abs().argmax()
        hint = ""
        if torch.allclose(ladj, -brute, atol=max(atol, 1e-9)):
            hint = (" The values are the autograd ones with the sign flipped: forward() must return "
                    "log|det dx/dz| (the generative direction), not log|det dz/dx|.")
        problems.append(f"forward() returned log-det {ladj[i].item():.6g} where autograd slogdet gives "
                        f"{brute[i].item():.6g} (max error {logdet_error:.3g}).{hint}")
    if sum_error > atol:
        problems.append(f"forward and inverse log-dets do not cancel (max |sum| = {sum_error:.3g})")
    if problems:
        raise AssertionError(f"check_bijection({name}) failed (atol={atol:g}):\n- " + "\n- ".join(problems)
                             + f"\n{report}")
    return report
