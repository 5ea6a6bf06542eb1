r"""Brute-force Jacobians by autograd, and the checker every bijection must pass.

A flow layer is correct when three things hold for inputs ``z``:

1. round trip: ``inverse(forward(z)) == z``;
2. the log-det that ``forward`` returns equals :math:`\log|\det J|` of the autograd Jacobian;
3. the two directions' log-dets cancel: ``forward`` + ``inverse`` log-dets sum to zero.

``check_bijection`` measures all three in float64 and explains what failed.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch

from .validation import check_tensor

__all__ = ["jacobian", "logabsdet", "check_bijection", "BijectionReport"]


def _output(y):
    return y[0] if isinstance(y, tuple) else y


def jacobian(f, x: torch.Tensor) -> torch.Tensor:
    r"""Per-sample Jacobians :math:`\partial f(x)_i / \partial x_j` by autograd.

    Args:
        f: maps a ``(batch, D)`` tensor to a ``(batch, D')`` tensor, or to a tuple whose first
            element is that (so a ``Bijection`` can be passed directly). Rows must not interact.
        x: ``(batch, D)`` points, or a single ``(D,)`` point; ``(batch, C, H, W)`` images are
            flattened (D = C H W).

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
    J = J.reshape(len(xb), -1, xb[0].numel())  # (N, C, H, W) images: the Jacobian of the flattened map
    return J[0] if single else J


def logabsdet(f, x: torch.Tensor) -> torch.Tensor:
    """:math:`\\log|\\det J_f(x)|` per sample, by ``slogdet`` of the autograd Jacobian (O(D^3))."""
    return torch.linalg.slogdet(jacobian(f, x)).logabsdet


@dataclass
class BijectionReport:
    """What ``check_bijection`` measured (maximum absolute errors over the batch).

    ``has_inverse`` is False for a layer without an inverse (then the two inverse errors are NaN
    and print as "n/a (no inverse)"); ``perturbed`` is True when the layer given was the identity
    map on ``z`` and the numbers are those of a copy with perturbed parameters.
    """

    roundtrip_error: float
    logdet_error: float
    logdet_sum_error: float
    atol: float
    has_inverse: bool = True
    perturbed: bool = False

    def __str__(self):
        fmt = lambda v: f"{v:.2e}"  # a NaN prints as nan: it is a failure, never "n/a"
        inv = lambda v: fmt(v) if self.has_inverse else "n/a (no inverse)"
        text = (
            f"round trip |inverse(forward(z)) - z|     : {inv(self.roundtrip_error)}\n"
            f"log-det vs autograd slogdet              : {fmt(self.logdet_error)}\n"
            f"forward + inverse log-dets (should be 0) : {inv(self.logdet_sum_error)}\n"
            f"tolerance                                : {self.atol:.0e}"
        )
        if self.perturbed:
            text += "\n(measured on a copy with perturbed parameters: the layer as given is the identity map on z)"
        return text


def _pair(out, name, method, n):
    """The ``(output, logabsdet)`` of a layer's ``method``, or an AssertionError saying what is wrong."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError(f"{name}.{method} returned a {type(out).__name__}, expected a pair (output, "
                             "logabsdet): forward(z, context=None) -> (x, log|det dx/dz|)")
    if getattr(out[1], "shape", None) != (n,):
        raise AssertionError(f"{name}.{method} returned a log-det of shape {tuple(getattr(out[1], 'shape', ()))}, "
                             f"expected ({n},): one value per sample")
    return out


def _nonfinite(value, what, z):
    """A problem line if ``value`` (one row per row of ``z``) holds a NaN or an infinity, else ``None``."""
    bad = ~torch.isfinite(value)
    if not bad.any():
        return None
    rows = bad.reshape(len(z), -1).any(1)
    i = int(rows.nonzero()[0, 0])
    first = value.reshape(len(z), -1)[i]
    kind = "NaN" if torch.isnan(first).any() else "infinite"
    hint = " (a log of a negative number or of 0? take log|.|)" if kind == "NaN" and "log-det" in what else ""
    return (f"{what} is {kind} for {int(rows.sum())} of {len(z)} inputs (first: row {i}, "
            f"z = {[round(v, 4) for v in z[i].flatten().tolist()]}){hint}")


def _measure(b, z, context, atol, name):
    """Run the three checks on ``b``; return (report, problems, is_identity)."""
    n = z.shape[0]
    x, forward_logabsdet = _pair(b(z, context), name, "forward", n)
    if x.shape != z.shape:
        raise AssertionError(f"{name}.forward returned x of shape {tuple(x.shape)}, expected {tuple(z.shape)}")
    brute = logabsdet(lambda v: b(v, context), z) if context is None else torch.stack(
        [logabsdet(lambda v, c=c: b(v, c.unsqueeze(0)), row.unsqueeze(0))[0] for row, c in zip(z, context)])
    problems = [p for p in (_nonfinite(x, "forward()'s output x", z),
                            _nonfinite(forward_logabsdet, "forward()'s log-det", z),
                            _nonfinite(brute, "autograd slogdet of forward()'s Jacobian", z)) if p]
    logdet_error = (forward_logabsdet - brute).abs().max().item()
    has_inverse = True
    try:
        z_back, inverse_logabsdet = _pair(b.inverse(x, context), name, "inverse", n)
    except NotImplementedError:
        has_inverse, roundtrip, sum_error = False, float("nan"), float("nan")
    else:
        problems += [p for p in (_nonfinite(z_back, "inverse()'s output", z),
                                 _nonfinite(inverse_logabsdet, "inverse()'s log-det", z)) if p]
        roundtrip = (z_back - z).abs().max().item()
        sum_error = (forward_logabsdet + inverse_logabsdet).abs().max().item()
    report = BijectionReport(roundtrip, logdet_error, sum_error, atol, has_inverse)

    if has_inverse and not roundtrip <= atol:  # "not <=": a NaN fails
        problems.append(f"inverse(forward(z)) differs from z by up to {roundtrip:.3g}: inverse() does "
                        "not undo forward()")
    if not logdet_error <= atol:
        i = (forward_logabsdet - brute).abs().nan_to_num(float("inf")).argmax()
        hint = ""
        if torch.allclose(forward_logabsdet, -brute, atol=max(atol, 1e-9)):
            hint = (" The values are the autograd ones with the sign flipped: forward() must return "
                    "log|det dx/dz| (the generative direction), not log|det dz/dx|.")
        problems.append(f"forward() returned log-det {forward_logabsdet[i].item():.6g} where autograd slogdet gives "
                        f"{brute[i].item():.6g} (max error {logdet_error:.3g}).{hint}")
    if has_inverse and not sum_error <= atol:
        problems.append(f"forward and inverse log-dets do not cancel (max |sum| = {sum_error:.3g})")
    if problems:  # a layer whose autoregressive pattern explains the failure: point to check_autoregressive
        from .triangular import autoregressive_hint  # (triangular imports this module)
        problems += [hint for hint in [autoregressive_hint(b, z, context, forward_logabsdet)] if hint]
    identity = not problems and (x - z).abs().max().item() <= atol and forward_logabsdet.abs().max().item() <= atol
    return report, problems, identity


def check_bijection(bijection, z: torch.Tensor, context=None, atol: float = 1e-6,
                    dtype=torch.float64, perturb: float = 0.1) -> BijectionReport:
    """Check a bijection's inverse and log-determinants against brute force.

    The layer is deep-copied and run in ``dtype`` (float64 by default) and in eval mode, so
    the check neither changes the layer nor suffers float32 round-off. It fails on any NaN or
    infinity in the outputs, the log-dets or the inverse (a comparison with NaN would pass).

    **The identity map.** A fresh layer (zero last layer) is often the identity: every log-det
    is 0, so a flipped sign cannot show. When the layer maps ``z`` to itself with log-dets 0
    (within ``atol``), the checks are run again on a copy whose parameters are perturbed by
    ``perturb * N(0, 1)`` (seeded) and that report is returned (``report.perturbed``). If the
    copy is still the identity (a layer without parameters), or ``perturb=0``, a
    ``UserWarning`` says that the check proves little.

    Args:
        bijection: a ``flowbook.Bijection`` (``forward`` returns ``(x, log|det ∂x/∂z|)``).
        z: ``(batch, D)`` finite inputs of the forward direction (``(batch, C, H, W)`` for images).
        context: optional ``(batch, context_features)`` conditioning input, passed to both directions.
        atol: largest error accepted.
        perturb: scale of the parameter noise used when the layer is the identity map.

    Returns:
        a ``BijectionReport``; raises ``AssertionError`` with a readable message on failure, and
        ``ValueError`` for a non-finite ``z`` or ``context``.

    Example:
        >>> import torch, flowbook
        >>> report = flowbook.check_bijection(flowbook.LULinear(3), torch.randn(8, 3))
        >>> report.logdet_error < 1e-10
        True
        >>> flowbook.check_bijection(flowbook.Affine(2), torch.randn(4, 2)).perturbed  # fresh: identity
        True
    """
    image = isinstance(z, torch.Tensor) and z.dim() > 2          # (N, C, H, W): checked as flat rows
    z = check_tensor(z.flatten(1) if image else z, "z").detach().to(dtype).view(z.shape)
    if context is not None:
        context = check_tensor(context, "context").detach().to(dtype)
        if context.shape[0] != z.shape[0]:
            raise ValueError(f"context has {context.shape[0]} rows, expected {z.shape[0]} (one per row of z)")
    b = copy.deepcopy(bijection).to(dtype).eval()
    name = type(bijection).__name__
    report, problems, identity = _measure(b, z, context, atol, name)
    if identity and perturb:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in b.parameters():
                if p.is_floating_point():
                    p.add_(perturb * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
        report, problems, identity = _measure(b, z, context, atol, name)
        report.perturbed = True
        if problems:
            problems.insert(0, f"{name} as given is the identity map on z (outputs equal inputs, log-dets 0), "
                               "where a wrong log-det sign or inverse cannot show; a copy with parameters "
                               f"perturbed by {perturb:g} * N(0, 1) fails:")
    if problems:
        raise AssertionError(f"check_bijection({name}) failed (atol={atol:g}):\n- " + "\n- ".join(problems)
                             + f"\n{report}")
    if identity:
        warnings.warn(f"check_bijection({name}): the map is the identity on z (outputs equal inputs, log-dets 0)"
                      + (" even with perturbed parameters" if perturb else "")
                      + ", so the check cannot tell a wrong log-det sign; test it at parameters where it moves "
                      "the points (flowbook.randomize_parameters)", UserWarning, stacklevel=2)
    return report
