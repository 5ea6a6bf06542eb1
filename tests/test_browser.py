"""The book as a reader meets it: every page of the built HTML, in a real headless Chromium.

Builds the book (unless ``_build/html`` is newer than every source, or FLOWBOOK_SKIP_BUILD=1),
serves it on 127.0.0.1, and checks each page in ``_toc.yml``: no failed or off-machine request,
math typeset by the locally served MathJax, every image loaded, widgets rendered from their saved
state, prev/next and the sidebar reaching every page, and each chapter's Colab link pointing at
its own notebook. Every interactive figure (a ``flowbook.plot.animate`` player, or an ipywidgets
slider) is played control by control and must change the picture it shows, loading nothing off
the machine; the last tests plant a frozen player, a dead slider and a player that fetches its
icons from a CDN, and check that these checks fail on them. Every page is also read for the slips a
reader would meet (tests/_browser_checks.py): raw TeX outside typeset math (text and link text), progress
bars and empty bands left by hidden widgets, raw ``array(``/``tensor(`` reprs in outputs, code inputs,
listings and doctests wider than their box (folded ones opened), solutions shown without a click, and a
chapter that cites nothing; each check fails on a planted page (test_reader_checks_fail_on_planted_defects).
Needs Debian's ``chromium`` and the ``playwright`` package (no ``playwright install``); outside CI the
test is skipped when they are missing, in CI it fails.
"""
import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from _browser_checks import reader_problems, report, typeset

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO = "flowbook-course/flowbook"


def toc_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [c["file"] for c in part["chapters"]]
    return pages


def source_of(page):
    for ext in (".ipynb", ".md"):
        if (ROOT / (page + ext)).exists():
            return ROOT / (page + ext)
    raise FileNotFoundError(page)


def needs_build():
    index = HTML / "book" / "intro.html"
    if os.environ.get("FLOWBOOK_SKIP_BUILD") == "1" and index.exists():
        return False
    if not index.exists():
        return True
    built = min((HTML / (p + ".html")).stat().st_mtime if (HTML / (p + ".html")).exists() else 0
                for p in toc_pages())
    sources = [source_of(p) for p in toc_pages()] + list((ROOT / "flowbook").rglob("*.py"))
    sources += [ROOT / "_config.yml", ROOT / "_toc.yml"]
    return any(s.stat().st_mtime > built for s in sources)


def require_browser():
    """Skip (fail, in CI) when chromium or playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and playwright for the browser test (.ci/run installs them)")
        pytest.skip("chromium or playwright not installed")


@contextlib.contextmanager
def serve(folder):
    """Serve ``folder`` on 127.0.0.1 (a free port); yield the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def site():
    require_browser()
    if needs_build():
        subprocess.run(["bash", str(ROOT / "scripts" / "build_book.sh")], check=True, cwd=ROOT)
    with serve(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def chromium():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def browser(site, chromium):
    return chromium


def open_page(browser, url):
    """Load ``url``; return the page and the lists of failed and off-machine requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed, offsite = [], []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            return r.continue_()
        offsite.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, failed, offsite


@pytest.mark.parametrize("page_path", toc_pages())
def test_page(browser, site, page_path):
    src = source_of(page_path).read_text()
    page, failed, offsite = open_page(browser, f"{site}/{page_path}.html")
    try:
        assert not offsite, f"requests leaving 127.0.0.1: {offsite}"
        assert not failed, f"failed requests: {failed}"
        # Math: MathJax (served locally) typeset every formula; no raw TeX delimiters remain.
        has_math = "$" in src or "math" in src
        if has_math:
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.document", timeout=20000)
            page.evaluate("MathJax.startup.promise")
            assert page.locator("mjx-container").count() > 0, "no typeset math on a page with math"
        text = page.locator("article").inner_text()
        for raw in ("$$", "\\(", "\\["):
            assert raw not in text, f"raw TeX {raw!r} left in the page text"
        # Images: every one loaded, with a non-zero size.
        broken = page.evaluate("""[...document.images].filter(i => !(i.complete && i.naturalWidth > 0 &&
                                   i.naturalHeight > 0)).map(i => i.src)""")
        assert not broken, f"images that did not load: {broken}"
        if source_of(page_path).suffix == ".ipynb":  # every chapter shows its results as figures
            n_figures = page.locator("article .cell_output img").count()
            n_shows = src.count("plt.show()")
            assert n_figures >= min(n_shows, 1) and n_figures >= n_shows // 2, \
                f"{n_figures} figures in the page for {n_shows} plt.show() calls in the notebook"
        # Widgets: their saved state renders as real controls in the static page.
        # (tqdm's progress bars are widgets too; they hide themselves when done, so only
        # sliders are required to be visible.)
        html = (HTML / f"{page_path}.html").read_text()
        if "application/vnd.jupyter.widget-state+json" in html:
            page.wait_for_selector(".jupyter-widgets", state="attached", timeout=20000)
            if "SliderModel" in html:
                slider = page.locator(".widget-slider").first
                slider.wait_for(state="visible", timeout=20000)
                assert slider.bounding_box()["width"] > 50
        # Colab: a chapter's launch button opens that chapter's notebook in the repository.
        if source_of(page_path).suffix == ".ipynb":
            hrefs = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
            expected = f"https://colab.research.google.com/github/{REPO}/blob/main/{page_path}.ipynb"
            assert expected in hrefs, f"Colab link {hrefs} should be {expected}"
    finally:
        page.close()


def chapter_pages():
    """The numbered chapters (``book/NN_name``), the pages that must read as a textbook."""
    return [p for p in toc_pages() if Path(p).name[:2].isdigit()]


# Visible code inputs: a folded input (hide-input, hide-cell) sits in a closed <details> (its box keeps a
# height for the toggle's animation, but nothing of it shows).
CODE_SHARE = """() => {
  const article = document.querySelector('article');
  const inputs = [...article.querySelectorAll('.cell_input')].filter(
    e => e.offsetParent !== null && !e.closest('details:not([open])'));
  const height = inputs.reduce((h, e) => h + e.getBoundingClientRect().height, 0);
  return {share: height / article.getBoundingClientRect().height,
          text: inputs.map(e => e.innerText).join('\\n')};
}"""
# Anything wider than its box: display math and output lines (their scroll width exceeds the box).
CLIPPED = """() => {
  const out = [];
  for (const e of document.querySelectorAll('article mjx-container[display="true"], article .cell_output pre')) {
    if (e.offsetParent !== null && e.scrollWidth > e.clientWidth + 2)
      out.push(e.tagName + ': ' + (e.innerText || '').slice(0, 80));
  }
  for (const e of document.querySelectorAll('article table')) {
    const box = e.closest('.pst-scrollable-table-container, .table-wrapper') || e.parentElement;
    if (e.offsetParent !== null && e.getBoundingClientRect().width > box.clientWidth + 2)
      out.push('TABLE: ' + (e.innerText || '').slice(0, 80));
  }
  return out;
}"""


@pytest.mark.parametrize("page_path", toc_pages())
def test_page_shows_no_error_and_nothing_clipped(browser, site, page_path):
    """What a reader sees on the page: no error, nothing cut off, and none of the slips of tests/_browser_checks.py
    (raw TeX in text or links, progress bars and empty bands, raw array/tensor reprs, code wider than its box,
    solutions shown without a click, and, in a chapter, no citation)."""
    page, _, _ = open_page(browser, f"{site}/{page_path}.html")
    try:
        typeset(page)
        outputs = "\n".join(page.locator("article .cell_output").all_inner_texts())
        assert "Traceback (most recent call last)" not in outputs and page.locator(
            "article .output.traceback, article .output.error").count() == 0, "the page shows an error"
        found = {"content wider than its box (scrolls or is cut off)": page.evaluate(CLIPPED)}
        found.update(reader_problems(page, chapter=page_path in chapter_pages()))
        found = {name: problems for name, problems in found.items() if problems}
        assert not found, "what a reader sees on this page:\n" + report(found)
    finally:
        page.close()


@pytest.mark.parametrize("page_path", chapter_pages())
def test_chapter_reads_as_a_textbook(browser, site, page_path):
    page, _, _ = open_page(browser, f"{site}/{page_path}.html")
    try:
        measured = page.evaluate(CODE_SHARE)
        assert measured["share"] <= 0.20, f"visible code takes {measured['share']:.0%} of the page (at most 20%)"
        asserts = [line for line in measured["text"].splitlines() if line.strip().startswith("assert ")]
        assert not asserts, f"visible assert lines: {asserts[:3]}"
        headings = page.eval_on_selector_all("article h2", "els => els.map(e => e.innerText)")
        assert any("What to remember" in h for h in headings), f"no 'What to remember' section in {headings}"
    finally:
        page.close()


def test_navigation_reaches_every_page(browser, site):
    pages = toc_pages()
    page, _, _ = open_page(browser, f"{site}/{pages[0]}.html")
    try:
        sidebar = page.eval_on_selector_all("nav.bd-docs-nav a", "els => els.map(e => e.href)")
        for p in pages[1:]:
            assert any(h.split("#")[0].endswith(f"/{p}.html") for h in sidebar), f"sidebar misses {p}"
        visited = [pages[0]]
        for _ in range(len(pages) - 1):  # follow "next" links through the whole book
            page.click("a.right-next")
            page.wait_for_load_state("load")
            visited.append(urlparse(page.url).path.strip("/").removesuffix(".html"))
        assert visited == pages, f"next-links order {visited} differs from _toc.yml {pages}"
        for p in reversed(pages[:-1]):  # and back again with "previous"
            page.click("a.left-prev")
            page.wait_for_load_state("load")
            assert urlparse(page.url).path.strip("/").removesuffix(".html") == p
    finally:
        page.close()


def test_screenshot_of_a_chapter(browser, site):
    chapters = [p for p in toc_pages() if source_of(p).suffix == ".ipynb"]
    page, _, _ = open_page(browser, f"{site}/{chapters[0]}.html")
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate("window.MathJax && MathJax.startup && MathJax.startup.promise")
        out = ARTIFACTS / "chapter_screenshot.png"
        page.screenshot(path=str(out), full_page=False)
        assert out.stat().st_size > 10_000
    finally:
        page.close()


# Interactive figures. A player made by flowbook.plot.animate (matplotlib's JavaScript player, its frames
# embedded) has a slider, buttons and repeat-mode radios; an ipywidgets slider may also be left in a page.
# A reader moves each control; a control that selects a frame must change the picture shown.
PLAYER = "div.animation:has(img[id^='_anim_img'])"
START = {"First frame": "End", "Previous frame": "End", "Play backwards": "End",  # where each button starts
         "Next frame": "Home", "Last frame": "Home", "Play": "Home"}             # from, so that it must move


def exercise_controls(page):
    """Move every interactive control on ``page`` as a reader would; return (controls moved, problems)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems, moved, errors = [], 0, []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for i, player in enumerate(page.locator(PLAYER).all(), 1):
        img = player.locator("img[id^='_anim_img']")
        key = img.get_attribute("id").removeprefix("_anim_img")
        page.wait_for_function(f"() => window['anim{key}'] && document.getElementById('_anim_img{key}').src",
                               timeout=10000)
        player.scroll_into_view_if_needed()
        shown = lambda: img.evaluate("e => e.src")  # noqa: E731
        speed = lambda: page.evaluate(f"window['anim{key}'].interval")  # noqa: E731
        slider = player.locator("input[type=range]")

        def to(key_name):  # the slider moved by keyboard: to its first (Home) or last (End) frame, or one step
            slider.focus()
            slider.press(key_name)

        def start(button_title):  # a button's starting frame, set through the player's own script
            page.evaluate(f"window['anim{key}'].{'last' if START[button_title] == 'End' else 'first'}_frame()")

        def expect_change(action, what):
            before = shown()
            action()
            if shown() == before:
                problems.append(f"player {i}: {what} left the figure unchanged")

        def playing_changes(what):
            try:
                page.wait_for_function("([id, s]) => document.getElementById(id).src !== s",
                                       arg=[f"_anim_img{key}", shown()], timeout=4 * speed() + 2000)
            except PlaywrightTimeout:
                problems.append(f"player {i}: {what} left the figure unchanged")

        expect_change(lambda: to("End"), "the slider moved to its end")
        expect_change(lambda: to("Home"), "the slider moved back to its start")
        expect_change(lambda: to("ArrowRight"), "one step of the slider")
        moved += 1
        for button in player.locator("button").all():
            title, moved = button.get_attribute("title"), moved + 1
            if title in ("Play", "Play backwards"):
                start(title)
                button.click()
                playing_changes(f"the {title!r} button")
                player.locator("button[title='Pause']").click()
            elif title in START:
                start(title)
                expect_change(button.click, f"the {title!r} button")
            elif title == "Pause":
                start("Play")
                player.locator("button[title='Play']").click()
                button.click()
                before = shown()
                page.wait_for_timeout(3 * speed())
                if shown() != before:
                    problems.append(f"player {i}: the figure kept moving after 'Pause'")
            elif title in ("Decrease speed", "Increase speed"):
                before = speed()
                button.click()
                if speed() == before:
                    problems.append(f"player {i}: {title!r} left the playing speed at {before} ms")
            else:
                problems.append(f"player {i}: a control this test does not know, {title!r}")
        for radio in player.locator("input[type=radio]").all():
            radio.check()
            moved += 1
            if not radio.is_checked():
                problems.append(f"player {i}: the repeat mode {radio.get_attribute('value')!r} cannot be chosen")
    for i, widget in enumerate(page.locator(".widget-slider").all(), 1):
        # An ipywidgets slider: its picture (an image in the same output) must follow it.
        box = widget.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' cell_output ')][1]")
        box = box if box.count() else page.locator("body")
        pictures = lambda: box.evaluate("e => [...e.querySelectorAll('img')].map(i => i.src)")  # noqa: E731
        readout = lambda: widget.inner_text()  # noqa: E731
        before, text = pictures(), readout()
        handle = widget.locator(".noUi-handle, input[type=range]").first
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        page.wait_for_timeout(300)
        moved += 1
        if readout() == text:
            problems.append(f"widget slider {i}: the slider does not move")
        elif pictures() == before:
            problems.append(f"widget slider {i}: moved (readout {readout()!r}) but the figure did not change")
    problems += [f"JavaScript error: {e}" for e in errors]
    return moved, problems


def interactive(page_path):
    """Whether the built page holds a player or a widget slider (the pages the two tests below open)."""
    html = (HTML / f"{page_path}.html").read_text()
    return "_anim_img" in html or "SliderModel" in html


@pytest.mark.parametrize("page_path", toc_pages())
def test_every_interactive_control_changes_its_figure_offline(browser, site, page_path):
    src = source_of(page_path).read_text()
    calls = src.count("fbp.animate(") + src.count("fb.plot.animate(")
    if not interactive(page_path):
        assert calls == 0, f"the notebook makes {calls} moving figures, the page shows none"
        return
    page, failed, offsite = open_page(browser, f"{site}/{page_path}.html")
    try:
        assert page.locator(PLAYER).count() >= calls, f"{calls} animate() calls, {page.locator(PLAYER).count()} players"
        moved, problems = exercise_controls(page)
        assert moved > 0, "an interactive page with no control found"
        assert not problems, "\n".join(problems)
        # the figures load, and play, offline: every frame embedded, no request off the machine
        frames = page.evaluate(f"[...document.querySelectorAll(\"{PLAYER} img\")].map(i => i.src.slice(0, 40))")
        assert not offsite, f"requests leaving 127.0.0.1: {offsite}"
        assert not failed, f"failed requests: {failed}"
        assert all(f.startswith("data:image/") for f in frames), f"frames not embedded in the page: {frames}"
    finally:
        page.close()


# The two checks above, on planted defects: small pages served from a temporary folder.
def planted_page(folder, name, body, outside=""):
    (folder / f"{name}.html").write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
                                         f"<body>{outside}<article>{body}</article></body></html>")


def moving_line(draw_changes=True):
    import matplotlib.pyplot as plt

    import flowbook.plot as fbp

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set(xlabel="x", ylabel="y", title="a moving line")  # a figure flowbook's layout check accepts
    line, = ax.plot([0, 1], [0, 0])
    draw = (lambda a: line.set_ydata([0, a])) if draw_changes else (lambda a: None)
    return fbp.animate(fig, draw, [0.0, 0.5, 1.0], interval=100, dpi=30).data


def test_controls_check_fails_on_a_frozen_or_dead_figure(chromium, tmp_path):
    planted_page(tmp_path, "good", moving_line())
    planted_page(tmp_path, "frozen", moving_line(draw_changes=False))  # every frame the same picture
    dead = moving_line().replace('oninput="anim', 'data-oninput="anim')  # the slider moves, the picture stays
    planted_page(tmp_path, "dead", dead)
    with serve(tmp_path) as url:
        results = {}
        for name in ("good", "frozen", "dead"):
            page, _, _ = open_page(chromium, f"{url}/{name}.html")
            results[name] = exercise_controls(page)
            page.close()
    assert results["good"][1] == [] and results["good"][0] >= 10, results["good"]
    frozen = "\n".join(results["frozen"][1])
    assert "the slider moved to its end left the figure unchanged" in frozen
    assert "'Next frame' button left" in frozen and "'Play' button left" in frozen, frozen
    dead = results["dead"][1]
    assert any("slider" in p for p in dead) and not any("button" in p for p in dead), dead


def test_offline_check_fails_on_a_player_that_fetches_its_icons(chromium, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(2, 2), dpi=30)
    ax.set(xlabel="x", ylabel="y", title="a moving line")
    line, = ax.plot([0, 1], [0, 0])
    stock = FuncAnimation(fig, lambda a: line.set_ydata([0, a]), frames=[0.0, 1.0]).to_jshtml()
    plt.close(fig)
    planted_page(tmp_path, "stock", stock)  # matplotlib's own player: its icons come from a CDN
    planted_page(tmp_path, "ours", moving_line())
    with serve(tmp_path) as url:
        offsite = {}
        for name in ("stock", "ours"):
            page, _, offsite[name] = open_page(chromium, f"{url}/{name}.html")
            page.close()
    assert any("font-awesome" in u for u in offsite["stock"]), offsite
    assert offsite["ours"] == [], offsite


def test_controls_check_fails_on_a_widget_slider_drawn_by_python(chromium, tmp_path):
    """The old section 1.5: an ipywidgets slider whose picture only Python could redraw (dead on a static page)."""
    import io
    import json

    import ipywidgets as widgets
    from ipywidgets.embed import embed_data
    from PIL import Image

    scripts = ROOT / "book" / "_static" / "widgets"
    if not (scripts / "require.js").exists() or not (scripts / "embed-amd.js").exists():
        pytest.skip("the widget scripts are fetched by the build (scripts/fetch_widget_js.sh)")
    for name in ("require.js", "embed-amd.js"):
        shutil.copy(scripts / name, tmp_path / name)
    png = io.BytesIO()
    Image.new("RGB", (40, 20), "purple").save(png, format="png")
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t")
    data = embed_data(views=[widgets.VBox([slider, widgets.Image(value=png.getvalue(), format="png")])])
    planted_page(tmp_path, "widget", (
        '<script src="require.js"></script><script src="embed-amd.js" data-jupyter-widgets-cdn=""></script>'
        f'<script type="application/vnd.jupyter.widget-state+json">{json.dumps(data["manager_state"])}</script>'
        '<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">'
        f'{json.dumps(data["view_specs"][0])}</script></div>'))
    with serve(tmp_path) as url:
        page, failed, offsite = open_page(chromium, f"{url}/widget.html")
        try:
            page.wait_for_selector(".widget-slider", timeout=20000)
            moved, problems = exercise_controls(page)
        finally:
            page.close()
    assert not failed and not offsite, (failed, offsite)
    assert moved == 1 and len(problems) == 1 and "moved (readout" in problems[0] and "did not change" in problems[0], \
        problems


# The reader's checks of tests/_browser_checks.py, each on a planted page (one defect a page), and all of them
# on a page of look-alikes that a book may show (typeset math, code, dollars, folded solutions, pictures).
WIDE = "x = " + " + ".join(f"weight_{i}" for i in range(20))  # about 230 characters
PLANTED = {
    "raw TeX": {
        "tex_text": r"<p>The variance $\operatorname{Var} = 2(\lVert J_s\rVert_F^2</p><ul><li>\sum_i J_{ii}^2)</li></ul>",
        "tex_link": ('<p>See the table.</p>', r'<nav><a href="#c">The condition u^\top w &gt; -1</a></nav>'),
        "tex_dollars": "<p>the loss $L = a + b$ was not typeset</p>",
    },
    "progress bar or empty band": {
        "tqdm_text": '<div class="cell_output"><div class="output stderr"><pre>fit:  46%|████▌     | 274/600 '
                     '[00:03&lt;00:04, 80.1it/s]</pre></div></div>',
        "tqdm_widget": '<div class="cell_output"><div class="output"><div class="jupyter-widgets widget-hprogress">'
                       '<progress value="46" max="100"></progress> 46%</div></div></div>',
        "band": '<div class="cell_input"><pre>fit(model)</pre></div><div class="cell_output"><div class="output">'
                '<div class="jupyter-widgets widget-hprogress" style="visibility: hidden; height: 600px">'
                '<progress value="600" max="600"></progress> 100% 600/600</div></div></div>',  # a hidden tqdm bar
    },
    "raw repr": {
        "array": '<div class="cell_output"><pre>[array([[2.6713803e-19, 1.2e-3]], shape=(200, 200), dtype=float32)]'
                 '</pre></div>',
        "tensor": '<div class="cell_output"><pre>✓ the KL is small: tensor(0.0123)</pre></div>',
    },
    "code wider than its box": {
        "wide_input": f'<div class="cell_input"><div class="highlight"><pre>{WIDE}</pre></div></div>',
        "wide_folded": f'<details><summary>Show code cell source</summary><div class="cell_input"><div class="highlight">'
                       f'<pre>{WIDE}</pre></div></div></details>',
        "wide_listing": f'<div class="highlight-python"><div class="highlight"><pre>&gt;&gt;&gt; {WIDE}</pre></div></div>',
    },
    "solution shown": {
        "solution_text": "<p><strong>1.</strong> Show that F(t) = exp(tA).</p><p><em>Solution.</em> F(t) = exp(tA), so...</p>",
        "solution_cell": '<p>2. Compute the mutual information.</p><div class="cell_input"><pre># Solution\nmi = 1.2</pre></div>',
        "solution_open": '<details open class="sd-dropdown"><summary>Solution</summary><p>Solution. It is 3.</p></details>',
    },
    "no citation": {
        "uncited": "<p>Real NVP (Dinh et al., 2017) stacks affine couplings.</p>",
    },
}
LOOK_ALIKES = f"""<style>pre {{ overflow: auto }}</style>
<p>Typeset math <mjx-container class="MathJax">\\frac{{a}}{{b}} x_{{i}} u^\\top</mjx-container> and
  <code>x_{{i}} = \\alpha</code>; costs of $5 and $10; a lone backslash \\ ; x^2 and x_1.</p>
<pre>\\sum_i $x$</pre><div class="cell_input"><pre>s = "$a$ \\\\top"  # shorter than its box</pre></div>
<p>The solution map of the ODE; <a href="bibliography.html#dinh2017">[DSB17]</a>; the solution is unique.</p>
<details class="sd-dropdown"><summary>Solution</summary><p>Solution. Hidden until clicked.</p></details>
<details><summary>Show code cell content</summary><div class="cell_input"><pre># Solution
mi = 1.2</pre></div>
  <div class="cell_output"><pre>an array of shape (3,), a tensor on the cpu</pre></div></details>
<div class="cell_output"><img width="300" height="200" alt="a figure"
  src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='300' height='200'/%3E"></div>
<div class="cell_output"><div class="output"><svg width="300" height="200"><circle cx="50" cy="50" r="40"/></svg></div></div>
<div class="cell_output"><div class="output"><pre>torch.Size([3]) 100% of the runs  5 it</pre></div></div>
<div class="cell_output"><div class="output"><div class="widget-hprogress" style="display: none; height: 60px">
  <progress value="100" max="100"></progress></div></div></div>
<div class="cell_output"><div class="output" style="height: 30px"></div></div>
<div class="cell_output"><div class="output"><mjx-container display="true" style="display: block; height: 80px">
  </mjx-container></div></div>"""


def test_reader_checks_fail_on_planted_defects(chromium, tmp_path):
    style = "<style>article { width: 600px } pre { overflow: auto }</style>"
    for defects in PLANTED.values():
        for name, body in defects.items():
            body, outside = body if isinstance(body, tuple) else (body, "")
            planted_page(tmp_path, name, style + body, outside)
    planted_page(tmp_path, "look_alikes", style + LOOK_ALIKES)
    with serve(tmp_path) as url:
        found = {}
        for name in [n for d in PLANTED.values() for n in d] + ["look_alikes"]:
            page, _, _ = open_page(chromium, f"{url}/{name}.html")
            found[name] = reader_problems(page, chapter=name in ("uncited", "look_alikes"))
            page.close()
    assert found.pop("look_alikes") == {}, "a check fired on look-alikes a page may show"
    for check, defects in PLANTED.items():
        for name in defects:
            assert list(found[name]) == [check], f"{name}: {found[name]} (expected only {check!r})"
    text = lambda name: " | ".join(found[name][next(iter(found[name]))])  # noqa: E731
    assert "in the text" in text("tex_text") and r"\operatorname" in text("tex_text") and r"\sum" in text("tex_text")
    assert "in a link" in text("tex_link") and "u^\\top" in text("tex_link")
    assert "$L = a + b$" in text("tex_dollars")
    assert "46%|" in text("tqdm_text") and "a progress bar is shown" in text("tqdm_widget")
    assert "empty band 600 px" in text("band") and "fit(model)" in text("band")
    assert "array(" in text("array") and "tensor(" in text("tensor")
    assert text("wide_input").startswith("code cell wider") and "fit)" in text("wide_input")
    assert text("wide_folded").startswith("code cell wider") and "fit, folded)" in text("wide_folded")
    assert text("wide_listing").startswith("listing wider")
    assert "Solution." in text("solution_text") and "# Solution" in text("solution_cell")
