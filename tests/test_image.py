"""Image layers on (N, C, H, W) tensors: squeeze, the 1x1 convolution, ActNorm per channel, the
convolutional coupling, the factor-out, the Glow step and Glow; all checked in float64 at random
parameters."""
import pytest
import torch
from torch import nn

import flowbook as fb
from _helpers import randomize


def checkerboard(c, h, w, even=True):
    return fb.checkerboard_mask(c, h, w, even=even).reshape(c, h, w)


def test_squeeze_moves_each_2x2_block_to_4_channels_and_back():
    x = torch.arange(2 * 4 * 4.0).reshape(1, 2, 4, 4).repeat(3, 1, 1, 1)
    y = fb.squeeze(x)
    assert y.shape == (3, 8, 2, 2)
    assert y[0, 0].tolist() == [[0, 2], [8, 10]] and y[0, 3].tolist() == [[5, 7], [13, 15]]
    assert y[0, 4].tolist() == [[16, 18], [24, 26]]                        # channel 1 starts at 4
    assert torch.equal(fb.unsqueeze(y), x)
    sq = fb.Squeeze(2, 4, 4)
    assert torch.equal(sq.inverse(x)[0], y) and torch.equal(sq(y)[0], x)
    around = fb.Compose(fb.Inverse(sq), randomize(fb.GlowStep(8, hidden=4), 0.3), sq)  # squeeze, step, unsqueeze
    assert not fb.check_bijection(around, torch.randn(3, 2, 4, 4), atol=1e-9).perturbed
    with pytest.raises(ValueError, match="even height and width"):
        fb.squeeze(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 8, 2, 2\)"):
        sq(torch.zeros(2, 32))


def test_conv1x1_is_w_at_every_pixel_with_logdet_hw_log_det_w():
    conv = randomize(fb.InvertibleConv1x1(3), 0.7)
    z = torch.randn(4, 3, 4, 5)
    report = fb.check_bijection(conv, z, atol=1e-9)
    assert not report.perturbed
    W = conv.weight()
    x, logabsdet = conv(z)
    hw_logdet = 20 * torch.linalg.slogdet(W).logabsdet
    dense = fb.logabsdet(conv, z)                                      # slogdet of the 60 x 60 Jacobian
    assert abs(hw_logdet) > 0.1
    assert torch.allclose(logabsdet, hw_logdet.expand(4), atol=1e-10) and torch.allclose(dense, hw_logdet.expand(4))
    assert torch.allclose(x[:, :, 2, 3], z[:, :, 2, 3] @ W.T)           # W times the channel vector of a pixel
    # any image size: the log-det scales with H W
    assert torch.allclose(conv(torch.randn(2, 3, 2, 2))[1], 4 * torch.linalg.slogdet(W).logabsdet.expand(2))


def test_conv1x1_with_a_permutation_matrix_permutes_channels():
    P = torch.eye(3)[[2, 0, 1]]
    conv = fb.InvertibleConv1x1(3, matrix=P)
    z = torch.randn(2, 3, 2, 2)
    x, logabsdet = conv(z)
    assert torch.allclose(x, z[:, [2, 0, 1]]) and logabsdet.abs().max() < 1e-12


def test_one_actnorm_per_feature_and_per_channel_initializes_from_data():
    vectors = fb.ActNorm(3).double()
    x = torch.randn(500, 3, dtype=torch.float64) * torch.tensor([3.0, 0.5, 1.0], dtype=torch.float64) + 2
    z, _ = vectors.inverse(x)
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(z.std(0), torch.ones(3, dtype=torch.float64), atol=1e-5)

    layer = fb.ActNorm(3, dims=(0, 2, 3))
    images = torch.randn(64, 3, 4, 4) * torch.tensor([1.0, 5.0, 0.2])[:, None, None] \
        + torch.tensor([3.0, -1.0, 0.5])[:, None, None]
    z, logabsdet = layer.inverse(images)
    assert z.mean((0, 2, 3)).abs().max() < 1e-5
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.allclose(layer.shift, images.mean((0, 2, 3)), atol=1e-5)   # one shift per channel
    assert bool(layer.initialized) and torch.allclose(logabsdet, -16 * layer.log_scale.sum().expand(64))
    before = layer.shift.clone()
    layer.inverse(images + 10)                                          # only the first batch initializes
    assert torch.equal(layer.shift, before)
    report = fb.check_bijection(randomize(fb.ActNorm(3, dims=(0, 2, 3)), 0.5), torch.randn(5, 3, 4, 4),
                                atol=1e-10)
    assert not report.perturbed
    reloaded = fb.ActNorm(3, dims=(0, 2, 3))
    reloaded.load_state_dict(layer.state_dict())
    assert bool(reloaded.initialized)
    with pytest.raises(ValueError, match="dims must be"):
        fb.ActNorm(3, dims=(1,))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3, height, width\)"):
        layer.inverse(torch.zeros(2, 48))


@pytest.mark.parametrize("mask", ["checkerboard", "channel"])
@pytest.mark.parametrize("context_features", [0, 2])
def test_conv_coupling_passes_the_checker(mask, context_features):
    m = checkerboard(2, 4, 4) if mask == "checkerboard" else torch.tensor([True, False]).reshape(2, 1, 1)
    layer = randomize(fb.ConvAffineCoupling(m, hidden=6, context_features=context_features), 0.3)
    z = torch.randn(3, 2, 4, 4)
    context = torch.randn(3, 2) if context_features else None
    report = fb.check_bijection(layer, z, context=context, atol=1e-9)
    assert not report.perturbed and report.roundtrip_error < 1e-10
    x, _ = layer(z, context)
    a = m.expand(3, 2, 4, 4)
    assert torch.equal(x[a], z[a]) and (x[~a] - z[~a]).abs().max() > 1e-3    # x_A = z_A, x_B moves


def test_the_net_passed_is_the_layers_net_and_its_output_is_checked():
    mask = checkerboard(2, 4, 4)
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 4, 3, padding=1))
    layer = fb.ConvAffineCoupling(mask, net=net)
    assert layer.net is net
    fb.check_bijection(layer, torch.randn(3, 2, 4, 4), atol=1e-9)
    bad = fb.ConvAffineCoupling(mask, net=nn.Conv2d(2, 3, 1))
    with pytest.raises(ValueError, match=r"net returned \(2, 3, 4, 4\), expected \(2, 4, 4, 4\)"):
        bad(torch.randn(2, 2, 4, 4))
    with pytest.raises(ValueError, match="at least one True and one False"):
        fb.ConvAffineCoupling(torch.ones(1, 4, 4, dtype=torch.bool))


def test_partial_factors_out_channels_and_features():
    inner = randomize(fb.GlowStep(2, hidden=4), 0.3)
    layer = fb.Partial(inner, [3, 0], channels=4, height=2, width=2)
    z = torch.randn(3, 4, 2, 2)
    x, _ = layer(z)
    assert torch.equal(x[:, [1, 2]], z[:, [1, 2]]) and (x[:, [0, 3]] - z[:, [0, 3]]).abs().max() > 1e-3
    fb.check_bijection(layer, z, atol=1e-9)
    vector = fb.Partial(randomize(fb.AffineCoupling(fb.half_mask(2), hidden=4)), [4, 1], features=5)
    fb.check_bijection(vector, torch.randn(3, 5), atol=1e-9)
    with pytest.raises(ValueError, match="not both"):
        fb.Partial(inner, [0, 1], features=4, channels=4, height=2, width=2)


def test_glow_step_order_and_checker():
    step = randomize(fb.GlowStep(4, hidden=6), 0.3)
    assert [type(layer) for layer in step.layers] == [fb.ConvAffineCoupling, fb.InvertibleConv1x1, fb.ActNorm]
    assert step.actnorm is step.layers[2] and step.actnorm.dims == (0, 2, 3)
    report = fb.check_bijection(step, torch.randn(4, 4, 2, 2), atol=1e-9)
    assert not report.perturbed
    one_channel = randomize(fb.GlowStep(1, hidden=4, mask=checkerboard(1, 4, 4)), 0.3)
    fb.check_bijection(one_channel, torch.randn(3, 1, 4, 4), atol=1e-9)
    with pytest.raises(ValueError, match="needs a mask"):
        fb.GlowStep(1)


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 2), ((3, 2, 6), 1)])
def test_glow_transform_is_a_bijection_and_its_density_is_consistent(shape, levels):
    flow = randomize(fb.Glow(*shape, levels=levels, n_layers=1, hidden=4), 0.2).eval()  # eval: no ActNorm init
    report = fb.check_bijection(flow.transform, torch.randn(3, *shape), atol=1e-8)
    assert not report.perturbed
    x, log_p = flow.sample_and_log_prob(5)
    assert x.shape == (5, *shape) and torch.allclose(flow.log_prob(x), log_p, atol=1e-4)


def test_glow_takes_images_and_names_the_expected_shape():
    flow = fb.Glow(1, 8, 8, n_layers=1, hidden=4)
    assert flow.event_shape == (1, 8, 8) and flow.base.event_shape == (1, 8, 8)
    assert flow.log_prob(torch.rand(5, 1, 8, 8)).shape == (5,)
    assert flow.sample(16, temperature=0.7).shape == (16, 1, 8, 8)
    assert flow.sample((2, 3)).shape == (2, 3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 8, 8\).*x.reshape\(-1, 1, 8, 8\)"):
        flow.log_prob(torch.rand(5, 64))
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 8, 8\)"):
        flow.log_prob(torch.rand(5, 1, 4, 16))
    with pytest.raises(TypeError, match="float64"):
        fb.Glow(1, 8, 8, n_layers=1, hidden=4).float().log_prob(torch.rand(5, 1, 8, 8, dtype=torch.float64))
    assert flow.log_prob(torch.randint(0, 2, (2, 1, 8, 8))).dtype == torch.float64    # integers: converted
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(torch.full((2, 1, 8, 8), float("nan")))


def test_glow_levels_and_size_errors():
    assert fb.Glow(1, 8, 8, hidden=4).levels == 2 and fb.Glow(1, 6, 6, hidden=4).levels == 1
    assert fb.Glow(1, 8, 8, n_layers=3, hidden=4).n_layers == 3
    with pytest.raises(ValueError, match="divisible by 4"):
        fb.Glow(1, 6, 6, levels=2)
    with pytest.raises(ValueError, match="even height and width"):
        fb.Glow(1, 5, 6)


def test_glow_trains_on_digits_as_images_briefly():
    torch.set_default_dtype(torch.float32)
    digits = fb.data.load_digits()
    flow = fb.Glow(1, 8, 8, n_layers=1, hidden=8)
    model = fb.Flow(flow.base, [flow.transform, fb.Logit((1, 8, 8), alpha=0.05)])
    images = lambda x: digits.dequantize(x).reshape(-1, 1, 8, 8)
    x_val = images(digits.x_val)
    before = fb.evaluate_nll(model, x_val)
    fb.fit(model, digits.x_train, steps=30, batch_size=64, lr=3e-3, transform_batch=images, progress=False)
    assert all(bool(m.initialized) for m in model.modules() if isinstance(m, fb.ActNorm))
    assert fb.evaluate_nll(model, x_val) < before - 20


def test_image_layers_refuse_bad_masks_contexts_and_indices():
    """Issue 24: each of these was silent (truncated, broadcast) or failed inside torch."""
    mask = checkerboard(1, 4, 4)
    for bad, error, match in [(None, TypeError, "mask must be a .C, H, W. boolean tensor, got NoneType"),
                              ("abc", TypeError, "mask must be a .C, H, W. boolean tensor, got str"),
                              (torch.full((1, 4, 4), 0.5), ValueError, "mask must hold booleans")]:
        with pytest.raises(error, match=match):
            fb.ConvAffineCoupling(bad)
    with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got -1"):
        fb.ConvAffineCoupling(mask, context_features=-1)
    with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got 2.5"):
        fb.ConvAffineCoupling(mask, context_features=2.5)                # was silently 2
    layer = fb.ConvAffineCoupling(mask, hidden=4, context_features=2)
    with pytest.raises(ValueError, match="context has 3 rows, expected 2: one per image"):
        layer(torch.zeros(2, 1, 4, 4), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"mask has 2 channels \(shape \(2, 1, 1\)\), expected channels=4"):
        fb.GlowStep(4, mask=torch.tensor([True, False]).reshape(2, 1, 1))
    with pytest.raises(TypeError, match="index must hold integers .* got dtype torch.float"):
        fb.Partial(fb.Affine(2), [0.5, 1], features=4)                   # was silently [0, 1]
    with pytest.raises(ValueError, match="index must hold one or more distinct indices in 0..3, got \\[\\]"):
        fb.Partial(fb.Affine(2), [], features=4)
    with pytest.raises(TypeError, match="index must be a list or tensor of integers, got str"):
        fb.Partial(fb.Affine(2), "ab", features=4)
    with pytest.raises(TypeError, match="bijection must be a flowbook.Bijection, got Linear"):
        fb.Partial(nn.Linear(2, 2), [0, 1], features=4)
