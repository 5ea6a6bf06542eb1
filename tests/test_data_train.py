"""2-D densities, digits preprocessing and the training loop."""
import math

import pytest
import torch

import flowbook as fb
from flowbook.plot import grid_points

@pytest.mark.parametrize("name", sorted(fb.data.DENSITIES))
def test_densities_normalized_and_consistent_with_samples(name):
    d = fb.data.DENSITIES[name]()
    lo, hi = d.bounds
    pts, cell = grid_points((lo - 1, hi + 1), 200)
    mass = d.log_prob(pts).exp().sum().item() * cell
    assert abs(mass - 1) < 0.02, (name, mass)
    fb.seed(0)
    x = d.sample(4000)
    assert x.shape == (4000, 2) and torch.isfinite(d.log_prob(x)).all()
    # Samples sit where the density is high: their mean log-density beats a uniform box's.
    assert d.log_prob(x).mean() > -math.log((hi - lo) ** 2)


def test_kl_of_truth_to_itself_is_zero():
    ring = fb.data.Ring()
    assert abs(ring.kl_to(ring.log_prob, n=1000)) < 1e-12


def test_digits_split_and_logit_bookkeeping():
    dg = fb.data.load_digits()
    assert (len(dg.x_train), len(dg.x_val), len(dg.x_test)) == (1300, 200, 297)
    assert dg.x_train.min() >= 0 and dg.x_train.max() <= 16
    y = dg.dequantize(dg.x_test[:8])
    assert (y > 0).all() and (y < 1).all()
    fb.check_bijection(fb.Logit(4), torch.randn(6, 4), atol=1e-9)
    # A uniform density on the unit cube is 1, so bits/dim on the 17-level scale is log2(17).
    assert math.isclose(dg.bits_per_dim(torch.zeros(10)), math.log2(17))


def test_fit_reduces_loss_and_restores_best_validation_state():
    fb.seed(0)
    cov = torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    data = torch.randn(3000, 2) @ torch.linalg.cholesky(cov).T + torch.tensor([1.0, -2.0])
    flow = fb.Flow(fb.StandardNormal(2), [fb.LULinear(2), fb.Affine(2)])
    hist = fb.fit(flow, data[:2500], val_data=data[2500:], steps=600, lr=1e-2, progress=False)
    entropy = 0.5 * torch.logdet(2 * math.pi * math.e * cov).item()
    assert hist.best_step is not None
    assert abs(fb.evaluate_nll(flow, data[2500:]) - hist.best_val) < 1e-9
    assert abs(hist.best_val - entropy) < 0.1, (hist.best_val, entropy)


def test_fit_rejects_bad_data():
    flow = fb.Flow(fb.StandardNormal(2), fb.Affine(2))
    with pytest.raises(ValueError, match="data has 3 features, expected 2"):
        fb.fit(flow, torch.randn(10, 3), steps=1, progress=False)
    bad = torch.randn(10, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="data contains 1 NaN"):
        fb.fit(flow, bad, steps=1, progress=False)
    with pytest.raises(ValueError, match="val_data has 1 features"):
        fb.fit(flow, torch.randn(10, 2), val_data=torch.randn(5, 1), steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        fb.fit(flow, torch.randn(10, 2), steps=0, progress=False)


def test_fork_conditional_is_the_two_mode_mixture_the_samples_show():
    fork = fb.data.Fork()
    x = fork.sample(200_000, torch.Generator().manual_seed(0))
    near = x[(x[:, 0] - 1).abs() < 0.05, 1]  # the slice x1 = 1: modes at +-0.7 * 3 = +-2.1
    assert abs((near > 0).double().mean().item() - 0.5) < 0.05
    assert abs(near.abs().mean().item() - 2.1) < 0.05 and abs(near.abs().std().item() - 0.3) < 0.03
    x2 = torch.linspace(-6, 6, 4001, dtype=torch.float64)
    p = fork.log_conditional(torch.full_like(x2, 1.0), x2).exp()
    assert abs(p.sum().item() * 12 / 4000 - 1) < 1e-6  # a density in x2 for each x1
    with pytest.raises(ValueError, match="noise"):
        fb.data.Fork(noise=0.0)
