"""Issue 23's homework script, as a student would write it: every line must just work."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import flowbook as fb


def test_fit_a_realnvp_from_a_dataloader_for_five_epochs_and_plot_the_history():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    fb.seed(0)
    data = fb.data.Moons().sample(512)
    loader = DataLoader(TensorDataset(data), batch_size=128, shuffle=True)
    flow = fb.RealNVP(2, n_layers=2, hidden=16)
    history = fb.fit(flow, loader, epochs=5, progress=False)
    assert len(history.train_loss) == 5 * 4          # 4 batches per epoch
    ax = history.plot()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert "History(" in repr(history) and "\n" not in repr(history)


@pytest.mark.parametrize("make", [
    lambda: fb.RealNVP(2, n_layers=2, hidden=8),
    lambda: fb.MAF(2, n_layers=2, hidden=8),
    lambda: fb.NSF(2, n_layers=2, hidden=8),
    lambda: fb.Glow(1, 8, 8, hidden=8),
])
def test_every_flow_samples_at_a_temperature(make):
    flow = make()
    x = flow.sample(16, temperature=0.7)
    assert x.shape[0] == 16 and torch.isfinite(x).all()


def test_a_dequantized_flow_samples_integers():
    flow = fb.Flow(fb.StandardNormal(4), [fb.Affine(4), fb.Logit(4, alpha=0.05)])
    model = fb.DequantizedFlow(flow, levels=17)
    x = model.sample(16, temperature=0.7)
    assert x.shape == (16, 4)
    assert ((x >= 0) & (x <= 16)).all() and torch.equal(x, x.round())


def test_glow_takes_images_as_images():
    images = torch.rand(5, 1, 8, 8)
    log_p = fb.Glow(1, 8, 8, hidden=8).log_prob(images)
    assert log_p.shape == (5,) and torch.isfinite(log_p).all()


class HandWrittenMADE(nn.Module):
    """A student's MADE for 3 features: one hidden layer, masks written out by hand."""

    def __init__(self, wrong=False):
        super().__init__()
        self.hidden, self.out = nn.Linear(3, 4), nn.Linear(4, 3)
        m_in = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.float)  # degrees 1,1,2,2
        m_out = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.float)
        if wrong:
            m_out[1, 2] = 1.0        # output 2 now sees hidden unit 3, which sees input 2: a leak
        self.register_buffer("m_in", m_in)
        self.register_buffer("m_out", m_out)

    def forward(self, x):
        h = torch.tanh(nn.functional.linear(x, self.hidden.weight * self.m_in, self.hidden.bias))
        return nn.functional.linear(h, self.out.weight * self.m_out, self.out.bias)


def test_check_autoregressive_names_the_wrong_mask_entry():
    fb.check_autoregressive(HandWrittenMADE(), 3)
    with pytest.raises(AssertionError, match=r"output 2.*input 2|\(2, 2\)"):
        fb.check_autoregressive(HandWrittenMADE(wrong=True), 3)


# ------------------------------------------------------------ the recipes of book/homework.ipynb (issue 26)
@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return fb.data.load_digits()


def test_binarized_digits_recipe_scores_bits_and_samples_back_to_0_1(digits):
    dtype = torch.get_default_dtype()          # the module-scoped digits were loaded before conftest set it
    x_train, x_test = (fb.data.binarize(x).to(dtype) for x in (digits.x_train, digits.x_test))
    fb.seed(0)
    maf = fb.MAF(64, n_layers=1, hidden=16)
    logit = fb.Logit(64)
    flow = fb.Flow(maf.base, [maf.transform, logit])
    history = fb.fit(flow, x_train, steps=300, batch_size=128, lr=3e-3, progress=False,
                     transform_batch=lambda x: fb.data.dequantize(x, levels=2))
    assert history.final_train < history.train_loss[0] - 0.5      # the first loss is after ActNorm's start
    y_test = fb.data.dequantize(x_test, levels=2, generator=torch.Generator().manual_seed(0))
    assert ((0 <= y_test) & (y_test < 1)).all()
    with torch.no_grad():
        log_p = flow.log_prob(y_test)
        w, logit_logabsdet = logit.inverse(y_test)          # the logit's log-det is part of log_prob
        assert torch.allclose(log_p, maf.log_prob(w) + logit_logabsdet)
        bpd = fb.data.bits_per_dim(log_p, 64, levels=2)
        # chapter 7's way (a DequantizedFlow of the 0/1 pixels, v = x + u = 2 y) gives the same number
        same = fb.data.bits_per_dim(fb.DequantizedFlow(flow, levels=2).log_density(2 * y_test), 64, levels=1)
        assert bpd == pytest.approx(same, abs=1e-10)
        x_new = (2 * flow.sample(16)).floor().clamp(0, 1)
    assert x_new.shape == (16, 64) and set(x_new.unique().tolist()) <= {0.0, 1.0}
    assert set(fb.DequantizedFlow(flow, levels=2).sample(8).unique().tolist()) <= {0, 1}


def test_glow_recipe_trains_on_nchw_digits_and_refuses_flat_rows(digits):
    images = digits.x_train[:256].reshape(-1, 1, 8, 8)
    fb.seed(0)
    glow = fb.Glow(1, 8, 8, n_layers=1, hidden=8)
    flow = fb.Flow(glow.base, [glow.transform, fb.Logit((1, 8, 8))])
    history = fb.fit(flow, images, steps=4, batch_size=64, lr=3e-3, progress=False,
                     transform_batch=digits.dequantize)
    assert len(history.train_loss) == 4
    y = digits.dequantize(digits.x_test[:10].reshape(-1, 1, 8, 8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        log_p = flow.log_prob(y)
        x_img = (17 * flow.sample(5)).floor().clamp(0, 16)
    assert log_p.shape == (10,) and torch.isfinite(log_p).all()
    assert x_img.shape == (5, 1, 8, 8) and set(x_img.unique().tolist()) <= set(range(17))
    assert digits.bits_per_dim(log_p) > 0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*reshape\(-1, 1, 8, 8\)"):
        flow.log_prob(y.reshape(10, 64))


def test_spline_ode_and_flow_matching_in_one_line_each():
    moons = fb.data.Moons()
    fb.seed(0)
    nsf = fb.NSF(2, n_layers=2, hidden=8)
    ode = fb.ODEFlow(fb.VectorField(2, hidden=8), 2, method="rk4", solver_steps=2)
    cnf = fb.Flow(fb.StandardNormal(2), [ode])
    field = fb.VectorField(2, hidden=16)
    for model in (nsf, cnf):
        history = fb.fit(model, moons, steps=5, batch_size=64, lr=3e-3, progress=False)
        assert len(history.train_loss) == 5
        assert model.sample(7).shape == (7, 2) and model.log_prob(moons.sample(7)).shape == (7,)
    history = fb.fit_flow_matching(field, moons, steps=5, batch_size=64, lr=3e-3, progress=False)
    assert len(history.train_loss) == 5
    with torch.no_grad():
        x = fb.rk4(field, torch.randn(7, 2), solver_steps=4)
        fm_flow = fb.Flow(fb.StandardNormal(2), [fb.ODEFlow(field, 2, method="rk4", solver_steps=4)])
        assert torch.isfinite(x).all() and torch.isfinite(fm_flow.log_prob(x)).all()


class DegreeMADE(nn.Module):
    """The page's MADE: one hidden layer, masks from degrees; ``leak=True`` is the >= bug."""

    def __init__(self, features, hidden, leak=False):
        super().__init__()
        d_in = torch.arange(1, features + 1)
        d_hid = torch.arange(hidden) % (features - 1) + 1
        sees = d_in[:, None] >= d_hid if leak else d_in[:, None] > d_hid
        self.register_buffer("m_in", (d_hid[:, None] >= d_in).float())
        self.register_buffer("m_out", sees.float())
        self.inp, self.out = nn.Linear(features, hidden), nn.Linear(hidden, features)

    def forward(self, x):
        h = torch.tanh(nn.functional.linear(x, self.inp.weight * self.m_in, self.inp.bias))
        return nn.functional.linear(h, self.out.weight * self.m_out, self.out.bias)


def test_made_from_degrees_passes_and_its_leak_is_named():
    assert fb.check_autoregressive(DegreeMADE(4, 12), 4).violations == []
    with pytest.raises(AssertionError, match=r"(?s)3 \(output, input\) pair.*\(output 1, input 1\)"
                                             r".*\(output 2, input 2\).*\(output 3, input 3\)") as info:
        fb.check_autoregressive(DegreeMADE(4, 12, leak=True), 4)
    assert "(output 4, input 4)" not in str(info.value)
