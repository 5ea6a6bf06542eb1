"""The diagram of the foundations chapters (the forward/inverse directions and their log-det signs) draws."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import flowbook.diagrams as fbd  # noqa: E402


def texts(ax):
    return " ".join(t.get_text() for t in ax.texts) + " " + ax.get_title()


def test_directions_draws_both_spaces_both_arrows_and_the_signs():
    ax = fbd.directions()
    try:
        assert len(ax.patches) >= 4                                   # two boxes, two arrows
        words = texts(ax)
        assert "z-space" in words and "x-space" in words
        assert "forward(z)" in words and "inverse(x)" in words
        assert r"+\log|\det \partial x/\partial z|" in words          # forward: plus the log-det of dx/dz
        assert r"= -\log|\det \partial x/\partial z|" in words        # inverse: the negative of it
        assert "Flow.log_prob" in words and "Flow.sample" in words
        assert ax.title.get_fontsize() >= 9
        assert min(t.get_fontsize() for t in ax.texts) >= 9
    finally:
        plt.close("all")


def test_directions_draws_on_given_axes_and_is_public():
    fig, ax = plt.subplots()
    try:
        assert fbd.directions(ax=ax) is ax
        assert len(ax.patches) >= 4
    finally:
        plt.close("all")
    assert "directions" in fbd.__all__
