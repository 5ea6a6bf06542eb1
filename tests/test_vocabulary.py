"""One vocabulary, enforced: no public name of flowbook uses a word CONTRIBUTING's table says not to.

The table (CONTRIBUTING.md, "One vocabulary") has three columns: idea, name, not. An entry of "not" is

* a plain word (``num_reflections``): a public parameter, method or attribute of exactly that name
  (whole names, case-sensitive) is an offender;
* a word that is also the right name of another idea (``net``: a conditioner, not a velocity field;
  ``steps``: optimizer steps, not solver steps, Glow's layers or Gibbs rounds), or a word with a
  use (``bound (for a log-scale)``): checked only where it means the wrong idea, by its rule in
  ``SCOPES``. A shared word without a rule fails the test (never checked everywhere or nowhere);
  a use without a rule (``shape= for an event``) is left to review (``rules`` returns it);
* a tuple (``(mu, alpha)``): a signature holding all of its names is an offender.

Names are read in every public module (``flowbook`` and its submodules without a leading
underscore), from its ``__all__`` (or the public names it defines): functions' parameters;
classes' ``__init__`` and public methods' parameters, public method and attribute names (class
attributes, dataclass fields, ``self.name = ...`` in the methods). Local variables of model code
are checked for the log-determinant's spellings (the table's "variables in model code").
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _in(module, *names):
    return any(module == n or module.startswith(n + ".") for n in names)


# Where a word that is also another idea's name (or a word with a use) means the wrong idea. Each
# rule gets the signature's parameter names (None for a method or attribute name) and the owner's
# module, and says whether this use is the synonym.
SCOPES = {
    # optimizer steps go with a learning rate (or epochs); steps anywhere else are layers, solver steps or
    # sweeps (the book's benchmark, flowbook.teaching.bench, times optimizer steps at a fixed lr)
    "steps": lambda params, module: (params is not None and not {"lr", "epochs"} & set(params)
                                     and not _in(module, "flowbook.teaching")),
    # net is a conditioner; in the velocity-field modules the network is the field
    "net": lambda params, module: _in(module, "flowbook.transforms.ode", "flowbook.flow_matching",
                                      "flowbook.integrators"),
    # bound is a spline's interval (it goes with bins); elsewhere a bound is a log-scale's clamp
    "bound": lambda params, module: (params is not None and "bins" not in params
                                     and not _in(module, "flowbook.transforms.spline")),
    # a ready-made flow's distribution is its base; prior is the VAE's word
    "prior": lambda params, module: _in(module, "flowbook.flows", "flowbook.flow", "flowbook.dequantization"),
}
LOG_DET_IDEA = "log|det Jacobian|"      # the row whose synonyms are also checked in local variables
SKIP_PARAMS = {"self", "cls"}


def read_table(path=ROOT / "CONTRIBUTING.md"):
    """The vocabulary table as ``[(idea, names, not_entries)]``; fails when it is missing or malformed."""
    text = path.read_text()
    section = text.split("## One vocabulary", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows and re.fullmatch(r"\|\s*idea\s*\|\s*name\s*\|\s*not\s*\|", rows[0].strip()), \
        f"CONTRIBUTING's vocabulary table must start with the header '| idea | name | not |', got {rows[:1]}"
    table = []
    for line in rows[2:]:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 3, f"a vocabulary row must have three cells (idea | name | not), got {line!r}"
        idea, name, synonyms = cells
        names = re.findall(r"`([^`]*)`", name)
        table.append((idea, [w for n in names for w in re.findall(r"[A-Za-z_]\w*", n)], _split(synonyms)))
    assert len(table) >= 10, f"only {len(table)} vocabulary rows read: has the table's format changed?"
    return table


def _split(cell):
    """Split a "not" cell at the commas that are not inside parentheses."""
    entries, depth, current = [], 0, ""
    for ch in cell:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            entries.append(current.strip())
            current = ""
        else:
            current += ch
    return [e for e in entries + [current.strip()] if e]


def rules(table):
    """``(words, tuples, unchecked)``: word -> what to use instead; tuple of names -> what to use instead."""
    right_names = {w for _, names, _ in table for w in names}
    words, tuples, unchecked = {}, {}, []
    for idea, names, synonyms in table:
        instead = f"{' and '.join(names)} ({idea})"
        for entry in synonyms:
            pair = re.fullmatch(r"\(([^()]*)\)(?: in signatures)?", entry)
            word = re.match(r"[A-Za-z_]\w*", entry)
            plain = word is not None and word.group(0) == entry
            if pair:
                tuples[tuple(w.strip() for w in pair.group(1).split(","))] = instead
            elif word is not None and word.group(0) in SCOPES:
                words.setdefault(word.group(0), []).append(instead)
            elif plain and entry in right_names:
                raise AssertionError(f"{entry!r} is a synonym of {idea!r} and the right name of another idea: "
                                     "give it a rule in SCOPES (tests/test_vocabulary.py)")
            elif plain:
                words.setdefault(entry, []).append(instead)
            else:
                unchecked.append(entry)
    return {w: " or ".join(i) for w, i in words.items()}, tuples, unchecked


def public_modules():
    import flowbook
    names = ["flowbook"] + [m.name for m in pkgutil.walk_packages(flowbook.__path__, "flowbook.")
                            if not any(part.startswith("_") for part in m.name.split("."))]
    return [importlib.import_module(n) for n in names]


def public_objects(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    for name in names:
        obj = getattr(module, name, None)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield obj


def _params(fn):
    try:
        return [p for p in inspect.signature(fn).parameters if p not in SKIP_PARAMS]
    except (TypeError, ValueError):
        return []


def _instance_attributes(cls):
    """Public names a class's methods assign to ``self`` (and its buffers and parameters)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return set()
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for t in targets:
            for leaf in ast.walk(t):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                    found.add(leaf.attr)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("register_buffer", "register_parameter") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return {n for n in found if not n.startswith("_")}


def signatures_and_names(objects):
    """Yield ``(owner, module, params or None, name)``: each signature's parameters, each public name."""
    seen = set()
    for obj in objects:
        if inspect.isfunction(obj):
            key = (obj.__module__, obj.__qualname__)
            if key not in seen:
                seen.add(key)
                yield f"{obj.__module__}.{obj.__qualname__}", obj.__module__, _params(obj), None
            continue
        for klass in obj.__mro__:
            module = getattr(klass, "__module__", "")
            if not module.startswith("flowbook") or (module, klass.__qualname__) in seen:
                continue
            seen.add((module, klass.__qualname__))
            owner = f"{module}.{klass.__qualname__}"
            for name, value in vars(klass).items():
                if name != "__init__" and name.startswith("_"):
                    continue
                if name != "__init__":
                    yield owner, module, None, name
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                if inspect.isfunction(fn):
                    where = owner if name == "__init__" else f"{owner}.{name}"
                    yield where, module, _params(fn), None
            for name in set(getattr(klass, "__annotations__", {})) | _instance_attributes(klass):
                if not name.startswith("_"):
                    yield owner, module, None, name


def offenders(objects, table=None):
    """Every use of a synonym, as ``'module.Name(param)'`` or ``'module.Name.attribute'`` and what to use."""
    words, tuples, _ = rules(read_table() if table is None else table)
    found = set()
    for owner, module, params, name in signatures_and_names(objects):
        for word in ([name] if params is None else params):
            if word in words and (word not in SCOPES or SCOPES[word](params, module)):
                where = f"{owner}.{word}" if params is None else f"{owner}({word})"
                found.add(f"{where}: use {words[word]}")
        for names, instead in tuples.items():
            if params is not None and set(names) <= set(params):
                found.add(f"{owner}({', '.join(names)}): use {instead}")
    return sorted(found)


def local_log_det_spellings(paths, table=None):
    """Local variables of model code spelled like a synonym of ``logabsdet``, as ``'file:line name'``."""
    table = read_table() if table is None else table
    synonyms = {e for idea, _, syn in table if idea.startswith(LOG_DET_IDEA) for e in syn}
    found = []
    for path in paths:
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in synonyms:
                found.append(f"{path}:{node.lineno} {node.id}: use logabsdet")
    return found


def _report(found):
    return f"{len(found)} public name(s) use a word CONTRIBUTING's vocabulary table says not to:\n  " + \
        "\n  ".join(found)


# ----------------------------------------------------------------------------- the tests
def test_the_table_is_read_and_every_shared_word_has_a_rule():
    table = read_table()
    words, tuples, unchecked = rules(table)
    assert {"num_reflections", "h_features", "log_sigma", "outputs", "body", "x0", "log_abs_det"} <= set(words)
    assert {"steps", "net", "bound", "prior"} <= set(words)          # shared words, checked by their rule
    assert ("mu", "alpha") in tuples
    assert all("=" in u or "(" in u for u in unchecked), unchecked    # only uses, never a bare word


def test_no_public_name_uses_a_synonym():
    found = sorted({o for m in public_modules() for o in offenders(public_objects(m))})
    assert not found, _report(found)


def test_model_code_spells_the_log_determinant_one_way():
    paths = [p.relative_to(ROOT) for p in sorted((ROOT / "flowbook").rglob("*.py")) if "teaching" not in p.parts]
    found = local_log_det_spellings(paths)
    assert not found, "local variables of model code spell the log-determinant otherwise:\n  " + "\n  ".join(found)


# ----------------------------------------------------------------------------- the checker can fail
PLANTED = '''
import torch


def planted(z, num_reflections=2, h_features=0, x0=None, mu=None, alpha=None):
    """Planted: three synonyms and the (mu, alpha) pair."""


def trainer(flow, data, steps=100, lr=1e-3):
    """Right: steps next to a learning rate are optimizer steps."""


def solve(field, z, steps=10):
    """Planted: steps without a learning rate are solver steps."""


class Layer(torch.nn.Module):
    """Planted: a log_abs_det method, a log_sigma attribute, an outputs parameter; net is right here."""

    def __init__(self, features, net=None, outputs=2):
        super().__init__()
        self.net, self.log_sigma = net, torch.zeros(features)

    def log_abs_det(self):
        return self.log_sigma.sum()

    def forward(self, z, context=None):
        ladj = self.log_abs_det()
        return z, ladj
'''


def test_the_checker_flags_planted_synonyms_and_only_them(tmp_path, monkeypatch):
    path = tmp_path / "planted.py"
    path.write_text(PLANTED)
    name = "flowbook.transforms.planted"        # not an ODE module: there, net is a conditioner
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    found = offenders(public_objects(module))
    assert {o.split(":")[0] for o in found} == {
        f"{name}.planted(num_reflections)", f"{name}.planted(h_features)", f"{name}.planted(x0)",
        f"{name}.planted(mu, alpha)", f"{name}.solve(steps)", f"{name}.Layer(outputs)",
        f"{name}.Layer.log_abs_det", f"{name}.Layer.log_sigma",
    }, found
    assert f"{name}.planted(num_reflections): use reflections (Householder reflections)" in found
    assert not any("trainer" in o or "net" in o.split(":")[0] for o in found)  # the right uses pass
    assert [f.split(" ", 1)[1] for f in local_log_det_spellings([path])] == ["ladj: use logabsdet"]
    with pytest.raises(AssertionError, match="8 public name"):                  # the real assertion fires
        assert not found, _report(found)
