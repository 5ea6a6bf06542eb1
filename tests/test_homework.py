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
