"""The schematic diagrams of the chapters beyond the coupling and autoregressive flows draw."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import flowbook.diagrams as diagrams  # noqa: E402


def test_vae_flow_posterior_draws_boxes_arrows_and_labels():
    ax = diagrams.vae_flow_posterior()
    try:
        assert "vae_flow_posterior" in diagrams.__all__
        assert len(ax.patches) >= 15  # 8 boxes and 8 arrows
        texts = " ".join(t.get_text() for t in ax.texts)
        for label in ("encoder", "IAF", "decoder", "prior", "context"):
            assert label in texts
        assert ax.get_title() and ax.title.get_fontsize() >= 9
    finally:
        plt.close("all")


def test_vae_flow_posterior_draws_on_a_given_axes():
    fig, ax = plt.subplots()
    try:
        assert diagrams.vae_flow_posterior(ax=ax) is ax
        assert len(ax.patches) > 0
    finally:
        plt.close(fig)
