"""Core API: Bijection / Inverse / Compose / Flow, the linear layers, and bad inputs."""
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

import flowbook as fb
from flowbook.plot import grid_points

from _helpers import randomize


LAYERS = {
    "affine": lambda: fb.Affine(3),
    "lulinear": lambda: fb.LULinear(3),
    "permutation": lambda: fb.Permutation([2, 0, 1]),
    "reverse": lambda: fb.ReversePermutation(3),
    "compose": lambda: fb.Compose(fb.Affine(3), fb.LULinear(3), fb.ReversePermutation(3), fb.LULinear(3)),
    "inverse": lambda: fb.Inverse(fb.LULinear(3)),
    "logit": lambda: fb.Logit(3, alpha=0.05),
}


@pytest.mark.parametrize("name", LAYERS)
def test_bijection_checks_float64(name):
    fb.seed(1)
    layer = randomize(LAYERS[name]())
    z = torch.randn(16, 3)
    report = fb.check_bijection(layer, z, atol=1e-9)
    assert report.roundtrip_error < 1e-9 and report.logdet_error < 1e-9 and report.logdet_sum_error < 1e-9


def test_inverse_of_inverse_is_same_object():
    b = fb.Affine(2)
    assert b.inv.inv is b
    x, ladj = b.inv(torch.randn(4, 2))
    assert ladj.shape == (4,)


def test_compose_runs_layers_in_order_and_sums_logdets():
    fb.seed(2)
    f1, f2 = randomize(fb.Affine(2)), randomize(fb.LULinear(2))
    z = torch.randn(5, 2)
    x, ladj = fb.Compose(f1, f2)(z)
    y1, l1 = f1(z)
    y2, l2 = f2(y1)
    assert torch.allclose(x, y2) and torch.allclose(ladj, l1 + l2)
    zb, lb = fb.Compose(f1, f2).inverse(x)
    assert torch.allclose(zb, z) and torch.allclose(lb, -ladj)


def test_lulinear_from_matrix_and_singular_matrix():
    W = torch.tensor([[2.0, -1.0], [2.0, 1.0]])
    b = fb.LULinear(2, matrix=W)
    assert torch.allclose(b.matrix(), W)
    assert math.isclose(b.logabsdet().exp().item(), 4.0, rel_tol=1e-12)
    with pytest.raises(ValueError, match="singular"):
        fb.LULinear(2, matrix=torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match="shape"):
        fb.LULinear(2, matrix=torch.eye(3))


def make_flow(dim=2):
    fb.seed(3)
    return fb.Flow(fb.StandardNormal(dim), [randomize(fb.Affine(dim)), randomize(fb.LULinear(dim)),
                                            fb.ReversePermutation(dim)])


def test_density_integrates_to_one_on_grid():
    flow = make_flow()
    with torch.no_grad():
        pts, cell = grid_points((-12, 12), 400)
        mass = flow.log_prob(pts).exp().sum().item() * cell
    assert abs(mass - 1) < 1e-3, mass


def test_log_prob_matches_transformed_distribution():
    """The same affine map in torch.distributions gives the same density (lecture 002's code)."""
    flow = fb.Flow(fb.StandardNormal(2), [randomize(fb.Affine(2))])
    a = flow.transform[0]
    td = D.TransformedDistribution(
        D.Independent(D.Normal(torch.zeros(2), torch.ones(2)), 1),
        [D.AffineTransform(a.shift.detach(), a.log_scale.detach().exp(), event_dim=1)])
    x = td.sample((100,))
    assert torch.allclose(flow.log_prob(x), td.log_prob(x), atol=1e-12)


def test_sample_shapes_and_sample_and_log_prob_consistent():
    flow = make_flow(3)
    assert flow.sample(7).shape == (7, 3)
    assert flow.sample((2, 4)).shape == (2, 4, 3)
    x, lp = flow.sample_and_log_prob((6,))
    assert x.shape == (6, 3) and lp.shape == (6,)
    assert torch.allclose(lp, flow.log_prob(x.detach()), atol=1e-10)
    assert flow.rsample(5).requires_grad


# ------------------------------------------------------------------ sampling at a temperature
TEMPERED = {
    "RealNVP": lambda: fb.RealNVP(3, n_layers=2, hidden=8),
    "MAF": lambda: fb.MAF(3, n_layers=2, hidden=8),
    "NSF": lambda: fb.NSF(3, n_layers=2, hidden=8, bins=4),
    "Glow": lambda: fb.Glow(1, 4, 4, n_layers=1, hidden=4),
}


@pytest.mark.parametrize("name", TEMPERED)
def test_every_flow_samples_at_a_temperature(name):
    flow = randomize(TEMPERED[name](), 0.2).eval()
    shape = flow.event_shape
    assert flow.sample(5, temperature=0.7).shape == (5, *shape)
    assert flow.sample((2, 3), temperature=1.5).shape == (2, 3, *shape)
    assert flow.rsample(4, temperature=0.5).requires_grad
    # T = 0: every sample is f(0), the image of the base's mode
    f0 = flow.transform(torch.zeros(1, *shape))[0]
    cold = flow.sample(4, temperature=0.0)
    assert torch.allclose(cold, f0.expand_as(cold), atol=1e-12) and f0.abs().max() > 1e-3
    # x = f(T z) with the same base draw
    torch.manual_seed(1)
    z = flow.base.sample(6)
    torch.manual_seed(1)
    assert torch.allclose(flow.sample(6, temperature=0.7), flow.transform(0.7 * z)[0], atol=1e-12)
    # sample_and_log_prob returns the flow's own density at the returned x, at every temperature
    for temperature in (0.5, 1.0, 2.0):
        x, log_p = flow.sample_and_log_prob(6, temperature=temperature)
        assert torch.allclose(log_p, flow.log_prob(x.detach()), atol=1e-8)


@pytest.mark.parametrize("bad,error", [(-0.5, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                       ("hot", TypeError), (True, TypeError)])
def test_temperature_must_be_a_finite_number_at_least_zero(bad, error):
    flow = fb.RealNVP(2, n_layers=2, hidden=4)
    for draw in (flow.sample, flow.rsample, flow.sample_and_log_prob):
        with pytest.raises(error, match="temperature"):
            draw(3, temperature=bad)


def test_sample_and_log_prob_at_a_temperature_is_not_the_tempered_density():
    """For T != 1 the returned log-density is the model's, log p(x), not that of N(0, T^2 I) pushed forward."""
    flow = fb.Flow(fb.StandardNormal(2), [fb.Affine(2)])             # the identity: p_X = N(0, I)
    x, log_p = flow.sample_and_log_prob(5, temperature=0.5)
    assert torch.allclose(log_p, fb.StandardNormal(2).log_prob(x))
    tempered = torch.distributions.Normal(0.0, 0.5).log_prob(x).sum(1)
    assert (log_p - tempered).abs().min() > 1e-3


def test_save_load_round_trip(tmp_path):
    flow = make_flow()
    torch.save(flow.state_dict(), tmp_path / "flow.pt")
    other = fb.Flow(fb.StandardNormal(2), [fb.Affine(2), fb.LULinear(2), fb.ReversePermutation(2)])
    other.load_state_dict(torch.load(tmp_path / "flow.pt"))
    x = torch.randn(10, 2)
    assert torch.allclose(flow.log_prob(x), other.log_prob(x))


def test_flow_moves_with_dtype():
    flow = make_flow().float()
    assert flow.sample(3).dtype == torch.float32
    assert flow.log_prob(torch.randn(3, 2, dtype=torch.float32)).dtype == torch.float32


# ------------------------------------------------------------------ bad inputs
def test_wrong_feature_dimension_names_argument():
    flow = make_flow(2)
    with pytest.raises(ValueError, match=r"x has 3 features, expected 2"):
        flow.log_prob(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        flow.log_prob(torch.randn(2))
    with pytest.raises(ValueError, match="z has 3 features"):
        fb.Affine(2)(torch.randn(4, 3))


def test_nan_input_rejected():
    x = torch.randn(4, 2)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        make_flow().log_prob(x)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "2"])
def test_non_positive_dimension(bad):
    with pytest.raises(ValueError, match="features must be a positive integer"):
        fb.StandardNormal(bad)
    with pytest.raises(ValueError, match="features must be a positive integer"):
        fb.Affine(bad)


def test_base_transform_dimension_mismatch():
    with pytest.raises(ValueError, match="transform works on 3 features but base has 2"):
        fb.Flow(fb.StandardNormal(2), fb.Affine(3))
    with pytest.raises(ValueError, match="share one number of features"):
        fb.Compose(fb.Affine(2), fb.Affine(3))


def test_not_a_permutation():
    with pytest.raises(ValueError, match="perm must be a permutation"):
        fb.Permutation([0, 0, 1])


def test_missing_inverse_names_layer():
    class Squash(fb.Bijection):
        def forward(self, z, context=None):
            return z + torch.tanh(z), torch.log1p(1 - torch.tanh(z) ** 2).sum(1)

    with pytest.raises(NotImplementedError, match="Squash has no tractable inverse"):
        Squash().inverse(torch.zeros(1, 2))


def test_context_rows_checked():
    flow = fb.MAF(2, n_layers=1, hidden=8, context_features=1)  # a context to an unconditional flow is refused
    with pytest.raises(ValueError, match="context has 3 rows, expected 1"):
        flow.sample(5, context=torch.zeros(3, 1))


def test_device_and_seed():
    assert fb.device().type in ("cpu", "cuda")
    fb.seed(7)
    a = torch.randn(3)
    fb.seed(7)
    assert torch.equal(a, torch.randn(3))


def test_ready_made_flows_check_their_conditioner_arguments():
    """Issue 24: context_features=2.5 was truncated to 2, -1 named in_features, MAF(hidden=2.5) failed in nn.py."""
    for cls in (fb.NICE, fb.RealNVP, fb.NSFCoupling, fb.MAF, fb.IAF, fb.NSF):
        with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got 2.5"):
            cls(2, context_features=2.5)
        with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got -1"):
            cls(2, context_features=-1)
        with pytest.raises(ValueError, match="hidden must be a positive integer, got 2.5"):
            cls(2, hidden=2.5)
    with pytest.raises(TypeError, match="activation must be a module class such as torch.nn.ReLU, got str"):
        fb.MAF(2, activation="relu")
    with pytest.raises(TypeError, match="scaling must be True or False, got str 'no'"):
        fb.NICE(2, scaling="no")
    with pytest.raises(TypeError, match="degrees must be 2 integers .* got dtype torch.float"):
        fb.MAF(2, degrees=[1.5, 2])                                      # was silently [1, 2]
    with pytest.raises(TypeError, match="degrees must be 2 integers .a list or tensor., got str"):
        fb.flows.alternating_orders(2, 2, degrees="ab")
    assert fb.MAF(2, hidden=[8, 8]).eval().log_prob(torch.zeros(1, 2)).shape == (1,)


def test_mixture_densities_check_their_shapes():
    """Issue 24: a (D,) means or a (1,) logits broadcast silently to a wrong density; others failed inside torch."""
    from flowbook.distributions import mixture_log_prob, mixture_rsample
    z, means, log_std = torch.zeros(4, 2), torch.zeros(3, 2), torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"means must have shape \(k, features\) with k >= 1 components, got \(2,\)"):
        mixture_log_prob(z, torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"means must have shape .* got \(0, 2\)"):
        mixture_log_prob(z, torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match=r"logits must have shape \(3,\), one per component of means, got \(1,\)"):
        mixture_log_prob(z, means, log_std, torch.zeros(1))
    with pytest.raises(ValueError, match=r"logits must have shape \(3,\), .* got \(2,\)"):
        mixture_rsample(5, means, log_std, torch.zeros(2))              # drew from 2 of the 3 components
    with pytest.raises(ValueError, match=r"log_std must have shape \(3, 2\) like means .* got \(2, 2\)"):
        mixture_log_prob(z, means, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\) like the rows of means, got \(4, 3\)"):
        mixture_log_prob(torch.zeros(4, 3), means, log_std)
    with pytest.raises(TypeError, match="means must be a floating-point torch.Tensor, got ndarray"):
        mixture_rsample(2, np.zeros((3, 2)), log_std)
    with pytest.raises(TypeError, match="means must be a floating-point torch.Tensor, got dtype torch.int64"):
        mixture_rsample(2, torch.zeros(3, 2, dtype=torch.long), log_std)
    with pytest.raises(ValueError, match="logits must be finite with at least one > -inf"):
        mixture_rsample(2, means, log_std, torch.full((3,), math.nan))
    assert mixture_rsample(5, means, torch.zeros(2)).shape == (5, 2)    # a shared (D,) log_std, as in log_prob
    torch.testing.assert_close(mixture_log_prob(z, means, torch.zeros(2)), fb.StandardNormal(2).log_prob(z))
    with pytest.raises(ValueError, match=r"must broadcast against each other, got shapes \(4, 2\), \(3,\) and \(2,\)"):
        fb.gaussian_log_prob(z, torch.zeros(3), torch.zeros(2))
    with pytest.raises(TypeError, match="mean must be a torch.Tensor, got float"):
        fb.gaussian_log_prob(z, 0.0, torch.zeros(2))
    with pytest.raises(TypeError, match="low and high must be sequences of numbers .* got NoneType and NoneType"):
        fb.BoxUniform(None, None)


def test_compose_names_a_non_tensor_input():
    with pytest.raises(TypeError, match=r"z must be a \(batch, ...\) torch.Tensor, got ndarray"):
        fb.Compose(fb.Affine(2))(np.zeros((2, 2)))
    with pytest.raises(TypeError, match=r"x must be a \(batch, ...\) torch.Tensor, got list"):
        fb.Compose(fb.Affine(2)).inverse([[0.0, 0.0]])
