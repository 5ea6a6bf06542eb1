"""flowbook.layout: each readability check fails on a planted figure and passes on a mended one."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from matplotlib.figure import Figure

import flowbook
import flowbook.plot as fbp
from flowbook.layout import FigureLayoutError, check_figure, figure_problems, install

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labelled(ax, title="a panel"):
    ax.set(xlabel="x", ylabel="y", title=title)
    return ax


def test_a_labelled_titled_figure_passes():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), constrained_layout=True)
    for ax in axes:
        labelled(ax).plot([0, 1], [1, 2])
    assert figure_problems(fig) == [] and check_figure(fig) is fig


def test_overprinted_tick_labels_are_text_on_text():
    fig, ax = plt.subplots(figsize=(4, 3))
    labelled(ax).plot([0.03, 0.06], [0, 1])
    ax.set_xticks([0.03, 0.031, 0.06], ["3 x 10^-2", "4 x 10^-2", "6 x 10^-2"])
    assert any("text on text: x tick label" in p and "'3 x 10^-2'" in p for p in figure_problems(fig))


def test_colliding_subtitles_are_text_on_text():
    fig, axes = plt.subplots(1, 2, figsize=(5, 3))
    for ax in axes:
        labelled(ax, "a sub-title long enough to run into the next panel's own title").plot([0, 1])
    assert any("title of axes 0" in p and "title of axes 1" in p for p in figure_problems(fig))


def test_a_strip_is_refused_and_a_wider_limit_accepts_it():
    fig, ax = plt.subplots(figsize=(10, 1.2))
    labelled(ax).plot([0, 1])
    assert any(p.startswith("a strip") for p in figure_problems(fig))
    assert not any(p.startswith("a strip") for p in figure_problems(fig, max_aspect=12))


def test_a_density_needs_a_colour_bar_and_labelled_axes():
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(np.random.rand(10, 10))
    ax.set_xticks([]), ax.set_yticks([]), ax.set_title("a density")
    problems = figure_problems(fig)
    assert any("no colour bar" in p for p in problems)
    assert any("no x label" in p for p in problems) and any("no y label" in p for p in problems)
    grey = plt.subplots(figsize=(4, 4))[1]
    grey.imshow(np.random.rand(10, 10), cmap="gray_r"), grey.set_axis_off(), grey.set_title("a digit")
    assert figure_problems(grey.figure) == []  # a grey picture is a picture, not a density


def test_one_colour_bar_covers_panels_on_one_scale_but_not_a_second_scale():
    axes = fbp.densities({"standard": flowbook.StandardNormal(2).log_prob,
                          "wider": lambda x: flowbook.StandardNormal(2).log_prob(x / 2) - 1.386}, (-3, 3), n=30)
    assert figure_problems(axes[0].figure) == []
    axes[1].images[0].set_clim(0, 1.0)  # the second panel on a scale of its own, without a bar
    assert any("axes 1 ('wider') shows a colour-mapped picture with no colour bar" in p
               for p in figure_problems(axes[0].figure))


def test_fb_plot_density_draws_a_readable_panel():
    ax = fbp.density(flowbook.StandardNormal(2).log_prob, (-3, 3), n=30, title="N(0, I)")
    assert figure_problems(ax.figure) == []
    ax = fbp.sample_density(np.random.randn(500, 2), (-3, 3), bins=20, title="samples", gamma=0.5)
    assert figure_problems(ax.figure) == [] and ax.figure.axes[-1].get_ylabel() == "density$^{0.5}$"


def test_a_bar_chart_must_show_zero_on_its_value_axis():
    fig, ax = plt.subplots(figsize=(4, 3))
    labelled(ax).bar(["a", "b"], [0.45, 0.5])
    assert figure_problems(fig) == []
    ax.set_ylim(0.4, 0.52)
    assert any("leaves out 0" in p for p in figure_problems(fig))


def test_a_figure_says_what_it_shows():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1]), ax.set(xlabel="x", ylabel="y")
    assert any(p.startswith("no title") for p in figure_problems(fig))
    fig.suptitle("a line")
    assert figure_problems(fig) == []


def test_labels_shared_along_a_row_and_a_column_count_once():
    fig, axes = plt.subplots(2, 2, figsize=(6, 5), sharex=True, sharey=True, constrained_layout=True)
    for ax in axes.flat:
        ax.plot([0, 1]), ax.set_title("p")
    axes[1, 0].set_xlabel("x"), axes[1, 1].set_xlabel("x"), axes[0, 0].set_ylabel("y"), axes[1, 0].set_ylabel("y")
    assert figure_problems(fig) == []
    axes[1, 1].set_xlabel("")
    assert [p for p in figure_problems(fig) if "label" in p] == ["axes 3 ('p') has no x label"]


def test_the_ipython_hook_shows_an_error_instead_of_an_unreadable_figure():
    shell = InteractiveShell.instance()
    png = shell.display_formatter.formatters["image/png"]
    png.for_type(Figure, lambda fig: b"png bytes")  # what the inline backend registers
    assert install(shell) and install(shell)  # installed once, however often called
    good = plt.subplots(figsize=(4, 3))[0]
    labelled(good.axes[0]).plot([0, 1])
    assert png.lookup_by_type(Figure)(good) == b"png bytes"
    bad = plt.subplots(figsize=(10, 1))[0]
    with pytest.raises(FigureLayoutError, match="a strip"):
        png.lookup_by_type(Figure)(bad)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure, got str"):
        figure_problems("figure")
    with pytest.raises(ValueError, match="max_aspect must be a number >= 1, got 0.5"):
        figure_problems(plt.figure(), max_aspect=0.5)
    with pytest.raises(ValueError, match="panels must be a non-empty dict"):
        fbp.densities({})


def test_contour_lines_over_a_picture_are_not_a_second_colour_map():
    fig, ax = plt.subplots(figsize=(4, 4))
    grid = np.random.rand(10, 10)
    image = ax.imshow(grid)
    fig.colorbar(image, ax=ax, label="value")
    ax.contour(grid, levels=3, colors="k")
    labelled(ax)
    assert figure_problems(fig) == []
    ax.contourf(grid, levels=3, cmap="viridis")  # a filled contour is a colour map of its own
    assert any("no colour bar" in p for p in figure_problems(fig))


def test_a_figure_wider_than_the_page_column_allows_is_refused():
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), constrained_layout=True)
    for ax in axes:
        labelled(ax).plot([0, 1])
    assert any(p.startswith("too wide: 1") and "(at most 10)" in p for p in figure_problems(fig))
    fig.set_size_inches(9.5, 3.6)
    assert figure_problems(fig) == []
    with pytest.raises(ValueError, match="max_width must be a positive number of inches, got 0"):
        figure_problems(fig, max_width=0)
