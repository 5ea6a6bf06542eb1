"""Boltzmann machines and RBMs: exact quantities against brute-force enumeration, in float64."""
import math

import pytest
import torch

import flowbook as fb

from flowbook.energy.boltzmann import BoltzmannMachine, all_states
from flowbook.energy.rbm import RBM


@pytest.fixture(autouse=True)
def seeded():  # float64 and one thread come from conftest.py
    torch.manual_seed(0)


def random_bm(n=6, temperature=1.7):
    return BoltzmannMachine(n, temperature).randomize(0.8)


def test_all_states_enumerates_every_vector_once():
    s = all_states(5)
    assert s.shape == (32, 5)
    assert len({tuple(r.tolist()) for r in s}) == 32


def test_bm_probabilities_normalize_and_match_energy():
    bm = random_bm()
    s = all_states(bm.features)
    p = bm.probs()
    assert torch.allclose(p.sum(), torch.tensor(1.0))
    w, b, t = bm.weight.detach(), bm.bias.detach(), bm.temperature
    assert torch.allclose(w, w.T) and torch.all(torch.diag(w) == 0)
    manual = torch.stack([torch.exp((0.5 * y @ w @ y + b @ y) / t) for y in s])
    assert torch.allclose(p, manual / manual.sum())


def test_bm_gibbs_conditional_matches_joint():
    bm = random_bm()
    s = all_states(bm.features)
    p = bm.probs()
    cond = bm.conditional(s).detach()
    for i in range(bm.features):
        flipped = s.clone()
        flipped[:, i] = 1 - flipped[:, i]
        idx = (flipped * 2 ** torch.arange(bm.features)).sum(1).long()  # code of the flipped state
        p_one = torch.where(s[:, i] == 1, p, p[idx]) / (p + p[idx])
        assert torch.allclose(cond[:, i], p_one)


def test_bm_exact_grad_matches_autograd():
    bm = random_bm()
    data = (torch.rand(50, bm.features) < 0.4).double()
    bm.log_prob(data).mean().backward()
    g = bm.exact_grad(data)
    # the parameter is weight_upper (w_ij = w_ji for i < j: one number each); W is built from it
    assert torch.allclose(g["weight_upper"], bm.weight_upper.grad)
    i, j = torch.triu_indices(bm.features, bm.features, 1)
    assert torch.allclose(g["weight"][i, j], bm.weight_upper.grad) and torch.allclose(g["weight"], g["weight"].T)
    assert torch.allclose(g["bias"], bm.bias.grad)
    assert g["weight"].abs().max() > 1e-3  # not trivially zero


def test_bm_gibbs_samples_the_joint():
    bm = BoltzmannMachine(4, 1.3).randomize(0.8)
    gen = torch.Generator().manual_seed(1)
    y = bm.sample(20000, sweeps=20, generator=gen)
    codes = (y * 2 ** torch.arange(4)).sum(1).long()
    emp = torch.bincount(codes, minlength=16).double() / len(y)
    assert 0.5 * (emp - bm.probs()).abs().sum() < 0.02


def test_bm_sampled_grad_long_chains_approach_exact():
    bm = random_bm(5, 1.0)
    data = (torch.rand(40, 5) < 0.5).double().repeat(100, 1)
    exact = bm.exact_grad(data)
    cd = bm.sampled_grad(data, k=30, generator=torch.Generator().manual_seed(2))
    assert (cd["weight"] - exact["weight"]).abs().max() < 0.05
    cd1 = bm.sampled_grad(data, k=1, generator=torch.Generator().manual_seed(2))
    assert (cd1["weight"] - exact["weight"]).norm() > (cd["weight"] - exact["weight"]).norm()


def test_bm_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n=21 is too large"):
        BoltzmannMachine(21).log_partition()
    with pytest.raises(ValueError, match="temperature"):
        BoltzmannMachine(3, temperature=0.0)
    with pytest.raises(ValueError, match="features must be a positive integer"):
        BoltzmannMachine(0)
    bm = BoltzmannMachine(3)
    with pytest.raises(ValueError, match="y must be binary"):
        bm.log_prob(torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="expected 3"):
        bm.log_prob(torch.ones(2, 4))
    with pytest.raises(ValueError, match="data must be binary"):
        bm.exact_grad(torch.full((2, 3), 2.0))


def random_rbm(nv=7, nh=4):
    return RBM(nv, nh).randomize(0.7)


def brute_joint(rbm):
    v, h = all_states(rbm.features), all_states(rbm.hidden)
    vv = v.repeat_interleave(len(h), 0)
    hh = h.repeat(len(v), 1)
    return v, h, (-rbm.energy(vv, hh)).reshape(len(v), len(h)).detach()


@pytest.mark.parametrize("nv,nh", [(7, 4), (4, 7)])
def test_rbm_free_energy_and_log_z_match_enumeration(nv, nh):
    rbm = random_rbm(nv, nh)
    v, _, neg_e = brute_joint(rbm)
    assert torch.allclose(-rbm.free_energy(v), torch.logsumexp(neg_e, 1))
    log_z = torch.logsumexp(neg_e.reshape(-1), 0)
    for over in (None, "hidden", "visible"):
        assert torch.allclose(rbm.log_partition(over), log_z)
    assert torch.allclose(rbm.log_prob(v).exp().sum(), torch.tensor(1.0))


def test_rbm_conditionals_factorize():
    rbm = random_rbm()
    v, h, neg_e = brute_joint(rbm)
    p_h_given_v = torch.softmax(neg_e, 1)  # exact P(h | v) from the joint
    fact = torch.prod(torch.where(h.bool()[None], rbm.p_h(v)[:, None], 1 - rbm.p_h(v)[:, None]), -1)
    assert torch.allclose(p_h_given_v, fact.detach())
    p_v_given_h = torch.softmax(neg_e, 0).T
    fact_v = torch.prod(torch.where(v.bool()[None], rbm.p_v(h)[:, None], 1 - rbm.p_v(h)[:, None]), -1)
    assert torch.allclose(p_v_given_h, fact_v.detach())


@pytest.mark.parametrize("nv,nh", [(7, 4), (4, 7)])
def test_rbm_exact_grad_matches_autograd(nv, nh):
    rbm = random_rbm(nv, nh)
    data = (torch.rand(30, nv) < 0.3).double()
    rbm.log_prob(data).mean().backward()
    g = rbm.exact_grad(data)
    for name, p in rbm.named_parameters():
        assert torch.allclose(g[name], p.grad), name


def test_rbm_ais_close_to_exact():
    rbm = random_rbm(12, 8)
    est, se = rbm.ais_log_partition(chains=200, betas=500, generator=torch.Generator().manual_seed(3))
    assert abs(est.item() - rbm.log_partition().item()) < 0.05
    assert 0 <= se < 0.05


def test_rbm_cd_and_pcd_training_raise_likelihood():
    gen = torch.Generator().manual_seed(4)
    protos = torch.tensor([[1.0] * 5 + [0.0] * 5, [0.0] * 5 + [1.0] * 5])
    data = protos[torch.randint(2, (400,), generator=gen)]
    noise = (torch.rand(data.shape, generator=gen) < 0.05).double()
    data = (data + noise) % 2
    for persistent in (False, True):
        rbm = RBM(10, 3)
        before = rbm.log_prob(data).mean().item()
        hist = rbm.fit(data, steps=300, k=1, persistent=persistent, lr=0.01, progress=False, generator=gen)
        after = rbm.log_prob(data).mean().item()
        assert before == pytest.approx(-10 * math.log(2), abs=0.01)  # near-zero weights: uniform
        assert after > before + 2.0, (persistent, before, after)
        assert isinstance(hist, fb.History) and len(hist.reconstruction) == hist.steps == 300
        assert hist.reconstruction[-1] < hist.reconstruction[0]


def test_rbm_rejects_bad_inputs():
    with pytest.raises(ValueError, match="ais_log_partition"):
        RBM(21, 22).log_partition()
    with pytest.raises(ValueError, match="hidden layer's 21 units are too many"):
        RBM(30, 21).log_partition(over="hidden")
    with pytest.raises(ValueError, match="features must be a positive integer"):
        RBM(0, 3)
    rbm = RBM(5, 2)
    with pytest.raises(ValueError, match="v must be binary"):
        rbm.free_energy(torch.rand(3, 5) + 0.1)
    with pytest.raises(ValueError, match="expected 5"):
        rbm.log_prob(torch.ones(3, 6))
    with pytest.raises(ValueError, match="data must be binary"):
        rbm.fit(torch.full((10, 5), 3.0), steps=1, progress=False)
    with pytest.raises(ValueError, match="over must be"):
        rbm.log_partition(over="both")
