"""MADE, the masked affine autoregressive layer (MAF / IAF modes) and the MAF / IAF factories."""
import math

import pytest
import torch

import flowbook as fb
from flowbook.plot import grid_points
from _helpers import randomize

D = 5


def made_grads(made, x, context=None):
    """(out_per_feature, D_out, batch, D_in) gradients of every output w.r.t. every input."""
    x = x.clone().requires_grad_(True)
    out = made(x, context)
    g = torch.zeros(out.shape[1], out.shape[2], *x.shape, dtype=x.dtype)
    for p in range(out.shape[1]):
        for j in range(out.shape[2]):
            g[p, j] = torch.autograd.grad(out[:, p, j].sum(), x, retain_graph=True)[0]
    return g


# ----------------------------------------------------------------------------- MADE
@pytest.mark.parametrize("hidden,depth", [(32, 2), ((16, 24, 16), 3), (4, 1)])
def test_made_output_i_depends_only_on_inputs_before_i(hidden, depth):
    made = randomize(fb.MADE(D, hidden, depth, zero_init=False).double())
    x = torch.randn(7, D, dtype=torch.float64)
    g = made_grads(made, x).abs().amax(2)  # (P, D_out, D_in): max |grad| over the batch
    later = torch.ones(D, D).triu().bool()  # input i >= output j
    assert (g[:, later] == 0).all(), "an output depends on its own or a later input"
    if hidden != 4:  # wide enough: every allowed connection exists and is used
        assert (g[:, ~later] > 0).all(), "an output ignores an earlier input"
    assert torch.equal(made.connectivity().bool(), ~later)


def test_made_context_reaches_every_output_but_the_first():
    made = randomize(fb.MADE(D, 32, context_features=3, zero_init=False).double())
    x = torch.randn(6, D, dtype=torch.float64)
    c = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    out = made(x, c)
    for j in range(D):
        gc = torch.autograd.grad(out[:, :, j].sum(), c, retain_graph=True)[0]
        # the lowest-degree feature sees no hidden unit: its outputs are the constant bias
        assert (gc.abs().max() > 0) == (j > 0)
    assert torch.allclose(out[:, :, 0], made.output.bias.view(2, D)[:, 0].expand(6, -1))
    g = made_grads(made, x, c).abs().amax(2)
    assert (g[:, torch.ones(D, D).triu().bool()] == 0).all()


def test_made_custom_degrees_give_a_coupling_pattern():
    made = randomize(fb.MADE(4, 16, degrees=[1, 1, 2, 2], zero_init=False))
    expected = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]])
    assert torch.equal(made.connectivity().long(), expected)
    assert made.n_levels == 2
    # degrees are ranked, so [3, 7, 7] behaves like [1, 2, 2]
    assert fb.MADE(3, 8, degrees=[3, 7, 7]).degrees.tolist() == [1, 2, 2]


def test_made_bad_inputs():
    with pytest.raises(ValueError, match="degrees must be 3 integers"):
        fb.MADE(3, 8, degrees=[1, 2])
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        fb.MADE(3, 0)
    with pytest.raises(ValueError, match="x has 4 features, expected 3"):
        fb.MADE(3, 8)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="pass a context"):
        fb.MADE(3, 8, context_features=2)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="takes no context"):
        fb.MADE(3, 8)(torch.randn(2, 3), torch.randn(2, 2))


# ----------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("mode", ["maf", "iaf"])
@pytest.mark.parametrize("degrees", [None, [1, 1, 2, 2, 2], [3, 1, 2, 1, 3]])
def test_layer_passes_check_bijection(mode, degrees):
    layer = randomize(fb.MaskedAffineAutoregressive(D, 16, mode=mode, degrees=degrees))
    fb.check_bijection(layer, 2 * torch.randn(16, D), atol=1e-9)


@pytest.mark.parametrize("mode", ["maf", "iaf"])
def test_layer_with_context_passes_check_bijection(mode):
    layer = randomize(fb.MaskedAffineAutoregressive(D, 16, context_features=3, mode=mode))
    z, c = torch.randn(8, D), torch.randn(8, 3)
    fb.check_bijection(layer, z, context=c, atol=1e-9)
    x1, _ = layer(z, c)
    x2, _ = layer(z, c + 1)
    assert not torch.allclose(x1, x2), "the context has no effect"


@pytest.mark.parametrize("mode", ["maf", "iaf"])
def test_fresh_layer_is_identity(mode):
    layer = fb.MaskedAffineAutoregressive(D, 16, mode=mode)
    z = torch.randn(5, D)
    for out, logabsdet in (layer(z), layer.inverse(z)):
        assert torch.equal(out, z) and torch.equal(logabsdet, torch.zeros(5))


def test_scale_is_bounded():
    layer = fb.MaskedAffineAutoregressive(D, 16, mode="iaf", clamp=2.0)
    with torch.no_grad():
        layer.made.output.bias.fill_(1e4)  # huge raw log-scales
    x, logabsdet = layer(torch.randn(4, D))
    assert torch.isfinite(x).all()
    assert torch.allclose(logabsdet, torch.full((4,), 2.0 * D))
    with pytest.raises(ValueError, match="clamp must be positive"):
        fb.MaskedAffineAutoregressive(D, 8, clamp=0)
    with pytest.raises(ValueError, match="mode must be"):
        fb.MaskedAffineAutoregressive(D, 8, mode="nice")
    with pytest.raises(ValueError, match="z has 3 features, expected 5"):
        layer(torch.randn(2, 3))


def count_passes(layer):
    """A list that grows by one entry per MADE evaluation of ``layer`` (a forward hook)."""
    calls = []
    layer.made.register_forward_hook(lambda *args: calls.append(1))
    return calls


@pytest.mark.parametrize("mode,fwd_passes,inv_passes", [("maf", D, 1), ("iaf", 1, D)])
def test_pass_counts(mode, fwd_passes, inv_passes):
    layer = randomize(fb.MaskedAffineAutoregressive(D, 16, mode=mode))
    calls = count_passes(layer)
    z = torch.randn(3, D)
    x, _ = layer(z)
    assert len(calls) == fwd_passes
    calls.clear()
    layer.inverse(x)
    assert len(calls) == inv_passes
    coupling = randomize(fb.MaskedAffineAutoregressive(D, 16, mode=mode, degrees=[1, 1, 2, 2, 2]))
    calls = count_passes(coupling)
    coupling(z), coupling.inverse(z)
    assert len(calls) == 3  # a coupling pattern: one pass the fast way, two levels the slow way


@pytest.mark.parametrize("mode", ["maf", "iaf"])
def test_reparametrized_layer_computes_the_inverse(mode):
    layer = randomize(fb.MaskedAffineAutoregressive(D, 16, mode=mode)).double()
    other = fb.reparametrized(layer)
    assert other.mode != mode and other.made is layer.made
    v = torch.randn(9, D, dtype=torch.float64)
    for a, b in ((other(v), layer.inverse(v)), (other.inverse(v), layer(v))):
        assert torch.allclose(a[0], b[0], atol=1e-10) and torch.allclose(a[1], b[1], atol=1e-10)
    fb.check_bijection(other, v, atol=1e-9)
    with pytest.raises(TypeError, match="MaskedAffineAutoregressive"):
        fb.reparametrized(fb.Affine(2))


# ----------------------------------------------------------------------------- flows
def test_factories_structure_and_parameter_count():
    flow = fb.MAF(2, n_layers=5, hidden=64, depth=2)
    kinds = [type(b).__name__ for b in flow.transform]
    assert kinds == ["ActNorm", "MaskedAffineAutoregressive"] * 5    # generative order: ActNorm, then the layer
    layers = [b for b in flow.transform if isinstance(b, fb.MaskedAffineAutoregressive)]
    # the orders alternate inside the MADEs (what a ReversePermutation between layers would do)
    assert [b.made.degrees.tolist() for b in layers] == [[1, 2], [2, 1]] * 2 + [[1, 2]]
    # MADE (D -> H -> H -> 2D) per layer: the count nflows' MAF has with the same settings, + 2D per ActNorm
    per_layer = lambda d, h: (d * h + h) + (h * h + h) + (h * 2 * d + 2 * d)
    assert sum(p.numel() for p in flow.parameters()) == 5 * (per_layer(2, 64) + 4) == 23080
    plain = fb.MAF(64, hidden=256, actnorm=False)
    assert sum(p.numel() for p in plain.parameters()) == 5 * per_layer(64, 256)
    assert [type(b).__name__ for b in plain.transform] == ["MaskedAffineAutoregressive"] * 5
    assert [b.mode for b in fb.IAF(3).transform] == ["iaf"] * 5      # no ActNorm in an IAF by default
    assert [type(b).__name__ for b in fb.IAF(3, n_layers=1, actnorm=True).transform] == [
        "ActNorm", "MaskedAffineAutoregressive"]
    with pytest.raises(TypeError, match="actnorm must be True, False or None, got str"):
        fb.MAF(2, actnorm="yes")


def test_maf_actnorms_initialize_on_the_first_training_batch_and_keep_the_density_exact():
    """fit's first batch sets every ActNorm from data; the flow stays a bijection with an exact log-det."""
    torch.manual_seed(0)
    x = torch.randn(512, 3) * torch.tensor([4.0, 0.5, 2.0]) + 3.0
    flow = fb.MAF(3, n_layers=2, hidden=16)
    norms = [b for b in flow.transform if isinstance(b, fb.ActNorm)]
    assert not any(bool(b.initialized) for b in norms)
    fb.fit(flow, x, steps=1, progress=False)
    assert all(bool(b.initialized) for b in norms)
    fb.check_bijection(randomize(flow.transform, scale=0.3).double(), torch.randn(6, 3, dtype=torch.float64))


@pytest.mark.parametrize("factory", [fb.MAF, fb.IAF])
@pytest.mark.parametrize("n_layers", [2, 3])
def test_alternating_orders_equal_reversals_between_layers(factory, n_layers):
    """The factory's flow is the classic stack [layer, ReversePermutation, layer, ...] in disguise."""
    torch.manual_seed(0)
    flow = randomize(factory(4, n_layers=n_layers, hidden=16, actnorm=False), scale=0.3).double()
    rev = fb.ReversePermutation(4)
    classic = []
    for i, layer in enumerate(flow.transform):
        # a layer with reversed degrees = reverse, the layer with the plain order, reverse
        if i % 2:
            plain = fb.MaskedAffineAutoregressive(4, 16, mode=layer.mode).double()
            classic += [rev, _flip_made(plain, layer), rev]
        else:
            classic.append(layer)
    classic = fb.Compose(*classic)
    x = torch.randn(7, 4, dtype=torch.float64)
    for a, b in ((flow.transform.inverse(x), classic.inverse(x)), (flow.transform(x), classic(x))):
        assert torch.allclose(a[0], b[0], atol=1e-10) and torch.allclose(a[1], b[1], atol=1e-10)
    assert fb.MAF(3, n_layers=4)(torch.randn(2, 3)).shape == (2,)
    fresh = factory(3, n_layers=2)
    z = torch.randn(5, 3)
    with torch.no_grad():                          # a look: the MAF's ActNorms stay uninitialized
        assert torch.equal(fresh.transform(z)[0], z)  # a fresh flow is the identity map


def _flip_made(plain, layer):
    """Copy ``layer``'s weights into ``plain`` with the input and output features reversed."""
    d = layer.features
    with torch.no_grad():
        for a, b in zip(plain.made.hidden_layers, layer.made.hidden_layers):  # hidden-to-hidden: the same
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
        first, out = plain.made.input_layer, plain.made.output
        first.weight.copy_(layer.made.input_layer.weight.flip(1))
        first.bias.copy_(layer.made.input_layer.bias)
        w = layer.made.output.weight.view(2, d, -1).flip(1).reshape(2 * d, -1)
        out.weight.copy_(w)
        out.bias.copy_(layer.made.output.bias.view(2, d).flip(1).reshape(-1))
    return plain


@pytest.mark.parametrize("factory", [fb.MAF, fb.IAF])
def test_2d_density_integrates_to_one(factory):
    torch.manual_seed(0)
    flow = randomize(factory(2, n_layers=3, hidden=16), scale=0.2).double()
    pts, cell = grid_points((-16, 16), 500)
    with torch.no_grad():
        total = flow.log_prob(pts.double()).exp().sum().item() * cell
    assert abs(total - 1) < 2e-3, total


def test_iaf_sample_and_log_prob_needs_no_inverse(monkeypatch):
    flow = randomize(fb.IAF(D, n_layers=3, hidden=16), scale=0.3).double()
    x, log_p = flow.sample_and_log_prob(20)
    assert torch.allclose(log_p, flow.log_prob(x), atol=1e-8)  # the D-pass density agrees

    def boom(self, x, context=None):
        raise AssertionError("inverse called")

    monkeypatch.setattr(fb.MaskedAffineAutoregressive, "inverse", boom)
    flow.sample_and_log_prob(5)  # must not call inverse
    with pytest.raises(AssertionError, match="inverse called"):
        flow.log_prob(x)


def test_maf_is_the_inverse_of_an_iaf():
    maf = randomize(fb.MAF(D, n_layers=3, hidden=16), scale=0.3).double()
    layers = [fb.reparametrized(b) if isinstance(b, fb.MaskedAffineAutoregressive) else b.inv
              for b in reversed(list(maf.transform))]
    iaf_of_inverse = fb.Compose(*layers)  # an IAF: its forward is the MAF's inverse
    x = torch.randn(10, D, dtype=torch.float64)
    z, logabsdet = maf.transform.inverse(x)
    z2, logabsdet2 = iaf_of_inverse(x)
    assert torch.allclose(z, z2, atol=1e-10) and torch.allclose(logabsdet, logabsdet2, atol=1e-10)


def test_conditional_flow():
    torch.manual_seed(0)
    flow = randomize(fb.MAF(3, n_layers=2, hidden=16, context_features=4), scale=0.3)
    onehot = torch.eye(4)
    x = torch.randn(6, 3)
    lp0, lp1 = flow.log_prob(x, onehot[0]), flow.log_prob(x, onehot[1])
    assert lp0.shape == (6,) and not torch.allclose(lp0, lp1)
    s = flow.sample(5, context=onehot[2])
    assert s.shape == (5, 3)
    # sample and density agree through the sequential direction
    x, lp = flow.sample_and_log_prob(7, context=onehot[3])
    assert torch.allclose(lp, flow.log_prob(x, onehot[3]), atol=1e-4)
    with pytest.raises(ValueError, match="pass a context"):
        flow.log_prob(x)


def test_maf_learns_a_correlated_gaussian():
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    data = torch.distributions.MultivariateNormal(torch.zeros(2), cov).sample((4000,))
    flow = fb.MAF(2, n_layers=2, hidden=16)
    before = fb.evaluate_nll(flow, data)
    fb.fit(flow, data, steps=100, lr=1e-2, progress=False)
    true_nll = 0.5 * torch.logdet(2 * math.pi * math.e * cov).item()
    after = fb.evaluate_nll(flow, data)
    assert before - true_nll > 0.5 and after - true_nll < 0.05, (before, after, true_nll)


# ----------------------------------------------------------------------------- the shared base, the context
class AdditiveAutoregressive(fb.Autoregressive):
    """A law of one's own on the shared base: x_i = z_i + mu_i(earlier features)."""

    def __init__(self, features, mode="maf"):
        super().__init__(features, 1, hidden=16, mode=mode)

    def law(self, v, u, context=None, inverse=False):
        shift = self.made(u, context)[:, 0]
        return (v - shift if inverse else v + shift), torch.zeros_like(v)


@pytest.mark.parametrize("mode", ["maf", "iaf"])
def test_the_autoregressive_base_takes_any_law(mode):
    layer = randomize(AdditiveAutoregressive(D, mode))
    calls = count_passes(layer)
    fb.check_bijection(layer, torch.randn(8, D), atol=1e-9)
    fb.check_autoregressive(layer, D)
    assert isinstance(fb.MaskedAffineAutoregressive(2), fb.Autoregressive)
    assert isinstance(fb.SplineAutoregressive(2), fb.Autoregressive)
    calls.clear()
    layer(torch.randn(2, D)), layer.inverse(torch.randn(2, D))
    assert len(calls) == D + 1


def test_context_is_checked_in_one_place():
    from flowbook.validation import check_context
    for piece, call in ((fb.MADE(3, 8, context_features=2), lambda m, c: m(torch.randn(4, 3), c)),
                        (fb.VectorField(3, 8, context_features=2), lambda m, c: m(0.5, torch.randn(4, 3), c)),
                        (fb.AffineCoupling(fb.half_mask(3), hidden=8, context_features=2),
                         lambda m, c: m(torch.randn(4, 3), c))):
        name = type(piece).__name__
        with pytest.raises(ValueError, match=rf"^{name} is conditional \(context_features=2\): pass a context, "
                                             r"a tensor of shape \(batch, 2\)$"):
            call(piece, None)
        with pytest.raises(ValueError, match=r"context has 3 features, expected 2"):
            call(piece, torch.randn(4, 3))
        call(piece, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"^MADE takes no context \(context_features=0\), but got one of shape \(4, 2\)"):
        fb.MADE(3, 8)(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"^DequantizedFlow takes no context"):
        fb.DequantizedFlow(fb.Flow(fb.StandardNormal(2), [fb.Logit(2)]), 4).log_prob(torch.zeros(1, 2), torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"^this flow is conditional \(context_features=2\): pass a context to "
                                         r"sample\(\), a tensor of shape \(2,\) shared by every row, or \(5, 2\)$"):
        fb.MAF(3, n_layers=1, hidden=8, context_features=2).sample(5)
    check_context(None, 0, "anything")
