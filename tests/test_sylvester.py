"""Sylvester flows: log-det against autograd for every variant (direct and amortized), M = 1 is the
planar layer, the diagonal reparametrization keeps r_ii r~_ii > -1 for extreme raw values."""
import math

import pytest
import torch

import flowbook as fb
from _helpers import randomize


@pytest.fixture(autouse=True)
def seeded():
    """Each test draws from its own seed: its random layers do not depend on which tests ran before."""
    torch.manual_seed(0)

VARIANTS = [
    ("orthogonal", lambda **kw: fb.Sylvester(5, m=3, **kw)),
    ("orthogonal-full", lambda **kw: fb.Sylvester(4, **kw)),
    ("householder", lambda **kw: fb.HouseholderSylvester(5, m=4, reflections=3, **kw)),
    ("triangular", lambda **kw: fb.TriangularSylvester(5, **kw)),
    ("triangular-reversed", lambda **kw: fb.TriangularSylvester(5, reverse=True, **kw)),
]


@pytest.mark.parametrize("make", [m for _, m in VARIANTS], ids=[n for n, _ in VARIANTS])
@pytest.mark.parametrize("context_features", [0, 3])
def test_every_variant_passes_the_checker_at_random_parameters(make, context_features):
    layer = randomize(make(context_features=context_features), 0.8)
    z = 2 * torch.randn(16, layer.features)
    context = torch.randn(16, 3) if context_features else None
    report = fb.check_bijection(layer, z, context=context, atol=1e-9)
    assert not report.perturbed and not report.has_inverse
    x, logabsdet = layer(z, context)
    assert (x - z).abs().max() > 1e-2 and logabsdet.abs().max() > 1e-2  # the check was not at the identity
    if context is not None:  # the parameters depend on the context
        assert (layer(z, context + 1)[0] - x).abs().max() > 1e-3


def test_q_has_orthonormal_columns_and_the_logdet_is_the_triangular_formula():
    for layer in (randomize(fb.Sylvester(6, m=4), 1.0), randomize(fb.HouseholderSylvester(6, m=3), 1.0)):
        R, R_tilde, b, Q = layer.triangular()
        assert torch.allclose(Q[0].T @ Q[0], torch.eye(Q.shape[-1]), atol=1e-12)
        z = torch.randn(5, 6)
        A, B = Q[0] @ R[0], R_tilde[0] @ Q[0].T
        h = torch.tanh(z @ B.T + b)
        dense = torch.eye(6) + A @ torch.diag_embed(1 - h.pow(2)) @ B      # full D x D Jacobian
        assert torch.allclose(layer(z)[0], z + h @ A.T)
        assert torch.allclose(layer(z)[1], torch.linalg.slogdet(dense).logabsdet, atol=1e-10)


def test_m_equal_one_is_the_planar_layer():
    layer = randomize(fb.Sylvester(4, m=1), 1.0)
    R, R_tilde, b, Q = layer.triangular()
    q = Q[0, :, 0]
    # Planar's u is the raw A side, w the B side: both layers apply the same constraint
    planar = fb.Planar(4, u=layer.r[0, 0].detach() * q.detach(), w=R_tilde[0, 0, 0].detach() * q.detach(),
                       b=b.item())
    z = 3 * torch.randn(20, 4)
    (x_s, l_s), (x_p, l_p) = layer(z), planar(z)
    assert torch.allclose(x_s, x_p, atol=1e-12) and torch.allclose(l_s, l_p, atol=1e-12)
    assert torch.allclose(planar.u_hat(), R[0, 0, 0] * q, atol=1e-12)


def test_the_diagonal_constraint_holds_for_extreme_raw_values():
    layer = fb.TriangularSylvester(5)
    raw_r = torch.tensor([-50.0, 1e3, 0.0, -1e3, 3.0])
    raw_rt = torch.tensor([0.5, 1e3, 5.0, 1e-8, -1e-12])
    with torch.no_grad():
        layer.r.copy_(torch.diag(raw_r))
        layer.r_tilde.copy_(torch.diag(raw_rt))
    R, R_tilde, _, _ = layer.triangular()
    products = R[0].diagonal() * R_tilde[0].diagonal()
    expected = -1 + torch.nn.functional.softplus(raw_r * raw_rt)     # Planar's m(r r~)
    assert torch.isfinite(products).all() and (products > -1).all()
    assert torch.allclose(products, expected, rtol=1e-9, atol=1e-12)
    x, logabsdet = layer(torch.randn(200, 5) * 10)
    assert torch.isfinite(x).all() and torch.isfinite(logabsdet).all()
    layer.constrain = False
    raw = layer.triangular()
    assert (raw[0][0].diagonal() * raw[1][0].diagonal()).min() < -1  # the raw values would fold


def test_fold_without_the_constraint_and_none_with_it():
    """1-D case (D = M = 1): x = z + r tanh(r~ z); with r r~ = -3 the map folds, constrained it is increasing."""
    z = torch.linspace(-4, 4, 2001).unsqueeze(1)
    for constrain, monotone in ((True, True), (False, False)):
        layer = fb.TriangularSylvester(1, constrain=constrain)
        with torch.no_grad():
            layer.r.fill_(-3.0), layer.r_tilde.fill_(1.0), layer.b.zero_()
        x = layer(z)[0].squeeze(1)
        assert bool((x.diff() > 0).all()) is monotone


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at most features"):
        fb.Sylvester(3, m=4)
    with pytest.raises(ValueError, match="amortized"):
        fb.Sylvester(3, context_features=2)(torch.randn(2, 3))
    with pytest.raises(NotImplementedError, match="HouseholderSylvester has no closed-form inverse"):
        fb.HouseholderSylvester(3).inverse(torch.randn(2, 3))


def test_sylvester_layers_train_in_a_flow_by_reverse_kl():
    """A stack samples with its log-density (Flow.sample_and_log_prob) and gradients reach every parameter."""
    flow = fb.Flow(fb.StandardNormal(3), [fb.Sylvester(3, m=2), fb.HouseholderSylvester(3),
                                         fb.TriangularSylvester(3, reverse=True)])
    x, log_p = flow.sample_and_log_prob(8)
    log_p.sum().backward()
    assert x.shape == (8, 3) and all(p.grad is not None for p in flow.parameters())


@pytest.mark.parametrize("make", [lambda: fb.Sylvester(4, m=2), lambda: fb.HouseholderSylvester(4),
                                  lambda: fb.TriangularSylvester(4, reverse=True)])
def test_a_zeroed_layer_started_as_identity_is_the_identity(make):
    """r_ii = a0 / r~_ii divided by zero (NaN); a zero r~_ii is now set to 1 first (the constraint is singular there)."""
    layer = make()
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    layer.start_as_identity()
    z = torch.randn(6, 4)
    x, logabsdet = layer(z)
    assert torch.equal(x, z) and torch.equal(logabsdet, torch.zeros(6))
    assert torch.equal(layer.r_tilde.diagonal(), torch.ones(layer.m))
    (x.pow(2).sum() + logabsdet.sum()).backward()                    # and it can learn: R, R~ get gradients
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().max() > 0 for p in (layer.r, layer.r_tilde))
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)  # Q's too


@pytest.mark.parametrize("dtype, a", [(torch.float64, -40.0), (torch.float32, -20.0)])
def test_log_det_is_exact_where_the_constrained_product_rounds_to_minus_one(dtype, a):
    """The product r~ r^ rounds to -1 below a = -33.5 (float64) or -14.5 (float32): the log-det was -inf there.

    1-D layer x = z + r^ tanh(r~ z + b), r~ r^ = -1 + softplus(a): log-det = log(tanh^2 + sech^2 softplus(a)),
    computed here in float64 with the math module (cosh, log1p) as the reference."""
    layer = fb.TriangularSylvester(1).to(dtype)
    with torch.no_grad():
        layer.r.fill_(a), layer.r_tilde.fill_(1.0), layer.b.zero_()
    R, R_tilde = layer.triangular()[:2]
    assert (R * R_tilde).item() == -1.0                               # the product itself is exactly -1
    z = torch.tensor([[0.0], [1e-9], [1e-5], [0.5], [-2.0]], dtype=dtype)
    _, logabsdet = layer(z)
    reference = [math.log(math.tanh(v) ** 2 + math.cosh(v) ** -2 * math.log1p(math.exp(a))) for v in z[:, 0].tolist()]
    assert torch.isfinite(logabsdet).all() and logabsdet[0].item() == pytest.approx(a, rel=1e-6)
    assert torch.allclose(logabsdet.double(), torch.tensor(reference), rtol=1e-12 if dtype == torch.float64 else 1e-5)


def test_arguments_and_contexts_are_checked():
    with pytest.raises(ValueError, match="hidden must be a positive integer, got 0"):
        fb.Sylvester(3, hidden=0)                                    # was accepted (unused without a context)
    with pytest.raises(TypeError, match="constrain must be True or False, got 'no'"):
        fb.HouseholderSylvester(3, constrain="no")                   # was taken as True
    with pytest.raises(TypeError, match="reverse must be True or False, got 'x'"):
        fb.TriangularSylvester(3, reverse="x")
    with pytest.raises(ValueError, match=r"Sylvester takes no context \(context_features=0\), but got one"):
        fb.Sylvester(3)(torch.randn(4, 3), torch.randn(4, 2))        # was ignored
    with pytest.raises(TypeError, match="context has dtype torch.float32 but TriangularSylvester computes in "
                                        "torch.float64; convert the data with context.double()"):
        fb.TriangularSylvester(3, context_features=2)(torch.randn(4, 3), torch.randn(4, 2).float())
    x, logabsdet = fb.Sylvester(3, context_features=2)(torch.zeros(0, 3), torch.zeros(0, 2))   # zero rows
    assert x.shape == (0, 3) and logabsdet.shape == (0,)
