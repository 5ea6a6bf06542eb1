"""The GPU path: flows, training and a chapter on CUDA, and the chapters' use of ``fb.device()``.

The tests marked ``cuda`` run where ``torch.cuda.is_available()`` and are skipped, saying why,
elsewhere. ``FLOWBOOK_TEST_DEVICE=cpu pytest -m cuda tests/test_gpu.py`` dry-runs them on the CPU
(it checks the tests themselves, not the GPU). The chapter check at the end runs everywhere.
"""
import copy
import glob
import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import flowbook as fb
from _device_check import models_off_device, trains

DEVICE = torch.device(os.environ.get("FLOWBOOK_TEST_DEVICE", "cuda"))
ON_DEVICE = DEVICE.type != "cuda" or torch.cuda.is_available()
requires_device = pytest.mark.skipif(not ON_DEVICE,
                                     reason="no CUDA device: the GPU path is tested only where there is one")
BOOK = pathlib.Path(__file__).resolve().parent.parent / "book"

FLOWS = {   # every ready-made flow, small
    "NICE": lambda: fb.NICE(4, n_layers=2, hidden=16),
    "RealNVP": lambda: fb.RealNVP(4, n_layers=2, hidden=16),
    "MultiscaleRealNVP": lambda: fb.MultiscaleRealNVP(hidden=16),
    "MAF": lambda: fb.MAF(4, n_layers=2, hidden=16),
    "IAF": lambda: fb.IAF(4, n_layers=2, hidden=16),
    "NSF": lambda: fb.NSF(4, n_layers=2, hidden=16),
    "NSFCoupling": lambda: fb.NSFCoupling(4, n_layers=2, hidden=16),
    "Glow": lambda: fb.Glow(1, 8, 8, n_layers=1, hidden=8),
}


@pytest.fixture
def exact_float32():
    """Full float32 on the GPU: cuDNN's convolutions may otherwise use TF32 (10-bit mantissas)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def on(module_or_tensor) -> bool:
    tensors = list(module_or_tensor.parameters()) if isinstance(module_or_tensor, torch.nn.Module) \
        else [module_or_tensor]
    return all(t.device.type == DEVICE.type for t in tensors)


def plain_history(history) -> bool:
    """A History holds Python numbers, not tensors (on any device)."""
    return all(isinstance(v, float) and math.isfinite(v) for v in history.train_loss)


@pytest.mark.cuda
@requires_device
@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.usefixtures("exact_float32")
def test_log_prob_on_the_gpu_equals_the_cpu(name):
    fb.seed(0)
    flow = fb.randomize_parameters(FLOWS[name](), scale=0.1)
    with torch.no_grad():
        x = flow.sample(16)
        cpu = flow.log_prob(x)                           # also runs any data-dependent initialization
        gpu = copy.deepcopy(flow).to(DEVICE).log_prob(x.to(DEVICE))
    assert gpu.device.type == DEVICE.type and torch.isfinite(cpu).all()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4 * cpu.abs().max().item())


@pytest.mark.cuda
@requires_device
@pytest.mark.parametrize("name", ["RealNVP", "MAF", "NSF", "Glow"])
def test_samples_live_on_the_flows_device(name):
    flow = FLOWS[name]().to(DEVICE)
    x = flow.sample(8)
    x2, log_q = flow.sample_and_log_prob(8)
    assert x.device.type == x2.device.type == log_q.device.type == DEVICE.type


@pytest.mark.cuda
@requires_device
def test_targets_and_densities_evaluate_on_the_points_device():
    z = 3 * torch.randn(256, 2)
    for target in [T() for T in fb.targets.ENERGIES.values()] + [fb.targets.Bimodal(), fb.data.Ring()]:
        log_p = getattr(target, "log_unnormalized", None) or target.log_prob
        on_gpu = log_p(z.to(DEVICE))
        assert on(on_gpu)
        torch.testing.assert_close(on_gpu.cpu(), log_p(z), rtol=1e-5, atol=1e-5)
    c = torch.rand(256, 1)
    wave = fb.targets.Wave()
    torch.testing.assert_close(wave.log_unnormalized(z.to(DEVICE), c.to(DEVICE)).cpu(), wave.log_unnormalized(z, c))


@pytest.mark.cuda
@requires_device
def test_fit_and_fit_reverse_kl_train_on_the_gpu():
    fb.seed(0)
    flow = fb.RealNVP(2, n_layers=2, hidden=16).to(DEVICE)
    data, val = fb.data.Moons().sample(512), fb.data.Moons().sample(256)        # CPU tensors: fit moves them
    history = fb.fit(flow, data, steps=6, batch_size=64, progress=False, val_data=val)
    assert len(history.train_loss) == 6 and plain_history(history) and on(flow)
    for target in (fb.targets.U1(), fb.targets.Bimodal()):                      # energies and a mixture
        planar = fb.Flow(fb.StandardNormal(2), [fb.Planar(2) for _ in range(2)]).to(DEVICE)
        history = fb.fit_reverse_kl(planar, target, steps=4, batch_size=64, progress=False)
        assert len(history.train_loss) == 4 and plain_history(history) and on(planar)
    assert on(planar.sample(4)) and math.isfinite(fb.evaluate_elbo(planar, target, n=256).elbo)


@pytest.mark.cuda
@requires_device
def test_fit_flow_matching_and_the_integrators_on_the_gpu():
    fb.seed(0)
    field = fb.VectorField(2, hidden=16).to(DEVICE)
    for pairing in ("independent", "ot"):
        history = fb.fit_flow_matching(field, fb.data.Moons(), steps=4, batch_size=32, pairing=pairing,
                                       progress=False)
        assert len(history.train_loss) == 4 and plain_history(history) and on(field)
    z = torch.randn(64, 2, device=DEVICE)
    pairs = fb.reflow_pairs(field, z, solver_steps=4)
    assert on(pairs[0]) and on(pairs[1])
    assert len(fb.fit_flow_matching(field, pairs, steps=3, batch_size=16, progress=False).train_loss) == 3
    with torch.no_grad():
        for integrate in (fb.euler, fb.rk4):
            assert on(integrate(field, z, solver_steps=3)) and on(integrate(field, z, solver_steps=3, trajectory=True))
    assert math.isfinite(fb.straightness(field, z, solver_steps=5))
    assert math.isfinite(fb.energy_distance(fb.euler(field, z, solver_steps=2), z))
    z_paired, x_paired = fb.ot_pairing(z, z.flip(0))
    assert on(z_paired) and on(x_paired)
    cnf = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(field, 2, method="rk4", solver_steps=2)]).to(DEVICE)
    assert on(cnf.log_prob(z)) and torch.isfinite(cnf.log_prob(z)).all()


@pytest.mark.cuda
@requires_device
@pytest.mark.parametrize("chapter", ["11_flow_matching"])
def test_a_chapter_executes_with_cuda(chapter):
    pytest.importorskip("nbval")
    if DEVICE.type != "cuda":
        pytest.skip("the chapter runs on the CPU in the book build; here only with a CUDA device")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                             "--nbval-current-env", str(BOOK / f"{chapter}.ipynb")],
                            capture_output=True, text=True, timeout=600, cwd=BOOK.parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# --- every chapter that trains puts its models on `device = fb.device()` (runs everywhere) ---

CHAPTERS = sorted(glob.glob(str(BOOK / "*.ipynb")))
NOT_YET = {}   # chapter name -> why it does not comply yet; strict: the test fails once it complies


@pytest.mark.parametrize("path", [pytest.param(p, id=pathlib.Path(p).name, marks=pytest.mark.xfail(
    strict=True, reason=NOT_YET[pathlib.Path(p).name]) if pathlib.Path(p).name in NOT_YET else ())
    for p in CHAPTERS])
def test_chapters_that_train_put_their_models_on_the_device(path):
    assert models_off_device(path) == [], (
        f"{pathlib.Path(path).name} trains models that never go to `device = fb.device()`: set it in the "
        f"setup cell and build them with .to(device) (see chapter 5)")


def _notebook(tmp_path, *cells):
    import json
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                     "source": src} for src in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_the_device_check_fails_on_a_model_left_on_the_cpu(tmp_path):
    setup = "import flowbook as fb\ndevice = fb.device()\ndata = fb.data.Moons()"
    left = _notebook(tmp_path, setup, "flow = fb.RealNVP(2)\nfb.fit(flow, data, steps=5)")
    assert trains(left) and models_off_device(left) == ["code cell 1, line 2: fb.fit(flow, ...)"]
    for model_code in ("flow = fb.RealNVP(2).to(device)\nfb.fit(flow, data)",
                       "flow = fb.RealNVP(2)\nflow.to(device)\nfb.fit(flow, data)",
                       "def make():\n    return fb.RealNVP(2).to(device)\nfb.fit(make(), data)",
                       "def train(f):\n    fb.fit(f, data)\ntrain(fb.RealNVP(2).to(device))",
                       "m = {}\nm['a'] = fb.RealNVP(2).to(device)\nm['a'].history = fb.fit(m['a'], data)\n"
                       "fb.fit_flow_matching(m['a'], data)"):
        assert models_off_device(_notebook(tmp_path, setup, model_code)) == [], model_code
    # a later rebinding to a CPU model, or a function called once with a CPU model, is caught
    rebound = "flow = fb.RealNVP(2).to(device)\nflow = fb.RealNVP(2)\nfb.fit_reverse_kl(flow, data)"
    assert len(models_off_device(_notebook(tmp_path, setup, rebound))) == 1
    called = "def train(f):\n    fb.fit(f, data)\ntrain(fb.RealNVP(2).to(device))\ntrain(fb.RealNVP(2))"
    assert len(models_off_device(_notebook(tmp_path, setup, called))) == 1
    assert not trains(_notebook(tmp_path, setup))
