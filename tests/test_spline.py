"""Rational-quadratic splines (the function and its layers), the NSF flows and the mixture base.

Edge cases each have their own test, because that is where spline implementations break: batches
entirely in the tails, inputs exactly on the knots or on +-B, the inverse's quadratic at the edges.
"""
import math

import pytest
import torch

import flowbook as fb
from flowbook.plot import grid_points
from _helpers import randomize

B, K = 3.0, 5


def raw_parameters(shape, seed=0, scale=1.5):
    """Unconstrained widths, heights, derivatives of shape (*shape, K / K / K-1): uneven bins."""
    g = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(*shape, n, generator=g) for n in (K, K, K - 1))


def spline(x, params, inverse=False):
    return fb.rational_quadratic_spline(x, *params, bound=B, inverse=inverse)


def autograd_log_slope(x, params, inverse=False):
    """log dy/dx by autograd (the spline is elementwise, so the gradient of the sum is the slope)."""
    x = x.clone().requires_grad_(True)
    y, _ = spline(x, params, inverse)
    (slope,) = torch.autograd.grad(y.sum(), x)
    return slope.log()


def knots(params):
    return fb.spline_knots(*params, bound=B)


def batches():
    """name -> (x, params): entirely inside, entirely in the tails, straddling, exactly on the knots."""
    params = raw_parameters((40,))
    g = torch.Generator().manual_seed(1)
    x_knots = knots(raw_parameters((8,), seed=2))[0]              # (8, K+1) knots, +-B included
    return {
        "inside": ((2 * torch.rand(40, generator=g) - 1) * B * 0.999, params),
        "tails": (torch.cat([-B - 5 * torch.rand(20, generator=g), B + 5 * torch.rand(20, generator=g)]), params),
        "straddling": (torch.linspace(-2 * B, 2 * B, 40), params),
        "on_knots": (x_knots.reshape(-1), tuple(p.repeat_interleave(K + 1, 0) for p in raw_parameters((8,), seed=2))),
    }


@pytest.mark.parametrize("name", ["inside", "tails", "straddling", "on_knots"])
@pytest.mark.parametrize("inverse", [False, True])
def test_round_trip_and_log_det_against_autograd(name, inverse):
    x, params = batches()[name]
    y, logabsdet = spline(x, params, inverse)
    back, logabsdet_back = spline(y, params, not inverse)
    assert torch.isfinite(y).all() and torch.isfinite(logabsdet).all()
    assert torch.allclose(back, x, atol=1e-10), (back - x).abs().max()
    assert torch.allclose(logabsdet + logabsdet_back, torch.zeros_like(logabsdet), atol=1e-10)
    assert torch.allclose(logabsdet, autograd_log_slope(x, params, inverse), atol=1e-9)


def test_tails_are_the_identity_and_all_tail_batches_have_finite_zero_gradients():
    x, params = batches()["tails"]
    params = tuple(p.clone().requires_grad_(True) for p in params)
    y, logabsdet = spline(x, params)
    assert torch.equal(y, x) and torch.equal(logabsdet, torch.zeros_like(x))
    z, logabsdet_inv = spline(x, params, inverse=True)
    assert torch.equal(z, x) and torch.equal(logabsdet_inv, torch.zeros_like(x))
    grads = torch.autograd.grad((y + logabsdet + z + logabsdet_inv).sum(), params)
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)   # finite (no NaN), and exactly 0


def test_knots_map_to_knots_with_their_derivatives():
    params = raw_parameters((8,), seed=2)
    xk, yk, dk = knots(params)
    rep = tuple(p.unsqueeze(1).expand(-1, K + 1, -1) for p in params)  # one row of parameters per knot
    y, logabsdet = spline(xk, rep)
    assert torch.allclose(y, yk, atol=1e-12) and torch.allclose(logabsdet.exp(), dk, atol=1e-10)
    x, _ = spline(yk, rep, inverse=True)
    assert torch.allclose(x, xk, atol=1e-12)
    assert torch.equal(xk[:, [0, -1]], torch.tensor([[-B, B]]).expand(8, 2))   # exactly the ends
    assert torch.equal(dk[:, [0, -1]], torch.ones(8, 2))                         # linear tails: slope 1
    assert (xk.diff(dim=1) > 0).all() and (yk.diff(dim=1) > 0).all() and (dk > 0).all()


def test_value_and_derivative_are_continuous_at_knots_and_at_the_bound():
    params = raw_parameters((), seed=3)
    xk = knots(params)[0]
    eps = 1e-7
    for point in xk:  # every interior knot, and -B, +B where the spline meets the tails
        left, right = point - eps, point + eps
        y_l, l_l = spline(left, params)
        y_r, l_r = spline(right, params)
        assert (y_r - y_l).abs().max() < 100 * eps                 # value: no jump
        assert (l_r.exp() - l_l.exp()).abs().max() < 1e-4          # slope: no jump
    _, at_bound = spline(torch.tensor([-B - eps, -B + eps, B - eps, B + eps]), params)
    assert torch.allclose(at_bound.exp(), torch.ones(4), atol=1e-5)  # slope 1 on both sides of +-B


def test_monotone_everywhere():
    params = raw_parameters((), seed=4, scale=3.0)   # very uneven bins
    x = torch.linspace(-3 * B, 3 * B, 20001)
    y, logabsdet = spline(x, params)
    assert (y.diff() > 0).all() and torch.isfinite(logabsdet).all()
    z, _ = spline(x, params, inverse=True)
    assert (z.diff() > 0).all()


def test_float32_extreme_parameters_stay_finite():
    params = tuple(p.float() for p in raw_parameters((50,), seed=5, scale=8.0))
    x = torch.cat([knots(params)[0][:5].reshape(-1), torch.linspace(-2 * B, 2 * B, 20)])   # 30 knots + 20 others
    for inverse in (False, True):
        y, logabsdet = spline(x, params, inverse)
        back, _ = spline(y, params, not inverse)
        assert torch.isfinite(y).all() and torch.isfinite(logabsdet).all()
        assert (back - x).abs().max() < 1e-3


def test_zero_parameters_are_the_identity():
    xk, yk, dk = fb.spline_knots(torch.zeros(4), torch.zeros(4), torch.zeros(3), bound=2.0)
    assert xk.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0] and torch.equal(xk, yk) and dk.tolist() == [1.0] * 5
    z = 3 * torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    fresh = [fb.Spline(4, bins=6, bound=2.0), fb.SplineCoupling(fb.alternating_mask(4), bins=6, bound=2.0, hidden=8),
             fb.SplineAutoregressive(4, bins=6, bound=2.0, hidden=8),
             fb.SplineAutoregressive(4, bins=6, bound=2.0, hidden=8, mode="iaf")]
    for layer in fresh:
        for direction in (layer.forward, layer.inverse):
            out, logabsdet = direction(z)
            assert (out - z).abs().max() < 1e-14 and logabsdet.abs().max() < 1e-14, type(layer).__name__


def layers():
    mask = torch.tensor([True, False, False, True, False])
    return {
        "Spline": fb.Spline(5, bins=K, bound=B),
        "SplineCoupling": fb.SplineCoupling(mask, bins=K, bound=B, hidden=8),
        "SplineCoupling-half": fb.SplineCoupling(fb.half_mask(5), bins=K, bound=B, hidden=8, depth=1),
        "SplineAutoregressive-maf": fb.SplineAutoregressive(5, bins=K, bound=B, hidden=12),
        "SplineAutoregressive-iaf": fb.SplineAutoregressive(5, bins=K, bound=B, hidden=12, mode="iaf"),
        "SplineAutoregressive-degrees": fb.SplineAutoregressive(5, bins=K, bound=B, hidden=12, degrees=[2, 1, 1, 3, 2]),
        "NSF": fb.NSF(5, n_layers=3, hidden=12, bins=K, bound=B).transform,
        "NSFCoupling": fb.NSFCoupling(5, n_layers=3, hidden=12, bins=K, bound=B).transform,
    }


@pytest.mark.parametrize("name", list(layers()))
def test_layers_pass_check_bijection(name):
    layer = randomize(layers()[name], scale=0.5)
    z = 2.5 * torch.randn(24, 5, generator=torch.Generator().manual_seed(6))   # inside and in the tails
    assert ((z.abs() > B).any(1)).sum() > 3 and ((z.abs() < B).all(1)).sum() > 3
    fb.check_bijection(layer, z, atol=1e-9)
    x, _ = layer(z)
    assert (x - z).abs().max() > 0.1          # the randomized layer is far from the identity


@pytest.mark.parametrize("cls", [fb.SplineCoupling, fb.SplineAutoregressive])
def test_context_is_used(cls):
    layer = cls(fb.half_mask(4), bins=K, hidden=8, context_features=3) if cls is fb.SplineCoupling \
        else cls(4, bins=K, hidden=8, context_features=3)
    layer = randomize(layer, scale=0.5)
    g = torch.Generator().manual_seed(7)
    z, c = torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g)
    fb.check_bijection(layer, z, context=c, atol=1e-9)
    assert not torch.allclose(layer(z, c)[0], layer(z, -c)[0])


def test_autoregressive_structure():
    layer = randomize(fb.SplineAutoregressive(4, bins=K, hidden=12), scale=0.5)
    J = fb.jacobian(layer, torch.randn(3, 4, generator=torch.Generator().manual_seed(8)))
    assert torch.equal(J.triu(1), torch.zeros_like(J)) and (J.diagonal(dim1=1, dim2=2) > 0).all()


def test_one_dimensional_spline_density_integrates_to_one():
    flow = fb.Flow(fb.StandardNormal(1), [randomize(fb.Spline(1, bins=K, bound=1.5), scale=1.5)])
    x = torch.linspace(-12, 12, 48001).unsqueeze(1)
    with torch.no_grad():
        p = flow.log_prob(x).exp()
    assert abs(torch.trapezoid(p, x[:, 0]).item() - 1) < 1e-4
    assert (p - torch.distributions.Normal(0, 1).log_prob(x[:, 0]).exp()).abs().max() > 0.05   # not N(0, 1)


def test_mixture_base_integrates_to_one_and_flows_with_it():
    torch.manual_seed(0)
    base = fb.MixtureBase(2, k=4)
    with torch.no_grad():
        base.logits.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
        base.log_std.copy_(0.3 * torch.randn(4, 2))
    pts, cell = grid_points((-9, 9), 400)
    with torch.no_grad():
        assert abs(base.log_prob(pts).exp().sum().item() * cell - 1) < 1e-4
        flow = fb.Flow(base, [randomize(fb.SplineCoupling(fb.half_mask(2), bins=K, bound=B, hidden=8), scale=0.3)])
        assert abs(flow.log_prob(pts).exp().sum().item() * cell - 1) < 1e-3
        nsf = randomize(fb.NSF(2, n_layers=2, hidden=8, bins=K, bound=B, base=fb.MixtureBase(2, 3)), scale=0.3)
        assert abs(nsf.log_prob(pts).exp().sum().item() * cell - 1) < 1e-3


def test_mixture_base_matches_a_gaussian_mixture_and_samples_it():
    torch.manual_seed(1)
    base = fb.MixtureBase(2, k=3)
    z = torch.randn(5, 2)
    w = torch.softmax(base.logits, 0)
    comps = [torch.distributions.Normal(base.means[j], base.log_std[j].exp()).log_prob(z).sum(1) for j in range(3)]
    expected = torch.logsumexp(torch.stack(comps, 1) + w.log(), 1)
    assert torch.allclose(base.log_prob(z), expected, atol=1e-12)
    with torch.no_grad():
        base.means.copy_(torch.tensor([[-6.0, 0.0], [0.0, 0.0], [6.0, 0.0]]))
        base.logits.copy_(torch.tensor([0.0, math.log(2.0), math.log(3.0)]))
    s = base.sample(6000)
    assert not s.requires_grad
    share = torch.stack([(s[:, 0] < -3).double().mean(), (s[:, 0] > 3).double().mean()])
    assert torch.allclose(share, torch.tensor([1 / 6, 3 / 6]), atol=0.03)
    base.rsample(10).sum().backward()                                  # pathwise in the means and scales
    assert base.means.grad.abs().sum() > 0 and base.log_std.grad.abs().sum() > 0


def test_nsf_matches_the_peers_parameter_count_and_alternates_orders():
    flow = fb.NSF(2, n_layers=5, hidden=64, depth=2, bins=8, bound=5.0)
    assert sum(p.numel() for p in flow.parameters()) == 36710   # = nflows' and zuko's NSF (2-D, H = 64)
    assert [layer.made.degrees.tolist() for layer in flow.transform] == [[1, 2], [2, 1]] * 2 + [[1, 2]]
    x = torch.randn(7, 2)
    assert torch.allclose(flow.log_prob(x), fb.StandardNormal(2).log_prob(x))   # fresh: the base itself
    x, log_p = randomize(flow, scale=0.1).sample_and_log_prob(5)
    assert torch.allclose(log_p, flow.log_prob(x), atol=1e-9)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="bound must be a finite number > 0, got 0.0"):
        fb.Spline(2, bound=0.0)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        fb.SplineAutoregressive(2, bins=0)
    with pytest.raises(ValueError, match="mode must be"):
        fb.SplineAutoregressive(2, mode="flow")
    with pytest.raises(ValueError, match="x has 3 features, expected 2"):
        fb.Spline(2).inverse(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fb.MixtureBase(2, k=0)
    with pytest.raises(ValueError, match="transform works on 2 features but base has 3"):
        fb.NSF(2, base=fb.MixtureBase(3, 2))


@pytest.mark.parametrize("make", [fb.NICE, fb.RealNVP, fb.MAF, fb.IAF, fb.NSF, fb.NSFCoupling])
def test_every_ready_made_vector_flow_takes_a_mixture_base(make):
    torch.manual_seed(2)
    base = fb.MixtureBase(2, k=3)
    flow = make(2, n_layers=2, hidden=8, base=base)
    assert flow.base is base
    z = torch.randn(6, 2)
    with torch.no_grad():                                              # a look: no ActNorm initializes
        assert torch.allclose(flow.log_prob(z), base.log_prob(z))      # fresh layers are the identity
    x, log_p = randomize(flow, scale=0.2).sample_and_log_prob(5)
    assert torch.allclose(log_p, flow.log_prob(x), atol=1e-9)
    with pytest.raises(ValueError, match="transform works on 2 features but base has 3"):
        make(2, n_layers=2, hidden=8, base=fb.MixtureBase(3, 2))


def test_float32_inverse_keeps_the_bin_position_in_0_1():
    """Raw parameters at scale 10 make bins 2000 times wider in x than in y: in float32 the root xi of the
    inverse rounded to 1.0004 there, the denominator turned negative and the log-det was NaN."""
    params = tuple(p.float() for p in raw_parameters((2000,), seed=0, scale=10.0))
    x = ((2 * torch.rand(2000, generator=torch.Generator().manual_seed(1)) - 1) * B).float()
    y, logabsdet = spline(x, params)
    z, logabsdet_inv = spline(y, params, inverse=True)
    assert torch.isfinite(z).all() and torch.isfinite(logabsdet_inv).all()
    assert z.abs().max() <= B                                       # the inverse of a point inside stays inside
    y_back, logabsdet_back = spline(z, params)                        # round trip, measured in y: x itself is
    assert (y_back - y).abs().max() < 1e-3                             # ill-conditioned where dy/dx is 1e-7
    assert (logabsdet_inv + logabsdet_back).abs().max() < 0.05


@pytest.mark.parametrize("make", [lambda: fb.NSF(2, bins=1), lambda: fb.NSFCoupling(2, bins=1),
                                  lambda: fb.Spline(2, bins=1), lambda: fb.SplineCoupling(fb.half_mask(2), bins=1),
                                  lambda: fb.SplineAutoregressive(2, bins=1),
                                  lambda: fb.spline_knots(torch.zeros(1), torch.zeros(1), torch.zeros(0), bound=2.0),
                                  lambda: spline(torch.zeros(3), tuple(torch.zeros(3, n) for n in (1, 1, 0)))])
def test_one_bin_is_refused_it_is_the_identity(make):
    """One bin from (-B, -B) to (B, B) with slope 1 at both ends: s = d0 = d1 = 1, so y = x for any parameters
    (NSF(2, bins=1) trained 100 steps with every gradient 0)."""
    with pytest.raises(ValueError, match=r"bins must be from 2 to 999, got 1: one bin.*is the identity"):
        make()


def test_bins_and_bound_are_checked_everywhere():
    with pytest.raises(ValueError, match="bins must be from 2 to 999, got 1000: every bin keeps a share MIN_BIN"):
        fb.NSF(2, bins=1000)                            # 1000 bins of the minimal share: nothing left to learn
    assert fb.Spline(1, bins=999).bins == 999
    x, params = torch.linspace(-4, 4, 9), raw_parameters((9,))
    for bound in (-1.0, 0, math.inf, math.nan):      # -1 and 0 returned x unchanged, inf returned NaN
        for call in (lambda: fb.rational_quadratic_spline(x, *params, bound=bound),
                     lambda: fb.spline_knots(*params, bound=bound), lambda: fb.Spline(2, bound=bound),
                     lambda: fb.SplineCoupling(fb.half_mask(2), bound=bound),
                     lambda: fb.SplineAutoregressive(2, bound=bound)):
            with pytest.raises(ValueError, match="bound must be a finite number > 0"):
                call()
    for bound in ("a", True):
        with pytest.raises(TypeError, match="bound must be a number > 0"):
            fb.rational_quadratic_spline(x, *params, bound=bound)


def test_raw_parameters_must_fit_the_input():
    x, (w, h, d) = torch.linspace(-4, 4, 9), raw_parameters((9,))
    with pytest.raises(ValueError, match=r"derivatives K - 1, got shapes \[\(9, 5\), \(9, 4\), \(9, 4\)\]"):
        fb.rational_quadratic_spline(x, w, h[:, :4], d, bound=B)
    with pytest.raises(ValueError, match="derivatives K - 1"):     # K derivatives: the extra one was used silently
        fb.spline_knots(w, h, torch.zeros(9, K), bound=B)
    with pytest.raises(ValueError, match=r"must broadcast to \(\*x.shape, K or K - 1\), x has shape \(9,\)"):
        fb.rational_quadratic_spline(x, w[:4], h[:4], d[:4], bound=B)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        fb.rational_quadratic_spline(x.tolist(), w, h, d, bound=B)
    with pytest.raises(TypeError, match="must be floating-point tensors, got \\[torch.int64"):
        fb.spline_knots(w.long(), h, d, bound=B)
    y, logabsdet = fb.rational_quadratic_spline(x[:0], w[:0], h[:0], d[:0], bound=B)     # zero rows: empty
    assert y.shape == logabsdet.shape == (0,)
