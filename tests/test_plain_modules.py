"""The model code is plain PyTorch: a hand-written conditioner is a normal submodule, every
parameter belongs to the layer that uses it, the ready-made flows are ``Flow`` subclasses, and
``fit`` leaves torch's global thread setting as it found it."""
import copy
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import flowbook as fb
from _helpers import randomize

ROOT = Path(__file__).resolve().parents[1]


def my_net(n_in, n_out):
    return nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.Linear(16, n_out))


def homework_layer():
    torch.manual_seed(0)
    return fb.AffineCoupling(fb.half_mask(4), net=my_net(2, 4))


def test_a_hand_written_conditioner_survives_dtype_device_copy_and_checks():
    layer = homework_layer()
    z = torch.randn(6, 4)
    x, ladj = layer(z)
    assert not torch.allclose(x, z)  # a random net: not the identity
    fb.check_bijection(layer, z, atol=1e-9)
    double = copy.deepcopy(layer).double()
    assert all(p.dtype == torch.float64 for p in double.parameters())
    assert torch.allclose(double(z.double())[0], x.double(), atol=1e-6)
    moved = copy.deepcopy(layer).to(fb.device())
    assert all(p.device.type == fb.device().type for p in moved.parameters())
    clone = homework_layer()
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)
    clone.load_state_dict(layer.state_dict())
    assert torch.equal(clone(z)[0], x)
    assert set(layer.state_dict()) >= {"net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"}


def test_the_conditioner_owns_its_parameters_and_edits_take_effect():
    layer = fb.AffineCoupling(fb.half_mask(4), hidden=8)
    n_net = sum(p.numel() for p in layer.net.parameters())
    assert n_net == sum(p.numel() for p in layer.parameters()) > 0
    z = torch.randn(5, 4)
    before = layer(z)[0]
    layer.net[-1] = nn.Linear(8, 4)  # replace the (zero) last layer: the map must change
    assert not torch.allclose(layer(z)[0], before)
    made = fb.MaskedAffineAutoregressive(3, hidden=8).made
    with torch.no_grad():
        made.output.bias.fill_(0.5)
    assert torch.allclose(made(torch.randn(2, 3)), torch.full((2, 2, 3), 0.5))


def test_freezing_a_conditioner_freezes_it():
    flow = fb.Flow(fb.StandardNormal(4), [homework_layer(), fb.Affine(4)])
    coupling = flow.transform[0]
    coupling.net.requires_grad_(False)
    frozen = [p.clone() for p in coupling.net.parameters()]
    fb.fit(flow, torch.randn(300, 4) * 2 + 1, steps=20, lr=1e-2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(frozen, coupling.net.parameters()))
    assert flow.transform[1].shift.abs().sum() > 0  # the rest trained


def test_every_parameter_belongs_to_a_linear_layer_or_a_named_vector():
    """No packed or aliased parameters: the optimizer sees each layer's own tensors."""
    for flow in (fb.MAF(4, hidden=8), fb.RealNVP(4, hidden=8), fb.IAF(4, hidden=8)):
        linear = [m for m in flow.modules() if isinstance(m, nn.Linear)]
        norms = [m for m in flow.modules() if isinstance(m, fb.ActNorm)]       # a log-scale and a shift each
        assert len(list(flow.parameters())) == 2 * len(linear) + 2 * len(norms)
        assert all(p is m.log_scale or p is m.shift for m in norms for p in m.parameters())
        grads = randomize(flow, 0.3).log_prob(torch.randn(5, 4)).sum()
        grads.backward()
        assert all(p.grad is not None for p in flow.parameters())


def test_no_speed_machinery_in_the_package():
    pattern = re.compile(r"_version\b|data_ptr\(|FlatParameters|run_packed|__dict__\[")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "flowbook").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_ready_made_flows_are_flow_subclasses():
    for cls, args in ((fb.NICE, (2,)), (fb.RealNVP, (2,)), (fb.MAF, (2,)), (fb.IAF, (2,)),
                      (fb.MultiscaleRealNVP, ())):
        flow = cls(*args, hidden=8)
        assert isinstance(flow, fb.Flow) and isinstance(flow, cls)
    assert not isinstance(fb.IAF(2), fb.MAF)


def test_latent_is_the_inverse_and_calling_a_flow_is_log_prob():
    flow = randomize(fb.RealNVP(3, hidden=8), 0.3)
    x = torch.randn(4, 3)
    assert torch.equal(flow.latent(x), flow.transform.inverse(x)[0])
    assert torch.equal(flow(x), flow.log_prob(x))


def test_fit_restores_the_thread_setting_and_picks_one_thread_for_small_models():
    torch.set_num_threads(2)
    seen = []

    class Spy(fb.Affine):
        def inverse(self, x, context=None):
            seen.append(torch.get_num_threads())
            return super().inverse(x, context)

    flow = fb.Flow(fb.StandardNormal(2), [Spy(2)])
    fb.fit(flow, torch.randn(100, 2), steps=3, progress=False)
    assert set(seen) == {1} and torch.get_num_threads() == 2
    seen.clear()
    fb.fit(flow, torch.randn(100, 2), steps=3, threads=2, progress=False)
    assert set(seen) == {2} and torch.get_num_threads() == 2
    big = fb.MAF(64, hidden=512)
    assert fb.train.default_threads(big) is None  # a large model keeps torch's setting
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        with fb.threads(0):
            pass


def test_vocabulary_is_one_name_per_idea():
    """The constructors take ``features`` and ``context_features``, never the old names."""
    import inspect
    old = {"dim", "context_dim", "scale_bound", "n_visible", "n_hidden", "in_features", "out_features", "num",
           "n_samples", "zero_init_last"}
    allowed = {fb.mlp: {"in_features", "out_features"}, fb.MaskedLinear.__init__: {"in_features", "out_features"}}
    for name in fb.__all__:
        obj = getattr(fb, name)
        for fn in (obj.__init__ if isinstance(obj, type) else obj,) if callable(obj) else ():
            try:
                params = set(inspect.signature(fn).parameters)
            except (TypeError, ValueError):
                continue
            bad = params & old - allowed.get(fn, set())
            assert not bad, f"{name} takes {bad}"


# ----------------------------------------------------------------------------- the chapters
PRIVATE_SOURCE = re.compile(r"getsource\([^)]*\._[A-Za-z]")
PRIVATE_ATTRIBUTE = re.compile(r"\b(?:fb|flowbook|fbp)(?:\.\w+)*\._[A-Za-z]\w*|\.(?!__)_[a-z]\w*\(")


def notebook_code(path):
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name)
def test_chapters_show_and_use_only_public_names(path):
    code = notebook_code(path)
    assert not PRIVATE_SOURCE.findall(code), "a listing prints a private name"
    assert not PRIVATE_ATTRIBUTE.findall(code), "the chapter uses a private name of flowbook"


def test_the_public_name_check_can_fail():
    assert PRIVATE_SOURCE.findall("print(inspect.getsource(fb.AffineCoupling._law))")
    assert PRIVATE_ATTRIBUTE.findall("g = fb.coupling._Coupling")
    assert PRIVATE_ATTRIBUTE.findall("student._grad(data, s, f)")
    assert not PRIVATE_ATTRIBUTE.findall("print(inspect.getsource(fb.AffineCoupling.forward)); x.__class__")


def test_every_public_bijection_documents_an_example():
    missing = [name for name in fb.__all__ if isinstance(getattr(fb, name), type)
               and issubclass(getattr(fb, name), fb.Bijection) and name not in ("Bijection", "Coupling")
               and "Example:" not in (getattr(fb, name).__doc__ or "")]
    assert missing == []
