"""ODE flows (the instantaneous change of variables, solvers, Hutchinson's trace) and flow matching."""
import itertools
import math

import pytest
import torch

import flowbook as fb
from flowbook.plot import grid_points
from flowbook.teaching.timing import loglog_slope
from _helpers import randomize


LinearField = fb.nn.LinearField


A = torch.tensor([[0.3, -1.2, 0.4], [0.9, -0.5, 0.2], [-0.3, 0.6, 0.1]], dtype=torch.float64)


def test_ode_flow_passes_check_bijection_at_random_parameters():
    field = randomize(fb.VectorField(3, hidden=16), scale=0.5)
    flow = fb.ODEFlow(field, 3, rtol=1e-9, atol=1e-9)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    report = fb.check_bijection(flow, z, atol=1e-7)
    assert report.logdet_error < 1e-7
    with torch.no_grad():
        assert flow(z)[1].abs().max() > 0.1       # the check is not at the identity


def test_check_bijection_catches_a_wrong_sign_of_the_trace():
    class Flipped(fb.ODEFlow):
        def dynamics(self, t, state, eps=None, context=None):
            v, trace = super().dynamics(t, state, eps, context)
            return v, -trace

    flow = Flipped(randomize(fb.VectorField(2, hidden=8)), 2, rtol=1e-9, atol=1e-9)
    with pytest.raises(AssertionError, match="sign flipped"):
        fb.check_bijection(flow, torch.randn(8, 2))


def test_linear_field_gives_t_trace_and_the_matrix_exponential():
    z = torch.randn(10, 3, generator=torch.Generator().manual_seed(1))
    t1 = 0.7
    flow = fb.ODEFlow(LinearField(A), 3, t1=t1, rtol=1e-11, atol=1e-11)
    with torch.no_grad():
        x, ladj = flow(z)
        z_back, ladj_inv = flow.inverse(x)
    assert torch.allclose(x, z @ torch.linalg.matrix_exp(t1 * A).T, atol=1e-9)
    assert torch.allclose(ladj, torch.full_like(ladj, t1 * A.trace().item()), atol=1e-10)
    assert torch.allclose(ladj_inv, -ladj, atol=1e-10) and torch.allclose(z_back, z, atol=1e-9)
    # the integrand tr(A) is constant, so even 3 RK4 steps integrate the log-det exactly
    with torch.no_grad():
        coarse = fb.ODEFlow(LinearField(A), 3, t1=t1, method="rk4", solver_steps=3)(z)[1]
    assert torch.allclose(coarse, torch.full_like(coarse, t1 * A.trace().item()), atol=1e-13)


def test_errors_fall_at_the_solvers_order():
    z = torch.randn(32, 3, generator=torch.Generator().manual_seed(2))
    exact = z @ torch.linalg.matrix_exp(A).T
    field = randomize(fb.VectorField(3, hidden=16), scale=0.5)
    slopes = {}
    for method, steps in (("euler", [32, 64, 128, 256]), ("rk4", [8, 16, 32, 64])):
        forward_error, roundtrip_error = [], []
        for s in steps:
            with torch.no_grad():
                x = fb.ODEFlow(LinearField(A), 3, method=method, solver_steps=s)(z)[0]
                flow = fb.ODEFlow(field, 3, method=method, solver_steps=s)
                back = flow.inverse(flow(z)[0])[0]
            forward_error.append((x - exact).abs().max().item())
            roundtrip_error.append((back - z).abs().max().item())
        h = [1 / s for s in steps]
        slopes[method] = loglog_slope(h, forward_error), loglog_slope(h, roundtrip_error)
    assert 0.9 < slopes["euler"][0] < 1.1 and 0.9 < slopes["euler"][1] < 1.1, slopes
    # even order p: the leading errors of a step and of its reverse cancel, the round trip is O(h^(p+1))
    assert 3.7 < slopes["rk4"][0] < 4.3 and 4.6 < slopes["rk4"][1] < 5.4, slopes


def test_rk4_matches_a_known_solution_and_torchdiffeq():
    from torchdiffeq import odeint
    f = lambda t, y: y * math.cos(t) if isinstance(t, float) else y * torch.cos(t)   # y = exp(sin t)
    y0, t1 = torch.tensor([1.0]), 2.0
    errors = [abs(fb.rk4(f, y0, 0.0, t1, solver_steps=s).item() - math.exp(math.sin(t1))) for s in (5, 10, 20, 40)]
    assert 3.7 < loglog_slope([1 / 5, 1 / 10, 1 / 20, 1 / 40], errors) < 4.3
    ours = fb.rk4(f, y0, 0.0, t1, solver_steps=40)
    theirs = odeint(f, y0, torch.tensor([0.0, t1]), method="rk4", options={"step_size": t1 / 40})[-1]
    assert abs(ours - theirs).item() < 1e-6 and errors[-1] < 1e-6


@pytest.mark.parametrize("probe", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased_with_the_closed_form_variance(probe):
    n = 200_000
    flow = fb.ODEFlow(LinearField(A), 3, trace="hutchinson", probe=probe, method="euler", solver_steps=1)
    torch.manual_seed(3)
    z = torch.randn(n, 3, requires_grad=True)
    eps = flow.probe_noise(z)
    est = fb.trace_hutchinson(flow.field(0.0, z), z, eps).detach()
    A_sym = (A + A.T) / 2
    closed = 2 * A_sym.pow(2).sum() - (2 * A.diagonal().pow(2).sum() if probe == "rademacher" else 0)
    mean, var = est.mean(), est.var()
    assert (mean - A.trace()).abs() < 3 * (var / n).sqrt()
    var_se = (((est - mean) ** 4).mean() - var**2).div(n).sqrt()     # standard error of a sample variance
    assert (var - closed).abs() < 3 * var_se
    z4 = z[:4].detach().requires_grad_(True)
    exact = fb.trace_exact(flow.field(0.0, z4), z4)
    assert torch.allclose(exact, A.trace().expand(4))


def test_rademacher_has_less_variance_and_bad_arguments_raise():
    assert 2 * A.diagonal().pow(2).sum() > 0       # the closed forms differ for this A
    with pytest.raises(ValueError, match="trace must be"):
        fb.ODEFlow(LinearField(A), 3, trace="approx")
    with pytest.raises(ValueError, match="probe must be"):
        fb.ODEFlow(LinearField(A), 3, trace="hutchinson", probe="uniform")
    with pytest.raises(ValueError, match="pass solver_steps"):
        fb.ODEFlow(LinearField(A), 3, method="rk4")
    with pytest.raises(ValueError, match="chooses its own steps"):
        fb.ODEFlow(LinearField(A), 3, method="dopri5", solver_steps=10)
    with pytest.raises(ValueError, match="solver_steps must be a positive integer"):
        fb.ODEFlow(LinearField(A), 3, method="rk4", solver_steps=0)
    with pytest.raises(ValueError, match="features"):
        fb.ODEFlow(LinearField(A), 3, method="rk4", solver_steps=2)(torch.randn(4, 2))
    with pytest.raises(ValueError, match="context"):
        fb.VectorField(2, context_features=3)(0.0, torch.randn(4, 2))


def test_trained_cnf_density_integrates_to_one():
    torch.manual_seed(0)
    field = fb.VectorField(2, hidden=32)
    flow = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(field, 2, method="rk4", solver_steps=2)])
    hist = fb.fit(flow, fb.data.Ring(), steps=60, batch_size=128, lr=3e-3, progress=False)
    assert hist.train_loss[-1] < hist.train_loss[0] - 0.5          # it trained
    fine = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(field, 2, method="rk4", solver_steps=8)])
    pts, cell = grid_points((-10, 10), 160)
    with torch.no_grad():
        mass = fine.log_prob(pts).exp().sum().item() * cell
    assert abs(mass - 1) < 0.02, mass


def test_ot_pairing_is_the_optimal_permutation():
    g = torch.Generator().manual_seed(4)
    z, x = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    a, b = fb.ot_pairing(z, x)
    best = min(sum((z[i] - x[p]).pow(2).sum().item() for i, p in enumerate(perm))
               for perm in itertools.permutations(range(6)))
    assert abs((a - b).pow(2).sum().item() - best) < 1e-12
    assert sorted(b[:, 0].tolist()) == sorted(x[:, 0].tolist())   # a permutation of x


def test_cfm_loss_euler_and_straightness_on_known_fields():
    g = torch.Generator().manual_seed(5)
    z, x = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    assert fb.cfm_loss(lambda t, x_t: x - z, z, x).item() == 0
    assert fb.cfm_loss(lambda t, x_t: torch.zeros_like(x_t), z, x).item() == pytest.approx(
        (x - z).pow(2).sum(1).mean().item())
    # the loss is taken at x_t = (1 - t) z + t x: a field that is right only there gives 0 at t = 0.25
    t = torch.full((64,), 0.25)
    at_x_t = lambda s, y: (x - z) * (y - (0.75 * z + 0.25 * x)).abs().sum(1, keepdim=True).lt(1e-6)
    assert fb.cfm_loss(at_x_t, z, x, t).item() == pytest.approx(0, abs=1e-10)
    rotation = lambda t, z: torch.stack([-z[:, 1], z[:, 0]], 1)      # circles: far from straight
    end = fb.euler(rotation, z, solver_steps=2000)
    turned = z @ torch.tensor([[math.cos(1.0), math.sin(1.0)], [-math.sin(1.0), math.cos(1.0)]])
    assert torch.allclose(end, turned, atol=2e-3)
    # an arc of 1 radian: S = r^2 - |chord|^2 = r^2 (1 - 2 (1 - cos 1))
    expected = (1 - 2 * (1 - math.cos(1.0))) * z.pow(2).sum(1).mean().item()
    assert fb.straightness(rotation, z, solver_steps=1000) == pytest.approx(expected, rel=0.02)


def test_flow_matching_between_equal_gaussians_contracts_the_middle():
    sigma = 1.5
    torch.manual_seed(6)
    z, x, t = sigma * torch.randn(100_000), sigma * torch.randn(100_000), 0.3
    path_var = ((1 - t) * z + t * x).var().item()
    assert path_var == pytest.approx(sigma**2 * ((1 - t) ** 2 + t**2), rel=0.02)
    field = fb.VectorField(2, hidden=32)    # the source is N(0, I): learn N(0, I) -> N(0, I), sigma = 1
    hist = fb.fit_flow_matching(field, torch.randn(4000, 2), steps=400, lr=3e-3, progress=False)
    assert len(hist.train_loss) == 400
    # the learned ODE carries N(0, 1) to itself, through variance 1/2 at t = 1/2, not the identity
    with torch.no_grad():
        z = torch.randn(20000, 2)
        middle = fb.euler(field, z, 0.0, 0.5, solver_steps=50)
        end = fb.rk4(field, z, 0.0, 1.0, solver_steps=20)
    assert middle.var().item() == pytest.approx(0.5, rel=0.15)
    assert end.var().item() == pytest.approx(1.0, rel=0.1)


def test_fit_flow_matching_takes_pairs_and_ot_and_rejects_bad_pairing():
    field = fb.VectorField(2, hidden=8)
    pairs = fb.reflow_pairs(lambda t, z: -z, torch.randn(50, 2))
    assert len(fb.fit_flow_matching(field, pairs, steps=3, batch_size=16, progress=False).train_loss) == 3
    assert len(fb.fit_flow_matching(field, fb.data.Moons(), steps=3, pairing="ot", progress=False).train_loss) == 3
    with pytest.raises(ValueError, match="pairing"):
        fb.fit_flow_matching(field, pairs, pairing="sinkhorn")


def test_euler_and_rk4_orders_trajectories_and_backward_time():
    f = lambda t, y: y * math.cos(t)                         # y = exp(sin t), t a Python float
    y0, t1, exact = torch.tensor([1.0], dtype=torch.float64), 2.0, math.exp(math.sin(2.0))
    steps = (50, 100, 200, 400)
    errors = [abs(fb.euler(f, y0, 0.0, t1, solver_steps=s).item() - exact) for s in steps]
    assert 0.9 < loglog_slope([1 / s for s in steps], errors) < 1.1
    for integrate in (fb.euler, fb.rk4):
        path = integrate(f, y0, 0.0, t1, solver_steps=8, trajectory=True)
        assert path.shape == (9, 1) and path[0].item() == 1.0
        assert torch.equal(path[-1], integrate(f, y0, 0.0, t1, solver_steps=8))
    # t1 < t0 runs the ODE backwards: RK4 there and back returns to the start
    there = fb.rk4(f, y0, 0.0, t1, solver_steps=40)
    assert abs(fb.rk4(f, there, t1, 0.0, solver_steps=40).item() - 1.0) < 1e-6
    # the field is evaluated at t_k = t0 + k h
    seen = []
    fb.euler(lambda t, y: seen.append(t) or y, y0, 0.5, 1.0, solver_steps=4)
    assert seen == [0.5, 0.625, 0.75, 0.875]


@pytest.mark.parametrize("integrate", [fb.euler, fb.rk4])
def test_integrators_reject_bad_solver_steps(integrate):
    with pytest.raises(ValueError, match="solver_steps must be a whole number >= 1"):
        integrate(lambda t, z: z, torch.zeros(2), solver_steps=2.5)
    with pytest.raises(ValueError, match="solver_steps must be a whole number >= 1"):
        integrate(lambda t, z: z, torch.zeros(2), solver_steps=0)
    with pytest.raises(TypeError, match="positional arguments"):
        integrate(lambda t, z: z, torch.zeros(2), 0.0, 1.0, 10)     # solver_steps is keyword-only
