"""Nothing silent (issue 16): every bad input gets a clear error naming the argument and what was
expected, and no NaN passes a check. One section per class of failure; where the right answer is a
number (-inf, an empty tensor) the test asserts the number. Float64 by default (conftest.py); the
dtype tests build float32 models explicitly."""
import math
import warnings

import numpy as np
import pytest
import torch

import flowbook as fb
from flowbook.validation import check_count, check_tensor

X = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def affine_flow():
    return fb.Flow(fb.StandardNormal(2), [fb.Affine(2)])


# ----------------------------------------------------------------------------- 1. the checker
class NaNInverse(fb.Bijection):
    features = 2

    def forward(self, z, context=None):
        return 2 * z, z.new_full((z.shape[0],), 2 * math.log(2))

    def inverse(self, x, context=None):
        return x * float("nan"), x.new_full((x.shape[0],), -2 * math.log(2))


class NaNForOneSample(NaNInverse):
    def forward(self, z, context=None):
        x, ladj = super().forward(z)
        return x, torch.where(torch.arange(len(z)) == 2, float("nan"), ladj)

    def inverse(self, x, context=None):
        return x / 2, x.new_full((x.shape[0],), -2 * math.log(2))


class Cube(fb.Bijection):
    """x = z^3 with the log-det written log 3 + 2 log z: NaN for z < 0 (should be log|z|)."""
    features = 1

    def forward(self, z, context=None):
        return z**3, (math.log(3) + 2 * torch.log(z)).sum(1)

    def inverse(self, x, context=None):
        z = x.sign() * x.abs() ** (1 / 3)
        return z, -(math.log(3) + 2 * torch.log(z.abs())).sum(1)


class FlippedAffine(fb.Affine):
    """Affine with the classic sign error: invisible while the layer is the identity."""

    def forward(self, z, context=None):
        x, ladj = super().forward(z)
        return x, -ladj


def test_checker_fails_on_nan_inverse_and_prints_nan_as_nan():
    with pytest.raises(AssertionError, match=r"inverse\(\)'s output is NaN for 4 of 4 inputs") as err:
        fb.check_bijection(NaNInverse(), torch.randn(4, 2))
    assert "round trip |inverse(forward(z)) - z|     : nan" in str(err.value)
    assert "n/a (no inverse)" not in str(err.value)


def test_checker_fails_on_one_nan_logdet():
    with pytest.raises(AssertionError, match=r"forward\(\)'s log-det is NaN for 1 of 5 inputs \(first: row 2"):
        fb.check_bijection(NaNForOneSample(), torch.randn(5, 2))


def test_checker_fails_on_log_of_negative_numbers():
    z = torch.tensor([[0.5], [-0.7], [1.3], [-2.0]])
    with pytest.raises(AssertionError, match=r"log-det is NaN for 2 of 4 inputs.*take log\|\.\|"):
        fb.check_bijection(Cube(), z)
    assert fb.check_bijection(Cube(), z.abs() + 0.1).logdet_error < 1e-9  # right where z > 0


def test_checker_sees_a_flipped_sign_on_an_identity_layer():
    with pytest.raises(AssertionError, match="(?s)as given is the identity map on z.*perturbed.*sign flipped"):
        fb.check_bijection(FlippedAffine(2), torch.randn(6, 2))
    report = fb.check_bijection(fb.Affine(2), torch.randn(6, 2))  # the correct layer passes, perturbed
    assert report.perturbed and "perturbed" in str(report)
    assert not fb.check_bijection(fb.randomize_parameters(fb.Affine(2)), torch.randn(6, 2)).perturbed


def test_checker_warns_when_nothing_can_be_tested():
    with pytest.warns(UserWarning, match=r"identity on z \(outputs equal inputs, log-dets 0\) even with perturbed parameters"):
        fb.check_bijection(fb.Permutation([0, 1, 2]), torch.randn(4, 3))


def test_checker_no_inverse_is_still_reported_not_failed():
    report = fb.check_bijection(fb.Planar(2, u=[0.5, 0.2], w=[1.0, -0.3]), torch.randn(5, 2))
    assert not report.has_inverse and math.isnan(report.roundtrip_error)
    assert "n/a (no inverse)" in str(report)


def test_checker_rejects_non_finite_inputs_and_context():
    z = torch.randn(3, 2)
    z[1, 0] = float("inf")
    with pytest.raises(ValueError, match=r"z contains 1 NaN or infinite value\(s\) \(first in row 1\)"):
        fb.check_bijection(fb.Affine(2), z)
    layer = fb.AffineCoupling(fb.half_mask(2), hidden=4, context_features=1)
    with pytest.raises(ValueError, match="context contains 1 NaN"):
        fb.check_bijection(layer, torch.randn(3, 2), context=torch.tensor([[0.0], [float("nan")], [1.0]]))


# ----------------------------------------------------------------------------- 2. log-det shape
class ColumnLogdet(fb.Affine):
    def inverse(self, x, context=None):
        z, ladj = super().inverse(x)
        return z, ladj.unsqueeze(1)  # (batch, 1): would broadcast to a (batch, batch) log_prob


class PerFeatureLogdet(fb.Affine):
    def inverse(self, x, context=None):
        z, _ = super().inverse(x)
        return z, -self.log_scale.expand_as(x)  # (batch, D): silent when batch == D


def test_logdet_of_shape_batch_by_one_is_refused_naming_the_layer():
    flow = fb.Flow(fb.StandardNormal(2), [fb.Affine(2), ColumnLogdet(2)])
    with pytest.raises(ValueError, match=r"layer 1 \(ColumnLogdet\) of the Compose, in inverse\(\), returned as "
                                         r"log-det a tensor of shape \(8, 1\); expected shape \(8,\)"):
        flow.log_prob(X)


def test_logdet_of_shape_batch_by_features_is_refused_when_batch_equals_features():
    flow = fb.Flow(fb.StandardNormal(2), PerFeatureLogdet(2))  # a single layer, no Compose
    with pytest.raises(ValueError, match=r"layer 0 \(PerFeatureLogdet\) of the Compose, in inverse\(\), returned as "
                                         r"log-det a tensor of shape "
                                         r"\(2, 2\); expected shape \(2,\)"):
        flow.log_prob(X[:2])


def test_scalar_logdet_in_the_sampling_direction_is_refused():
    class ScalarForward(fb.Affine):
        def forward(self, z, context=None):
            return z, self.log_scale.sum()

    flow = fb.Flow(fb.StandardNormal(2), [ScalarForward(2)])
    with pytest.raises(ValueError, match=r"layer 0 \(ScalarForward\).*forward\(\).*shape \(\); expected shape \(4,\)"):
        flow.sample_and_log_prob(4)


# ----------------------------------------------------------------------------- 3. dtype
def test_float64_data_into_a_float32_flow_names_x_both_dtypes_and_the_fixes():
    flow = fb.RealNVP(2, n_layers=2, hidden=8).float()
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the flow computes in torch.float32; "
                                        r"convert the data with x.float\(\), or the model with .double\(\)"):
        flow.log_prob(X)


def test_integer_and_half_data_are_converted_exactly():
    flow = fb.randomize_parameters(fb.MAF(2, n_layers=2, hidden=8)).float()
    ints = torch.tensor([[0, 1], [2, -1]])
    assert torch.equal(flow.log_prob(ints), flow.log_prob(ints.float()))
    half = torch.tensor([[0.5, -1.25]], dtype=torch.float16)
    assert flow.log_prob(half).dtype == torch.float32
    assert torch.equal(flow.log_prob(half), flow.log_prob(half.float()))


def test_a_layer_called_directly_does_not_convert():
    with pytest.raises(TypeError, match=r"z has dtype torch.float64 but LULinear computes in torch.float32; "
                                        r"convert the data with z.float\(\)"):
        fb.LULinear(2).float()(X)
    with pytest.raises(TypeError, match=r"z has dtype torch.int64 but ReversePermutation computes in"):
        fb.ReversePermutation(2)(torch.ones(3, 2, dtype=torch.long))


def test_fit_evaluate_nll_and_the_vae_apply_the_same_rule():
    flow = affine_flow().float()
    with pytest.raises(TypeError, match=r"data has dtype torch.float64.*data.float\(\)"):
        fb.fit(flow, X, steps=1, progress=False)
    with pytest.raises(TypeError, match=r"x has dtype torch.float64.*x.float\(\)"):
        fb.evaluate_nll(flow, X)
    assert math.isfinite(fb.evaluate_nll(flow, torch.zeros(4, 2, dtype=torch.long)))
    vae = fb.VAE(fb.GaussianEncoder(4, 2, hidden=8), fb.BernoulliDecoder(2, 4, hidden=8)).float()
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the VAE computes in torch.float32"):
        vae.elbo(torch.ones(3, 4, dtype=torch.float64))
    assert vae.elbo(torch.ones(3, 4, dtype=torch.long)).elbo.dtype == torch.float32


def test_binary_data_of_any_dtype_into_the_boltzmann_machines():
    rbm = fb.RBM(4, 2).float()
    v = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0]])
    expected = rbm.log_prob(v.float())
    for data in (v, v.bool(), v.double()):  # 0 and 1 convert exactly in every dtype
        assert torch.equal(rbm.log_prob(data), expected)
    bm = fb.BoltzmannMachine(4).float()
    assert torch.equal(bm.log_prob(v), bm.log_prob(v.float()))


# ----------------------------------------------------------------------------- 4. domains
def test_logit_outside_its_support_has_log_density_minus_inf():
    _, ladj = fb.Logit(2).inverse(torch.tensor([[1.5, 0.5], [0.2, 0.7]]))
    assert ladj[0].item() == -math.inf and math.isfinite(ladj[1].item())
    flow = fb.Flow(fb.StandardNormal(2), [fb.Affine(2), fb.Logit(2, alpha=0.0)])
    log_p = flow.log_prob(torch.tensor([[1.0625, 0.5], [-0.01, 0.5], [0.5, 0.5]]))
    assert log_p[:2].tolist() == [-math.inf, -math.inf] and math.isfinite(log_p[2].item())


def test_fit_names_the_logit_layer_when_data_leaves_its_domain():
    digits_over_16 = torch.arange(17.0).repeat(4)[:64].reshape(32, 2) / 16  # up to 16/16 = 1, then past it
    flow = fb.Flow(fb.StandardNormal(2), [fb.Affine(2), fb.Logit(2, alpha=0.0)])
    with pytest.raises(FloatingPointError, match=r"layer 1 \(Logit\) of the flow.*log-det -inf.*outside its domain"):
        fb.fit(flow, digits_over_16 + 0.01, steps=3, batch_size=32, progress=False)


def test_bernoulli_decoder_refuses_non_binary_data():
    vae = fb.VAE(fb.GaussianEncoder(4, 2, hidden=8), fb.BernoulliDecoder(2, 4, hidden=8))
    with pytest.raises(ValueError, match=r"BernoulliDecoder: x must be binary \(entries 0 or 1\).*from 0 to 16"):
        vae.elbo(torch.tensor([[0.0, 16.0, 3.0, 1.0]]))


def test_planar_with_w_zero_is_the_translation():
    layer = fb.Planar(2, u=[0.3, -0.2], w=[0.0, 0.0], b=0.5)
    x, ladj = layer(X)
    assert torch.allclose(x, X + torch.tensor([0.3, -0.2]) * math.tanh(0.5)) and torch.equal(ladj, torch.zeros(8))
    (x.sum() + ladj.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


# ----------------------------------------------------------------------------- 5. context
def conditional_maf():
    return fb.MAF(2, n_layers=2, hidden=8, context_features=3)


def test_nan_context_is_refused():
    c = torch.zeros(8, 3)
    c[5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"context contains 1 NaN or infinite value\(s\) \(first in row 5\)"):
        conditional_maf().log_prob(X, c)


def test_missing_context_names_the_method_and_the_shape():
    with pytest.raises(ValueError, match=r"conditional \(context_features=3\): pass a context to sample\(\), "
                                         r"a tensor of shape \(3,\) shared by every row, or \(4, 3\)"):
        conditional_maf().sample(4)
    with pytest.raises(ValueError, match=r"pass a context to log_prob\(\)"):
        conditional_maf().log_prob(X)


def test_context_to_an_unconditional_flow_is_refused():
    for flow in (fb.RealNVP(2, n_layers=2, hidden=8), affine_flow()):
        with pytest.raises(ValueError, match=r"this flow takes no context.*got one of shape \(8, 3\)"):
            flow.log_prob(X, torch.zeros(8, 3))
    layer = fb.AffineCoupling(fb.half_mask(2), hidden=4)
    with pytest.raises(ValueError, match=r"AffineCoupling takes no context \(context_features=0\), but got one of "
                                         r"shape \(8, 3\); to condition on one, build it with context_features"):
        layer(X, torch.zeros(8, 3))


def test_zero_d_and_wrong_width_contexts():
    with pytest.raises(ValueError, match=r"context must have shape \(3,\) \(shared by every row\) or \(8, 3\), "
                                         r"got a tensor of shape \(\)"):
        conditional_maf().log_prob(X, torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"context has 2 features, expected 3"):
        conditional_maf().log_prob(X, torch.zeros(8, 2))
    with pytest.raises(TypeError, match="context must be a torch.Tensor, got list"):
        conditional_maf().log_prob(X, [0.0, 1.0, 0.0])
    shared = conditional_maf().log_prob(X, torch.tensor([0.0, 1.0, 0.0]))  # a (3,) context is shared
    assert shared.shape == (8,)


# ----------------------------------------------------------------------------- 6. student layers
def test_a_layer_without_context_argument_is_refused_when_written():
    with pytest.raises(TypeError, match=r"Mine.forward\(self, z\) must also take the context: .*"
                                        r"forward\(self, z, context=None\) -> \(x, logabsdet\)"):
        class Mine(fb.Bijection):
            def forward(self, z):
                return z, z.new_zeros(len(z))


def test_a_layer_returning_a_tensor_instead_of_a_pair():
    class JustX(fb.Affine):
        def inverse(self, x, context=None):
            return x

    with pytest.raises(TypeError, match=r"layer 0 \(JustX\) of the Compose, in inverse\(\), returned a tensor of "
                                        r"shape \(8, 2\); expected a pair \(output, logabsdet\)"):
        fb.Flow(fb.StandardNormal(2), [JustX(2)]).log_prob(X)


def test_a_conditioner_with_too_few_outputs():
    layer = fb.AffineCoupling(fb.half_mask(4), net=torch.nn.Linear(2, 2))  # needs 2 * 2 outputs
    with pytest.raises(ValueError, match=r"AffineCoupling's net returned \(3, 2\), expected \(3, 4\): 2 output\(s\) "
                                         r"for each of the 2 transformed features"):
        layer(torch.randn(3, 4))


# ----------------------------------------------------------------------------- 7. fit arguments
@pytest.mark.parametrize("kwargs, message", [
    ({"clip_grad": 0}, r"clip_grad must be a finite number > 0 \(or None\), got 0"),
    ({"clip_grad": -1}, r"clip_grad must be a finite number > 0 \(or None\), got -1"),
    ({"lr": 0}, r"lr must be a finite number > 0, got 0"),
    ({"lr": float("nan")}, r"lr must be a finite number > 0, got nan"),
    ({"eval_every": 0, "val_data": X}, r"eval_every must be a whole number >= 1, got 0"),
    ({"patience": 3}, r"patience needs val_data"),
    ({"steps": 2.5}, r"steps must be a whole number >= 1, got 2.5"),
    ({"batch_size": -4}, r"batch_size must be a whole number >= 1, got -4"),
    ({"val_context": torch.zeros(8, 1)}, r"val_context needs val_data"),
])
def test_fit_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fb.fit(affine_flow(), X, progress=False, **kwargs)


def test_fit_reverse_kl_refuses_bad_arguments():
    from flowbook.targets import U1
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got -0.1"):
        fb.fit_reverse_kl(affine_flow(), U1(), steps=2, lr=-0.1, progress=False)
    with pytest.raises(ValueError, match=r"clip_grad must be"):
        fb.fit_reverse_kl(affine_flow(), U1(), steps=2, clip_grad=0, progress=False)


def test_a_nan_loss_names_a_diverged_parameter():
    flow = affine_flow()
    with torch.no_grad():
        flow.transform.layers[0].shift[0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"the parameter transform.layers.0.shift is NaN or infinite"):
        fb.fit(flow, X, steps=2, progress=False)


def test_integer_like_steps_are_accepted():
    hist = fb.fit(affine_flow(), X, steps=np.int64(3), batch_size=torch.tensor(4), eval_every=2.0, val_data=X,
                  progress=False)
    assert len(hist.train_loss) == 3 and hist.val_step == [2, 3]


# ----------------------------------------------------------------------------- 8. counts and values
@pytest.mark.parametrize("sample", [
    lambda n: affine_flow().sample(n), lambda n: fb.StandardNormal(2).sample(n),
    lambda n: fb.BoxUniform([0.0, 0.0], [1.0, 1.0]).sample(n), lambda n: fb.data.Moons().sample(n),
    lambda n: fb.data.Ring().sample(n), lambda n: fb.data.Checkerboard().sample(n),
    lambda n: fb.RBM(2, 2).sample(n, sweeps=1), lambda n: fb.BoltzmannMachine(2).sample(n, sweeps=1),
])
def test_counts(sample):
    for n in (3, np.int64(3), torch.tensor(3), 3.0):  # integer-like counts just work
        assert sample(n).shape == (3, 2)
    assert sample(0).shape == (0, 2)  # zero samples: an empty tensor
    with pytest.raises(ValueError, match=r"n must be a whole number >= 0, got 2.5"):
        sample(2.5)
    with pytest.raises(ValueError, match=r"n must be a whole number >= 0, got -1"):
        sample(-1)
    with pytest.raises(TypeError, match=r"n must be a whole number >= 0 \(a count\), got bool True"):
        sample(True)


def test_count_helper():
    assert check_count(1e4) == 10000 and check_count(np.int32(2), "k", 1) == 2
    with pytest.raises(ValueError, match="k must be a whole number >= 1, got 0"):
        check_count(0, "k", 1)
    with pytest.raises(ValueError, match="n must be a whole number >= 0, got inf"):
        check_count(float("inf"))
    with pytest.raises(TypeError, match=r"n must be a number \(a count\), got a tensor of shape \(2,\)"):
        check_count(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got ndarray; convert it with torch.as_tensor"):
        check_tensor(np.zeros((2, 2)))


def test_empty_data():
    assert affine_flow().log_prob(torch.zeros(0, 2)).shape == (0,)  # no rows: no log-densities
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 2\)\); expected at least one row"):
        fb.evaluate_nll(affine_flow(), torch.zeros(0, 2))


def test_constructors_refuse_non_finite_values():
    with pytest.raises(ValueError, match=r"clamp must be positive and finite, or None, got inf"):
        fb.AffineCoupling(fb.half_mask(2), clamp=float("inf"))
    with pytest.raises(ValueError, match=r"w must hold finite numbers"):
        fb.Planar(2, w=[float("nan"), 1.0])
    with pytest.raises(ValueError, match=r"low and high must be finite"):
        fb.BoxUniform([0.0, 0.0], [1.0, float("inf")])
    with pytest.raises(ValueError, match=r"w contains 1 NaN"):
        fb.BoltzmannMachine(2).set_weight(torch.tensor([[0.0, float("nan")], [0.0, 0.0]]))


def test_densities_need_a_positive_scale():
    with pytest.raises(ValueError, match="noise must be a finite number > 0, got 0"):
        fb.data.Moons(noise=0)
    with pytest.raises(ValueError, match="std must be a finite number > 0, got -1"):
        fb.data.Ring(std=-1)


# ----------------------------------------------------------------------------- 9. state that goes bad
def test_batchnorm_refuses_an_empty_training_batch_and_keeps_its_statistics():
    bn = fb.BatchNorm(2)
    with pytest.raises(ValueError, match="BatchNorm in training mode needs a batch of at least 2 rows.*got x with 0"):
        bn.inverse(torch.zeros(0, 2))
    assert torch.equal(bn.running_mean, torch.zeros(2)) and torch.equal(bn.running_var, torch.ones(2))
    assert bn.eval().inverse(torch.zeros(0, 2))[0].shape == (0, 2)  # eval mode: fine, and empty


def test_boltzmann_weight_stays_symmetric_with_zero_diagonal_under_any_optimizer():
    bm = fb.BoltzmannMachine(4, temperature=1.3).randomize(0.5, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(bm.parameters(), lr=0.1, weight_decay=0.5)
    y = (torch.rand(20, 4, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    for _ in range(3):
        opt.zero_grad()
        (-bm.log_prob(y).mean()).backward()
        opt.step()
    w = bm.weight
    assert torch.equal(w, w.T) and torch.equal(w.diagonal(), torch.zeros(4)) and w.abs().sum() > 0
    # so the Gibbs conditional still matches the joint: P(y_0 = 1 | rest) from log_prob
    s = fb.energy.all_states(4)
    one, zero = s.clone(), s.clone()
    one[:, 0], zero[:, 0] = 1, 0
    from_joint = torch.sigmoid(bm.log_prob(one) - bm.log_prob(zero)).detach()
    assert torch.allclose(bm.conditional(s)[:, 0].detach(), from_joint)
    # and exact_grad is the autograd gradient of the real parameters
    bm.zero_grad()
    bm.log_prob(y).mean().backward()
    g = bm.exact_grad(y)
    assert torch.allclose(g["weight_upper"], bm.weight_upper.grad) and torch.allclose(g["bias"], bm.bias.grad)


def test_ais_needs_two_temperatures_and_two_chains():
    rbm = fb.RBM(4, 2)
    with pytest.raises(ValueError, match="betas must be a whole number >= 2, got 1"):
        rbm.ais_log_partition(chains=10, betas=1)
    with pytest.raises(ValueError, match="chains must be a whole number >= 2, got 1"):
        rbm.ais_log_partition(chains=1, betas=10)


def test_no_warnings_from_a_good_check():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fb.check_bijection(fb.randomize_parameters(fb.LULinear(3)), torch.randn(4, 3))


# ------------------------------------------------------------------ images and temperatures (issue 23)
@pytest.mark.parametrize("call,error,match", [
    (lambda: fb.Glow(1, 8, 8, hidden=4).log_prob(torch.rand(3, 64)), ValueError,
     r"x must have shape \(batch, 1, 8, 8\).*x.reshape\(-1, 1, 8, 8\)"),
    (lambda: fb.RealNVP(2, hidden=4).sample(3, temperature=-1.0), ValueError, "temperature must be a finite number >= 0"),
    (lambda: fb.RealNVP(2, hidden=4).sample_and_log_prob(3, temperature="hot"), TypeError, "temperature must be a number"),
    (lambda: fb.ConvAffineCoupling(torch.tensor([True, False]).reshape(2, 1, 1), net=torch.nn.Conv2d(2, 3, 1))(
        torch.zeros(1, 2, 2, 2)), ValueError, r"net returned \(1, 3, 2, 2\), expected \(1, 4, 2, 2\)"),
    (lambda: fb.InvertibleConv1x1(3)(torch.zeros(2, 12)), ValueError, r"z must have shape \(batch, 3, height, width\)"),
    (lambda: fb.ActNorm(3, dims=(0, 1)), ValueError, "dims must be"),
    (lambda: fb.GlowStep(1), ValueError, "needs a mask"),
    (lambda: fb.Partial(fb.Affine(2), [0, 1]), ValueError, "features= .* or channels="),
    (lambda: fb.StandardNormal((1, 8, 8)).log_prob(torch.zeros(2, 64)), ValueError, r"z must have shape \(batch, 1, 8, 8\)"),
    (lambda: fb.DequantizedFlow(fb.Flow(fb.StandardNormal(2), [fb.Affine(2)]), 3).sample_and_log_prob(2),
     NotImplementedError, "no closed form"),
])
def test_image_and_temperature_errors_name_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------- 14. issue 24: the new modules
def test_threads_and_seed_check_their_argument_when_called():
    with pytest.raises(ValueError, match=r"threads must be a positive integer or None: n must be .* got 0"):
        fb.threads(0)                                   # a plain call, no with block
    with pytest.raises(ValueError, match=r"n must be a whole number >= 1, got 2.5"):
        fb.threads(2.5)
    with pytest.raises(TypeError, match="n must be"):
        fb.threads("2")
    before = torch.get_num_threads()
    with fb.threads(np.int64(1)):                       # integer-like counts work, as in check_count
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"seed must be a whole number .* got float 1.5"):
        fb.seed(1.5)
    with pytest.raises(TypeError, match=r"seed must be a whole number .* got str 'a'"):
        fb.seed("a")
    with pytest.raises(ValueError, match="seed must be below 2"):
        fb.seed(2**64)
    fb.seed(np.int64(3))
    a = torch.rand(2)
    fb.seed(3.0)
    assert torch.equal(torch.rand(2), a)                # 3.0 is the seed 3
    with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
        fb.randomize_parameters(fb.Affine(2), scale=float("nan"))
    with pytest.raises(ValueError, match="seed must be a whole number"):
        fb.randomize_parameters(fb.Affine(2), seed=0.5)


def shape_n1(x):
    return -0.5 * (x**2).sum(1, keepdim=True)           # (n, 1): one axis too many


def test_a_target_must_return_one_value_per_sample():
    flow = affine_flow()
    with pytest.raises(ValueError, match=r"must return shape \(n,\) = \(200,\), one value per sample, got \(200, 1\)"):
        fb.evaluate_elbo(flow, shape_n1, n=200)
    with pytest.raises(ValueError, match=r"got \(16, 1\)"):  # it used to broadcast to (16, 16) silently
        fb.fit_reverse_kl(flow, shape_n1, steps=2, batch_size=16, progress=False)
    with pytest.raises(TypeError, match="must return a tensor"):
        fb.evaluate_elbo(flow, lambda x: 0.0, n=10)
    with pytest.raises(ValueError, match="evaluate_elbo: the target's log-density is NaN"):
        fb.evaluate_elbo(flow, lambda x: x[:, 0] * math.nan, n=10)
    est = fb.evaluate_elbo(flow, lambda x: torch.where(x[:, 0] > 0, -math.inf, 0.0), n=50)
    assert est.elbo == -math.inf and est.stderr == math.inf          # zero target density: not NaN
    with pytest.raises(ValueError, match="context has 0 rows"):
        fb.fit_reverse_kl(flow, shape_n1, steps=2, context=torch.zeros(0, 1), progress=False)
    with pytest.raises(TypeError, match="context must be None, a tensor"):
        fb.fit_reverse_kl(flow, shape_n1, steps=2, context=[1.0], progress=False)
    with pytest.raises(TypeError, match="flow must have sample_and_log_prob"):
        fb.evaluate_elbo(torch.nn.Linear(2, 2), shape_n1, n=10)


def test_sinh_arcsinh_logdet_stays_finite_and_exact_at_huge_inputs_in_float32():
    torch.set_default_dtype(torch.float32)
    layer = fb.randomize_parameters(fb.SinhArcsinh(3), 0.5)
    reference = fb.randomize_parameters(fb.SinhArcsinh(3), 0.5).double()
    x = torch.tensor([[2e19, -1e25, 3e30], [1e-3, 5.0, -7e18], [0.0, 1.0, -1.0]])
    with torch.no_grad():
        got, exact = layer.inverse(x)[1], reference.inverse(x.double())[1]
        got_fwd, exact_fwd = layer(x[:2] / 1e6)[1], reference((x[:2] / 1e6).double())[1]
    # exact float64 reference: log1p(x^2) / 2 with x^2 ~ 1e61 has no overflow in float64
    assert torch.isfinite(got).all() and torch.allclose(got.double(), exact, rtol=1e-6, atol=1e-5), (got, exact)
    assert torch.allclose(got_fwd.double(), exact_fwd, rtol=1e-6, atol=1e-5)
    z = torch.tensor([[0.0, 1e-20, 1e30]], requires_grad=True)     # gradients finite at 0 and far out
    layer(z)[1].sum().backward()
    assert torch.isfinite(z.grad).all()


def test_vae_context_is_checked_where_it_enters():
    vae = fb.VAE(fb.GaussianEncoder(6, 2, hidden=8), fb.BernoulliDecoder(2, 6, hidden=8))
    x = torch.bernoulli(torch.full((5, 6), 0.3))
    with pytest.raises(ValueError, match=r"the VAE takes no context \(context_features=0\), but log_prob\(\) got one"):
        vae.log_prob(x, torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"but sample\(\) got one"):
        vae.sample(3, torch.zeros(3))
    cvae = fb.VAE(fb.GaussianEncoder(6, 2, hidden=8, context_features=3),
                  fb.BernoulliDecoder(2, 6, hidden=8, context_features=3))
    with pytest.raises(ValueError, match=r"the VAE is conditional \(context_features=3\): pass a context to elbo\(\)"):
        cvae.elbo(x)
    with pytest.raises(ValueError, match=r"context has 2 rows, expected 1 \(shared\) or n=4"):
        cvae.sample(4, torch.zeros(2, 3))
    assert cvae.sample(4, torch.zeros(3)).shape == (4, 6)
    with pytest.raises(ValueError, match="decoder has context_features=0, the encoder 2"):
        fb.VAE(fb.GaussianEncoder(6, 2, context_features=2), fb.BernoulliDecoder(2, 6))
    with pytest.raises(ValueError, match="build the encoder with flow_context_features=4"):
        fb.VAE(fb.GaussianEncoder(6, 2), fb.BernoulliDecoder(2, 6), flow=fb.posterior_iaf(2, context_features=4))
    with pytest.raises(ValueError, match="VampPrior needs an unconditional encoder"):
        fb.VampPrior(cvae.encoder, torch.rand(4, 6))
    with pytest.raises(ValueError, match="pseudo_inputs has 5 features, expected 6"):
        fb.VampPrior(vae.encoder, torch.rand(4, 5))
    with pytest.raises(ValueError, match="context_features must be a whole number >= 0, got -1"):
        fb.GaussianEncoder(6, 2, context_features=-1)


# ----------------------------------------------------------------------------- issue 24: requests from the sweep
def test_masks_made_and_clamp_name_their_argument():
    with pytest.raises(ValueError, match="height must be a positive integer"):
        fb.checkerboard_mask(1, 0, 4)
    with pytest.raises(ValueError, match="at least 2 pixels"):
        fb.checkerboard_mask(1, 1, 1)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        fb.channel_mask(2, 4, 0)
    with pytest.raises(ValueError, match="hidden must be a positive integer, got 2.5"):
        fb.MADE(3, hidden=2.5)
    with pytest.raises(TypeError, match="context_features"):
        fb.MADE(3, context_features=None)
    with pytest.raises(TypeError, match="clamp must be a number > 0 or None, got str 'a'"):
        fb.RealNVP(2, clamp="a")
