"""Coupling layers, masks, scaling, squeeze, ActNorm/BatchNorm, and the NICE/RealNVP factories."""
import io

import pytest
import torch

import flowbook as fb
from flowbook.plot import grid_points
from _helpers import randomize as _randomize


def randomize(module, scale=0.3, seed=0):
    return _randomize(module, scale, seed)


def z64(n=6, d=6, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


MASKS = [fb.half_mask(6), fb.half_mask(6, first=False), fb.alternating_mask(6),
         fb.alternating_mask(6, even=False), torch.tensor([True, False, False, False, True, False])]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("cls", [fb.AdditiveCoupling, fb.AffineCoupling])
def test_couplings_pass_check(cls, mask):
    layer = randomize(cls(mask, hidden=8, depth=2)).double()
    fb.check_bijection(layer, z64(), atol=1e-9)


def test_affine_unclamped_and_large_scales():
    layer = randomize(fb.AffineCoupling(fb.alternating_mask(6), hidden=8, clamp=None), scale=0.8).double()
    fb.check_bijection(layer, z64(), atol=1e-8)
    clamped = randomize(fb.AffineCoupling(fb.alternating_mask(6), hidden=8, clamp=1.5), scale=3.0).double()
    fb.check_bijection(clamped, z64(), atol=1e-8)
    # the soft clamp bounds every per-feature log-scale: |log-det| <= clamp * #transformed
    _, logabsdet = clamped(10 * z64(200))
    assert logabsdet.abs().max() <= 1.5 * 3 + 1e-9
    assert logabsdet.abs().max() > 0.5  # and it is not trivially 0


def test_fresh_layers_are_identity():
    z = z64()
    for cls in (fb.AdditiveCoupling, fb.AffineCoupling):
        x, logabsdet = cls(fb.half_mask(6), hidden=8).double()(z)
        assert torch.equal(x, z) and torch.all(logabsdet == 0)


def test_additive_logdet_zero_and_affine_logdet_is_sum_s():
    z = z64()
    add = randomize(fb.AdditiveCoupling(fb.alternating_mask(6), hidden=8)).double()
    x, logabsdet = add(z)
    assert torch.all(logabsdet == 0) and not torch.allclose(x, z)
    aff = randomize(fb.AffineCoupling(fb.alternating_mask(6), hidden=8)).double()
    t, raw = aff.net(z[:, aff.idx_a]).chunk(2, 1)
    s = fb.soft_clamp(raw, aff.clamp)
    x, logabsdet = aff(z)
    assert torch.allclose(logabsdet, s.sum(1))
    assert torch.allclose(x[:, aff.idx_b], z[:, aff.idx_b] * s.exp() + t)


def test_conditioner_sees_only_masked_part():
    mask = fb.alternating_mask(6)
    layer = randomize(fb.AffineCoupling(mask, hidden=8)).double()
    z = z64()
    J = fb.jacobian(layer, z)  # (n, D, D): d x_i / d z_j
    assert torch.equal(J[:, mask][:, :, ~mask], torch.zeros_like(J[:, mask][:, :, ~mask]))  # x_A ignores z_B
    assert torch.allclose(layer(z)[0][:, mask], z[:, mask])
    # the transformed outputs depend on z_B only through their own entry: a diagonal block
    block = J[:, ~mask][:, :, ~mask]
    assert torch.allclose(block, torch.diag_embed(block.diagonal(dim1=1, dim2=2)))
    assert layer.net[0].in_features == int(mask.sum())


def test_context_is_used():
    layer = randomize(fb.AffineCoupling(fb.half_mask(4), hidden=8, context_features=2)).double()
    c = z64(5, 2, seed=3)
    fb.check_bijection(layer, z64(5, 4), context=c, atol=1e-9)
    assert not torch.allclose(layer(z64(5, 4), c)[0], layer(z64(5, 4), -c)[0])


def test_scaling_det_is_prod_theta():
    s = fb.Scaling(4).double()
    theta = torch.tensor([2.0, 0.5, 3.0, 0.1], dtype=torch.float64)
    s.log_scale.data = theta.log()
    x, logabsdet = s(z64(3, 4))
    assert torch.allclose(logabsdet.exp(), theta.prod().expand(3))
    fb.check_bijection(s, z64(3, 4), atol=1e-9)


def test_masks():
    assert fb.half_mask(5).tolist() == [True, True, False, False, False]
    assert fb.alternating_mask(4, even=False).tolist() == [False, True, False, True]
    cb = fb.checkerboard_mask(2, 2, 2)
    assert cb.tolist() == [True, False, False, True] * 2
    assert fb.channel_mask(2, 2, 2).tolist() == [True] * 4 + [False] * 4
    assert torch.equal(fb.checkerboard_mask(1, 4, 4, even=False), ~fb.checkerboard_mask(1, 4, 4))


def test_squeeze_roundtrip_and_layout():
    x = torch.arange(2 * 4 * 4.0).reshape(1, 2, 4, 4).repeat(3, 1, 1, 1)
    y = fb.squeeze(x)
    # channel 0 of the squeezed image holds the top-left pixel of every 2x2 block of channel 0
    assert y[0, 0].tolist() == [[0, 2], [8, 10]]
    assert y[0, 3].tolist() == [[5, 7], [13, 15]]
    assert torch.equal(fb.unsqueeze(y), x)
    sq = fb.Squeeze(2, 4, 4)
    assert torch.equal(sq.inverse(x)[0], y) and torch.equal(sq(y)[0], x)


def test_actnorm_init_and_state_survives_save_load():
    x = z64(300, 3) * torch.tensor([3.0, 0.5, 1.0], dtype=torch.float64) + 2
    layer = fb.ActNorm(3).double()
    z, _ = layer.inverse(x)
    assert bool(layer.initialized)
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(z.std(0), torch.ones(3, dtype=torch.float64), atol=1e-5)
    # a second batch does not re-initialize
    before = layer.shift.clone()
    layer.inverse(x + 10)
    assert torch.equal(layer.shift, before)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh = fb.ActNorm(3).double()
    fresh.load_state_dict(torch.load(buf))
    assert bool(fresh.initialized)
    fresh.inverse(x + 10)  # training mode, but restored: must keep the loaded values
    assert torch.equal(fresh.shift, before) and torch.equal(fresh.log_scale, layer.log_scale)
    fb.check_bijection(fresh, z64(5, 3), atol=1e-9)


def test_batchnorm_train_and_eval():
    bn = fb.BatchNorm(3).double()
    randomize(bn)
    x = z64(400, 3) * 4 + 1
    for _ in range(120):  # running averages converge to the batch statistics
        z, _ = bn.inverse(x)
    assert torch.allclose(bn.running_mean, x.mean(0), atol=1e-3)
    bn.eval()
    fb.check_bijection(bn, z64(5, 3), atol=1e-9)
    assert torch.allclose(bn.inverse(x)[0], z, atol=1e-3)


@pytest.mark.parametrize("factory", [fb.NICE, fb.RealNVP])
def test_2d_density_integrates_to_one(factory):
    torch.manual_seed(0)
    flow = randomize(factory(2, n_layers=4, hidden=16), scale=0.3).double()
    pts, cell = grid_points((-15, 15), 700)  # wide: random scales give heavy tails
    with torch.no_grad():
        mass = flow.log_prob(pts.double()).exp().sum().item() * cell
    assert abs(mass - 1) < 5e-3
    fb.check_bijection(flow.transform, z64(4, 2), atol=1e-9)


def test_factories_shapes_and_parameter_counts():
    flow = fb.RealNVP(64, n_layers=8, hidden=256, depth=2)
    # nflows / zuko / normflows RealNVP, 8 couplings, conditioner (32 -> 256 -> 256 -> 64)
    peer = 8 * (33 * 256 + 257 * 256 + 257 * 64)
    assert sum(p.numel() for p in flow.parameters()) == peer
    assert flow.sample(3).shape == (3, 64)
    nice = fb.NICE(6, n_layers=3, hidden=8, depth=1, scaling=False)
    assert len(nice.transform) == 3 and all(isinstance(b, fb.AdditiveCoupling) for b in nice.transform)
    assert isinstance(fb.NICE(6).transform[0], fb.Scaling)
    fb.check_bijection(randomize(fb.NICE(6, hidden=8)).transform, z64(), atol=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one True and one False"):
        fb.AffineCoupling(torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="clamp must be positive"):
        fb.AffineCoupling(fb.half_mask(4), clamp=0.0)
    with pytest.raises(ValueError, match="expected 4"):
        fb.AdditiveCoupling(fb.half_mask(4))(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="even height and width"):
        fb.squeeze(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="features >= 2"):
        fb.RealNVP(1)
    with pytest.raises(ValueError, match="depth must be"):
        fb.mlp(2, 2, depth=-1)
    with pytest.raises(ValueError, match="at least 2 rows"):
        fb.ActNorm(2).inverse(torch.zeros(1, 2))


def test_partial_factor_out():
    inner = randomize(fb.AffineCoupling(fb.half_mask(4), hidden=8)).double()
    layer = fb.Partial(inner, [5, 0, 2, 3], features=6)
    z = z64()
    x, _ = layer(z)
    assert torch.equal(x[:, [1, 4]], z[:, [1, 4]])  # factored-out features untouched
    fb.check_bijection(layer, z, atol=1e-9)
    with pytest.raises(ValueError, match="distinct"):
        fb.Partial(inner, [0, 0, 1, 2], features=6)


def test_multiscale_realnvp_is_a_bijection_with_fewer_parameters():
    flow = fb.MultiscaleRealNVP(hidden=8)
    fb.check_bijection(randomize(flow, 0.3).transform, z64(4, 64), atol=1e-8)
    assert sum(p.numel() for p in fb.MultiscaleRealNVP().parameters()) < \
        sum(p.numel() for p in fb.RealNVP(64, n_layers=8, hidden=64).parameters())
