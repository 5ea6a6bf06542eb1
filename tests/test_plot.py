"""flowbook.plot.animate: a figure that moves on a static page, with nothing to fetch and a bounded size."""
import base64
import io
import re

import matplotlib.pyplot as plt
import pytest
from matplotlib.animation import FuncAnimation
from PIL import Image

import flowbook.plot as fbp

FRAME = re.compile(r'frames\[\d+\] = "data:image/png;base64,([^"]*)"')
URL = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", re.I)  # an address a browser would fetch


def line_figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    line, = ax.plot([0, 1], [0, 0])
    ax.set(ylim=(0, 1), xlabel="t", ylabel="y", title="a line")
    return fig, line


def movie(values=(0.0, 0.5, 1.0), **kwargs):
    fig, line = line_figure()
    return fbp.animate(fig, lambda a: line.set_ydata([0, a]), list(values), dpi=30, **kwargs).data


def frames_of(html):
    return [base64.b64decode(f.replace("\\\n", "")) for f in FRAME.findall(html)]


def test_one_embedded_picture_per_value_in_order():
    seen = []
    fig, line = line_figure()
    html = fbp.animate(fig, lambda a: (seen.append(a), line.set_ydata([0, a])), [0.0, 0.25, 0.5, 0.75, 1.0],
                       dpi=30).data
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0]
    pictures = frames_of(html)
    assert len(pictures) == 5 and len(set(pictures)) == 5  # five different pictures
    assert all(Image.open(io.BytesIO(p)).mode == "P" for p in pictures)  # palette PNGs (colors=256)
    assert 'type="range"' in html and "<button" in html  # the player: a slider and buttons
    assert not plt.fignum_exists(fig.number), "the figure stays open and would be shown a second time"


def test_the_html_loads_nothing_from_the_network():
    html = movie()
    assert URL.findall(html) == [] and "<link" not in html and "font-awesome" not in html
    assert '<i class="fa' not in html and html.count("<svg") == 9  # the nine buttons drawn inline


def test_the_url_check_can_fail_matplotlibs_own_player_fetches_its_icons():
    fig, line = line_figure()
    stock = FuncAnimation(fig, lambda a: line.set_ydata([0, a]), frames=[0.0, 1.0]).to_jshtml()
    plt.close(fig)
    assert any("bootstrapcdn" in u for u in URL.findall(stock))


def test_size_is_bounded_and_palette_frames_are_smaller():
    full, small = movie(colors=None), movie()
    assert len(small) < len(full) < 2_000_000
    with pytest.raises(ValueError, match=r"max_bytes = 0\.00 MB: use fewer frames or a lower dpi"):
        movie(max_bytes=1000)


def test_a_book_sized_figure_stays_under_2_mb():
    fig, ax = plt.subplots(figsize=(9, 4))
    image = ax.imshow([[0.0, 1.0], [1.0, 0.0]], interpolation="bilinear")
    fig.colorbar(image, ax=ax, label="value")
    ax.set(xlabel="column", ylabel="row", title="a picture")
    html = fbp.animate(fig, lambda k: image.set_data([[k, 1 - k], [1, k / 2]]), [k / 20 for k in range(21)]).data
    assert len(frames_of(html)) == 21 and len(html) < 2_000_000


@pytest.mark.parametrize("kwargs, error, message", [
    ({"frames": []}, ValueError, r"frames must hold at least 2 values .* got 0"),
    ({"frames": [1.0]}, ValueError, r"frames must hold at least 2 values .* got 1"),
    ({"draw": "not a function"}, TypeError, r"draw must be a function of one frame value; got str"),
    ({"fig": "a figure"}, TypeError, r"fig must be a matplotlib Figure \(e.g. from plt.subplots\(\)\); got str"),
    ({"mode": "bounce"}, ValueError, r"mode must be 'once', 'loop' or 'reflect'; got 'bounce'"),
    ({"interval": 0}, ValueError, r"interval must be a positive number; got 0"),
    ({"dpi": -5}, ValueError, r"dpi must be a positive number; got -5"),
    ({"colors": 1}, ValueError, r"colors must be an integer from 2 to 256, or None for full colour; got 1"),
    ({"colors": 300}, ValueError, r"colors must be an integer from 2 to 256"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    fig, line = line_figure()
    args = {"fig": fig, "draw": lambda a: line.set_ydata([0, a]), "frames": [0.0, 1.0], **kwargs}
    with pytest.raises(error, match=message):
        fbp.animate(args.pop("fig"), args.pop("draw"), args.pop("frames"), **args)
    plt.close(fig)
