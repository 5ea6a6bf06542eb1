"""The schematic diagrams of the chapters draw what they say: boxes, arrows, labels, readable titles."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import flowbook.teaching.diagrams as fbd  # noqa: E402

DIAGRAMS = {"directions": {}, "coupling": {"affine": True}, "autoregressive": {"mode": "maf"},
            "multiscale": {}, "vae_flow_posterior": {}}


def texts(ax):
    return " ".join(t.get_text() for t in ax.texts) + " " + ax.get_title()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", DIAGRAMS)
def test_every_diagram_is_public_draws_on_given_axes_with_a_readable_title(name):
    assert set(fbd.__all__) == set(DIAGRAMS)
    fig, ax = plt.subplots()
    assert getattr(fbd, name)(ax=ax, **DIAGRAMS[name]) is ax
    assert len(ax.patches) >= 4
    assert ax.get_title() and ax.title.get_fontsize() >= 9


def test_directions_draws_both_spaces_both_arrows_and_the_signs():
    ax = fbd.directions()
    words = texts(ax)
    assert "z-space" in words and "x-space" in words
    assert "forward(z)" in words and "inverse(x)" in words
    assert r"+\log|\det \partial x/\partial z|" in words          # forward: plus the log-det of dx/dz
    assert r"= -\log|\det \partial x/\partial z|" in words        # inverse: the negative of it
    assert "Flow.log_prob" in words and "Flow.sample" in words
    assert min(t.get_fontsize() for t in ax.texts) >= 9


@pytest.mark.parametrize("affine", [True, False])
def test_coupling_draws_the_split_the_network_and_the_log_det(affine):
    ax = fbd.coupling(affine=affine)
    assert len(ax.patches) >= 10 and len(ax.texts) >= 8      # boxes, arrows and their labels
    words = texts(ax)
    assert "z_A" in words and "z_B" in words and "conditioner" in words
    assert ("e^{s}" in words) == affine and ("= 0" in words) == (not affine)


@pytest.mark.parametrize("mode, reads", [("maf", "x_{<i}"), ("iaf", "z_{<i}")])
def test_autoregressive_says_which_side_the_made_reads_and_the_passes(mode, reads):
    ax = fbd.autoregressive(mode)
    words = texts(ax)
    assert reads in words and "1 pass" in words and "D passes" in words and "MADE" in words
    assert len(ax.patches) >= 6
    with pytest.raises(ValueError, match="mode"):
        fbd.autoregressive("realnvp")


def test_multiscale_draws_the_squeeze_and_the_factor_out():
    ax = fbd.multiscale()
    assert len(ax.patches) >= 16 + 4 * 4                         # the 4x4 image and four 2x2 channels
    words = texts(ax)
    assert "squeeze" in words and "factor out" in words and "latents" in words


def test_vae_flow_posterior_draws_boxes_arrows_and_labels():
    ax = fbd.vae_flow_posterior()
    assert len(ax.patches) >= 15  # 8 boxes and 8 arrows
    words = texts(ax)
    for label in ("encoder", "IAF", "decoder", "prior", "context"):
        assert label in words
