"""What a reader sees on a page, checked in the browser: the JavaScript run by ``test_browser.py``.

Each check is a JavaScript function applied to a loaded page (the book's pages and the planted pages
of the tests alike) that returns a list of problems, one short string each (what is wrong, and the
offending text). ``reader_problems(page)`` runs them all once the page's math is typeset.
"""

# Shared helpers, prepended to every check. ``shown(e)``: e is rendered, has an area and is not folded
# away (inside a closed <details> other than in its <summary>, the toggle a reader clicks).
# ``textOf(root, skip)``: the text of root's shown text nodes, outside the elements matching ``skip``
# (each skipped element becomes one space, so that typeset math separates words as on the screen).
HELPERS = r"""
const folded = e => {
  for (let d = e.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) {
    if (!d.open) {
      const s = d.querySelector(':scope > summary');
      if (!(s && s.contains(e))) return true;
    }
  }
  return false;
};
const seen = new Map();
const shown = e => {
  if (!e || e.nodeType !== 1) return false;
  if (seen.has(e)) return seen.get(e);
  let v = !folded(e);
  if (v && e.checkVisibility) v = e.checkVisibility({opacityProperty: true, visibilityProperty: true});
  if (v) { const r = e.getBoundingClientRect(); v = r.width > 0 && r.height > 0; }
  seen.set(e, v);
  return v;
};
const hidden = e => folded(e) || (e.checkVisibility && !e.checkVisibility({opacityProperty: true, visibilityProperty: true})
                                    && getComputedStyle(e).display !== 'contents');
const textOf = (root, skip) => {
  let out = '';
  const walk = node => {
    for (const c of node.childNodes) {
      if (c.nodeType === 3) { out += c.data; continue; }
      if (c.nodeType !== 1) continue;
      if (['SCRIPT', 'STYLE', 'TEMPLATE'].includes(c.tagName)) continue;
      if (skip && c.matches(skip)) { out += ' '; continue; }
      if (hidden(c)) continue;
      walk(c);
    }
  };
  walk(root);
  return out.replace(/\s+/g, ' ').trim();
};
const around = (text, index, n = 50) =>
  (index > n ? '…' : '') + text.slice(Math.max(0, index - n), index + n).trim() + (index + n < text.length ? '…' : '');
const article = document.querySelector('article') || document.body;
"""

# 1. Raw TeX outside typeset math: a TeX command (``\top``, ``\frac``...), a sub- or superscript in braces
# or before a command (``_{``, ``^{``, ``^\``) or a ``$...$`` pair, in the article's shown prose (code,
# listings, outputs in <pre> and typeset math left out) and in the text of every shown link on the page
# (the concordance's and errata's links, the sidebars). Prose may hold a lone ``$`` or ``\``, never these.
RAW_TEX = r"""() => {
""" + HELPERS + r"""
  // a $...$ pair as TeX opens one: no space after the opening $, none before the closing one, no digit after it
  // (so that "$5 and $10" is prose)
  const tex = /\\[A-Za-z]{2,}|\\[,;!{}|]|[_^]\{|\^\\|\$[^$\s](?:[^$]*[^$\s])?\$(?!\d)/g;
  const skip = 'pre, code, kbd, samp, mjx-container, .MathJax, .cell_input, script, style';
  const out = [];
  // the article's shown text, block by block (a text node belongs to its nearest block: paragraph, list item...)
  const blocks = 'p, li, dt, dd, td, th, h1, h2, h3, h4, h5, h6, figcaption, caption, blockquote, div, section, article';
  const texts = new Map();
  const walk = node => {
    for (const c of node.childNodes) {
      const block = (c.nodeType === 1 ? c.parentElement : node).closest(blocks) || article;
      if (c.nodeType === 3) { texts.set(block, (texts.get(block) || '') + c.data); continue; }
      if (c.nodeType !== 1 || ['SCRIPT', 'STYLE', 'TEMPLATE'].includes(c.tagName)) continue;
      if (c.matches(skip)) { texts.set(block, (texts.get(block) || '') + ' '); continue; }
      if (!hidden(c)) walk(c);
    }
  };
  walk(article);
  for (let text of texts.values()) {
    text = text.replace(/\s+/g, ' ').trim();
    for (const m of text.matchAll(tex)) out.push(`raw TeX ${JSON.stringify(m[0])} in the text: ${around(text, m.index)}`);
  }
  for (const a of document.querySelectorAll('a')) {
    if (!shown(a) || a.closest(skip)) continue;
    const text = textOf(a, skip);
    for (const m of text.matchAll(tex)) out.push(`raw TeX ${JSON.stringify(m[0])} in a link: ${around(text, m.index)}`);
  }
  return [...new Set(out)];
}"""

# 2. Progress bars left in the page (a tqdm widget or its text rendering), and empty bands: an output box
# taller than 40 px that shows nothing (the box of a hidden widget). An output "shows" text, a picture
# (img, svg, canvas, video), typeset math or a control.
PROGRESS = r"""() => {
""" + HELPERS + r"""
  const out = [];
  for (const e of article.querySelectorAll('.widget-hprogress, .widget-vprogress, .widget-progress, progress, [role=progressbar]'))
    if (shown(e)) out.push(`a progress bar is shown: ${(e.closest('.jupyter-widgets, .cell_output') || e).innerText.trim().slice(0, 80)}`);
  const bar = /\d+%\|[^\n]{0,80}|\d+(?:\.\d+)?\s?(?:it\/s|s\/it)\]/g;
  for (const o of article.querySelectorAll('.cell_output')) {
    if (!shown(o)) continue;
    const text = textOf(o);
    for (const m of text.matchAll(bar)) out.push(`progress-bar text in an output: ${around(text, m.index, 40)}`);
  }
  const shows = 'img, svg, canvas, video, iframe, object, embed, mjx-container, input, select, textarea';
  for (const o of article.querySelectorAll('.cell_output, .cell_output > *')) {
    if (!shown(o)) continue;
    const h = o.getBoundingClientRect().height;
    if (h <= 40 || textOf(o).length) continue;
    if (o.matches(shows) || [...o.querySelectorAll(shows)].some(shown)) continue;
    if (o.parentElement.matches('.cell_output') && o.parentElement.getBoundingClientRect().height === h) continue;  // told once
    const box = o.closest('.cell_output'), cell = o.closest('.cell');
    const input = (cell && cell.querySelector('.cell_input')) ||
                  (box.previousElementSibling && box.previousElementSibling.matches('.cell_input') ? box.previousElementSibling : null);
    const before = input ? input.textContent.trim().split('\n')[0].slice(0, 60) : '';
    out.push(`an empty band ${Math.round(h)} px high (an output that shows nothing) at y=${Math.round(o.getBoundingClientRect().top + scrollY)}` +
             (before ? ` after the code: ${before}` : ''));
  }
  return out;
}"""

# 3. Raw reprs in outputs: ``array(`` or ``tensor(`` printed by a cell (a plotting call's return value, a
# check message that prints a tensor). Folded outputs count: a reader who opens them sees them.
REPRS = r"""() => {
  const out = [];
  for (const o of document.querySelectorAll('article .cell_output')) {
    const copy = o.cloneNode(true);
    copy.querySelectorAll('script, style, button').forEach(s => s.remove());  // the copy button's tooltip
    const text = copy.textContent;
    for (const m of text.matchAll(/\b(?:array|tensor)\(/g))
      out.push(`raw ${m[0]} repr in an output: ${text.slice(Math.max(0, m.index - 30), m.index + 70).replace(/\s+/g, ' ').trim()}`);
  }
  return [...new Set(out)];
}"""

# 4. Code wider than its box: every listing (code cell inputs, folded ones opened; highlighted listings such
# as fb.source() and the API pages' examples; doctests) must fit without scrolling (shown outputs: CLIPPED).
# Folded inputs are measured opened, then folded again.
WIDE_CODE = r"""() => {
  const closed = [...document.querySelectorAll('article details:not([open])')];
  closed.forEach(d => { d.open = true; });
  const out = [];
  try {
    const pres = new Set(document.querySelectorAll(
      'article .cell_input pre, article .highlight pre, article .doctest pre, article pre.literal-block'));
    for (const e of pres) {
      if (e.offsetParent === null || e.scrollWidth <= e.clientWidth + 2) continue;
      const lines = e.innerText.split('\n');
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
      const fits = Math.floor(longest.length * e.clientWidth / e.scrollWidth);
      const where = e.closest('.cell_input') ? 'code cell' : 'listing';
      const hid = closed.some(d => d.contains(e)) ? ', folded' : '';
      out.push(`${where} wider than its box (${longest.length} characters, ${fits} fit${hid}): ${longest.trim().slice(0, 100)}`);
    }
  } finally {
    closed.forEach(d => { d.open = false; });
  }
  return out;
}"""

# 5. Solutions a reader sees without a click: shown prose or a title starting "Solution", or a shown code cell
# whose first line is a "# Solution" comment. A solution in a closed dropdown or folded cell (its toggle's
# label may say "Solution") is what an exercise should look like.
SOLUTIONS = r"""() => {
""" + HELPERS + r"""
  const out = [];
  const blocks = 'p, li, dt, h2, h3, h4, h5, h6, .admonition-title, .sd-card-title, .sd-card-body > *';
  for (const b of article.querySelectorAll(blocks)) {
    if (!shown(b) || b.closest('summary, .cell_input, .cell_output, nav')) continue;
    const text = textOf(b);
    if (/^\W{0,3}Solutions?\b/i.test(text)) out.push(`a solution shown without a click: ${text.slice(0, 90)}`);
  }
  for (const pre of article.querySelectorAll('.cell_input pre')) {
    if (!shown(pre)) continue;
    const first = pre.innerText.split('\n').find(l => l.trim()) || '';
    if (/^\s*#+\s*Solutions?\b/i.test(first)) out.push(`a solution cell shown without a click: ${first.trim().slice(0, 90)}`);
  }
  return out;
}"""

# 6. A chapter cites the works it builds on: at least one citation link into the bibliography page.
CITES = r"""() => [...document.querySelectorAll('article a[href*="bibliography.html#"]')].map(a => a.innerText)"""

CHECKS = {"raw TeX": RAW_TEX, "progress bar or empty band": PROGRESS, "raw repr": REPRS,
          "code wider than its box": WIDE_CODE, "solution shown": SOLUTIONS}


def typeset(page):
    """Wait until MathJax, when the page loads it, has typeset the page."""
    if page.locator("script[src*='mathjax' i], script[src*='tex-chtml' i], script[src*='tex-mml' i]").count():
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        page.evaluate("MathJax.startup.promise.then(() => true)")


def reader_problems(page, chapter=False):
    """Run every check on a loaded page; return {check name: [problems]} for the checks that found some."""
    typeset(page)
    found = {name: page.evaluate(js) for name, js in CHECKS.items()}
    if chapter and not page.evaluate(CITES):
        found["no citation"] = ["the chapter links no work in the bibliography (cite with {cite:p})"]
    return {name: problems for name, problems in found.items() if problems}


def report(found, most=15):
    """The problems of ``reader_problems`` as one message, grouped by check (at most ``most`` of each)."""
    return "\n".join(f"{name} ({len(problems)}):\n  " + "\n  ".join(problems[:most])
                     + (f"\n  … and {len(problems) - most} more" if len(problems) > most else "")
                     for name, problems in found.items())
