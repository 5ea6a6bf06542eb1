"""Planar and radial flows, the reverse-KL targets, and reverse-KL training."""
import math

import pytest
import torch

import flowbook as fb
import flowbook.plot  # noqa: F401  (grid_points)
from flowbook.targets import ENERGIES, U1, U2, U3, U4, Bimodal, Wave


def _planar(dim, seed, context_features=0, constrain=True):
    g = torch.Generator().manual_seed(seed)
    layer = fb.Planar(dim, u=2 * torch.randn(dim, generator=g), w=torch.randn(dim, generator=g),
                      b=torch.randn((), generator=g).item(), context_features=context_features, constrain=constrain)
    if context_features:  # non-trivial amortization network (the last layer starts at zero)
        with torch.no_grad():
            for p in layer.net.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    return layer.double()


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_planar_logdet_matches_autograd(dim):
    for seed in range(3):
        layer = _planar(dim, seed)
        z = 2 * torch.randn(64, dim, dtype=torch.float64)
        rep = fb.check_bijection(layer, z, atol=1e-9)
        assert rep.logdet_error < 1e-9
        assert math.isnan(rep.roundtrip_error)  # no inverse: reported, not failed
        _, logabsdet = layer(z)
        assert torch.allclose(logabsdet, fb.logabsdet(layer, z), atol=1e-10)


def test_amortized_planar_logdet_and_context_dependence():
    layer = _planar(3, 0, context_features=2)
    z = torch.randn(16, 3, dtype=torch.float64)
    ctx = torch.randn(16, 2, dtype=torch.float64)
    rep = fb.check_bijection(layer, z, context=ctx, atol=1e-9)
    assert rep.logdet_error < 1e-9
    x1, _ = layer(z, ctx)
    x2, _ = layer(z, ctx + 1)
    assert (x1 - x2).abs().max() > 1e-3  # the parameters really depend on the context
    u, w, b = layer.parameters_for(ctx, 16)
    assert u.shape == (16, 3) and w.shape == (16, 3) and b.shape == (16, 1)
    assert ((u * w).sum(-1) > -1).all()


def test_fresh_amortized_layer_equals_direct_layer():
    fb.seed(0)
    direct = fb.Planar(2)
    amort = fb.Planar(2, u=direct.u.detach(), w=direct.w.detach(), b=direct.b.item(), context_features=4)
    z, ctx = torch.randn(10, 2), torch.randn(10, 4)
    assert torch.allclose(direct(z)[0], amort(z, ctx)[0], atol=1e-6)
    assert torch.allclose(direct(z)[1], amort(z, ctx)[1], atol=1e-6)


def test_constraint_makes_w_u_hat_above_minus_one_and_map_monotone():
    U, W = 3 * torch.randn(2, 5000, 3, dtype=torch.float64)
    U[:100] = -4 * W[:100]  # u opposite to w: raw w^T u far below -1
    W[100:200] *= 0.05      # short w: the ||w||^2 (not ||w||) matters here
    wu_hat = (W * fb.Planar.constrain_u(U, W)).sum(-1)
    wu = (W * U).sum(-1)
    assert torch.allclose(wu_hat, -1 + torch.nn.functional.softplus(wu), atol=1e-9)
    assert (wu_hat[wu > -30] > -1).all()
    # the map along w is increasing, so no two inputs collide
    layer = fb.Planar(2, u=[-3.0, 1.0], w=[1.0, 0.5], b=0.3).double()
    s = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    line = s[:, None] * layer.w.detach() / layer.w.detach().pow(2).sum()
    proj = layer(line)[0] @ layer.w.detach()
    assert (proj.diff() > 0).all()


def test_unconstrained_layer_folds():
    layer = fb.Planar(2, u=[-3.0, 1.0], w=[1.0, 0.5], b=0.3, constrain=False).double()
    s = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    line = s[:, None] * layer.w.detach() / layer.w.detach().pow(2).sum()
    proj = layer(line)[0] @ layer.w.detach()
    assert (proj.diff() < 0).any()  # not monotone: the raw map is not injective


def test_planar_inverse_raises_helpfully():
    with pytest.raises(NotImplementedError, match="Planar.*sample_and_log_prob"):
        fb.Planar(2).inverse(torch.randn(3, 2))
    flow = fb.Flow(fb.StandardNormal(2), [fb.Planar(2) for _ in range(3)])
    x, log_q = flow.sample_and_log_prob(7)
    assert x.shape == (7, 2) and log_q.shape == (7,) and torch.isfinite(log_q).all()


def test_planar_bad_inputs():
    with pytest.raises(ValueError, match="features"):
        fb.Planar(0)
    with pytest.raises(ValueError, match="u must have shape"):
        fb.Planar(2, u=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="features"):
        fb.Planar(2)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="amortized"):
        fb.Planar(2, context_features=1)(torch.randn(4, 2))
    with pytest.raises(ValueError, match="rows"):
        fb.Planar(2, context_features=1)(torch.randn(4, 2), torch.randn(3, 1))


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_radial_is_a_checked_bijection(dim):
    g = torch.Generator().manual_seed(dim)
    for alpha, beta in [(0.5, 2.0), (0.5, -0.45), (1.3, -1.29), (0.2, 5.0)]:
        layer = fb.Radial(dim, z0=torch.randn(dim, generator=g), alpha=alpha, beta=beta).double()
        z = layer.z0.detach() + 2 * torch.randn(50, dim, dtype=torch.float64, generator=g)
        rep = fb.check_bijection(layer, z, atol=1e-8)
        assert rep.roundtrip_error < 1e-8 and rep.logdet_error < 1e-8


def test_radial_parametrization_and_errors():
    layer = fb.Radial(2)
    with torch.no_grad():
        layer.alpha_raw.fill_(-20.0)
        layer.beta_raw.fill_(-20.0)
    assert layer.alpha.item() > 0 and layer.beta.item() > -layer.alpha.item()
    layer = fb.Radial(2, alpha=0.7, beta=-0.3)
    assert abs(layer.alpha.item() - 0.7) < 1e-6 and abs(layer.beta.item() + 0.3) < 1e-6
    with pytest.raises(ValueError, match="beta > -alpha"):
        fb.Radial(2, alpha=0.5, beta=-0.6)
    with pytest.raises(ValueError, match="features"):
        layer(torch.randn(3, 5))


def test_radial_flow_density_integrates_to_one():
    fb.seed(0)
    flow = fb.Flow(fb.StandardNormal(2), [fb.Radial(2, z0=[0.5, -0.5], alpha=0.4, beta=1.5),
                                          fb.Radial(2, z0=[-1.0, 0.0], alpha=0.8, beta=-0.5)]).double()
    pts, cell = fb.plot.grid_points((-9, 9), 500)
    mass = flow.log_prob(pts.double()).exp().sum().item() * cell
    assert abs(mass - 1) < 5e-3


def test_energies_known_values_and_normalizers():
    zero = torch.zeros(1, 2, dtype=torch.float64)
    on_wave = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    assert U2().energy(on_wave).abs().item() < 1e-12
    assert abs(U2().energy(zero).item()) < 1e-12
    # U1 at (2, 0): on the ring and at one lobe's centre
    assert abs(U1().energy(torch.tensor([[2.0, 0.0]])).item() + math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2))) < 1e-6
    # U3 = U2-like single branch far from the bump; U4's step shifts the second branch down by ~3
    assert U3().energy(torch.tensor([[-3.0, 1.0]])).item() < 0.01
    assert U4().energy(torch.tensor([[3.0, -4.0]])).item() < 0.01  # lower branch: z2 = sin(3pi/2) - 3 = -4
    assert U4().energy(torch.tensor([[3.0, -2.5]])).item() > 5      # between the branches
    # log Z by quadrature: stable under refinement, and U1's exact scale is plausible
    for T in ENERGIES.values():
        a, b = T().log_normalizer(n=401), T().log_normalizer(n=801)
        assert math.isfinite(a) and abs(a - b) < 1e-3
    assert abs(Bimodal().log_normalizer()) == 0.0
    with pytest.raises(ValueError, match="features"):
        U1().log_unnormalized(torch.zeros(3, 3))


def test_wave_normalizer_is_exact():
    wave = Wave()
    pts, cell = fb.plot.grid_points((-12, 12), 1200)
    pts = pts.double()
    for c in (-1.5, 0.0, 0.7):
        lz = torch.logsumexp(wave.log_unnormalized(pts, torch.full((len(pts), 1), c, dtype=torch.float64)), 0) + math.log(cell)
        assert abs(lz.item() - wave.log_normalizer()) < 1e-3


def test_fit_reverse_kl_reaches_log_z_of_a_gaussian():
    # target: N((1, -2), diag(0.5, 2)^2) unnormalized; log Z = log(2 pi * 0.5 * 2)
    mu, sd = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    log_p = lambda x: -0.5 * ((x - mu) / sd).pow(2).sum(-1)
    log_z = math.log(2 * math.pi * 0.5 * 2)
    fb.seed(0)
    flow = fb.Flow(fb.StandardNormal(2), [fb.Affine(2)])
    hist = fb.fit_reverse_kl(flow, log_p, steps=400, batch_size=256, lr=0.05, progress=False)
    assert len(hist.elbo) == 400 and hist.elbo[-1] > hist.elbo[0] + 0.5
    est = fb.evaluate_elbo(flow, log_p, n=20000)
    assert est.elbo <= log_z + 3 * est.stderr + 1e-6
    assert abs(est.elbo - log_z) < 0.02
    assert torch.allclose(flow.transform[0].shift.detach(), mu, atol=0.1)


def test_fit_reverse_kl_never_calls_inverse_and_checks_args():
    flow = fb.Flow(fb.StandardNormal(2), [fb.Planar(2) for _ in range(4)])  # inverse would raise
    hist = fb.fit_reverse_kl(flow, U2(), steps=30, batch_size=64, lr=0.01, anneal_steps=10, progress=False)
    assert len(hist.train_loss) == 30 and math.isfinite(hist.final_elbo)
    with pytest.raises(ValueError, match="steps"):
        fb.fit_reverse_kl(flow, U2(), steps=0, progress=False)
    with pytest.raises(TypeError, match="log_unnormalized"):
        fb.fit_reverse_kl(flow, 3.0, steps=5, progress=False)


def test_amortized_fit_uses_context():
    fb.seed(0)
    flow = fb.Flow(fb.StandardNormal(2), [fb.Planar(2, context_features=1, hidden=8) for _ in range(3)])
    hist = fb.fit_reverse_kl(flow, Wave(), context=lambda n: 3 * torch.rand(n, 1) - 1.5, steps=150,
                             batch_size=128, lr=0.01, progress=False)
    lo = fb.evaluate_elbo(flow, Wave(), n=4000, context=torch.tensor([-1.5]))
    hi = fb.evaluate_elbo(flow, Wave(), n=4000, context=torch.tensor([1.5]))
    assert hist.final_elbo > hist.elbo[0]
    x_lo = flow.sample(2000, context=torch.tensor([-1.5]))
    x_hi = flow.sample(2000, context=torch.tensor([1.5]))
    # samples follow the sign of the amplitude: z2 correlates with c * sin(pi z1 / 2)
    s_lo = (x_lo[:, 1] * torch.sin(math.pi * x_lo[:, 0] / 2)).mean()
    s_hi = (x_hi[:, 1] * torch.sin(math.pi * x_hi[:, 0] / 2)).mean()
    assert s_hi > 0.1 and s_lo < -0.1
    assert max(lo.elbo, hi.elbo) <= Wave().log_normalizer() + 0.05


def test_a_zeroed_planar_started_as_identity_is_the_identity():
    """w = 0 made start_as_identity divide 0 by 0 (NaN); now the layer is exactly the identity."""
    layer = fb.Planar(2)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    layer.start_as_identity()
    z = torch.randn(6, 2, dtype=torch.float64)
    x, logabsdet = layer(z)
    assert torch.equal(x, z) and torch.equal(logabsdet, torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize("dtype, a", [(torch.float64, -40.0), (torch.float32, -20.0)])
def test_planar_log_det_is_exact_where_the_constraint_rounds_to_minus_one(dtype, a):
    """m(a) = -1 + softplus(a) rounds to -1 for a below about -33.5 (float64) / -14.5 (float32);
    the log-det is log(h^2 + h' softplus(a)), finite, not -inf."""
    layer = fb.Planar(2, u=[a, 0.0], w=[1.0, 0.0]).to(dtype)
    z = torch.tensor([[0.3, 0.1], [0.0, 2.0]], dtype=dtype)
    _, logabsdet = layer(z)
    ref = []
    for s in (0.3, 0.0):
        h = math.tanh(s)
        ref.append(math.log(h * h + (1 - h * h) * math.log1p(math.exp(a))))
    assert torch.allclose(logabsdet.double(), torch.tensor(ref, dtype=torch.float64),
                          rtol=1e-12 if dtype == torch.float64 else 1e-5)
    assert logabsdet[1].item() == pytest.approx(a, rel=1e-5)  # at z = 0, h = 0: log softplus(a) ~ a


def test_planar_checks_context_dtype_and_flags():
    with pytest.raises(ValueError, match="takes no context"):
        fb.Planar(2)(torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="constrain must be True or False"):
        fb.Planar(2, constrain="no")
    with pytest.raises(TypeError, match="context has dtype torch.float32"):
        fb.Planar(2, context_features=1)(torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float32))
    with pytest.raises(ValueError, match="context_features must be a whole number"):
        fb.AffineCoupling(fb.half_mask(2), context_features=-1)
