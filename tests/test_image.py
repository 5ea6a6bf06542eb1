"""Image layers on flat (C, H, W) vectors: the 1x1 convolution, per-channel ActNorm, the
convolutional coupling, the Glow step and Glow; all checked in float64 at random parameters."""
import pytest
import torch
from torch import nn

import flowbook as fb
from _helpers import randomize


def test_pixels_round_trip_and_order():
    v = torch.arange(2 * 3 * 4.).reshape(1, -1)
    rows = fb.to_pixels(v, (2, 3, 4))
    assert rows.shape == (12, 2) and rows[5].tolist() == [5.0, 17.0]   # pixel (1, 1): channel 0 and 1
    assert torch.equal(fb.from_pixels(rows, (2, 3, 4)), v)


def test_conv1x1_logdet_is_hw_log_det_w_and_the_dense_jacobians():
    conv = randomize(fb.InvertibleConv1x1(3, 4, 5), 0.7)
    z = torch.randn(4, 60)
    report = fb.check_bijection(conv, z, atol=1e-9)
    assert not report.perturbed
    W = conv.weight()
    _, ladj = conv(z)
    hw_logdet = 20 * torch.linalg.slogdet(W).logabsdet
    dense = fb.logabsdet(conv, z)                                      # slogdet of the 60 x 60 Jacobian
    assert abs(hw_logdet) > 0.1
    assert torch.allclose(ladj, hw_logdet.expand(4), atol=1e-10) and torch.allclose(dense, hw_logdet.expand(4))
    # it is W at every pixel
    x = conv(z)[0]
    assert torch.allclose(fb.to_pixels(x, (3, 4, 5)), fb.to_pixels(z, (3, 4, 5)) @ W.T)


def test_conv1x1_with_a_permutation_matrix_permutes_channels():
    P = torch.eye(3)[[2, 0, 1]]
    conv = fb.InvertibleConv1x1(3, 2, 2, matrix=P)
    z = torch.randn(2, 12)
    x, ladj = conv(z)
    assert torch.allclose(x.reshape(2, 3, 4), z.reshape(2, 3, 4)[:, [2, 0, 1]]) and ladj.abs().max() < 1e-12


def test_actnorm_channels_initializes_per_channel_and_is_a_bijection():
    layer = fb.ActNormChannels(3, 4, 4)
    x = torch.randn(64, 3, 16) * torch.tensor([1.0, 5.0, 0.2])[:, None] + torch.tensor([3.0, -1.0, 0.5])[:, None]
    z, ladj = layer.inverse(x.reshape(64, -1))
    per_channel = z.reshape(64, 3, 16)
    assert per_channel.mean((0, 2)).abs().max() < 1e-10
    assert torch.allclose(per_channel.std((0, 2)), torch.ones(3), atol=1e-3)
    assert bool(layer.initialized) and torch.allclose(ladj, -16 * layer.log_scale.sum().expand(64))
    before = layer.shift.clone()
    layer.inverse(x.reshape(64, -1) + 10)                               # only the first batch initializes
    assert torch.equal(layer.shift, before)
    report = fb.check_bijection(randomize(fb.ActNormChannels(3, 4, 4), 0.5), torch.randn(5, 48), atol=1e-10)
    assert not report.perturbed
    reloaded = fb.ActNormChannels(3, 4, 4)
    reloaded.load_state_dict(layer.state_dict())
    assert bool(reloaded.initialized)


@pytest.mark.parametrize("mask", ["checkerboard", "channel"])
@pytest.mark.parametrize("context_features", [0, 2])
def test_conv_coupling_passes_the_checker(mask, context_features):
    shape = (2, 4, 4)
    m = fb.checkerboard_mask(*shape) if mask == "checkerboard" else fb.channel_mask(*shape)
    layer = randomize(fb.ConvAffineCoupling(m, shape, hidden=6, context_features=context_features), 0.3)
    z = torch.randn(3, 32)
    context = torch.randn(3, 2) if context_features else None
    report = fb.check_bijection(layer, z, context=context, atol=1e-9)
    assert not report.perturbed and report.roundtrip_error < 1e-10
    x, ladj = layer(z, context)
    assert torch.equal(x[:, m], z[:, m]) and (x[:, ~m] - z[:, ~m]).abs().max() > 1e-3
    assert layer.net.channelwise is (mask == "channel")


def test_a_user_conv_net_and_a_user_flat_net_work():
    shape = (2, 4, 4)
    mask = fb.checkerboard_mask(*shape)
    body = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 4, 3, padding=1))
    layer = fb.ConvAffineCoupling(mask, shape, net=body)
    assert layer.net.body is body and layer.net.in_channels == 4 and layer.net.out_channels == 4
    fb.check_bijection(layer, torch.randn(3, 32), atol=1e-9)
    flat = fb.AffineCoupling(mask, net=nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 32)))
    fb.check_bijection(flat, torch.randn(3, 32), atol=1e-9)
    bad = fb.ConvAffineCoupling(mask, shape, net=nn.Conv2d(4, 3, 1))
    with pytest.raises(ValueError, match="body returned"):
        bad(torch.randn(2, 32))


def test_glow_step_order_and_checker():
    step = randomize(fb.GlowStep(4, 2, 2, hidden=6), 0.3)
    assert [type(layer) for layer in step.layers] == [fb.ConvAffineCoupling, fb.InvertibleConv1x1,
                                                      fb.ActNormChannels]
    assert step.actnorm is step.layers[2]
    report = fb.check_bijection(step, torch.randn(4, 16), atol=1e-9)
    assert not report.perturbed
    # a checkerboard step for one channel
    fb.check_bijection(randomize(fb.GlowStep(1, 4, 4, hidden=4), 0.3), torch.randn(3, 16), atol=1e-9)


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 2), ((3, 2, 6), 1)])
def test_glow_transform_is_a_bijection_and_its_density_is_consistent(shape, levels):
    flow = randomize(fb.Glow(*shape, levels=levels, steps=1, hidden=4), 0.2).eval()  # eval: no ActNorm init
    features = shape[0] * shape[1] * shape[2]
    report = fb.check_bijection(flow.transform, torch.randn(3, features), atol=1e-8)
    assert not report.perturbed
    x, log_p = flow.sample_and_log_prob(5)
    assert torch.allclose(flow.log_prob(x), log_p, atol=1e-8)


def test_glow_levels_and_shape_errors():
    assert fb.Glow(1, 8, 8, hidden=4).levels == 2 and fb.Glow(1, 6, 6, hidden=4).levels == 1
    with pytest.raises(ValueError, match="divisible by 4"):
        fb.Glow(1, 6, 6, levels=2)
    with pytest.raises(ValueError, match="even height and width"):
        fb.Glow(1, 5, 6)


def test_temperature_scales_the_base_samples():
    flow = fb.Glow(1, 4, 4, steps=1, hidden=4)
    torch.manual_seed(0)
    cold = flow.sample(2000, temperature=0.0)
    assert torch.allclose(cold, cold[:1].expand(2000, -1))                 # T = 0: the image of z = 0
    torch.manual_seed(1)
    z = flow.base.sample(7) * 0.7
    torch.manual_seed(1)
    assert torch.allclose(flow.sample(7, temperature=0.7), flow.transform(z)[0])
    with pytest.raises(ValueError, match="temperature"):
        fb.sample_at_temperature(flow, 3, -1.0)


def test_glow_trains_on_digits_briefly():
    torch.set_default_dtype(torch.float32)
    digits = fb.data.load_digits()
    flow = fb.Glow(1, 8, 8, steps=1, hidden=8)
    model = fb.Flow(flow.base, [flow.transform, fb.Logit(64, alpha=0.05)])
    before = fb.evaluate_nll(model, digits.dequantize(digits.x_val))
    fb.fit(model, digits.x_train, steps=30, batch_size=64, lr=3e-3, transform_batch=digits.dequantize, progress=False)
    assert all(bool(m.initialized) for m in model.modules() if isinstance(m, fb.ActNormChannels))
    assert fb.evaluate_nll(model, digits.dequantize(digits.x_val)) < before - 20
