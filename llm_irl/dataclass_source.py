"""A dataclass's init fields and docstring read from its source with `ast`, without importing its module.

Why: the trainer configs subclass `transformers.TrainingArguments`, whose import costs seconds (torch,
peft, ...); `llm-irl train --help` and a recipe's unknown key only need the key names and the configs'
docstrings, so they read them here and answer before anything heavy loads.

What is followed: a class defined at a module's top level (also under `if`/`try`), its bases named in
that module or imported into it (`from x import Name`, absolute or relative; imports under
`if TYPE_CHECKING:` too, which is how transformers' lazy `__init__` declares its names), the MRO by
C3, and the dataclass rules: fields collected over the MRO in reverse, a redefined field keeping its
place, `ClassVar`/`InitVar`/`KW_ONLY` left out, `field(init=False)` marked. Anything else (a base
that is a call or an attribute, a source file that cannot be found) raises `Unreadable`, and the
caller imports the class instead (`llm_irl.trainers.registry`); the test compares both ways.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from functools import lru_cache

Key = tuple[str, str]  # (module, class name)


class Unreadable(Exception):
    """The source does not say it plainly enough; import the class instead."""


def init_fields(target: str) -> list[str]:
    """The names `dataclasses.fields(cls)` gives with `init=True`, in that order, for `"module:Class"`."""
    return [name for name, init in _fields(_find_class(*target.split(":"))).items() if init]


def docstring(target: str) -> str | None:
    """The class's docstring (as `inspect.cleandoc` leaves it), for `"module:Class"`."""
    return ast.get_docstring(_node(_find_class(*target.split(":"))))


# ---------------------------------------------------------------- finding source without running it


@lru_cache(maxsize=None)
def _module_file(module: str) -> tuple[str, bool]:
    """(path of `module`'s source, whether it is a package's `__init__`); imports nothing."""
    top, _, rest = module.partition(".")
    loaded = sys.modules.get(top)
    if loaded is not None and getattr(loaded, "__path__", None):
        roots = list(loaded.__path__)
    else:
        spec = importlib.util.find_spec(top)  # a top-level name is found without running it
        single = spec is not None and not spec.submodule_search_locations and not rest
        if single and (spec.origin or "").endswith(".py"):
            return spec.origin, False  # a single-file module
        if spec is None or not spec.submodule_search_locations:
            raise Unreadable(f"{module}: no Python source on the path")
        roots = list(spec.submodule_search_locations)
    parts = rest.split(".") if rest else []
    for root in roots:
        base = os.path.join(root, *parts)
        if os.path.isfile(path := os.path.join(base, "__init__.py")):
            return path, True
        if parts and os.path.isfile(path := base + ".py"):
            return path, False
    raise Unreadable(f"{module}: no source file")


@lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module:
    path, _ = _module_file(module)
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def _statements(body: list[ast.stmt]):
    """A module's statements, those under `if`/`try` included (not those inside functions or classes)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _statements(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _statements(node.body + node.orelse + node.finalbody
                                   + [s for h in node.handlers for s in h.body])


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if _module_file(module)[1] else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


@lru_cache(maxsize=None)
def _find_class(module: str, name: str, depth: int = 0) -> Key:
    """Where class `name`, as module `module` sees it, is defined."""
    if depth > 8:
        raise Unreadable(f"{module}.{name}: too many re-exports")
    statements = list(_statements(_tree(module).body))
    if any(isinstance(n, ast.ClassDef) and n.name == name for n in statements):
        return module, name
    for node in statements:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _find_class(_absolute(module, node), alias.name, depth + 1)
    raise Unreadable(f"{module}.{name}: not defined or imported there")


def _node(key: Key) -> ast.ClassDef:
    module, name = key
    return next(n for n in _statements(_tree(module).body) if isinstance(n, ast.ClassDef) and n.name == name)


# ---------------------------------------------------------------- the class and dataclass rules


@lru_cache(maxsize=None)
def _bases(key: Key) -> tuple[Key, ...]:
    out = []
    for base in _node(key).bases:
        if not isinstance(base, ast.Name):
            raise Unreadable(f"{key[0]}.{key[1]}: base {ast.unparse(base)} is not a plain name")
        if base.id != "object":
            out.append(_find_class(key[0], base.id))
    return tuple(out)


@lru_cache(maxsize=None)
def _mro(key: Key) -> tuple[Key, ...]:
    """C3 linearisation, as Python computes `__mro__` (`object` left out)."""
    sequences = [list(_mro(b)) for b in _bases(key)] + [list(_bases(key))]
    out = [key]
    while sequences := [s for s in sequences if s]:
        head = next((s[0] for s in sequences if not any(s[0] in t[1:] for t in sequences)), None)
        if head is None:
            raise Unreadable(f"{key[0]}.{key[1]}: no consistent MRO")
        out.append(head)
        sequences = [s[1:] if s[0] == head else s for s in sequences]
    return tuple(out)


def _is_dataclass(node: ast.ClassDef) -> bool:
    for d in node.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        if (d.id if isinstance(d, ast.Name) else getattr(d, "attr", None)) == "dataclass":
            return True
    return False


def _own_fields(node: ast.ClassDef) -> dict[str, bool]:
    """{name: init} of the fields a dataclass body declares, in order."""
    out = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        annotation = ast.unparse(stmt.annotation)
        if any(word in annotation for word in ("ClassVar", "InitVar", "KW_ONLY")):
            continue
        init = True
        if isinstance(stmt.value, ast.Call) and ast.unparse(stmt.value.func).split(".")[-1] == "field":
            for keyword in stmt.value.keywords:
                if keyword.arg == "init":
                    if not isinstance(keyword.value, ast.Constant):
                        raise Unreadable(f"{node.name}.{stmt.target.id}: init= is not a constant")
                    init = bool(keyword.value.value)
                elif keyword.arg is None:
                    raise Unreadable(f"{node.name}.{stmt.target.id}: field(**...)")
        out[stmt.target.id] = init
    return out


@lru_cache(maxsize=None)
def _fields(key: Key) -> dict[str, bool]:
    """`cls.__dataclass_fields__` as {name: init}: a class not decorated inherits its nearest base's."""
    mro = _mro(key)
    if not _is_dataclass(_node(key)):
        for base in mro[1:]:
            if _is_dataclass(_node(base)):
                return _fields(base)
        raise Unreadable(f"{key[0]}.{key[1]}: not a dataclass")
    out: dict[str, bool] = {}
    for base in reversed(mro[1:]):
        if any(_is_dataclass(_node(b)) for b in _mro(base)):
            out.update(_fields(base))
    out.update(_own_fields(_node(key)))
    return out
