"""The layer diagrams of chapters 4-6 (coupling routing, MAF/IAF passes, squeeze and factor-out) draw."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import flowbook.diagrams as fbd  # noqa: E402


def texts(ax):
    return " ".join(t.get_text() for t in ax.texts) + " " + ax.get_title()


@pytest.mark.parametrize("affine", [True, False])
def test_coupling_draws_the_split_the_network_and_the_log_det(affine):
    ax = fbd.coupling(affine=affine)
    try:
        assert len(ax.patches) >= 10 and len(ax.texts) >= 8      # boxes, arrows and their labels
        words = texts(ax)
        assert "z_A" in words and "z_B" in words and "conditioner" in words
        assert ("e^{s}" in words) == affine and ("= 0" in words) == (not affine)
        assert ax.title.get_fontsize() >= 9
    finally:
        plt.close("all")


@pytest.mark.parametrize("mode, reads", [("maf", "x_{<i}"), ("iaf", "z_{<i}")])
def test_autoregressive_says_which_side_the_made_reads_and_the_passes(mode, reads):
    fig, ax = plt.subplots()
    try:
        assert fbd.autoregressive(mode, ax=ax) is ax                 # draws on the axes it is given
        words = texts(ax)
        assert reads in words and "1 pass" in words and "D passes" in words and "MADE" in words
        assert len(ax.patches) >= 6
        assert ax.title.get_fontsize() >= 9
    finally:
        plt.close("all")
    with pytest.raises(ValueError, match="mode"):
        fbd.autoregressive("realnvp")


def test_multiscale_draws_the_squeeze_and_the_factor_out():
    ax = fbd.multiscale()
    try:
        assert len(ax.patches) >= 16 + 4 * 4                         # the 4x4 image and four 2x2 channels
        words = texts(ax)
        assert "squeeze" in words and "factor out" in words and "latents" in words
        assert ax.title.get_fontsize() >= 9
    finally:
        plt.close("all")


def test_the_new_diagrams_are_public():
    assert {"coupling", "autoregressive", "multiscale"} <= set(fbd.__all__)
