"""The API reference (book/api/*.md) documents every public name exactly once, and nothing that is gone.

The pages are read the way Sphinx's autodoc reads them: ``.. automodule:: M`` with ``:members:``
documents the names of ``M.__all__`` (or, without ``__all__``, M's own public classes and
functions), less ``:exclude-members:``, and only those autodoc would show (a docstring, or a ``#:``
comment for data, unless ``:undoc-members:``); ``.. autoclass:: M.C`` and friends document one
object. A name counts as documented when the object it names is, so a re-export
(``flowbook.Affine`` is ``flowbook.transforms.linear.Affine``) is found where it is defined.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import yaml

import flowbook

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "book" / "api"

_DIRECTIVE = re.compile(r"^(\s*)\.\. (auto\w+|currentmodule|module)::\s*(\S+)\s*$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*?)\s*$")
_EVAL_RST = re.compile(r"^```\{eval-rst\}\s*\n(.*?)^```", re.S | re.M)
_MYST_AUTO = re.compile(r"^```\{(auto\w+)\}\s*(\S+)\s*\n(.*?)^```", re.S | re.M)


@dataclasses.dataclass
class Entry:
    page: str
    kind: str  # automodule, autoclass, autofunction, ...
    target: str
    options: dict


def read_entries(pages) -> list[Entry]:
    """Every autodoc directive on the pages, with its options (MyST or reST inside eval-rst)."""
    entries = []
    for page in pages:
        text = page.read_text()
        name = page.name
        current = None  # the current module, as in Sphinx: for the rest of the page
        for block in _EVAL_RST.findall(text):
            lines = block.splitlines()
            for i, line in enumerate(lines):
                m = _DIRECTIVE.match(line)
                if not m:
                    continue
                kind, target = m.group(2), m.group(3)
                if kind in ("currentmodule", "module"):
                    current = target
                    continue
                options = {}
                for opt in lines[i + 1:]:
                    o = _OPTION.match(opt)
                    if not o:
                        break
                    options[o.group(1)] = o.group(2)
                if kind == "automodule":
                    current = target
                elif current and not target.startswith("flowbook"):
                    target = f"{current}.{target}"
                entries.append(Entry(name, kind, target, options))
        for kind, target, body in _MYST_AUTO.findall(text):
            options = {o.group(1): o.group(2) for o in map(_OPTION.match, (" " + b for b in body.splitlines())) if o}
            entries.append(Entry(name, kind, target, options))
    return entries


def default_options() -> dict:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    defaults = config.get("sphinx", {}).get("config", {}).get("autodoc_default_options", {}) or {}
    return {k: ("" if v is True else str(v)) for k, v in defaults.items() if v is not False and v is not None}


def resolve(dotted: str):
    """The object a dotted path names, importing the longest module prefix; raises LookupError."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise LookupError(f"{dotted}: {'.'.join(parts[:cut])} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"{dotted}: no such module")


def key(name: str, obj):
    """What identifies a documented thing: the object itself, or its name for a plain value."""
    if isinstance(obj, (int, float, str, bool, bytes, type(None))):
        return ("value", name.rsplit(".", 1)[-1])
    return ("object", id(obj))


def _attr_docs(module) -> set:
    try:
        from sphinx.pycode import ModuleAnalyzer
        return {name for (_, name) in ModuleAnalyzer.for_module(module.__name__).find_attr_docs()}
    except Exception:  # pragma: no cover - no source
        return set()


def _autodoc_shows(module, name: str, obj, options: dict, attr_docs: set) -> bool:
    """Whether ``automodule:: module`` with ``:members:`` renders ``name`` (autodoc's filter_members)."""
    if inspect.ismodule(obj):
        return False  # autodoc never documents a module as a member of another
    if re.fullmatch(r"__\w+__", name):
        return "special-members" in options
    if name.startswith("_"):
        return "private-members" in options
    if "undoc-members" in options:
        return True
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return bool(getattr(obj, "__doc__", None))
    own = getattr(obj, "__doc__", None)
    if own == getattr(type(obj), "__doc__", None):
        own = None
    return bool(own) or name in attr_docs


def _names(option: str) -> list[str]:
    return [n.strip() for n in option.split(",") if n.strip()]


def documented(entries, defaults=None):
    """(documented: key -> list of (page, qualified name), missing: what the pages name that is gone)."""
    defaults = default_options() if defaults is None else defaults
    found, missing = {}, []

    def add(page, qualified, obj):
        found.setdefault(key(qualified, obj), []).append((page, qualified))

    for e in entries:
        options = {**defaults, **e.options} if e.kind.startswith("auto") else e.options
        try:
            obj = resolve(e.target)
        except LookupError as err:
            missing.append(f"{e.page}: {e.kind} {err}")
            continue
        if e.kind != "automodule":
            add(e.page, e.target, obj)
            continue
        add(e.page, e.target, obj)
        if "members" not in options:
            continue
        module, excluded = obj, set(_names(options.get("exclude-members", "")))
        listed = _names(options["members"])
        if listed:
            names = listed
        elif hasattr(module, "__all__") and "ignore-module-all" not in options:
            names = list(module.__all__)
        else:
            names = [n for n, v in vars(module).items() if not n.startswith("_")
                     and ("imported-members" in options or getattr(v, "__module__", None) == module.__name__)]
        attr_docs = _attr_docs(module)
        for name in names:
            if name in excluded:
                continue
            if not hasattr(module, name):
                missing.append(f"{e.page}: automodule {e.target} lists {name!r} (in :members: or __all__), "
                               "which does not exist")
                continue
            member = getattr(module, name)
            if listed or _autodoc_shows(module, name, member, options, attr_docs):
                add(e.page, f"{e.target}.{name}", member)
    return found, missing


def public_names():
    """flowbook.__all__, and for every module in it, that module's __all__ (recursively): name -> object."""
    names, todo = {}, [("flowbook", flowbook)]
    while todo:
        prefix, module = todo.pop()
        for name in getattr(module, "__all__", []):
            qualified = f"{prefix}.{name}"
            obj = getattr(module, name)  # a name in __all__ that is gone fails here, loudly
            names[qualified] = obj
            if inspect.ismodule(obj):
                todo.append((obj.__name__, obj))
    return names


def api_pages():
    return sorted(API.glob("*.md"))


def check_coverage(entries):
    """The problems with a set of pages, as sentences (empty when all is well)."""
    found, missing = documented(entries)
    problems = list(missing)
    for name, obj in sorted(public_names().items()):
        where = found.get(key(name, obj), [])
        if not where:
            problems.append(f"{name} is on no API page (add its module with :members:, or an autodoc entry)")
        elif len(where) > 1:
            problems.append(f"{name} is documented {len(where)} times: " + ", ".join(f"{p} ({q})" for p, q in where))
    return problems


def test_every_public_name_is_on_exactly_one_api_page():
    problems = check_coverage(read_entries(api_pages()))
    assert not problems, "\n".join(problems)


def test_every_module_of_the_package_has_a_section():
    modules = [m.name for m in pkgutil.walk_packages(flowbook.__path__, "flowbook.")
               if not any(part.startswith("_") for part in m.name.split("."))]
    sections = {}
    for e in read_entries(api_pages()):
        if e.kind == "automodule":
            sections.setdefault(e.target, []).append(e.page)
    absent = [m for m in modules if m not in sections]
    twice = {m: pages for m, pages in sections.items() if len(pages) > 1}
    assert not absent, f"modules with no section on the API pages (book/api/): {absent}"
    assert not twice, f"modules with more than one section: {twice}"


def test_the_toc_lists_every_api_page_and_the_chapters_link_to_them():
    toc = (ROOT / "_toc.yml").read_text()
    listed = re.findall(r"file:\s*book/api/(\S+)", toc)
    assert sorted(listed) == sorted(p.stem for p in api_pages()), listed
    assert "root: book/api" not in toc and not re.search(r"file:\s*book/api\s*$", toc, re.M)
    stale = []
    for page in list((ROOT / "book").glob("*.md")) + list((ROOT / "book").glob("*.ipynb")):
        for target in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]*)>?`", page.read_text()):
            path = (page.parent / target).resolve()
            if "api" in target and not (path.with_suffix(".md").exists() or path.with_suffix(".ipynb").exists()):
                stale.append(f"{page.name}: {{doc}}`{target}`")
    assert not stale, f"links to API pages that do not exist: {stale}"


def long_doctest_lines(limit=100):
    """``file:line (width)`` of every docstring example line wider than ``limit`` as rendered.

    An example is a run of lines that starts at a ``>>>`` line and ends at a blank line, a line
    indented less, or closing quotes; its width is counted from the ``>>>``'s indentation, which
    is where the rendered box starts.
    """
    long = []
    for path in sorted((ROOT / "flowbook").rglob("*.py")):
        indent = None
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.lstrip()
            if stripped.startswith(">>>") and indent is None:
                indent = len(line) - len(stripped)
            elif indent is not None and (not stripped or len(line) - len(stripped) < indent
                                         or stripped.startswith(('"""', "'''"))):
                indent = None
            if indent is not None and len(line) - indent > limit:
                long.append(f"{path.relative_to(ROOT)}:{number} ({len(line) - indent} characters)")
    return long


def test_docstring_examples_fit_their_box():
    # At the book's width a code box shows about 88 characters; a longer line wraps inside it
    # (book/_static/flowbook.css), and one over 100 characters is too long to read as one.
    long = long_doctest_lines()
    assert not long, "docstring example lines over 100 characters:\n" + "\n".join(long)


def test_the_check_fails_on_a_missing_a_duplicated_and_a_stale_name(tmp_path):
    # The checker must be able to fail: hide a class from its module's section (a scratch copy of
    # its page), document a class twice, and document a name that does not exist.
    pages = api_pages()
    entries = read_entries(pages)
    classes = [n for n in flowbook.__all__ if inspect.isclass(getattr(flowbook, n))]
    name = classes[0]
    defined_in = getattr(flowbook, name).__module__
    page = next(e.page for e in entries if e.kind == "automodule" and e.target == defined_in)
    directive = f".. automodule:: {defined_in}\n"
    broken = tmp_path / page
    broken.write_text((API / page).read_text().replace(directive, f"{directive}   :exclude-members: {name}\n"))
    problems = check_coverage(read_entries([p for p in pages if p.name != page] + [broken]))
    assert f"flowbook.{name} is on no API page" in "\n".join(problems), problems

    extra = tmp_path / "extra.md"
    extra.write_text(f"# extra\n\n```{{eval-rst}}\n.. autoclass:: flowbook.{name}\n\n"
                     ".. autofunction:: flowbook.no_such_function\n```\n")
    problems = check_coverage(entries + read_entries([extra]))
    assert any(p.startswith(f"flowbook.{name} is documented 2 times") for p in problems), problems
    assert any("no_such_function" in p for p in problems), problems
