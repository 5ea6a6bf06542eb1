"""VAE, flow posterior and ELBO surgery: exact identities on small float64 models."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import flowbook as fb
from flowbook.transforms.residual import Planar, Radial
from flowbook.latent.surgery import AggregatedPosterior, elbo_surgery, local_posterior_elbo
from flowbook.distributions import MixtureBase, gaussian_log_prob
from flowbook.latent.networks import BernoulliDecoder, GaussianDecoder, GaussianEncoder, gaussian_kl, posterior_iaf
from flowbook.latent.vae import VAE, VampPrior

from _helpers import randomize


def setup_module():
    torch.manual_seed(0)  # float64 and one thread come from conftest.py


def small_vae(flow=None, prior=None, h=0, latent=2, features=6):
    enc = randomize(GaussianEncoder(features, latent, hidden=16, flow_context_features=h))
    return VAE(enc, randomize(BernoulliDecoder(latent, features, hidden=16)), prior=prior, flow=flow)


def binary(n=40, features=6):
    return torch.bernoulli(torch.full((n, features), 0.4))


def test_gaussian_kl_matches_torch_and_monte_carlo():
    mu, ls = torch.randn(3, 4), 0.5 * torch.randn(3, 4)
    ref = kl_divergence(Normal(mu, ls.exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mu, ls), ref, atol=1e-12)
    z = mu + ls.exp() * torch.randn(200000, 3, 4)
    mc = (gaussian_log_prob(z, mu, ls) - gaussian_log_prob(z, torch.zeros(4), torch.zeros(4))).mean(0)
    assert torch.allclose(mc, ref, atol=0.03)


def linear_gaussian(latent=2, features=5, s=0.7):
    """p(z)=N(0,I), p(x|z)=N(Wz+b, s^2 I) with W having orthogonal columns (diagonal true posterior)."""
    Q, _ = torch.linalg.qr(torch.randn(features, latent))
    W, b = Q * torch.tensor([2.0, 0.8]), torch.randn(features)
    dec = GaussianDecoder(latent, features, depth=0, std=s, learn_std=False)
    with torch.no_grad():
        dec.net[0].weight.copy_(W), dec.net[0].bias.copy_(b)
    enc = GaussianEncoder(features, latent, depth=0)
    evidence = MultivariateNormal(b, W @ W.T + s**2 * torch.eye(features))
    S = torch.linalg.inv(torch.eye(latent) + W.T @ W / s**2)  # true posterior covariance (diagonal here)
    return VAE(enc, dec), evidence, W, b, s, S


def test_linear_gaussian_exact_posterior_gives_tight_bound():
    vae, evidence, W, b, s, S = linear_gaussian()
    with torch.no_grad():  # encoder := exact posterior, mean S W^T (x - b)/s^2, log std 0.5 log diag S
        A = S @ W.T / s**2
        vae.encoder.net[0].weight.zero_(), vae.encoder.net[0].bias.zero_()
        vae.encoder.net[0].weight[:2] = A
        vae.encoder.net[0].bias[:2] = -A @ b
        vae.encoder.net[0].bias[2:] = 0.5 * S.diagonal().log()
    assert torch.allclose(S, torch.diag(S.diagonal()), atol=1e-12)
    x = evidence.sample((7,))
    log_px = evidence.log_prob(x)
    # with q = p(z|x), log p(x,z) - log q(z|x) = log p(x) for *every* z: zero-variance estimate
    assert torch.allclose(vae.log_marginal(x, n=1), log_px, atol=1e-9)
    assert torch.allclose(vae.elbo(x, n=4000).elbo, log_px, atol=0.05)


def test_linear_gaussian_gap_is_posterior_kl():
    vae, evidence, W, b, s, S = linear_gaussian()
    randomize(vae.encoder, 0.3)
    x = evidence.sample((3,))
    mu, ls, _ = vae.encoder(x)
    # closed-form ELBO of a linear-Gaussian decoder: E||x - Wz - b||^2 = ||x - W mu - b||^2 + tr(W diag(sig^2) W^T)
    rec = Normal(mu @ W.T + b, s).log_prob(x).sum(-1) - 0.5 * (W**2 @ ls.exp().pow(2).T).T.sum(-1) / s**2
    elbo = rec - gaussian_kl(mu, ls)
    post_mean = (x - b) @ (S @ W.T / s**2).T
    gap = torch.stack([kl_divergence(MultivariateNormal(m, torch.diag(l.exp() ** 2)), MultivariateNormal(pm, S))
                       for m, l, pm in zip(mu, ls, post_mean)])
    assert torch.allclose(elbo, evidence.log_prob(x) - gap, atol=1e-9)
    assert (gap > 1e-3).all()
    draws = vae.elbo(x.repeat_interleave(20000, 0)).elbo.detach().reshape(3, 20000)  # one sample each
    se = draws.std(1) / math.sqrt(20000)
    assert ((draws.mean(1) - elbo).abs() < 5 * se).all()


@pytest.mark.parametrize("kind", ["none", "planar", "radial", "iaf"])
def test_elbo_terms_add_up(kind):
    if kind == "iaf":
        flow = randomize(fb.IAF(2, 2, 8, 1, context_features=4).transform, 0.3)
    else:
        flow = {"none": None, "planar": fb.Compose(Planar(2, context_features=4), Planar(2, context_features=4)),
                "radial": fb.Compose(Radial(2), Radial(2))}[kind]
        if flow is not None:
            randomize(flow, 0.5)
    vae = small_vae(flow=flow, h=4 if kind in ("planar", "iaf") else 0)
    x = binary()
    t = vae.elbo(x, n=3)
    assert torch.allclose(t.elbo, t.reconstruction - t.kl, atol=1e-12)
    if kind == "none":  # closed-form KL, no log-det
        assert torch.all(t.logabsdet == 0)
    else:  # lecture 002's form, with log p evaluated at z_T
        assert torch.allclose(t.elbo, t.reconstruction + t.logabsdet - (t.log_q0 - t.log_prior), atol=1e-12)
        assert t.logabsdet.abs().max() > 1e-3
    assert (vae.log_marginal(x, n=200) >= vae.elbo(x, n=200).elbo - 0.05).all()


def test_flow_posterior_density_matches_inverse():
    """log q_T(z_T) = log q_0(z_0) - logabsdet, checked against the radial flow's exact inverse."""
    flow = randomize(fb.Compose(Radial(2), Radial(2)), 0.7)
    vae = small_vae(flow=flow)
    x = binary(5)
    torch.manual_seed(1)
    zT, log_q0, logabsdet, (mu, ls) = vae.posterior_sample(x)
    z0, logabsdet_inv = flow.inverse(zT)
    assert torch.allclose(log_q0 - logabsdet, gaussian_log_prob(z0, mu, ls) + logabsdet_inv, atol=1e-10)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_posterior_iaf_starts_at_identity_and_is_a_valid_flow(n_layers):
    flow = posterior_iaf(3, n_layers=n_layers, hidden=8, context_features=4)
    z, h = torch.randn(6, 3), torch.randn(6, 4)
    x, logabsdet = flow(z, h)
    assert torch.equal(x, z) and torch.all(logabsdet == 0)  # fresh: the identity, not a permutation
    randomize(flow, 0.3)
    x, logabsdet = flow(z, h)
    assert not torch.allclose(x, z)
    z_back, logabsdet_inv = flow.inverse(x, h)
    assert torch.allclose(z_back, z, atol=1e-10) and torch.allclose(logabsdet + logabsdet_inv, torch.zeros(6), atol=1e-10)


def test_local_posterior_reaches_the_evidence_when_the_family_contains_the_posterior():
    torch.manual_seed(3)
    vae, evidence, W, b, s, S = linear_gaussian()
    randomize(vae.encoder, 0.3)
    x = evidence.sample((4,))
    before = vae.elbo(x, n=4000).elbo.detach()
    local = local_posterior_elbo(vae, x, steps=400, n=16, lr=5e-2, eval_n=4000)
    log_px = evidence.log_prob(x)
    # the exact posterior is a diagonal Gaussian: the approximation gap is 0, so the optimum is log p(x)
    assert (local <= log_px + 0.02).all() and (log_px - local < 0.06).all()
    assert (log_px - local < 0.01 * (log_px - before)).all()             # > 99% of the initial gap closed
    assert all(p.grad is None for p in vae.parameters())                   # the model was not touched
    flow = posterior_iaf(2, context_features=8)
    with_flow = local_posterior_elbo(vae, x, flow=flow, steps=50, eval_n=100)
    assert with_flow.shape == (4,) and (with_flow <= log_px + 0.05).all()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


def test_surgery_decomposition_and_bounds():
    vae, x = small_vae(), binary(60)
    s = elbo_surgery(vae, x, n=64)
    assert abs(s.avg_kl - s.mutual_info - s.marginal_kl) < 1e-10
    assert abs(s.avg_kl - s.avg_kl_exact) < 5 * s.stderr["avg_kl"] + 1e-9
    assert 0 <= s.mutual_info <= math.log(60) and s.marginal_kl >= 0
    ref = vae.elbo(x, n=64).elbo.mean().item()
    assert abs(s.elbo - ref) < 5 * (s.stderr["elbo"] + 0.01)


def test_surgery_extreme_cases():
    x = binary(30)
    vae = small_vae()
    with torch.no_grad():  # encoder ignores x: every posterior is the same, so I_q = 0 exactly
        vae.encoder.net[-1].weight.zero_()
    assert abs(elbo_surgery(vae, x).mutual_info) < 1e-10
    xs = torch.eye(6)[:6]  # six distinct inputs, far-apart tiny posteriors: I_q -> log n
    vae = VAE(GaussianEncoder(6, 2, depth=0), BernoulliDecoder(2, 6, hidden=16))
    with torch.no_grad():  # linear encoder: means 10 * random columns, log std -6
        vae.encoder.net[0].weight.zero_(), vae.encoder.net[0].bias.zero_()
        vae.encoder.net[0].weight[:2] = 10 * torch.randn(2, 6)
        vae.encoder.net[0].bias[2:] = -6.0
    s = elbo_surgery(vae, xs)
    assert s.mutual_info <= math.log(6) + 1e-12 and s.mutual_info > math.log(6) - 1e-3
    # prior := q_agg (a VampPrior whose pseudo-inputs are the data): marginal KL = 0
    vae.prior = VampPrior(vae.encoder, xs)
    assert abs(elbo_surgery(vae, xs).marginal_kl) < 1e-10


def test_learned_prior_fit_reduces_marginal_kl():
    vae, x = small_vae(), binary(80)
    before = elbo_surgery(vae, x, n=16)
    prior = MixtureBase(2, k=8)
    fb.fit(fb.Flow(prior, []), AggregatedPosterior(vae, x).sample(4000), steps=300, lr=2e-2, progress=False)
    vae.prior = prior
    after = elbo_surgery(vae, x, n=16)
    assert after.avg_kl_exact is None
    assert after.marginal_kl < before.marginal_kl - 0.02
    assert after.elbo > before.elbo + 0.02
    assert abs(after.mutual_info - before.mutual_info) < 5 * (after.stderr["mutual_info"] + before.stderr["mutual_info"])


def test_conditional_vae_and_fit_improves_elbo():
    enc = GaussianEncoder(6, 2, hidden=16, context_features=3)
    vae = VAE(enc, BernoulliDecoder(2, 6, hidden=16, context_features=3))
    x, y = binary(64), torch.nn.functional.one_hot(torch.randint(3, (64,)), 3).double()
    before = vae.elbo(x, y, n=20).elbo.mean()
    fb.fit(vae, x, context=y, steps=150, batch_size=64, lr=1e-2, progress=False)
    assert vae.elbo(x, y, n=20).elbo.mean() > before + 0.2
    assert vae.sample(4, context=y[:1]).shape == (4, 6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="expected latent="):
        small_vae(flow=Radial(3))
    with pytest.raises(ValueError, match="expected latent="):
        small_vae(prior=fb.StandardNormal(3))
    with pytest.raises(TypeError, match="Bijection"):
        small_vae(flow=torch.nn.Linear(2, 2))
    vae = small_vae()
    with pytest.raises(ValueError, match="expected 6"):
        vae.elbo(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="samples per data point"):
        elbo_surgery(vae, binary(), n=1)
    with pytest.raises(NotImplementedError, match="Gaussian posterior"):
        AggregatedPosterior(small_vae(flow=Radial(2)), binary())


def test_one_gaussian_mixture_serves_as_flow_base_vae_prior_and_vamp_prior():
    """MixtureBase, VampPrior and AggregatedPosterior share one mixture density: torch's, to round-off."""
    from torch.distributions import Categorical, Independent, MixtureSameFamily
    base = randomize(MixtureBase(3, k=4), 0.5)
    ref = MixtureSameFamily(Categorical(logits=base.logits), Independent(Normal(base.means, base.log_std.exp()), 1))
    z = torch.randn(10, 3)
    assert torch.allclose(base.log_prob(z), ref.log_prob(z), atol=1e-12)
    vamp = VampPrior(randomize(GaussianEncoder(6, 3, hidden=8)), binary(5))
    mu, log_std, _ = vamp.encoder(vamp.pseudo_inputs)
    equal = MixtureSameFamily(Categorical(logits=torch.zeros(5)), Independent(Normal(mu, log_std.exp()), 1))
    assert torch.allclose(vamp.log_prob(z), equal.log_prob(z), atol=1e-12)
    assert vamp.sample(7).shape == (7, 3) and base.rsample(0).shape == (0, 3)
    vae = small_vae(prior=base, latent=3)
    assert torch.isfinite(vae.elbo(binary(4)).elbo).all() and vae.sample(2).shape == (2, 6)
    with pytest.raises(ValueError, match="std"):
        GaussianDecoder(2, 4, std=0.0)
