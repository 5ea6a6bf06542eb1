"""Nothing silent, part 2 (issue 24): ODE flows, the integrators and flow matching.

Each bad input gets a clear error naming the argument and what was expected; where the right answer
is a number (a zero time span is the identity, a field that ignores z has divergence 0, zero rows give
empty tensors) the test asserts the number. Float64 by default (conftest.py).
"""
import math

import pytest
import torch

import flowbook as fb

LinearField = fb.nn.LinearField
G = torch.Generator().manual_seed(0)
Z = torch.randn(4, 2, generator=G, dtype=torch.float64)


class NaNRows(torch.nn.Module):
    """A field that returns NaN on its first three rows (the issue's log_prob [nan, nan, nan, -2.3])."""

    def forward(self, t, z):
        out = -z.clone()
        out[:3] = float("nan")
        return out


class NaNLater(torch.nn.Module):
    """Finite for t <= 0.5, NaN after: the failure appears inside the solve, not at its start."""

    def forward(self, t, z):
        return torch.where(torch.as_tensor(t) > 0.5, torch.full_like(z, float("nan")), -z)


class Constant(torch.nn.Module):
    """v(t, z) = c (a learnable c): no dependence on z, divergence 0."""

    def __init__(self, c):
        super().__init__()
        self.c = torch.nn.Parameter(torch.as_tensor(c, dtype=torch.float64))

    def forward(self, t, z):
        return self.c.expand(len(z), -1)


# ----------------------------------------------------------------------------- flow matching
def test_cfm_loss_refuses_unpaired_rows_instead_of_broadcasting():
    field = lambda t, x_t: x_t                                              # noqa: E731
    with pytest.raises(ValueError, match=r"cfm_loss pairs the rows of z and x: z has 8 rows and x has 1"):
        fb.cfm_loss(field, torch.randn(8, 2), torch.randn(1, 2))           # broadcast silently before
    with pytest.raises(ValueError, match=r"z has 8 rows and x has 5"):
        fb.cfm_loss(field, torch.randn(8, 2), torch.randn(5, 2))           # failed inside torch before
    with pytest.raises(ValueError, match=r"z has 8 rows and x has 8 \(shapes \(8, 2\) and \(8, 3\)\)"):
        fb.cfm_loss(field, torch.randn(8, 2), torch.randn(8, 3))
    with pytest.raises(ValueError, match="at least one row"):
        fb.cfm_loss(field, torch.randn(0, 2), torch.randn(0, 2))           # NaN before
    with pytest.raises(ValueError, match=r"z must have shape \(batch, features\)"):
        fb.cfm_loss(field, torch.randn(8), torch.randn(8))                 # an (8, 8) broadcast before
    with pytest.raises(ValueError, match=r"t must have shape \(8,\)"):
        fb.cfm_loss(field, torch.randn(8, 2), torch.randn(8, 2), torch.rand(3))
    with pytest.raises(TypeError, match="z has dtype torch.float32 and x has dtype torch.float64"):
        fb.cfm_loss(field, torch.randn(8, 2).float(), torch.randn(8, 2))
    with pytest.raises(ValueError, match=r"the field returned \(8, 1\) for points x_t of shape \(8, 2\)"):
        fb.cfm_loss(lambda t, x_t: x_t[:, :1], torch.randn(8, 2), torch.randn(8, 2))   # broadcast before


def test_ot_pairing_refuses_unequal_batches_and_names_nan():
    with pytest.raises(ValueError, match=r"ot_pairing pairs the rows of z and x: z has 5 rows and x has 3"):
        fb.ot_pairing(torch.randn(5, 2), torch.randn(3, 2))                # dropped 2 rows before
    bad = torch.zeros(3, 2)
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value\(s\) \(first in row 1\)"):
        fb.ot_pairing(torch.randn(3, 2), bad)                              # scipy's "invalid entries" before


@pytest.mark.parametrize("steps", [0, 2.5, -1])
def test_every_sampler_refuses_a_bad_step_count(steps):
    field = fb.nn.VectorField(2, hidden=4)
    for sample in (lambda: fb.euler(field, Z, solver_steps=steps), lambda: fb.rk4(field, Z, solver_steps=steps),
                   lambda: fb.straightness(field, Z, solver_steps=steps),
                   lambda: fb.reflow_pairs(field, Z, solver_steps=steps)):
        with pytest.raises(ValueError, match="solver_steps must be a whole number >= 1"):
            sample()
    with pytest.raises(ValueError, match="solver_steps must be a positive integer"):
        fb.ODEFlow(field, 2, method="rk4", solver_steps=steps)


def test_straightness_reflow_and_energy_distance_edge_cases():
    nan_field = lambda t, x: x * float("nan")                              # noqa: E731
    with pytest.raises(ValueError, match="straightness needs at least one noise point z, got 0 rows"):
        fb.straightness(lambda t, x: x, torch.randn(0, 2))                 # NaN before
    with pytest.raises(FloatingPointError, match="straightness: the field returned a non-finite value"):
        fb.straightness(nan_field, Z)
    with pytest.raises(FloatingPointError, match="reflow_pairs: the field returned a non-finite value"):
        fb.reflow_pairs(nan_field, Z)
    z, x = fb.reflow_pairs(lambda t, x: -x, torch.randn(0, 2))
    assert z.shape == x.shape == (0, 2)
    with pytest.raises(ValueError, match=r"x has 1 row\(s\); the energy distance needs at least 2"):
        fb.energy_distance(torch.randn(1, 2), torch.randn(5, 2))           # ZeroDivisionError before
    with pytest.raises(ValueError, match="x has 2 features and y has 3"):
        fb.energy_distance(torch.randn(4, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="y contains 10 NaN"):
        fb.energy_distance(torch.randn(4, 2), torch.full((5, 2), float("nan")))   # NaN before
    a, b = torch.randn(6, 2, generator=G), torch.randn(7, 2, generator=G)
    assert fb.energy_distance(a.float(), b) == pytest.approx(fb.energy_distance(a.float().double(), b), abs=1e-12)
    ints = torch.tensor([[0, 1], [2, 3], [4, 4]])
    assert fb.energy_distance(ints, b) == pytest.approx(fb.energy_distance(ints.double(), b), abs=1e-12)


def test_fit_flow_matching_names_a_field_without_parameters():
    with pytest.raises(ValueError, match="field must be a torch.nn.Module with trainable parameters"):
        fb.fit_flow_matching(lambda t, x: x, torch.randn(50, 2), steps=2, progress=False)


# ----------------------------------------------------------------------------- integrators
@pytest.mark.parametrize("integrate", [fb.euler, fb.rk4])
def test_integrators_check_times_and_state(integrate):
    field = lambda t, z: z                                                 # noqa: E731
    with pytest.raises(ValueError, match="t1 must be a finite number"):
        integrate(field, Z, 0.0, float("nan"), solver_steps=3)            # NaN before
    with pytest.raises(TypeError, match="t0 must be a number"):
        integrate(field, Z, "0", 1.0, solver_steps=3)
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        integrate(field, [1.0, 2.0], solver_steps=3)
    assert torch.equal(integrate(field, Z, 0.4, 0.4, solver_steps=3), Z)   # a zero span: the start
    back = integrate(field, Z, torch.tensor(1.0), 0.0, solver_steps=100)  # reverse time; a tensor t0 is read
    assert torch.allclose(back, Z * math.exp(-1), rtol=0.01, atol=0)


# ----------------------------------------------------------------------------- ODE flows
def test_a_nan_field_is_named_with_rk4_and_dopri5():
    x = torch.randn(4, 2, generator=G)
    rk4 = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(NaNRows(), 2, method="rk4", solver_steps=4)])
    with pytest.raises(FloatingPointError, match=r"the field NaNRows returned a non-finite value .*3 of 4 rows"):
        rk4.log_prob(x)                                                    # [nan, nan, nan, -2.3] before
    dopri5 = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(NaNRows(), 2)])
    with pytest.raises(FloatingPointError, match=r"the field NaNRows returned a non-finite value at t=1"):
        dopri5.log_prob(x)                                                 # "underflow in dt 0.0" before
    with pytest.raises(FloatingPointError, match=r"non-finite value between t=0.5 and t=0.75") as info:
        fb.ODEFlow(NaNLater(), 2, method="rk4", solver_steps=4)(x)
    with pytest.raises(FloatingPointError, match=r"adaptive solver 'dopri5' shrank its step to 0 .* too stiff") as info:
        fb.ODEFlow(NaNLater(), 2)(x)
    assert isinstance(info.value.__cause__, AssertionError)               # torchdiffeq's error, chained
    field = fb.nn.VectorField(2, hidden=4)
    with torch.no_grad():
        field.net[0].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"its parameter net.0.weight holds NaN"):
        fb.ODEFlow(field, 2, method="rk4", solver_steps=2)(x)
    with pytest.raises(ValueError, match=r"z contains 2 NaN"):            # the input, not the field, is to blame
        fb.ODEFlow(fb.nn.VectorField(2), 2)(torch.tensor([[0.0, float("nan")], [float("nan"), 1.0]]))


def test_an_unknown_method_gets_the_closest_name():
    field = LinearField(torch.eye(2))
    with pytest.raises(ValueError, match=r"unknown method 'RK4'; expected one of .*; did you mean 'rk4'\?"):
        fb.ODEFlow(field, 2, method="RK4", solver_steps=4)                # "'RK4' chooses its own steps" before
    with pytest.raises(ValueError, match=r"unknown method 'Dopri5'; .*did you mean 'dopri5'\?"):
        fb.ODEFlow(field, 2, method="Dopri5")                              # accepted, failed at the solve before
    with pytest.raises(ValueError, match=r"unknown method 'rk5'; .*did you mean 'rk4'\?"):
        fb.ODEFlow(field, 2, method="rk5")
    with pytest.raises(ValueError, match="unknown method 'explicit_adams'"):
        fb.ODEFlow(field, 2, method="explicit_adams")                      # one silent step of size 1 before


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_a_zero_time_span_is_the_identity(method):
    flow = fb.ODEFlow(LinearField(torch.eye(2)), 2, t0=0.3, t1=0.3, method=method,
                      solver_steps=2 if method == "rk4" else None)
    for x, logabsdet in (flow(Z), flow.inverse(Z)):                        # failed inside torchdiffeq before
        assert torch.equal(x, Z) and torch.equal(logabsdet, torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
@pytest.mark.parametrize("grad", [True, False])
def test_a_field_that_ignores_z_has_divergence_zero(trace, grad):
    c, (t0, t1) = torch.tensor([1.5, -2.0], dtype=torch.float64), (0.2, 1.7)
    with torch.set_grad_enabled(grad):
        for field, shift in ((Constant(c), c * (t1 - t0)),                                    # v = c
                             (lambda t, z: t * c.expand(len(z), -1), c * (t1**2 - t0**2) / 2),  # v = t c
                             (lambda t, z: torch.ones_like(z), torch.ones(2) * (t1 - t0))):   # no graph at all
            for method, steps in (("dopri5", None), ("rk4", 3)):
                flow = fb.ODEFlow(field, 2, t0=t0, t1=t1, trace=trace, method=method, solver_steps=steps)
                x, logabsdet = flow(Z)                   # "does not require grad" / "not used in the graph" before
                assert torch.allclose(x, Z + shift, atol=1e-12, rtol=0)
                assert torch.equal(logabsdet, torch.zeros(4, dtype=torch.float64))
                z, logabsdet_inverse = flow.inverse(x)
                assert torch.allclose(z, Z, atol=1e-12, rtol=0) and torch.equal(logabsdet_inverse, logabsdet)


def test_trace_functions_check_their_inputs():
    z = torch.randn(3, 2, requires_grad=True)
    assert torch.equal(fb.trace_exact(torch.ones(3, 2), z), torch.zeros(3))
    assert torch.equal(fb.trace_hutchinson(torch.ones(3, 2), z, torch.randn(3, 2)), torch.zeros(3))
    w = torch.ones(2, requires_grad=True)                                  # a graph, but not through z
    assert torch.equal(fb.trace_exact(w.expand(3, 2) * 2, z), torch.zeros(3))
    assert torch.equal(fb.trace_hutchinson(w.expand(3, 2) * 2, z, torch.randn(3, 2)), torch.zeros(3))
    with pytest.raises(ValueError, match=r"z must require grad"):
        fb.trace_exact(torch.randn(3, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"eps must have the shape of z, \(3, 2\), got \(3, 3\)"):
        fb.trace_hutchinson(z * 2, z, torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"v must have the shape of z, \(3, 2\), got \(3, 1\) \(v: the field's"):
        fb.ODEFlow(lambda t, y: y[:, :1], 2)(torch.randn(3, 2))            # an IndexError before


def test_ode_flow_constructor_and_empty_batches():
    field = fb.nn.VectorField(2, hidden=4)
    with pytest.raises(TypeError, match="field must be callable"):
        fb.ODEFlow(None, 2)
    with pytest.raises(ValueError, match="the field has features=3 but ODEFlow got features=2"):
        fb.ODEFlow(fb.nn.VectorField(3), 2)
    with pytest.raises(ValueError, match="rtol must be a finite number > 0, got 0"):
        fb.ODEFlow(field, 2, rtol=0)
    with pytest.raises(ValueError, match="atol must be a finite number > 0"):
        fb.ODEFlow(field, 2, atol=-1)
    with pytest.raises(ValueError, match="t1 must be a finite number"):
        fb.ODEFlow(field, 2, t1=float("inf"))
    with pytest.raises(TypeError, match="adjoint=True needs the field to be a torch.nn.Module"):
        fb.ODEFlow(lambda t, z: -z, 2, adjoint=True)
    ode = fb.ODEFlow(field, 2)
    flow = fb.Flow(fb.StandardNormal(2), [ode])
    assert flow.log_prob(torch.randn(0, 2)).shape == (0,)                  # "underflow in dt" before
    assert flow.sample(0).shape == (0, 2)
    for x, logabsdet in (ode(torch.randn(0, 2)), ode.inverse(torch.randn(0, 2))):
        assert x.shape == (0, 2) and logabsdet.shape == (0,)


def test_vector_field_checks_its_arguments():
    with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got 2.5"):
        fb.nn.VectorField(2, context_features=2.5)                         # silently 2 before
    with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got -1"):
        fb.nn.VectorField(2, context_features=-1)
    field = fb.nn.VectorField(2, context_features=3)
    with pytest.raises(ValueError, match=r"t as a number or 5 times \(one per row of z\).*got t \(3,\)"):
        field(torch.rand(3), torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"and 5 context rows; got t \(\), context \(4, 3\)"):
        field(0.5, torch.randn(5, 2), torch.randn(4, 3))
    assert field(0.5, torch.randn(0, 2), torch.randn(0, 3)).shape == (0, 2)
    assert math.isfinite(fb.nn.VectorField(2)(torch.tensor([0.5]), torch.randn(4, 2)).sum().item())
