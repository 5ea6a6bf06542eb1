r"""The autoregressive pattern of a Jacobian: which output may depend on which input.

An autoregressive map orders its features, and output :math:`j` may depend only on the inputs
that come before :math:`j` in that order: its Jacobian is triangular once the features are
sorted by order, which is what makes :math:`\log|\det J| = \sum_j \log|\partial x_j/\partial z_j|`.
A MADE gets this from its masks; one wrong mask entry breaks it silently (the network trains,
the log-det is wrong). ``check_autoregressive`` reads the pattern from the autograd Jacobian of
any function, a student's MADE included, and names every offending (output, input) pair;
``check_bijection`` points to it when a layer's Jacobian explains its failure.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch

from .jacobian import _output, jacobian
from .validation import check_count, check_positive, check_tensor

__all__ = ["check_autoregressive", "AutoregressiveReport"]


@dataclass
class AutoregressiveReport:
    """What ``check_autoregressive`` measured.

    ``dependence[j, i]`` and ``allowed[j, i]`` (0-based, ``(D, D)``): an output of feature j
    changed with input i at some checked point / may do so in the order. ``violations`` lists
    the ``(output, input)`` pairs, numbered from 1 as :math:`x_1, \\dots, x_D`, that break the order.
    ``perturbed``: measured on a copy with perturbed parameters (the function as given showed
    no dependence between features).
    """

    dependence: torch.Tensor
    allowed: torch.Tensor
    degrees: list
    violations: list
    perturbed: bool = False

    def __str__(self):
        mark = lambda dep, ok: ("+" if ok else "!") if dep else "."
        grid = [f"  x_{j + 1:<3}" + " ".join(mark(d, a) for d, a in zip(*rows))
                for j, rows in enumerate(zip(self.dependence.tolist(), self.allowed.tolist()))]
        return "\n".join([f"order (degree of each feature): {self.degrees}",
                          "rows: the outputs for x_j; columns: inputs (+ allowed, ! not, . independent)",
                          *grid[:24], f"violations (output, input): {self.violations or 'none'}"]
                         + ["(measured on a copy with perturbed parameters)"] * self.perturbed)


def _dependence(f, x, context, features, interleaved):
    """``(dependence, feature, own)``: (outputs, D) pattern, each output's feature, and whether f returns a pair."""
    def flat(v, c=None):
        out = _output(f(v) if c is None else f(v, c))
        if not isinstance(out, torch.Tensor) or out.dim() not in (2, 3) or out[0].numel() % features:
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"f must return a (batch, k * {features}) or (batch, k, {features}) tensor, or a pair "
                             f"whose first element is one; got {got}")
        return out.reshape(len(v), -1)

    J = jacobian(flat, x) if context is None else torch.stack(
        [jacobian(lambda v, c=c: flat(v, c.unsqueeze(0)), row) for row, c in zip(x, context)])
    if not torch.isfinite(J).all():
        raise AssertionError("check_autoregressive: the Jacobian of f holds NaN or infinite values at the "
                             "checked points")
    index = torch.arange(J.shape[1])
    own = isinstance(f(x[:1]) if context is None else f(x[:1], context[:1]), tuple)
    return (J != 0).any(0), index // (J.shape[1] // features) if interleaved else index % features, own


def check_autoregressive(f, features: int, order=None, context=None, n: int = 8, interleaved: bool = False,
                         perturb: float = 0.1) -> AutoregressiveReport:
    r"""Check that each output of ``f`` depends only on the inputs that come before its feature.

    The pattern is read from the autograd Jacobian at ``n`` random points (float64, eval mode, on
    a copy when ``f`` is a module). ``f`` maps ``(batch, D)`` to ``(batch, D)``, ``(batch, k * D)``
    (k outputs per feature: output o is feature ``o % D``'s, as in ``out.chunk(k, 1)``, or
    ``o // k``'s with ``interleaved=True``) or ``(batch, k, D)`` (``MADE``). A conditioner must
    not see its own feature; a ``Bijection`` (``f`` returns a pair) must, as :math:`x_j` depends
    on :math:`z_j`. A module showing no dependence between features (a fresh MADE: zero last
    layer) is checked again on a copy with perturbed parameters.

    Args:
        f: a function, a module (a student's MADE) or a ``Bijection``, called as ``f(x)`` or
            ``f(x, context)``.
        features: D.
        order: the position of each feature (D integers, like ``MADE``'s degrees; features of
            equal position may not see each other). Default: the ``degrees`` of ``f`` or of
            ``f.made`` when it has them, else 1..D. Features generated in the order of a
            permutation ``perm`` (``x[:, perm[0]]`` first) have ``order=torch.argsort(perm)``.
        context: an optional ``(batch, context_features)`` tensor passed to ``f`` (one point per row).
        n: number of random points.
        interleaved: the layout of k outputs per feature (see above).
        perturb: scale of the parameter noise used when ``f`` shows no dependence.

    Returns:
        an ``AutoregressiveReport``; raises ``AssertionError`` naming every offending
        ``(output, input)`` pair, numbered from 1 as :math:`x_1, \dots, x_D`.

    Example:
        >>> import torch, flowbook
        >>> print(flowbook.check_autoregressive(flowbook.MADE(3, hidden=8), 3))
        order (degree of each feature): [1, 2, 3]
        rows: the outputs for x_j; columns: inputs (+ allowed, ! not, . independent)
          x_1  . . .
          x_2  + . .
          x_3  + + .
        violations (output, input): none
        (measured on a copy with perturbed parameters)
    """
    features = check_count(features, "features", 1)
    if not callable(f):
        raise TypeError(f"f must be a function or a module called as f(x), got {type(f).__name__}")
    if not isinstance(interleaved, bool):
        raise TypeError(f"interleaved must be True or False, got {interleaved!r}")
    perturb, source = check_positive(perturb, "perturb", allow_zero=True), "order"
    if order is None:
        order = getattr(f, "degrees", getattr(getattr(f, "made", None), "degrees", None))
        source = "order (f's degrees)"
    try:
        order = torch.arange(features) if order is None else torch.as_tensor(order).reshape(-1).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"order must be {features} integers, got {type(order).__name__} {order!r:.40}") from None
    if order.dtype == torch.bool or order.is_complex():
        raise TypeError(f"order must be {features} integers (the position of each feature), got dtype {order.dtype}")
    if order.shape != (features,) or order.is_floating_point():
        raise ValueError(f"{source} must be {features} integers (the position of each feature), got {order.tolist()}"
                         + (f"; is f for {len(order)} features, not features={features}?" if source != "order" else ""))
    degrees = torch.unique(order, return_inverse=True)[1] + 1
    name = type(f).__name__ if isinstance(f, torch.nn.Module) else getattr(f, "__name__", "f")
    if isinstance(f, torch.nn.Module):
        f = copy.deepcopy(f).cpu().double().eval()
    g = torch.Generator().manual_seed(0)
    if context is not None:
        context = check_tensor(context, "context").detach().cpu().double()
        if not len(context):
            raise ValueError("context has 0 rows; expected one or more, one checked point per row")
        n = len(context)
    x = torch.randn(check_count(n, "n", 1), features, generator=g, dtype=torch.float64)
    try:
        dependence, feature, own = _dependence(f, x, context, features, interleaved)
    except RuntimeError:  # a function of a float32 model it does not expose: check it in float32
        if isinstance(f, torch.nn.Module):
            raise
        x, context = x.float(), None if context is None else context.float()
        dependence, feature, own = _dependence(f, x, context, features, interleaved)
    eye = torch.eye(features, dtype=torch.bool)
    if not (dependence & ~eye[feature]).any() and isinstance(f, torch.nn.Module) and perturb:
        with torch.no_grad():
            for p in f.parameters():
                if p.is_floating_point() and p.requires_grad:  # masks kept as frozen parameters stay as they are
                    p.add_(perturb * torch.randn(p.shape, generator=g, dtype=p.dtype))
        dependence, perturbed = _dependence(f, x, context, features, interleaved)[0], True
    else:
        perturbed = False
    allowed = (degrees[None, :] < degrees[:, None]) | (eye & own)  # (feature j, input i)
    bad = [(o + 1, i + 1) for o, i in (dependence & ~allowed[feature]).nonzero().tolist()]
    per_feature = torch.zeros(features, features, dtype=torch.float64).index_add_(0, feature, dependence.double()) > 0
    report = AutoregressiveReport(per_feature, allowed, degrees.tolist(), bad, perturbed)
    if bad:
        lines = [f"(output {o}, input {i}): output {o} is for x_{feature[o - 1] + 1} (degree "
                 f"{degrees[feature[o - 1]]}), input {i} has degree {degrees[i - 1]}" for o, i in bad[:10]]
        raise AssertionError(
            f"check_autoregressive({name}) failed: {len(bad)} (output, input) pair(s) where an output depends on an "
            "input that does not come before it (numbered from 1):\n- " + "\n- ".join(lines)
            + (f"\n- ... and {len(bad) - 10} more" if len(bad) > 10 else "") + "\nIn a MADE, output j reaches input "
            "i only through hidden units k with m(i) <= m(k) < m(j): look for the mask entry that opens such a path."
            f"\n{report}")
    if not (dependence & ~eye[feature]).any():
        warnings.warn(f"check_autoregressive({name}): no output depends on another feature's input at the checked "
                      "points, so the check proves little; test it at parameters where it does "
                      "(flowbook.randomize_parameters)", UserWarning, stacklevel=2)
    return report


def autoregressive_hint(layer, z: torch.Tensor, context, logabsdet: torch.Tensor) -> str | None:
    """A line for ``check_bijection``'s failure message when the layer's pattern explains it, else ``None``.

    A layer with a conditioner ``made`` whose pattern breaks its order is named with its first
    pairs. Otherwise, when the Jacobian at ``z`` is not triangular in the layer's order (its
    ``degrees``, or 1..D) and the layer is autoregressive (it has ``made`` or ``degrees``) or its
    log-det ``logabsdet`` is the sum of the log-diagonal (right only for a triangular Jacobian),
    the line says so and points to ``check_autoregressive``.
    """
    try:
        J = jacobian(lambda v: layer(v, context), z) if context is None else torch.cat(
            [jacobian(lambda v, c=c: layer(v, c.unsqueeze(0)), row.unsqueeze(0)) for row, c in zip(z, context)])
    except Exception:  # the failure is reported as it is
        return None
    if J.dim() != 3 or J.shape[1] != J.shape[2]:
        return None
    features, made = J.shape[-1], getattr(layer, "made", None)
    if isinstance(made, torch.nn.Module):
        try:
            check_autoregressive(made, features)
        except AssertionError as error:
            pairs = [line[2:].split(":")[0] for line in str(error).split("\n") if line.startswith("- (")]
            return (f"its conditioner layer.made breaks the autoregressive order: {', '.join(pairs[:3])}"
                    f"{', ...' if len(pairs) > 3 else ''}; run fb.check_autoregressive(layer.made, {features}) "
                    "to see every pair")
        except Exception:  # a conditioner check_autoregressive cannot call: the pattern of J below decides
            pass
    order = getattr(layer, "degrees", getattr(made, "degrees", None))
    degrees = torch.arange(features) if order is None else torch.as_tensor(order).cpu()
    if degrees.shape != (features,):
        return None
    allowed = (degrees[None, :] < degrees[:, None]) | torch.eye(features, dtype=torch.bool)
    bad = ((J != 0).any(0).cpu() & ~allowed).nonzero().tolist()
    log_diagonal = J.diagonal(dim1=1, dim2=2).abs().log().sum(1)
    if not bad or (order is None and not torch.allclose(logabsdet, log_diagonal, atol=1e-6)):
        return None
    pairs = ", ".join(f"x_{j + 1} on z_{i + 1}" for j, i in bad[:3])
    return (f"the Jacobian is not triangular in the layer's order ({pairs} depend(s) on a later or equal feature), "
            "so the sum of log|dx_j/dz_j| is not log|det J|; run fb.check_autoregressive(layer, "
            f"{features}) (or on its conditioner) to find every (output, input) pair")
