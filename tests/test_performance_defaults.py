"""The speed-oriented internals: packed parameters, the level-by-level inverse, train-mode dropout."""
import copy

import pytest
import torch

import flowbook as fb
from _helpers import randomize


@pytest.mark.parametrize("factory", [lambda: fb.MAF(4, hidden=8), lambda: fb.RealNVP(4, hidden=8)])
def test_optimizer_sees_one_tensor_per_layer_and_the_same_count(factory):
    flow = factory()
    layers = [b for b in flow.transform if list(b.parameters())]
    assert len(list(flow.parameters())) == len(layers)
    # the count is that of the unpacked layers (weights and biases of every Linear)
    count = sum(m.weight.numel() + m.bias.numel() for m in flow.modules() if isinstance(m, torch.nn.Linear))
    assert sum(p.numel() for p in flow.parameters()) == count


def test_sublayer_weights_are_views_of_the_packed_parameter():
    layer = fb.MaskedAffineAutoregressive(3, hidden=8)
    with torch.no_grad():
        layer.made.output.bias.fill_(0.5)  # writes into the flat parameter
    assert (layer.made.flat == 0.5).sum() == 6  # the 2 x 3 output biases, inside the flat parameter
    x = torch.randn(4, 3)
    z, ladj = layer.inverse(x)
    assert not torch.equal(z, x)  # the write took effect
    for other in (copy.deepcopy(layer), layer.double()):
        assert torch.all(other.made.output.bias == 0.5)
        assert other.made.output.bias.dtype == other.made.flat.dtype
        with torch.no_grad():
            other.made.output.bias.fill_(0.25)
        assert torch.any(other.made.flat == 0.25)  # still aliased after copy / conversion


def test_gradients_reach_the_packed_parameter():
    flow = randomize(fb.RealNVP(4, hidden=8), 0.3)
    flow.log_prob(torch.randn(5, 4)).sum().backward()
    for p in flow.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["maf", "iaf"])
@pytest.mark.parametrize("degrees", [None, [3, 1, 2, 1, 3, 2], [1, 1, 2, 2, 2, 2]])
def test_level_by_level_inverse_matches_the_full_passes(mode, degrees):
    layer = randomize(fb.MaskedAffineAutoregressive(6, (16, 24), context=3, mode=mode, degrees=degrees)).double()
    v, c = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    seq = layer.forward if mode == "maf" else layer.inverse
    slow = seq(v, c)  # gradients enabled: the full-pass loop
    layer.passes = 0
    with torch.no_grad():
        fast = seq(v, c)  # only the hidden units each level needs
    assert layer.passes == layer.made.n_levels - 1
    assert torch.allclose(slow[0], fast[0], atol=1e-10) and torch.allclose(slow[1], fast[1], atol=1e-10)
    other = fb.reparametrized(layer)
    with torch.no_grad():
        rev = other.inverse(v, c) if mode == "maf" else other.forward(v, c)
    assert torch.allclose(rev[0], fast[0], atol=1e-10)


def test_dropout_is_train_mode_only():
    for flow in (fb.MAF(4, hidden=32, dropout=0.5), fb.RealNVP(4, hidden=32, dropout=0.5)):
        randomize(flow, 0.3)
        x = torch.randn(6, 4)
        flow.train()
        assert not torch.allclose(flow.log_prob(x), flow.log_prob(x))
        flow.eval()
        assert torch.equal(flow.log_prob(x), flow.log_prob(x))
        fb.check_bijection(flow.transform, torch.randn(5, 4), atol=1e-7)
    with pytest.raises(ValueError, match="dropout must be in"):
        fb.MADE(3, 8, dropout=1.0)


def test_cheap_dropout_has_the_law_of_inverted_dropout():
    torch.manual_seed(0)
    h = torch.ones(400, 500)
    out = fb.nets.dropout(h, 0.2)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.01           # each entry kept with probability 1 - p
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.8))  # and scaled by 1 / (1 - p)
    assert fb.nets.dropout(h, 0.2, training=False) is h and fb.nets.dropout(h, 0.0) is h
    net = fb.nets.mlp(3, 2, hidden=8, dropout=0.3)
    assert any(isinstance(m, fb.nets.Dropout) for m in net)
    with pytest.raises(ValueError, match="dropout must be in"):
        fb.nets.Dropout(1.5)


def test_one_mask_multiply_masks_every_made_layer():
    made = randomize(fb.MADE(5, hidden=(7, 6), context=2), 0.5)
    layers, _ = made._params()
    for (w, _), layer in zip(layers, [*made.hidden_layers, made.output]):
        assert torch.equal(w, layer.weight * layer.mask)
