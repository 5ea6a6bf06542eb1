"""QRLinear, SinhArcsinh and the timing helpers (chapters 2 and 3), in float64."""
import math

import pytest
import torch

import flowbook as fb
from flowbook.transforms.elementwise import SinhArcsinh
from flowbook.transforms.linear import QRLinear
from flowbook.plot import grid_points
from flowbook.teaching.timing import loglog_slope, time_call


from _helpers import randomize


@pytest.mark.parametrize("make", [lambda: QRLinear(4), lambda: QRLinear(4, reflections=2),
                                  lambda: QRLinear(4, bias=False), lambda: SinhArcsinh(4),
                                  lambda: fb.Compose(SinhArcsinh(4), QRLinear(4), SinhArcsinh(4), fb.LULinear(4))])
def test_check_bijection_randomized(make):
    fb.seed(3)
    layer = randomize(make())
    z = 1.5 * torch.randn(32, 4)
    r = fb.check_bijection(layer, z, atol=1e-9)
    assert r.roundtrip_error < 1e-9 and r.logdet_error < 1e-9 and r.logdet_sum_error < 1e-9


def test_qr_matrix_is_q_times_r_and_q_orthogonal():
    fb.seed(0)
    b = randomize(QRLinear(5, reflections=3))
    q = b.orthogonal()
    assert torch.allclose(q.T @ q, torch.eye(5), atol=1e-12)
    # K reflections: det Q = (-1)^K; R's sign buffer is all +1 here
    assert math.isclose(torch.linalg.det(q).item(), (-1) ** 3, abs_tol=1e-10)
    W = b.matrix()
    z = torch.randn(7, 5)
    x, logabsdet = b(z)
    assert torch.allclose(x, z @ W.T + b.bias, atol=1e-12)
    assert torch.allclose(logabsdet, torch.linalg.slogdet(W).logabsdet.expand(7), atol=1e-12)


def test_sinh_arcsinh_identity_at_init_and_exact_formula():
    b = SinhArcsinh(2)
    z = torch.randn(10, 2)
    x, logabsdet = b(z)
    assert torch.allclose(x, z, atol=1e-12) and logabsdet.abs().max() < 1e-12
    with torch.no_grad():
        b.skew.copy_(torch.tensor([0.3, -0.2]))
        b.log_tail.copy_(torch.tensor([0.4, -0.5]))
    x, _ = b(z)
    tau = torch.tensor([0.4, -0.5]).exp()
    assert torch.allclose(x, torch.sinh(tau * torch.asinh(z) - torch.tensor([0.3, -0.2])), atol=1e-12)


def test_sinh_arcsinh_far_tails_stay_finite():
    b = SinhArcsinh(1)
    with torch.no_grad():
        b.log_tail.fill_(1.0)
    x, logabsdet = b(torch.tensor([[1e6], [-1e6]]))
    assert torch.isfinite(x).all() and torch.isfinite(logabsdet).all()


def test_flow_with_new_layers_integrates_to_one():
    fb.seed(2)
    flow = fb.Flow(fb.StandardNormal(2), [randomize(SinhArcsinh(2), 0.3), randomize(QRLinear(2), 0.3)])
    pts, cell = grid_points((-12, 12), 500)
    with torch.no_grad():
        mass = flow.log_prob(pts).exp().sum().item() * cell
    assert abs(mass - 1) < 5e-3


@pytest.mark.parametrize("make", [lambda: QRLinear(3), lambda: SinhArcsinh(3)])
def test_bad_shapes_raise(make):
    layer = make()
    with pytest.raises(ValueError, match="features"):
        layer(torch.randn(4, 2))
    with pytest.raises(ValueError, match="shape"):
        layer.inverse(torch.randn(3))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="reflections"):
        QRLinear(3, reflections=0)
    with pytest.raises(ValueError, match="features"):
        SinhArcsinh(0)


def test_loglog_slope_recovers_exponents():
    n = [8, 16, 32, 64]
    assert math.isclose(loglog_slope(n, [3e-6 * k**3 for k in n]), 3.0, abs_tol=1e-9)
    assert math.isclose(loglog_slope(n, [5.0 / k for k in n]), -1.0, abs_tol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [0.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        loglog_slope([1, 2, 3], [1.0, 2.0])


def test_time_call_measures_and_restores_threads():
    threads = torch.get_num_threads()
    calls = []
    t = time_call(lambda: calls.append(1) or sum(range(2000)), repeat=3, min_time=1e-3)
    assert 0 < t < 0.01 and len(calls) > 3
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="repeat"):
        time_call(lambda: None, repeat=0)


def test_actnorm_trained_by_reverse_kl_is_initialized_and_reloads_exactly():
    from flowbook.targets import Bimodal
    fb.seed(0)
    make = lambda: fb.Flow(fb.StandardNormal(2), [fb.ActNorm(2), fb.Affine(2), fb.ActNorm(2)])
    flow = make()
    fb.fit_reverse_kl(flow, Bimodal(), steps=20, batch_size=64, lr=1e-2, progress=False)
    assert all(bool(m.initialized) for m in flow.modules() if isinstance(m, fb.ActNorm))
    fresh = make()
    fresh.load_state_dict(flow.state_dict())
    x = torch.randn(7, 2) * 5 + 3                                   # far from anything seen: would move a re-init
    assert torch.equal(fresh.log_prob(x), flow.log_prob(x))         # training mode: no re-initialization
    # the forward direction standardizes its output on the first training call
    layer = fb.ActNorm(2)
    out, _ = layer(torch.randn(500, 2) * 3 + 1)
    assert bool(layer.initialized) and out.mean(0).abs().max() < 1e-8 and (out.std(0) - 1).abs().max() < 1e-5
    look = fb.Flow(fb.StandardNormal(2), [fb.ActNorm(2)])
    look.sample(10)                                                 # a look (no gradients) does not initialize
    assert not bool(look.transform.layers[0].initialized)


def test_actnorm_state_dicts_without_the_flag_or_of_an_old_reverse_kl_flow_load_as_initialized():
    trained = {"log_scale": torch.tensor([0.3, -0.2]), "shift": torch.tensor([1.0, 0.0])}
    for state in (trained, {**trained, "initialized": torch.tensor(False)}):
        layer = fb.ActNorm(2)
        layer.load_state_dict(state)                                # strict loading works without the flag
        assert bool(layer.initialized)
        layer.inverse(torch.randn(50, 2))
        assert torch.equal(layer.shift.detach(), trained["shift"].double())
    fresh = fb.ActNorm(2)
    fresh.load_state_dict({"log_scale": torch.zeros(2), "shift": torch.zeros(2)})
    assert not bool(fresh.initialized)                              # a fresh layer's state loads as fresh
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        fb.ActNorm(2, eps=-1.0)
    with pytest.raises(ValueError, match="cannot initialize from a batch with NaN"):
        fb.ActNorm(2).inverse(torch.tensor([[1.0, math.nan], [0.0, 1.0]]))
    assert fb.ActNorm(2).inverse(torch.zeros(0, 2))[0].shape == (0, 2)   # an empty batch passes, no init
