r"""Continuous-time flows: the ODE :math:`dz/dt = v(t, z)` as a bijection (neural ODE, FFJORD).

**From residual steps to an ODE.** A residual layer :math:`z_{k+1} = z_k + h\,v(t_k, z_k)` is one
Euler step of the ODE :math:`\dot z = v(t, z)`. As :math:`h \to 0` a stack of such layers becomes the
solution map :math:`z(t_0) \mapsto z(t_1)`, which is invertible (integrate backwards) whenever
:math:`v` is Lipschitz in :math:`z`.

**Instantaneous change of variables** (Chen et al., *Neural Ordinary Differential Equations*, 2018).
Along a trajectory, :math:`\frac{d}{dt}\log\left|\det \frac{\partial z(t)}{\partial z(t_0)}\right|
= \operatorname{tr}\frac{\partial v}{\partial z}(t, z(t))`, so the state and the log-det are
integrated together:

.. math:: \frac{d}{dt}\begin{pmatrix} z \\ \ell \end{pmatrix}
          = \begin{pmatrix} v(t, z) \\ \operatorname{tr}\,\partial v/\partial z \end{pmatrix},
          \qquad \ell(t_0) = 0, \qquad \ell(t_1) = \log\left|\det\frac{\partial x}{\partial z}\right|.

**The trace.** Exactly, with one backward pass per dimension (``trace_exact``), or by Hutchinson's
estimator :math:`\operatorname{tr} J = \mathbb E[\varepsilon^\top J \varepsilon]` for any probe with
:math:`\mathbb E[\varepsilon\varepsilon^\top] = I` (``trace_hutchinson``, one vector-Jacobian
product; Grathwohl et al., *FFJORD*, 2019). For a Gaussian probe its variance is
:math:`2\lVert J_s\rVert_F^2` with :math:`J_s = (J + J^\top)/2`; for a Rademacher probe
:math:`2(\lVert J_s\rVert_F^2 - \sum_i J_{ii}^2)`.

The solvers (fixed-step Euler, midpoint, RK4; adaptive Dormand-Prince) and the adjoint method come
from ``torchdiffeq``, which integrates the pair :math:`(z, \ell)` and backpropagates through it; the
fixed-step Euler and RK4 loops, written out for reading, are ``flowbook.integrators``.
"""
from __future__ import annotations

import difflib

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..core import Bijection
from ..integrators import check_times
from ..validation import check_dim, check_finite, check_positive

__all__ = ["ODEFlow", "trace_exact", "trace_hutchinson", "FIXED_STEP_METHODS"]

FIXED_STEP_METHODS = ("euler", "midpoint", "rk4", "heun3")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


def trace_exact(v: torch.Tensor, z: torch.Tensor,
                create_graph: bool = False) -> torch.Tensor:
    r"""Exact :math:`\operatorname{tr}\,\partial v/\partial z` per row: one backward pass per dimension.

    Pass ``i`` differentiates :math:`\sum_{\text{rows}} v_i` and keeps :math:`\partial v_i/\partial z_i`
    (rows do not interact), so the cost is ``D`` vector-Jacobian products. A ``v`` that does not
    depend on ``z`` (a constant, or a function of time only) has divergence 0.

    Args:
        v: ``(batch, D)`` values of the field, computed from ``z`` with autograd on.
        z: ``(batch, D)`` points (``requires_grad``).
        create_graph: keep the graph of the trace, to differentiate it (training).

    Example:
        >>> import torch
        >>> from flowbook.transforms.ode import trace_exact
        >>> z = torch.randn(3, 2, requires_grad=True)
        >>> trace_exact(z @ torch.tensor([[1.0, 5.0], [7.0, -3.0]]).T, z)
        tensor([-2., -2., -2.])
    """
    trace = v.new_zeros(v.shape[0])
    if not check_trace_input(v, z):
        return trace                              # v does not depend on z
    for i in range(z.shape[1]):
        grad_i = torch.autograd.grad(v[:, i].sum(), z,
                                     create_graph=create_graph,
                                     retain_graph=True, allow_unused=True)[0]
        trace = trace if grad_i is None else trace + grad_i[:, i]
    return trace


def trace_hutchinson(v: torch.Tensor, z: torch.Tensor, eps: torch.Tensor,
                     create_graph: bool = False):
    r"""Hutchinson's estimate :math:`\varepsilon^\top (\partial v/\partial z)\, \varepsilon` per row.

    One vector-Jacobian product gives the row vector :math:`\varepsilon^\top J`; its dot product with
    :math:`\varepsilon` is unbiased for :math:`\operatorname{tr} J` when
    :math:`\mathbb E[\varepsilon\varepsilon^\top] = I` (Gaussian or Rademacher ``eps``, the shape of ``z``).
    A ``v`` that does not depend on ``z`` gives 0.

    Example:
        >>> import torch
        >>> from flowbook.transforms.ode import trace_hutchinson
        >>> z = torch.randn(4, 2, requires_grad=True)
        >>> eps = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        >>> trace_hutchinson(z @ torch.tensor([[1.0, 5.0], [7.0, -3.0]]).T, z, eps)   # 1 - 3 +- (5 + 7)
        tensor([ 10., -14., -14.,  10.])
    """
    if not check_trace_input(v, z, eps):
        return v.new_zeros(v.shape[0])           # v does not depend on z
    eps_jacobian = torch.autograd.grad(v, z, eps, create_graph=create_graph,
                                       allow_unused=True)[0]  # eps^T J
    if eps_jacobian is None:                      # v does not depend on z
        return v.new_zeros(v.shape[0])
    return (eps_jacobian * eps).sum(1)


class ODEFlow(Bijection):
    r"""The solution map of :math:`dz/dt = v(t, z)` from ``t0`` to ``t1``, with its log-determinant.

    ``forward(z)`` integrates the state and :math:`\ell' = \operatorname{tr}\,\partial v/\partial z`
    from ``t0`` to ``t1`` and returns ``(x, log|det ∂x/∂z|)``; ``inverse(x)`` integrates the same
    system from ``t1`` back to ``t0`` and returns ``(z, log|det ∂z/∂x|)``.

    Args:
        field: a module called as ``field(t, z)`` (or ``field(t, z, context)``) returning
            ``(batch, features)``, e.g. ``flowbook.nn.VectorField``.
        features: number of features.
        t0, t1: start and end time (finite; ``t0 == t1`` is the identity).
        trace: ``"exact"`` (``D`` backward passes per evaluation) or ``"hutchinson"``.
        probe: ``"gaussian"`` or ``"rademacher"``, the distribution of Hutchinson's probe; one
            probe per row is drawn per solve and held fixed along the trajectory.
        method: a ``torchdiffeq`` solver: fixed-step ``"euler"``, ``"midpoint"``, ``"rk4"``,
            ``"heun3"`` (then ``solver_steps`` equal steps), or adaptive (``"dopri5"``, ...; then
            ``rtol``, ``atol``). An unknown name raises ``ValueError`` with the closest known one.
        solver_steps: number of integration steps of a fixed-step method.
        adjoint: backpropagate with the adjoint ODE (memory independent of the number of steps)
            instead of through the solver's operations.

    A non-finite state or log-det at the end of a solve raises ``FloatingPointError`` naming the
    field and, for a fixed-step method, the first step where it appeared (one check per solve).

    Example:
        >>> import torch, flowbook
        >>> field = flowbook.nn.VectorField(2, hidden=8)
        >>> flow = flowbook.ODEFlow(field, 2, method="rk4", solver_steps=4)
        >>> x, logabsdet = flowbook.randomize_parameters(flow)(torch.randn(5, 2))
        >>> z, logabsdet_inverse = flow.inverse(x)
        >>> x.shape, logabsdet.shape, (logabsdet + logabsdet_inverse).abs().max().item() < 1e-3
        (torch.Size([5, 2]), torch.Size([5]), True)
    """

    def __init__(self, field, features: int, t0: float = 0.0, t1: float = 1.0, trace: str = "exact",
                 probe: str = "gaussian", method: str = "dopri5", solver_steps: int | None = None,
                 rtol: float = 1e-5, atol: float = 1e-5, adjoint: bool = False):
        super().__init__()
        if not callable(field):
            raise TypeError(f"field must be callable as field(t, z), e.g. flowbook.nn.VectorField, got {field!r}")
        if isinstance(getattr(field, "features", None), int) and field.features != features:
            raise ValueError(f"the field has features={field.features} but ODEFlow got features={features!r}")
        if adjoint and not isinstance(field, nn.Module):
            raise TypeError("adjoint=True needs the field to be a torch.nn.Module (the adjoint ODE carries its "
                            f"parameters), got {type(field).__name__}")
        method = check_method(method)
        if trace not in ("exact", "hutchinson"):
            raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
        if probe not in ("gaussian", "rademacher"):
            raise ValueError(f"probe must be 'gaussian' or 'rademacher', got {probe!r}")
        if method in FIXED_STEP_METHODS and solver_steps is None:
            raise ValueError(f"method {method!r} takes fixed steps: pass solver_steps=<number of steps>")
        if method not in FIXED_STEP_METHODS and solver_steps is not None:
            raise ValueError(f"solver_steps is for the fixed-step methods {FIXED_STEP_METHODS}; {method!r} "
                             "chooses its own steps (set rtol, atol)")
        self.field, self.features = field, check_dim(features)
        (self.t0, self.t1), self.trace, self.probe = check_times(t0, t1), trace, probe
        self.method, self.adjoint = method, adjoint
        self.rtol, self.atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
        self.solver_steps = None if solver_steps is None else check_dim(solver_steps, "solver_steps")

    def forward(self, z, context=None):
        self.check_input(z, "z")
        return self.integrate(z, self.t0, self.t1, context)

    def inverse(self, x, context=None):
        self.check_input(x, "x")
        return self.integrate(x, self.t1, self.t0, context)

    def integrate(self, z, t_start: float, t_end: float, context=None):
        r"""Solve for :math:`(z(t), \ell(t))` from ``t_start`` to ``t_end`` with :math:`\ell(t_\text{start}) = 0`.

        A zero time span, or no rows, is the identity (log-det exactly 0) without calling the solver.
        """
        if t_start == t_end or len(z) == 0:
            return z.clone(), z.new_zeros(len(z))
        eps = None if self.trace == "exact" else self.probe_noise(z)
        times = torch.linspace(t_start, t_end, (self.solver_steps or 1) + 1, dtype=z.dtype, device=z.device)
        solve = odeint_adjoint if self.adjoint else odeint
        options = {"adjoint_params": tuple(self.field.parameters())} if self.adjoint else {}
        try:
            zs, logabsdets = solve(lambda t, state: self.dynamics(t, state, eps, context), (z, z.new_zeros(len(z))),
                                   times, method=self.method, rtol=self.rtol, atol=self.atol, **options)
        except (AssertionError, RuntimeError, IndexError) as err:   # name the cause where we can tell it
            raise self._diagnose(z, times, context, err) from err
        if not torch.isfinite(logabsdets[-1] + zs[-1].sum(1)).all():   # one check per solve
            self._check_finite_path(z, times, zs, logabsdets)
        return zs[-1], logabsdets[-1]

    def dynamics(self, t, state, eps=None, context=None):
        r"""The right-hand side :math:`(v(t, z), \operatorname{tr}\,\partial v/\partial z)` of the augmented ODE."""
        z = state[0]
        # differentiate the trace only when someone will
        training = torch.is_grad_enabled()
        with torch.enable_grad():
            if not (training and z.requires_grad):
                z = z.detach().requires_grad_(True)
            v = self.field(t, z) if context is None else self.field(t, z, context)
            if eps is None:
                trace = trace_exact(v, z, create_graph=training)
            else:
                trace = trace_hutchinson(v, z, eps, create_graph=training)
        return (v, trace) if training else (v.detach(), trace.detach())

    def _diagnose(self, z, times, context, err):
        """The error to raise for a failed solve: the input, the field's output, or the solver's ``err``."""
        t, name = times[0].item(), "z" if times[0].item() == self.t0 else "x"
        check_finite(z, name)
        try:
            with torch.no_grad():
                v = self.field(times[0], z) if context is None else self.field(times[0], z, context)
        except Exception:                       # the field fails by itself: its own error says why
            return err
        if not isinstance(v, torch.Tensor) or v.shape != z.shape:
            return ValueError(f"the field returned {tuple(getattr(v, 'shape', ())) or type(v).__name__} for points "
                              f"of shape {tuple(z.shape)}; a velocity field returns the points' shape")
        if not torch.isfinite(v).all():
            return FloatingPointError(f"the field {self._field_name()} returned a non-finite value at t={t:g} "
                                      f"(the start of the solve){self._bad_parameter()}")
        if isinstance(err, AssertionError) and "underflow in dt" in str(err):
            return FloatingPointError(
                f"the adaptive solver {self.method!r} shrank its step to 0 between t={t:g} and t={times[-1].item():g}: "
                f"the field {self._field_name()} returned a non-finite value along the way, or the ODE is too stiff "
                f"for rtol={self.rtol:g}, atol={self.atol:g}{self._bad_parameter()}; a fixed-step method "
                "(method='rk4', solver_steps=...) shows where")
        return err

    def _check_finite_path(self, z, times, zs, logabsdets):
        """Raise ``FloatingPointError`` naming the field and the first step whose state or log-det is not finite."""
        bad = ~(torch.isfinite(zs).flatten(2).all(2) & torch.isfinite(logabsdets))   # (times, rows)
        if not bad.any():
            return                              # the sum overflowed, every value is finite
        check_finite(z, "z" if times[0].item() == self.t0 else "x")
        k, times = int(bad.any(1).nonzero()[0, 0]), times.tolist()
        where = f"between t={times[k - 1]:g} and t={times[k]:g}" if k else f"at t={times[0]:g}"
        raise FloatingPointError(f"the field {self._field_name()} returned a non-finite value {where}: the state or "
                                 f"log-det of {int(bad[-1].sum())} of {len(z)} rows is NaN or infinite at the end of "
                                 f"the solve (method {self.method!r}){self._bad_parameter()}")

    def _field_name(self) -> str:
        return type(self.field).__name__ if isinstance(self.field, nn.Module) else repr(self.field)

    def _bad_parameter(self) -> str:
        """``"; its parameter NAME holds NaN or inf ..."`` for the field's first non-finite parameter, else ``""``."""
        params = self.field.named_parameters() if isinstance(self.field, nn.Module) else ()
        name = next((n for n, p in params if not torch.isfinite(p).all()), None)
        return "" if name is None else f"; its parameter {name} holds NaN or inf (training diverged? try a smaller lr)"

    def probe_noise(self, z):
        """One Hutchinson probe per row, with E[eps eps^T] = I: Gaussian or Rademacher (random ±1)."""
        if self.probe == "gaussian":
            return torch.randn_like(z)
        return torch.randint(0, 2, z.shape, device=z.device).to(z.dtype) * 2 - 1

    def extra_repr(self):
        solver = (f"solver_steps={self.solver_steps}" if self.solver_steps
                  else f"rtol={self.rtol:g}, atol={self.atol:g}")
        return (f"features={self.features}, t=[{self.t0:g}, {self.t1:g}], trace={self.trace!r}, "
                f"method={self.method!r}, {solver}, adjoint={self.adjoint}")


def check_method(method) -> str:
    """``method`` if ``ODEFlow`` knows it, else ``ValueError`` with the known names and the closest one."""
    known = FIXED_STEP_METHODS + ADAPTIVE_METHODS
    if method in known:
        return method
    close = [m for m in known if m == str(method).lower()] or difflib.get_close_matches(str(method), known, n=1)
    raise ValueError(f"unknown method {method!r}; expected one of the fixed-step methods {FIXED_STEP_METHODS} "
                     f"(with solver_steps) or the adaptive ones {ADAPTIVE_METHODS} (with rtol, atol)"
                     + (f"; did you mean {close[0]!r}?" if close else ""))


def check_trace_input(v, z, eps=None) -> bool:
    """Python-only: ``v`` and ``eps`` have the shape of ``z``, which requires grad; ``False`` if ``v`` has no graph."""
    if not z.requires_grad:
        raise ValueError("z must require grad (z.requires_grad_(True)) and v be computed from it with autograd on")
    for name, a in (("v", v), ("eps", eps)):
        if a is not None and a.shape != z.shape:
            raise ValueError(f"{name} must have the shape of z, {tuple(z.shape)}, got {tuple(a.shape)}"
                             + (" (v: the field's output)" if name == "v" else ""))
    return v.requires_grad
