"""check_autoregressive: the order of any function's Jacobian, a student's MADE included; check_bijection's pointer."""
import math

import pytest
import torch

import flowbook as fb
from _helpers import randomize


class StudentMADE(torch.nn.Module):
    """A MADE written by hand in plain torch: D=4, degrees 1..4, two masked linear layers, 2 outputs per feature."""

    def __init__(self, wrong=None):
        super().__init__()
        torch.manual_seed(0)
        self.hidden, self.out = torch.nn.Linear(4, 6), torch.nn.Linear(6, 8)
        m_hidden = torch.tensor([1, 1, 2, 2, 3, 3])                       # hidden degrees
        m_in = (m_hidden[:, None] >= torch.arange(1, 5)[None, :]).double()
        m_out = (torch.arange(1, 5).repeat(2)[:, None] > m_hidden[None, :]).double()
        if wrong is not None:
            m_out[wrong] = 1.0
        self.register_buffer("m_in", m_in)
        self.register_buffer("m_out", m_out)

    def forward(self, x):
        h = torch.tanh(torch.nn.functional.linear(x, self.hidden.weight * self.m_in, self.hidden.bias))
        return torch.nn.functional.linear(h, self.out.weight * self.m_out, self.out.bias)  # (N, 8): mu, then alpha


def test_check_autoregressive_passes_a_correct_hand_written_made():
    report = fb.check_autoregressive(StudentMADE(), 4)
    assert report.violations == [] and not report.perturbed
    assert torch.equal(report.dependence, torch.ones(4, 4).tril(-1).bool())  # wide enough: every path used
    assert "violations (output, input): none" in str(report)


def test_check_autoregressive_names_the_pair_of_one_wrong_mask_entry():
    # output row 5 is alpha of feature 2 (degree 2); hidden unit 4 has degree 2 and sees inputs 1 and 2:
    # the one wrong entry lets x_2's alpha see input 2 (its own feature)
    with pytest.raises(AssertionError, match=r"1 \(output, input\) pair.*\n- \(output 6, input 2\): output 6 is for x_2 "
                                             r"\(degree 2\), input 2 has degree 2") as error:
        fb.check_autoregressive(StudentMADE(wrong=(5, 3)), 4)
    assert "mask entry" in str(error.value) and "!" in str(error.value)
    # a later input: x_1's shift sees hidden unit 5 (degree 3), which sees inputs 1..3
    with pytest.raises(AssertionError, match=r"\(output 1, input 1\).*\n- \(output 1, input 2\).*\n- \(output 1, input 3\)"):
        fb.check_autoregressive(StudentMADE(wrong=(0, 4)), 4)


@pytest.mark.parametrize("degrees", [None, [4, 3, 2, 1], [2, 4, 1, 3], [1, 1, 2, 2]])
def test_check_autoregressive_passes_flowbook_made_in_any_order(degrees):
    made = fb.MADE(4, hidden=16, degrees=degrees, outputs_per_feature=2)   # zero last layer: perturbed copy
    report = fb.check_autoregressive(made, 4)                             # the order read from made.degrees
    assert report.violations == [] and report.perturbed
    expected = fb.MADE(4, hidden=16, degrees=degrees).connectivity().bool()
    assert torch.equal(report.dependence, expected)
    if degrees not in (None, [1, 1, 2, 2]):  # checked against the plain order 1..D, a reordered MADE fails
        with pytest.raises(AssertionError, match="does not come before it"):
            fb.check_autoregressive(made, 4, order=torch.arange(1, 5))


def test_check_autoregressive_layouts_orders_and_bijections():
    made = randomize(fb.MADE(3, hidden=16, outputs_per_feature=2, zero_init=False))
    flat = lambda x: made(x).transpose(1, 2).reshape(len(x), -1)   # feature j's outputs side by side (nflows)
    fb.check_autoregressive(flat, 3, interleaved=True)
    with pytest.raises(AssertionError, match="does not come before it"):
        fb.check_autoregressive(flat, 3)
    perm = torch.tensor([2, 0, 1])  # x_3 first, then x_1, then x_2
    before = lambda x: x.cumsum(1) - x  # output j: the sum of the inputs before j
    fb.check_autoregressive(before, 3)
    with pytest.raises(AssertionError, match=r"\(output 3, input 1\).*\n- \(output 3, input 2\)"):
        fb.check_autoregressive(before, 3, order=torch.argsort(perm))
    fb.check_autoregressive(lambda x: before(x[:, perm])[:, torch.argsort(perm)], 3, order=torch.argsort(perm))
    for mode in ("maf", "iaf"):  # a bijection: x_j depends on z_j, and on the earlier features only
        for layer in (fb.MaskedAffineAutoregressive(4, 16, mode=mode, degrees=[2, 1, 1, 3]),
                      fb.SplineAutoregressive(4, bins=4, hidden=16, mode=mode)):
            assert fb.check_autoregressive(randomize(layer), 4).violations == []
    layer = randomize(fb.MaskedAffineAutoregressive(3, 16, context_features=2))
    fb.check_autoregressive(layer, 3, context=torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"order must be 3 integers"):
        fb.check_autoregressive(layer, 3, order=[1, 2])
    with pytest.raises(ValueError, match=r"f must return a \(batch, k \* 3\)"):
        fb.check_autoregressive(lambda x: x.sum(1), 3)
    made32 = randomize(fb.MADE(3, hidden=16, zero_init=False)).float()
    assert fb.check_autoregressive(lambda x: made32(x), 3).violations == []  # a float32 model behind a function
    for f in (lambda x: torch.zeros_like(x), fb.Affine(3)):  # nothing depends on another feature: a warning
        with pytest.warns(UserWarning, match="proves little"):
            fb.check_autoregressive(f, 3)


class StudentMAF(fb.Bijection):
    """A student's MAF layer around a hand-written MADE: z = (x - mu(x)) e^-alpha(x)."""

    def __init__(self, made):
        super().__init__()
        self.made = made

    def inverse(self, x, context=None):
        shift, log_scale = self.made(x).chunk(2, 1)
        return (x - shift) * torch.exp(-log_scale), -log_scale.sum(1)

    def forward(self, z, context=None):
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):
            shift, log_scale = self.made(x).chunk(2, 1)
            x = z * torch.exp(log_scale) + shift
        return x, log_scale.sum(1)


def test_check_bijection_points_to_check_autoregressive():
    z = torch.randn(6, 4)
    fb.check_bijection(randomize(StudentMAF(StudentMADE())), z)
    with pytest.raises(AssertionError, match=r"layer.made breaks the autoregressive order: \(output 6, input 2\).*"
                                             r"run fb.check_autoregressive\(layer.made, 4\)"):
        fb.check_bijection(randomize(StudentMAF(StudentMADE(wrong=(5, 3)))), z)

    class Leaky(fb.Bijection):  # x_1 = z_1 + z_2^2 / 10 claims the triangular log-det 0: J is not triangular
        def forward(self, z, context=None):
            return torch.stack([z[:, 0] + z[:, 1] ** 2 / 10, z[:, 1] + z[:, 0]], 1), z.new_zeros(len(z))

    with pytest.raises(AssertionError, match=r"not triangular.*x_1 on z_2.*fb.check_autoregressive\(layer, 2\)"):
        fb.check_bijection(Leaky(), torch.randn(5, 2))


def test_check_autoregressive_names_bad_arguments():
    """Issue 24: these failed inside torch or Python, or (a boolean order, interleaved="yes") ran silently."""
    pair = lambda v: (v.cumsum(1), None)  # noqa: E731  (a bijection: x_j depends on z_1..z_j)
    assert fb.check_autoregressive(pair, 3).violations == []
    for kw, error, match in [({"order": "abc"}, TypeError, "order must be 3 integers, got str"),
                             ({"order": [True, False, True]}, TypeError, "order must be 3 integers .* dtype torch.bool"),
                             ({"interleaved": "yes"}, TypeError, "interleaved must be True or False, got 'yes'"),
                             ({"perturb": math.nan}, ValueError, "perturb must be a finite number >= 0, got nan"),
                             ({"context": torch.zeros(0, 2)}, ValueError, "context has 0 rows; expected one or more")]:
        with pytest.raises(error, match=match):
            fb.check_autoregressive(pair, 3, **kw)
    with pytest.raises(TypeError, match="f must be a function or a module called as f.x., got int"):
        fb.check_autoregressive(3, 3)
    with pytest.raises(ValueError, match=r"order \(f's degrees\) must be 4 integers .* is f for 3 features, not "
                                         "features=4"):
        fb.check_autoregressive(fb.MADE(3, hidden=8), 4)
    with pytest.raises(ValueError, match=r"f must return .* got NoneType"):
        fb.check_autoregressive(lambda v: None, 3)
