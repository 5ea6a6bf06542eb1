"""The book as a reader meets it: every page of the built HTML, in a real headless Chromium.

Builds the book (unless ``_build/html`` is newer than every source, or FLOWBOOK_SKIP_BUILD=1),
serves it on 127.0.0.1, and checks each page in ``_toc.yml``: no failed or off-machine request,
math typeset by the locally served MathJax, every image loaded, widgets rendered from their saved
state, prev/next and the sidebar reaching every page, and each chapter's Colab link pointing at
its own notebook. Needs Debian's ``chromium`` and the ``playwright`` package (no ``playwright
install``); outside CI the test is skipped when they are missing, in CI it fails.
"""
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


@pytest.fixture(scope="module")
def site():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and playwright for the browser test (.ci/run installs them)")
        pytest.skip("chromium or playwright not installed")
    if needs_build():
        subprocess.run(["bash", str(ROOT / "scripts" / "build_book.sh")], check=True, cwd=ROOT)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


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
    page, _, _ = open_page(browser, f"{site}/{page_path}.html")
    try:
        if page.locator("mjx-container").count():
            page.evaluate("MathJax.startup.promise")
        outputs = "\n".join(page.locator("article .cell_output").all_inner_texts())
        assert "Traceback (most recent call last)" not in outputs and page.locator(
            "article .output.traceback, article .output.error").count() == 0, "the page shows an error"
        assert page.evaluate(CLIPPED) == [], "content wider than its box (scrolls or is cut off)"
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
