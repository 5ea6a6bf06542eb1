"""Dequantization for K levels: uniform dequantization and bits/dim, the variational dequantizer's
density, the importance-weighted estimate against the exact cell mass, and the order
uniform bound <= variational bound <= IW estimate (in log-likelihood) on a tiny problem."""
import math

import pytest
import torch

import flowbook as fb
from _helpers import randomize


def cube_flow(features, hidden=16, n_layers=4):
    core = fb.RealNVP(features, n_layers=n_layers, hidden=hidden)
    return fb.Flow(core.base, [core.transform, fb.Logit(features, alpha=0.05)])


def test_uniform_dequantization_and_bits_per_dim_for_any_levels():
    digits = fb.data.load_digits()
    x = digits.x_test[:5]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(digits.dequantize(x, g1), fb.data.dequantize(x, 17, g2))   # the digits' K = 17
    lp = torch.randn(5)
    assert math.isclose(digits.bits_per_dim(lp), fb.data.bits_per_dim(lp, 64, 17))
    binary = fb.data.binarize(x)
    y = fb.data.dequantize(binary, 2)
    assert torch.equal(torch.floor(2 * y), binary)                     # each value stays in its cell
    # a model uniform on the cube spends exactly log2 K bits per dimension
    for levels in (2, 17, 256):
        assert math.isclose(fb.data.bits_per_dim(torch.zeros(3), 10, levels), math.log2(levels))


def test_a_fresh_variational_dequantizer_is_uniform():
    q = fb.VariationalDequantizer(3, levels=4, hidden=8)
    x = torch.randint(0, 4, (4000, 3)).double()
    u, log_q = q(x)
    assert log_q.abs().max() < 1e-9 and ((u > 0) & (u < 1)).all()
    assert (u.mean(0) - 0.5).abs().max() < 0.03 and (u.var(0) - 1 / 12).abs().max() < 0.01


def test_the_dequantizer_density_is_the_change_of_variables():
    """log q(u|x) = log p_logistic(eps) - log|det du/deps| with the Jacobian by autograd."""
    q = randomize(fb.VariationalDequantizer(3, levels=2, hidden=8), 0.4)
    x = torch.tensor([[0.0, 1.0, 1.0]]).expand(6, -1)
    torch.manual_seed(0)
    u, log_q = q(x)
    torch.manual_seed(0)                                                  # the same noise again
    s = torch.rand(6, 3).clamp(1e-6, 1 - 1e-6)
    eps = torch.log(s) - torch.log1p(-s)
    context = 2 * x - 1
    ladj = torch.stack([fb.logabsdet(lambda e, c=c: q.transform(e, c.unsqueeze(0).expand(len(e), -1)), row)
                        for row, c in zip(eps, context)])
    log_logistic = (torch.nn.functional.logsigmoid(eps) + torch.nn.functional.logsigmoid(-eps)).sum(1)
    assert torch.allclose(log_q, log_logistic - ladj, atol=1e-9)
    assert log_q.abs().max() > 1e-2                                       # not the uniform one
    assert torch.allclose(u, q.transform(eps, context)[0])


def exact_log_mass(model, x, grid=200):
    """log P(x) = log of the integral of p(x + u) over the unit cell, by the midpoint rule (D = 2)."""
    t = (torch.arange(grid) + 0.5) / grid
    u = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        return torch.stack([torch.logsumexp(model.log_density(row + u), 0) - math.log(len(u)) for row in x])


def test_importance_weighting_converges_to_the_exact_discrete_likelihood():
    torch.manual_seed(0)
    model = fb.DequantizedFlow(randomize(cube_flow(2, hidden=8, n_layers=2), 0.2), levels=3).eval()
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]])
    exact = exact_log_mass(model, x)
    torch.manual_seed(1)
    n = 2000
    with torch.no_grad():
        log_w = model.log_weights(x, n)                                   # (n, 3)
    iw = torch.logsumexp(log_w, 0) - math.log(n)
    w = (log_w - iw).exp()                                                # weights / their mean
    standard_error = w.std(0) / math.sqrt(n)                              # of log(mean w), to first order
    assert ((iw - exact).abs() < 4 * standard_error + 1e-3).all(), (iw, exact, standard_error)
    assert (log_w.mean(0) < exact - 0.01).all()                           # Jensen's gap of the uniform bound
    # the masses of all 9 cells add up to 1 (less the mass outside [0, 3)^2)
    cells = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0))
    assert 0.9 < exact_log_mass(model, cells).exp().sum() <= 1.0 + 1e-6


def test_uniform_bound_below_variational_bound_below_iw_on_a_tiny_problem():
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(0)
    # two correlated binary pixels: 00 and 11 are likely
    pairs = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    data = pairs[torch.multinomial(torch.tensor([0.45, 0.45, 0.05, 0.05]), 1000, True, generator=g)]
    models = {}
    for name, dequantizer in (("uniform", None), ("variational", fb.VariationalDequantizer(2, 2, hidden=16))):
        fb.seed(0)
        models[name] = fb.DequantizedFlow(cube_flow(2), 2, dequantizer)
        fb.fit(models[name], data, steps=150, batch_size=128, lr=1e-2, progress=False)
    fb.seed(1)
    uniform = models["uniform"].lower_bound(pairs[:2], n=200).mean()
    variational = models["variational"].lower_bound(pairs[:2], n=200).mean()
    iw = models["variational"].log_likelihood(pairs[:2], n=200).mean()
    assert uniform < variational - 0.02 and variational < iw - 0.01, (uniform, variational, iw)
    assert iw < math.log(0.45) + 0.1                                      # no better than the truth


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="levels must be a whole number >= 2, got 1"):
        fb.VariationalDequantizer(2, levels=1)
    with pytest.raises(ValueError, match="the dequantizer is for 3 features"):
        fb.DequantizedFlow(cube_flow(2), 2, fb.VariationalDequantizer(3, 2))
    with pytest.raises(ValueError, match="takes no context"):
        fb.DequantizedFlow(cube_flow(2), 2).log_prob(torch.zeros(1, 2), torch.zeros(1, 1))


def image_cube_flow(hidden=4):
    core = fb.Glow(1, 4, 4, n_layers=1, hidden=hidden)
    return fb.Flow(core.base, [core.transform, fb.Logit((1, 4, 4), alpha=0.05)])


@pytest.mark.parametrize("kind", ["vector", "image"])
def test_dequantized_flow_samples_integers_in_range(kind):
    flow = randomize(cube_flow(4) if kind == "vector" else image_cube_flow(), 0.5).eval()
    model = fb.DequantizedFlow(flow, levels=5)
    shape = (4,) if kind == "vector" else (1, 4, 4)
    torch.manual_seed(0)
    x = model.sample(400, temperature=0.7)
    assert x.shape == (400, *shape) and x.dtype == torch.long
    assert x.min() >= 0 and x.max() <= 4 and len(x.unique()) > 2
    # the integers are the cells of the flow's samples: floor(K y)
    torch.manual_seed(0)
    y = flow.sample(400, temperature=0.7)
    assert torch.equal(x, torch.floor(5 * y).long().clamp(0, 4))
    # T = 0: one cell, that of f(0)
    assert len(model.sample(50, temperature=0.0).unique(dim=0)) == 1
    with pytest.raises(ValueError, match="temperature"):
        model.sample(3, temperature=-1.0)
    with pytest.raises(NotImplementedError, match="log_likelihood"):
        model.sample_and_log_prob(3)


def test_a_sample_outside_the_unit_cube_is_clamped_to_the_levels():
    flow = fb.Flow(fb.StandardNormal(3), [fb.Affine(3)])             # not a cube flow: y anywhere
    x = fb.DequantizedFlow(flow, levels=3).sample(2000)
    assert x.min() == 0 and x.max() == 2


def test_dequantized_image_flow_scores_integer_images_with_either_dequantizer():
    flow = randomize(image_cube_flow(), 0.3).eval()
    x = torch.randint(0, 3, (6, 1, 4, 4))
    uniform = fb.DequantizedFlow(flow, levels=3)
    variational = fb.DequantizedFlow(flow, levels=3, dequantizer=fb.VariationalDequantizer(16, 3, hidden=8))
    for model in (uniform, variational):
        log_p = model.log_prob(x)
        assert log_p.shape == (6,) and torch.isfinite(log_p).all()
        assert model.log_likelihood(x.double(), n=4).shape == (6,)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 1, 4, 4\)"):
        uniform.log_prob(torch.zeros(6, 16))


def test_the_data_must_be_the_integers_0_to_levels_minus_1():
    digits = fb.data.load_digits()
    x = digits.x_train[:64]
    flat = lambda levels: fb.DequantizedFlow(cube_flow(64, hidden=4, n_layers=1), levels=levels)
    with pytest.raises(ValueError, match=r"x must hold the integers 0..16 \(levels=17\), got non-integer values .*"
                                         r"looks already scaled to \[0, 1\]"):
        flat(17).log_prob(x / 16)
    with pytest.raises(ValueError, match=r"x holds the value 16 but levels=16 .* pass levels=17"):
        flat(16).log_prob(x)
    with pytest.raises(ValueError, match=r"x holds the value 16 but levels=16"):   # not "loss became inf"
        fb.fit(flat(16), x, steps=2, progress=False)
    with pytest.raises(ValueError, match=r"x holds the negative value -1"):
        flat(17).lower_bound(x - 1, n=2)
    with_nan = x.clone()
    with_nan[3, 5] = math.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value\(s\); expected the integers 0..16"):
        flat(17).log_likelihood(with_nan, n=2)
    with pytest.raises(ValueError, match="levels must be a whole number >= 2, got 2.5"):
        flat(2.5)
    with pytest.raises(TypeError, match="dequantizer must be None"):
        fb.DequantizedFlow(cube_flow(2), 2, dequantizer=fb.Affine(2))


def test_integer_pixels_of_any_dtype_are_scored_in_the_model_dtype():
    flow = randomize(cube_flow(3, hidden=4, n_layers=1), 0.3).float()
    q = fb.VariationalDequantizer(3, levels=4, hidden=4).float()
    x = torch.randint(0, 4, (6, 3))
    for model in (fb.DequantizedFlow(flow, 4), fb.DequantizedFlow(flow, 4, q)):
        for data in (x, x.to(torch.uint8), x.double(), x.float()):    # integers are exact in every dtype
            log_p = model.log_prob(data)
            assert log_p.dtype == torch.float32 and log_p.shape == (6,) and torch.isfinite(log_p).all()
        assert model.log_prob(x[:0]).shape == (0,)                      # zero rows: an empty tensor
    u, log_q = q(x)                                                     # it failed inside torch.rand for long
    assert u.dtype == torch.float32 and ((u >= 0) & (u <= 1)).all()
    with pytest.raises(ValueError, match="x holds the value 7 but levels=4"):
        q(torch.tensor([[0, 7, 1]]))
