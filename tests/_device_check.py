"""A static check of the chapters: every model a chapter trains is on ``device = fb.device()``.

``models_off_device(notebook)`` lists the training calls (``fb.fit``, ``fb.fit_reverse_kl``,
``fb.fit_flow_matching``) whose model is not moved to ``device``. The model argument counts as on
the device when its expression mentions ``device`` (``fb.RealNVP(2).to(device)``), or, for a name,
when the binding that reaches the call (the last assignment before it in the same function, else in
the notebook's cells before it) does, or a ``name.to(device)`` comes between the two; a function's
parameter is on the device when every call of that function passes a model that is; a call of a
notebook function is on the device when the function returns something that is, and any other call
when one of its arguments is (``copy.deepcopy(m)``, ``fb.Flow(base_on_device, [])``). The training
functions move the data batches to the model's device themselves, so the model is what must move.
"""
from __future__ import annotations

import ast
import json

TRAINERS = {"fit", "fit_reverse_kl", "fit_flow_matching"}


def _cells(path):
    """The notebook's code cells, parsed (IPython magics and shell lines dropped)."""
    cells = []
    for cell in json.load(open(path))["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            src = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
            cells.append(ast.parse(src))
    return cells


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _names(target):
    """The names a target rebinds: ``a``, ``a, b``, and ``a[k]`` (a model put in a container), not ``a.attr``."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _names(elt)]
    if isinstance(target, ast.Attribute):
        return []
    root = _root(target)
    return [root] if root else []


class _Notebook:
    def __init__(self, path):
        self.events = []          # (position, scope, kind, payload), in source order
        self.functions = {}       # name -> (FunctionDef, scope position)
        self.calls = []           # (position, scope, Call node)
        for c, tree in enumerate(_cells(path)):
            self._walk(tree.body, c, scope=None)

    def _walk(self, body, cell, scope):
        for stmt in body:
            pos = (cell, stmt.lineno)
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = (stmt, pos)
                self._walk(stmt.body, cell, scope=stmt.name)
                continue
            if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and stmt.value is not None:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for name in (n for t in targets for n in _names(t)):
                    self.events.append((pos, scope, "bind", (name, stmt.value)))
            if isinstance(stmt, (ast.For, ast.AsyncFor)):
                for name in _names(stmt.target):
                    self.events.append((pos, scope, "bind", (name, stmt.iter)))
            if isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    if item.optional_vars is not None:
                        for name in _names(item.optional_vars):
                            self.events.append((pos, scope, "bind", (name, item.context_expr)))
            for node in ast.walk(stmt) if not hasattr(stmt, "body") else self._header(stmt):
                if isinstance(node, ast.Call):
                    self.calls.append(((cell, node.lineno), scope, node))
                    f = node.func
                    if isinstance(f, ast.Attribute) and f.attr == "to" and _root(f.value) and self._mentions(node):
                        self.events.append(((cell, node.lineno), scope, "moved", _root(f.value)))
            for field in ("body", "orelse", "finalbody"):
                if isinstance(getattr(stmt, field, None), list):
                    self._walk(getattr(stmt, field), cell, scope)
            for handler in getattr(stmt, "handlers", []):
                self._walk(handler.body, cell, scope)

    @staticmethod
    def _header(stmt):
        """The expressions of a compound statement outside its body (a loop's iterable, a test)."""
        for field in ("iter", "test", "items", "target"):
            value = getattr(stmt, field, None)
            for part in value if isinstance(value, list) else [value]:
                if isinstance(part, ast.withitem):
                    part = part.context_expr
                if isinstance(part, ast.AST):
                    yield from ast.walk(part)

    @staticmethod
    def _mentions(node):
        return any(isinstance(n, ast.Name) and n.id == "device" for n in ast.walk(node))

    def on_device(self, expr, pos, scope, depth=0):
        if depth > 12 or expr is None:
            return False
        if self._mentions(expr):
            return True
        if isinstance(expr, ast.Call):
            f = expr.func
            name = f.id if isinstance(f, ast.Name) else None
            if name in self.functions:
                fn = self.functions[name][0]
                returns = [n.value for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None]
                cell = self.functions[name][1][0]
                return bool(returns) and all(self.on_device(r, (cell, r.lineno + 1), name, depth + 1)
                                             for r in returns)
            # a model assembled from parts on the device (copy.deepcopy(m), fb.Flow(prior_on_device, []))
            parts = [a for arg in [*expr.args, *(k.value for k in expr.keywords)]
                     for a in (arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else [arg])]
            return any(self.on_device(a, pos, scope, depth + 1) for a in parts)
        root = _root(expr)
        return root is not None and self._name_on_device(root, pos, scope, depth + 1)

    def _name_on_device(self, name, pos, scope, depth):
        for s in ([scope, None] if scope else [None]):
            before = [e for e in self.events if e[1] == s and e[0] < pos
                      and (e[3] if e[2] == "moved" else e[3][0]) == name]
            binds = [e for e in before if e[2] == "bind"]
            if binds:
                last = binds[-1]
                moved_after = any(e[2] == "moved" and e[0] >= last[0] for e in before)
                return moved_after or self.on_device(last[3][1], last[0], s, depth)
            if any(e[2] == "moved" for e in before):
                return True
            if s is not None and name in self._params(s):
                return self._param_on_device(s, name, depth)
            if s is not None:
                pos = self.functions[s][1]
        return False

    def _params(self, function):
        return [a.arg for a in self.functions[function][0].args.args]

    def _param_on_device(self, function, name, depth):
        index = self._params(function).index(name)
        sites = [(p, s, c) for p, s, c in self.calls if isinstance(c.func, ast.Name) and c.func.id == function]
        args = []
        for p, s, c in sites:
            arg = c.args[index] if index < len(c.args) else next(
                (k.value for k in c.keywords if k.arg == name), None)
            args.append((arg, p, s))
        return bool(args) and all(a is not None and self.on_device(a, p, s, depth + 1) for a, p, s in args)

    def training_calls(self):
        for pos, scope, call in self.calls:
            f = call.func
            if isinstance(f, ast.Attribute) and f.attr in TRAINERS and _root(f.value) in ("fb", "flowbook"):
                model = call.args[0] if call.args else next(
                    (k.value for k in call.keywords if k.arg in ("flow", "model", "field")), None)
                yield pos, scope, f.attr, model


def models_off_device(path) -> list[str]:
    """The training calls of a notebook whose model is not moved to ``device``, as readable strings."""
    nb = _Notebook(path)
    return [f"code cell {pos[0]}, line {pos[1]}: fb.{name}({ast.unparse(model) if model else '?'}, ...)"
            for pos, scope, name, model in nb.training_calls() if not nb.on_device(model, pos, scope)]


def trains(path) -> bool:
    return any(True for _ in _Notebook(path).training_calls())
