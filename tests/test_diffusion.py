"""flowbook.diffusion: the exact Gaussian-path field of a Gaussian mixture (float64, see conftest)."""
import math

import pytest
import torch

import flowbook as fb
from flowbook.diffusion import SCHEDULES, MixturePathField

MEANS = torch.tensor([[-2.0, 0.5], [1.5, 2.0], [1.0, -1.5]])


def field_of(schedule, std=0.6):
    return MixturePathField(MEANS, std, schedule=schedule).double()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_marginal_is_the_noise_at_0_and_the_data_at_1(schedule):
    field, y = field_of(schedule), 2 * torch.randn(64, 2)
    data = fb.data.GaussianMixture(MEANS, std=0.6)
    torch.testing.assert_close(field.log_prob(0.0, y), fb.StandardNormal(2).log_prob(y))
    torch.testing.assert_close(field.log_prob(1.0, y), data.log_prob(y))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_marginal_integrates_to_one(schedule):
    points, cell = fb.plot.grid_points((-9, 9), 300)
    mass = field_of(schedule).log_prob(0.4, points.double()).exp().sum().item() * cell
    assert abs(mass - 1) < 1e-4


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("t", [0.0, 0.3, 0.8, 1.0])
def test_the_score_is_the_gradient_of_log_prob(schedule, t):
    field = field_of(schedule)
    y = (2 * torch.randn(32, 2)).requires_grad_(True)
    expected = torch.autograd.grad(field.log_prob(t, y).sum(), y)[0]
    torch.testing.assert_close(field.score(t, y.detach()), expected)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_the_field_is_the_probability_flow_field(schedule, t):
    field, y = field_of(schedule), 2 * torch.randn(32, 2)
    a, b = field.score_coefficients(t)
    torch.testing.assert_close(field(t, y), a * y + b * field.score(t, y))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("t", [0.05, 0.5, 0.95])
def test_the_field_moves_the_marginals_continuity_equation(schedule, t):
    """d/dt p_t + div(p_t u) = 0, i.e. d/dt log p = -div u - u . grad log p (finite difference in t)."""
    field, h = field_of(schedule), 1e-5
    y = (1.5 * torch.randn(32, 2)).requires_grad_(True)
    u = field(t, y)
    divergence = fb.trace_exact(u, y)
    dlog_dt = (field.log_prob(t + h, y) - field.log_prob(t - h, y)).detach() / (2 * h)
    rhs = -divergence - (u * field.score(t, y)).sum(1)
    torch.testing.assert_close(dlog_dt, rhs.detach(), atol=1e-6, rtol=1e-6)


def test_one_standard_gaussian_gives_chapter_13s_linear_field():
    field, y = MixturePathField(torch.zeros(1, 2), std=1.0).double(), torch.randn(16, 2)
    for t in (0.0, 0.25, 0.5, 1.0):
        torch.testing.assert_close(field(t, y), (2 * t - 1) / ((1 - t) ** 2 + t**2) * y)


def test_the_field_is_finite_at_both_ends():
    for schedule in SCHEDULES:
        field, y = field_of(schedule), 3 * torch.randn(16, 2)
        assert torch.isfinite(field(0.0, y)).all() and torch.isfinite(field(1.0, y)).all()
    vp = field_of("vp")   # alpha_0 = 0: the responsibilities are equal, u(0, y) = (pi/2) mean of the means
    torch.testing.assert_close(vp(0.0, y), (math.pi / 2 * MEANS.double().mean(0)).expand(16, 2))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_ode_flow_has_the_mixtures_exact_likelihood(schedule):
    field = field_of(schedule)
    flow = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(field, 2, method="rk4", solver_steps=64)]).double()
    x = fb.data.GaussianMixture(MEANS, std=0.6).sample(200, torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        error = (flow.log_prob(x) - field.log_prob(1.0, x)).abs().max().item()
    assert error < 1e-5


def test_the_two_schedules_define_the_same_map():
    z = torch.randn(300, 2)
    with torch.no_grad():
        ends = [fb.rk4(field_of(s), z, solver_steps=64) for s in SCHEDULES]
    assert (ends[0] - ends[1]).abs().max() < 1e-4


def test_the_field_works_in_float32_and_follows_the_points_dtype():
    field = MixturePathField(MEANS.float(), 0.6)
    out = field(0.5, torch.randn(4, 2, dtype=torch.float32))
    assert out.dtype == torch.float32 and out.shape == (4, 2)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"means": torch.zeros(3), "std": 1.0}, ValueError, r"means must have shape \(K, features\)"),
    ({"means": torch.zeros(0, 2), "std": 1.0}, ValueError, r"means must have shape"),
    ({"means": torch.tensor([[0.0, math.nan]]), "std": 1.0}, ValueError, "means must hold finite"),
    ({"means": torch.zeros(2, 2), "std": 0.0}, ValueError, "std must be a finite number > 0"),
    ({"means": torch.zeros(2, 2), "std": 1.0, "schedule": "cosine"}, ValueError, "schedule must be one of"),
])
def test_bad_constructor_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        MixturePathField(**kwargs)


def test_bad_points_and_times_are_named():
    field = field_of("linear")
    with pytest.raises(ValueError, match=r"y has 3 features, expected 2"):
        field(0.5, torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"y must have shape"):
        field.log_prob(0.5, torch.randn(4))
    with pytest.raises(TypeError, match="y must be floating point"):
        field.score(0.5, torch.ones(4, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        field.log_prob(0.5, [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\]"):
        field.log_prob(1.5, torch.randn(4, 2))
    with pytest.raises(TypeError, match=r"t must be a number in \[0, 1\]"):
        field.score("late", torch.randn(4, 2))
    with pytest.raises(ValueError, match="score_coefficients needs 0 < t < 1"):
        field.score_coefficients(0.0)

