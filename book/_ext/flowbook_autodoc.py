"""Sphinx hooks for the API pages (book/api/): real class signatures, readable base classes.

A class that defines no ``__init__`` of its own in flowbook (``Bijection``, ``Density2D``, ...)
would get ``torch.nn.Module.__init__``'s ``(*args, **kwargs)`` as its signature; it takes no
arguments, so it is shown as ``Name()``. A dataclass field made by ``default_factory=list`` is
shown as ``=[]`` instead of ``=<factory>``, and a module constant used as a default by its value
(``clip_grad=10.0``, not ``clip_grad=CLIP_GRAD``); a module constant without a docstring of its own
(``DENSITIES``, a dict) does not borrow its type's. Bases: ``torch.nn.modules.module.Module`` is
shown as ``torch.nn.Module``, the name users write; a private base class by its first public
ancestor; ``object`` not at all.
"""
import dataclasses
import inspect
import re

import torch
from docutils import nodes


def _init_is_torch_default(cls) -> bool:
    for klass in cls.__mro__:
        if "__init__" in vars(klass) or "__new__" in vars(klass):
            return klass.__module__.split(".")[0] in ("torch", "builtins")
    return True


def _factory_defaults(cls, signature):
    # A dataclass field with default_factory=list shows as "name=<factory>"; show the value it makes.
    for field in dataclasses.fields(cls):
        if field.default_factory in (list, dict):
            value = "[]" if field.default_factory is list else "{}"
            signature = re.sub(rf"(\b{field.name}(?::[^,=]*)?\s*=\s*)<factory>", rf"\g<1>{value}", signature)
    return signature


def _constant_defaults(obj, signature):
    # autodoc_preserve_defaults shows a default as written; a module constant (clip_grad=CLIP_GRAD)
    # is shown by its value (clip_grad=10.0), which is what the reader needs.
    module = inspect.getmodule(obj)

    def value(match):
        constant = getattr(module, match.group(2), None)
        if isinstance(constant, (int, float, str)) and not isinstance(constant, bool):
            return match.group(1) + repr(constant)
        return match.group(0)

    return re.sub(r"(=\s*)([A-Z][A-Z0-9_]+)\b(?![.(\[])", value, signature)


def process_signature(app, what, name, obj, options, signature, return_annotation):
    if not signature:
        return None
    new = _constant_defaults(obj, signature)
    if what in ("class", "exception") and inspect.isclass(obj):
        if _init_is_torch_default(obj) and "*args" in new and "**kwargs" in new:
            new = "()"
        elif dataclasses.is_dataclass(obj) and "<factory>" in new:
            new = _factory_defaults(obj, new)
    return (new, return_annotation) if new != signature else None


def drop_torch_init_typehints(app, what, name, obj, options, signature, return_annotation):
    # Runs after autodoc's own record_typehints (priority 500), which would list
    # "args (Any), kwargs (Any)" under such a class.
    if what in ("class", "exception") and inspect.isclass(obj) and _init_is_torch_default(obj):
        app.env.temp_data.get("annotations", {}).pop(name, None)


def drop_type_docstring(app, what, name, obj, options, lines):
    # A module constant such as DENSITIES (a dict) has no docstring of its own; autodoc would show
    # dict's ("dict() -> new empty dictionary ..."). The page gives the text instead.
    if what in ("data", "attribute") and getattr(obj, "__doc__", None) == getattr(type(obj), "__doc__", 0):
        lines.clear()


def _public(cls):
    # A private base (flowbook.flows._AutoregressiveFlow) is an implementation detail: name the
    # first public class it derives from instead.
    return next(c for c in cls.__mro__ if not c.__name__.startswith("_"))


def process_bases(app, name, obj, options, bases):
    for i, base in enumerate(bases):
        if inspect.isclass(base):
            base = _public(base)
        bases[i] = ":py:class:`torch.nn.Module`" if base is torch.nn.Module else base
    if bases == [object]:
        bases.clear()  # "Bases: object" says nothing; the empty line is removed below


def drop_empty_bases(app, domain, objtype, contentnode):
    for child in list(contentnode.children)[:2]:
        if isinstance(child, nodes.paragraph) and child.astext().strip() == "Bases:":
            contentnode.remove(child)


def setup(app):
    app.connect("autodoc-process-signature", process_signature)
    app.connect("autodoc-process-signature", drop_torch_init_typehints, priority=900)
    app.connect("autodoc-process-bases", process_bases)
    app.connect("object-description-transform", drop_empty_bases)
    app.connect("autodoc-process-docstring", drop_type_docstring, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
