"""The Jacobian tools and the checker a student runs on their own layer."""
import pytest
import torch

import flowbook as fb

def f_lecture(v):  # lecture 002: f(x, y) = (x^2 y, 5x + sin y)
    x, y = v[:, 0], v[:, 1]
    return torch.stack([x**2 * y, 5 * x + torch.sin(y)], 1)


def test_jacobian_of_lecture_example():
    pts = torch.randn(10, 2)
    J = fb.jacobian(f_lecture, pts)
    x, y = pts[:, 0], pts[:, 1]
    expected = torch.stack([torch.stack([2 * x * y, x**2], 1), torch.stack([5 * torch.ones_like(x), torch.cos(y)], 1)], 1)
    assert torch.allclose(J, expected)
    assert torch.allclose(fb.logabsdet(f_lecture, pts), (2 * x * y * torch.cos(y) - 5 * x**2).abs().log())


def test_jacobian_single_point_shape():
    assert fb.jacobian(f_lecture, torch.tensor([1.0, 0.0])).shape == (2, 2)


class GoodTanhShift(fb.Bijection):
    """x = z + shift, a toy layer a student might write."""
    dim = 2

    def forward(self, z, context=None):
        return z + 1.0, z.new_zeros(z.shape[0])

    def inverse(self, x, context=None):
        return x - 1.0, x.new_zeros(x.shape[0])


class WrongSign(fb.Bijection):
    """x = 2z, but forward returns log|det dz/dx| (the classic sign error)."""
    dim = 2

    def forward(self, z, context=None):
        return 2 * z, torch.full((z.shape[0],), -2 * torch.log(torch.tensor(2.0)).item(), dtype=z.dtype)

    def inverse(self, x, context=None):
        return x / 2, torch.full((x.shape[0],), 2 * torch.log(torch.tensor(2.0)).item(), dtype=x.dtype)


class BadInverse(GoodTanhShift):
    def inverse(self, x, context=None):
        return x + 1.0, x.new_zeros(x.shape[0])


def test_checker_passes_good_layer():
    report = fb.check_bijection(GoodTanhShift(), torch.randn(5, 2))
    assert report.roundtrip_error < 1e-15 and report.logdet_error == 0
    assert "round trip" in str(report)


def test_checker_explains_sign_error():
    with pytest.raises(AssertionError, match="sign flipped"):
        fb.check_bijection(WrongSign(), torch.randn(5, 2))


def test_checker_catches_bad_inverse():
    with pytest.raises(AssertionError, match="inverse\\(\\) does not undo forward"):
        fb.check_bijection(BadInverse(), torch.randn(5, 2))


def test_checker_catches_wrong_logdet_shape():
    class Scalar(GoodTanhShift):
        def forward(self, z, context=None):
            return z + 1.0, z.new_zeros(())

    with pytest.raises(AssertionError, match="one value per sample"):
        fb.check_bijection(Scalar(), torch.randn(5, 2))


def test_checker_does_not_touch_the_layer():
    layer = fb.LULinear(3).float()
    fb.check_bijection(layer, torch.randn(4, 3))
    assert next(layer.parameters()).dtype == torch.float32 and layer.training
