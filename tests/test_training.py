"""The training engine: one loop, data as users hold it, the same checks and diagnosis, History."""
import inspect
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import flowbook as fb
from flowbook.targets import U1


class Recorder(nn.Module):
    """A student's own model: ``log_prob(x[, context])`` and one parameter, no ``features``; it keeps its batches."""

    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))
        self.seen, self.contexts = [], []

    def log_prob(self, x, context=None):
        if self.training:
            self.seen.append(x.detach().clone())
            self.contexts.append(None if context is None else context.detach().clone())
        return -0.5 * (x - self.shift).pow(2).sum(1)


class Rows(Dataset):
    """A map-style Dataset that is not a TensorDataset."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def moons(n=256, seed=0):
    return fb.data.Moons().sample(n, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- data as users hold it
def test_a_dataloader_for_five_epochs_uses_its_batches_as_given():
    x = torch.arange(40.0).reshape(20, 2)
    loader = DataLoader(TensorDataset(x), batch_size=8)          # 8 + 8 + 4 rows, in order
    model = Recorder()
    hist = fb.fit(model, loader, epochs=5, progress=False)
    assert hist.steps == 5 * 3 and [len(b) for b in model.seen] == [8, 8, 4] * 5
    assert torch.equal(torch.cat(model.seen[:3]), x)


def test_a_realnvp_learns_from_a_dataloader():
    fb.seed(0)
    x = moons(512)
    flow = fb.RealNVP(2, n_layers=4, hidden=32)
    before = fb.evaluate_nll(flow, x)
    fb.fit(flow, DataLoader(TensorDataset(x), batch_size=64, shuffle=True), epochs=5, lr=3e-3, progress=False)
    assert fb.evaluate_nll(flow, DataLoader(TensorDataset(x), batch_size=100)) < before - 0.3


def test_a_dataset_is_read_in_shuffled_batches():
    x = torch.arange(26.0).reshape(13, 2)
    model = Recorder()
    hist = fb.fit(model, Rows(x), epochs=2, batch_size=5, progress=False, generator=torch.Generator().manual_seed(1))
    assert hist.steps == 2 * 3 and [len(b) for b in model.seen] == [5, 5, 3] * 2
    first = torch.cat(model.seen[:3])
    assert sorted(first[:, 0].tolist()) == x[:, 0].tolist() and not torch.equal(first, x)


def test_context_tuples_reach_a_conditional_flow():
    fb.seed(0)
    x, c = moons(256), torch.randn(256, 1)
    model = Recorder()
    fb.fit(model, DataLoader(TensorDataset(x, c), batch_size=64), epochs=1, progress=False)
    assert all(torch.equal(b, x[64 * i:64 * (i + 1)]) and torch.equal(k, c[64 * i:64 * (i + 1)])
               for i, (b, k) in enumerate(zip(model.seen, model.contexts)))
    flow = fb.MAF(2, n_layers=2, hidden=16, context_features=1)
    hist = fb.fit(flow, DataLoader(TensorDataset(x, c), batch_size=64, shuffle=True), epochs=3, progress=False)
    assert hist.steps == 12 and math.isfinite(hist.final_train)
    with pytest.raises(ValueError, match="pass a context"):       # the context really is required
        fb.fit(flow, DataLoader(TensorDataset(x), batch_size=64), steps=1, progress=False)


def test_a_tensor_is_shuffled_once_per_epoch_and_walked_without_replacement():
    x = torch.arange(20.0).reshape(20, 1).repeat(1, 2)
    model = Recorder()
    hist = fb.fit(model, x, epochs=3, batch_size=7, progress=False, generator=torch.Generator().manual_seed(0))
    assert hist.steps == 3 * 3 and [len(b) for b in model.seen] == [7, 7, 6] * 3
    epochs = [torch.cat(model.seen[3 * e:3 * e + 3])[:, 0] for e in range(3)]
    for rows in epochs:                                            # every row exactly once per epoch
        assert sorted(rows.tolist()) == list(range(20))
    assert not torch.equal(epochs[0], epochs[1])                    # a new order each epoch
    again = Recorder()
    fb.fit(again, x, epochs=3, batch_size=7, progress=False, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(model.seen, again.seen))  # the generator fixes the order


def test_fit_on_a_custom_module_without_features():
    model = Recorder()
    assert not hasattr(model, "features")
    fb.fit(model, torch.full((64, 3), 2.0), steps=200, lr=0.05, progress=False)
    assert abs(model.shift.item() - 2.0) < 0.05
    assert math.isfinite(fb.evaluate_nll(model, torch.ones(10, 3)))


def test_epochs_and_steps_conflict_and_densities_have_no_epochs():
    with pytest.raises(ValueError, match="give steps= or epochs=, not both"):
        fb.fit(fb.RealNVP(2), moons(), steps=10, epochs=2, progress=False)
    with pytest.raises(ValueError, match="not both"):
        fb.fit_flow_matching(fb.VectorField(2, hidden=8), moons(), steps=10, epochs=2, progress=False)
    with pytest.raises(ValueError, match="epochs= needs a finite data set.*Density2D.*pass steps="):
        fb.fit(fb.RealNVP(2), fb.data.Moons(), epochs=2, progress=False)
    with pytest.raises(ValueError, match="fit_reverse_kl takes no epochs: the flow learns from its own samples"):
        fb.fit_reverse_kl(fb.RealNVP(2), U1(), epochs=2, progress=False)
    with pytest.raises(ValueError, match="fit_reverse_kl takes no val_data"):
        fb.fit_reverse_kl(fb.RealNVP(2), U1(), val_data=moons(), progress=False)


def test_a_dataloader_refuses_batch_size_and_generator():
    loader = DataLoader(TensorDataset(moons()), batch_size=32)
    with pytest.raises(ValueError, match=r"batch_size= does not apply to a DataLoader.*DataLoader\(..., batch_size"):
        fb.fit(fb.RealNVP(2), loader, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="generator= does not apply to a DataLoader"):
        fb.fit(fb.RealNVP(2), loader, generator=torch.Generator(), progress=False)


@pytest.mark.parametrize("train", [
    lambda data: fb.fit(fb.RealNVP(2), data, steps=2, progress=False),
    lambda data: fb.fit_flow_matching(fb.VectorField(2, hidden=8), data, steps=2, progress=False),
])
def test_numpy_and_unknown_data_are_refused_with_the_fix(train):
    with pytest.raises(TypeError, match=r"data is a NumPy array; convert it with torch.as_tensor\(data\)"):
        train(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(TypeError, match=r"data must be a torch.Tensor .*Density2D.*Dataset or a DataLoader, "
                                        r"got dict"):
        train({"x": torch.zeros(10, 2)})


@pytest.mark.parametrize("train", [
    lambda **kw: fb.fit(fb.RealNVP(2), moons(), progress=False, **kw),
    lambda **kw: fb.fit_reverse_kl(fb.RealNVP(2), U1(), progress=False, **kw),
    lambda **kw: fb.fit_flow_matching(fb.VectorField(2, hidden=8), moons(), progress=False, **kw),
    lambda **kw: fb.RBM(4, 2).fit(torch.ones(8, 4), progress=False, **kw),
])
def test_every_trainer_checks_its_counts_the_same_way(train):
    with pytest.raises(ValueError, match=r"steps must be a whole number >= 1, got 2.5"):
        train(steps=2.5)
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 0"):
        train(steps=2, lr=0)
    with pytest.raises(ValueError, match=r"clip_grad must be a finite number > 0 \(or None\), got -1"):
        train(steps=2, clip_grad=-1)


def test_the_three_fits_share_one_clip_grad_default():
    defaults = {f.__name__: inspect.signature(f).parameters["clip_grad"].default
                for f in (fb.fit, fb.fit_reverse_kl, fb.fit_flow_matching)}
    assert set(defaults.values()) == {fb.engine.CLIP_GRAD}, defaults


def test_nan_data_is_named_as_the_data_in_every_fit():
    bad = moons(64)
    bad[5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"data contains 1 NaN or infinite value\(s\) \(first in row 5\)"):
        fb.fit(fb.RealNVP(2), bad, steps=2, progress=False)
    with pytest.raises(ValueError, match=r"data \(batch 0 of the DataLoader\) contains 1 NaN"):
        fb.fit(fb.RealNVP(2), DataLoader(TensorDataset(bad), batch_size=64), steps=2, progress=False)
    with pytest.raises(ValueError, match=r"data contains 1 NaN"):
        fb.fit_flow_matching(fb.VectorField(2, hidden=8), bad, steps=2, progress=False)
    with pytest.raises(ValueError, match=r"context contains 1 NaN"):
        fb.fit_reverse_kl(fb.RealNVP(2, context_features=2), U1(), context=bad, steps=2, progress=False)
    # reverse KL has no data: its "data" is the target, and a NaN there is named, not blamed on lr
    with pytest.raises(FloatingPointError, match=r"the target's log-density is NaN") as info:
        fb.fit_reverse_kl(fb.RealNVP(2), lambda x: x[:, 0] * float("nan"), steps=2, progress=False)
    assert "smaller lr" not in str(info.value)


# ----------------------------------------------------------------------------- History
def test_history_repr_and_to_dict():
    h = fb.History(train_loss=[2.0, 1.0], val_step=[2], val_loss=[1.5], best_step=2, best_val=1.5, seconds=3.21)
    assert repr(h) == "History(steps=2, final_train=1.500, best_val=1.500 at step 2, 3.2 s)"
    d = h.to_dict()
    assert d["train_loss"] == [2.0, 1.0] and d["best_step"] == 2 and d["val_loss"] == [1.5]
    hist = fb.fit(fb.RealNVP(2, n_layers=2, hidden=8), moons(), steps=30, val_data=moons(100, 1), eval_every=10,
                  patience=5, progress=False)
    line = repr(hist)
    assert "\n" not in line and line.startswith("History(steps=30, final_train=") and "at step" in line
    rev = fb.fit_reverse_kl(fb.RealNVP(2, n_layers=2, hidden=8), U1(), steps=5, batch_size=16, progress=False)
    assert isinstance(rev, fb.History) and repr(rev).startswith("ReverseKLHistory(steps=5, final_elbo=")
    assert len(rev.to_dict()["elbo"]) == 5


def test_history_plot_marks_the_kept_step():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fb.seed(0)
    hist = fb.fit(fb.RealNVP(2, n_layers=2, hidden=8), moons(), steps=60, val_data=moons(100, 1), eval_every=20,
                  progress=False)
    ax = hist.plot()
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    kept = [ln for ln in ax.get_lines() if ln.get_label() == f"kept: step {hist.best_step}"]
    assert len(kept) == 1 and kept[0].get_xdata()[0] == hist.best_step
    assert any(list(ln.get_xdata()) == hist.val_step for ln in ax.get_lines())
    fig, given = plt.subplots()
    assert hist.plot(ax=given) is given
    rev = fb.fit_reverse_kl(fb.RealNVP(2, n_layers=2, hidden=8), U1(), steps=5, batch_size=16, progress=False)
    ax = rev.plot()
    assert "ELBO" in ax.get_ylabel() and list(ax.get_lines()[0].get_ydata()) == rev.elbo
    plt.close("all")


# ----------------------------------------------------------------------------- the other loops
def test_flow_matching_validation_and_early_stopping():
    fb.seed(0)
    field = fb.VectorField(2, hidden=16)
    hist = fb.fit_flow_matching(field, moons(512), epochs=4, batch_size=64, val_data=moons(128, 1), eval_every=4,
                                patience=2, progress=False)
    assert hist.val_step and hist.best_step in hist.val_step and hist.steps <= 4 * 8


def test_rbm_trains_through_the_engine_in_epochs():
    gen = torch.Generator().manual_seed(0)
    data = (torch.rand(90, 6, generator=gen) < 0.3).double()
    rbm = fb.RBM(6, 3).double()
    hist = rbm.fit(data, epochs=3, batch_size=40, val_data=data[:20], eval_every=3, progress=False, generator=gen)
    assert isinstance(hist, fb.RBMHistory) and hist.steps == 3 * 3 == len(hist.reconstruction)
    assert hist.val_step == [3, 6, 9] and hist.best_step is not None


def test_local_posterior_elbo_leaves_the_vae_gradients_alone():
    vae = fb.VAE(fb.GaussianEncoder(4, 2, hidden=8), fb.BernoulliDecoder(2, 4, hidden=8))
    fb.latent.local_posterior_elbo(vae, torch.ones(3, 4), steps=3, eval_n=4)
    assert all(p.grad is None for p in vae.parameters())


def test_an_image_flow_trains_on_images_and_refuses_flat_rows():
    glow = fb.Glow(1, 8, 8, hidden=8)
    hist = fb.fit(glow, torch.rand(64, 1, 8, 8), epochs=1, batch_size=32, val_data=torch.rand(16, 1, 8, 8),
                  progress=False)
    assert hist.steps == 2 and hist.best_step == 2
    with pytest.raises(ValueError, match=r"data must have shape \(batch, 1, 8, 8\).*data.reshape\(-1, 1, 8, 8\)"):
        fb.fit(glow, torch.rand(64, 64), steps=1, progress=False)


def test_the_book_build_hides_every_progress_bar(monkeypatch):
    """TQDM_DISABLE=1 (set by scripts/build_book.sh) hides the bars, also tqdm's notebook widget."""
    import tqdm.auto
    import tqdm.notebook
    from flowbook.runtime import progress_bar
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.notebook.tqdm)   # what a notebook kernel gets
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(range(3), True).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert not progress_bar(range(3), True).disable


class _Rows(Dataset):
    def __init__(self, n, item=lambda: torch.randn(2)):
        self.n, self.item = n, item

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.item()


def test_fit_and_evaluate_nll_refuse_empty_datasets_and_loaders():
    """Issue 24: an empty DataLoader made fit loop forever (steps=) or take 0 steps (epochs=); an empty
    Dataset failed inside torch's sampler; evaluate_nll divided by zero."""
    flow = fb.RealNVP(2, n_layers=2, hidden=4)
    for data in (_Rows(0), DataLoader(_Rows(0), batch_size=4)):
        for schedule in ({"steps": 2}, {"epochs": 1}):
            with pytest.raises(ValueError, match=r"data is empty \((_Rows|DataLoader) of length 0\)"):
                fb.fit(flow, data, progress=False, **schedule)
        with pytest.raises(ValueError, match=r"x is empty \((_Rows|DataLoader) of length 0\)"):
            fb.evaluate_nll(flow, data)
        with pytest.raises(ValueError, match=r"val_data is empty"):
            fb.fit(flow, torch.randn(8, 2), steps=1, val_data=data, progress=False)
    with pytest.raises(ValueError, match=r"data is empty \(shape \(0, 1, 4, 4\)\)"):
        fb.fit(fb.Glow(1, 4, 4, n_layers=1, hidden=4), torch.zeros(0, 1, 4, 4), steps=1, progress=False)


def test_fit_names_bad_models_loaders_generators_and_transforms():
    flow, x = fb.RealNVP(2, n_layers=2, hidden=4), torch.randn(8, 2)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module with a log_prob.* got str"):
        fb.fit("flow", x, steps=1, progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module with a log_prob.* got Linear"):
        fb.evaluate_nll(nn.Linear(2, 2), x)
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        fb.fit(flow, x, steps=1, generator=0, progress=False)
    with pytest.raises(TypeError, match="transform_batch must be a function of a batch, got int"):
        fb.fit(flow, x, steps=1, transform_batch=3, progress=False)
    with pytest.raises(ValueError, match=r"data is a TensorDataset of 3 tensors; expected \(x,\) or \(x, context\)"):
        fb.fit(flow, TensorDataset(x, x, x), steps=1, progress=False)
    dicts = DataLoader(_Rows(4, lambda: {"x": torch.randn(2)}), batch_size=2)
    with pytest.raises(TypeError, match=r"got dict of length 1 \(let the Dataset return x or \(x, context\), not a dict\)"):
        fb.fit(flow, dicts, steps=1, progress=False)


def test_optimize_checks_its_arguments():
    """Issue 24: lr=0 and steps=-1 ran silently, steps=2.5, a list of batches, a vector loss, a short
    iterator, eval_every=0 and model=None failed inside Python or torch."""
    import itertools
    w = torch.zeros(2, requires_grad=True)
    run = lambda loss=lambda _: w.sum(), batches=itertools.repeat(None), steps=2, **kw: fb.optimize(  # noqa: E731
        kw.pop("model", None), loss, batches, steps, **{"params": [w], "progress": False, **kw})
    for kw, error, match in [({"steps": -1}, ValueError, "steps must be a whole number >= 0, got -1"),
                             ({"steps": 2.5}, ValueError, "steps must be a whole number >= 0, got 2.5"),
                             ({"lr": 0}, ValueError, "lr must be a finite number > 0, got 0"),
                             ({"clip_grad": 0}, ValueError, "clip_grad must be a finite number > 0"),
                             ({"eval_every": 0, "validate": lambda: 1.0}, ValueError, "eval_every must be"),
                             ({"params": None}, ValueError, "model=None needs params="),
                             ({"batches": iter([None])}, ValueError, "batches ran out after 1 batches; expected "
                                                                     "at least steps=2"),
                             ({"loss": lambda _: w * 1}, TypeError, "loss.batch. must return a scalar tensor"),
                             ({"loss": lambda _: (w.sum(), {"foo": 1.0})}, ValueError,
                              "loss returned the extra 'foo', but History has no list 'foo'")]:
        with pytest.raises(error, match=match):
            run(**kw)
    assert run(batches=[None, None]).steps == 2          # any iterable of batches
    assert run(steps=0).steps == 0                       # no step: nothing to do
    model = nn.Linear(1, 1)
    with pytest.raises(FloatingPointError, match="the validation loss is NaN after step 1"):
        fb.optimize(model, lambda _: model.weight.sum(), itertools.repeat(None), 2, validate=lambda: math.nan,
                    eval_every=1, progress=False)


@pytest.mark.parametrize("lr_schedule, total", [("constant", lambda lr, T: lr * T),
                                                 ("cosine", lambda lr, T: lr * (T + 1) / 2),
                                                 ("anneal", lambda lr, T: lr * (0.8 * T + (0.2 * T + 1) / 2))])
def test_lr_schedule_sets_the_size_of_every_adam_step(lr_schedule, total):
    """With a constant gradient every Adam step moves by the step's learning rate, so the path length is
    the sum of the schedule: lr T (constant), lr/2 sum_t (1 + cos(pi t / T)) = lr (T + 1) / 2 (cosine), and
    0.8 lr T plus the cosine over the last T/5 steps (anneal)."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    fb.optimize(None, lambda _: w.sum(), itertools.repeat(None), 40, params=[w], lr=0.01,
                lr_schedule=lr_schedule, progress=False)
    assert -w.item() == pytest.approx(total(0.01, 40), rel=1e-6)


def test_fit_decays_its_learning_rate_by_default_and_refuses_unknown_schedules():
    assert inspect.signature(fb.fit).parameters["lr_schedule"].default == "anneal"
    flow = fb.RealNVP(2, n_layers=1, hidden=4)
    for bad in ("linear", None, 1):
        with pytest.raises(ValueError, match="lr_schedule must be one of"):
            fb.fit(flow, torch.randn(20, 2), steps=2, lr_schedule=bad, progress=False)
