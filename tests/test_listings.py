"""The package listings the chapters print with ``fb.source(...)`` fit the book's 80-character code box.

The package's own style allows 120 columns, so a listed line can silently outgrow the box. The test
finds every ``fb.source(...)`` call in the code cells of ``book/*.ipynb`` (with ``ast``), evaluates it
in a namespace holding the chapter's own ``flowbook`` imports, and checks every listed line. A call
inside ``for name in (a, b):`` is evaluated once for each value of ``name``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import flowbook as fb

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
WIDTH = 80  # the book's code box


def long_lines(text: str, width: int = WIDTH) -> list[str]:
    """The lines of a listing wider than ``width`` characters."""
    return [line for line in text.splitlines() if len(line) > width]


def code_cells(path: Path) -> list[ast.Module]:
    """The parsed code cells of a notebook (cells that are not plain Python, e.g. magics, are skipped)."""
    cells = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        try:
            cells.append(ast.parse(source))
        except SyntaxError:
            continue
    return cells


def chapter_namespace(cells: list[ast.Module]) -> dict:
    """``fb`` plus the names the chapter imports from flowbook (``from flowbook.diffusion import ...``)."""
    namespace = {"fb": fb}
    for tree in cells:
        for node in tree.body:
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if modules and all(m.split(".")[0] == "flowbook" for m in modules):
                exec(compile(ast.Module([node], []), "<chapter imports>", "exec"), namespace)
    return namespace


def source_calls(tree: ast.Module) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each ``fb.source(...)`` call as ``(expression, loops)``: the ``(name, iterable)`` of the loops around it."""
    calls = []

    def visit(node, loops):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("fb.source", "source"):
            calls.append((ast.unparse(node), loops))
        for child in ast.iter_child_nodes(node):
            inner = loops
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and child in node.body:
                inner = loops + [(node.target.id, ast.unparse(node.iter))]
            visit(child, inner)

    visit(tree, [])
    return calls


def listings(path: Path):
    """``(label, text or exception)`` for every listing the chapter prints."""
    cells = code_cells(path)
    namespace = chapter_namespace(cells)
    for tree in cells:
        for expr, loops in source_calls(tree):
            bindings = [{}]
            for name, iterable in loops:
                try:
                    values = list(eval(iterable, namespace))
                except Exception as err:  # reported below as a call that cannot be evaluated
                    bindings = [{"error": err}]
                    break
                bindings = [{**b, name: v} for b in bindings for v in values]
            for binding in bindings:
                label = f"{path.name}: {expr}" + "".join(
                    f" [{k} = {getattr(v, '__qualname__', v)}]" for k, v in binding.items())
                if "error" in binding:
                    yield label, binding["error"]
                    continue
                try:
                    yield label, eval(expr, {**namespace, **binding})
                except Exception as err:
                    yield label, err


def check_listing(label: str, result) -> list[str]:
    """The problems of one listing: it did not evaluate, or lines wider than the code box."""
    if isinstance(result, Exception):
        return [f"{label}: could not be evaluated ({type(result).__name__}: {result})"]
    return [f"{label}: {len(line)} characters: {line.strip()}" for line in long_lines(result)]


def test_every_listing_evaluates_and_fits_the_code_box():
    problems, count = [], 0
    for path in NOTEBOOKS:
        for label, result in listings(path):
            count += 1
            problems += check_listing(label, result)
    assert count >= 40, f"expected the chapters' fb.source(...) listings, found only {count}"
    assert not problems, "\n".join(problems)


def test_source_calls_inside_a_loop_are_evaluated_for_each_value():
    tree = ast.parse("for method in (fb.Affine.forward, fb.Affine.inverse):\n"
                     "    print(fb.source(method, lines=(1, 2)))\n")
    assert source_calls(tree) == [("fb.source(method, lines=(1, 2))",
                                   [("method", "(fb.Affine.forward, fb.Affine.inverse)")])]


def planted_listing(z):
    """A function with a line too wide for the code box (the planted case)."""
    return z + 1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 6.0 + 7.0 + 8.0 + 9.0 + 10.0 + 11.0 + 12.0 + 13.0 + 14.0


def test_the_check_catches_a_long_line_and_a_failed_call():
    problems = check_listing("planted", fb.source(planted_listing))
    assert len(problems) == 1 and "return z + 1.0" in problems[0]
    assert check_listing("fits", fb.source(long_lines)) == []
    assert "could not be evaluated" in check_listing("missing", NameError("name 'method' is not defined"))[0]
