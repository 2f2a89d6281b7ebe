"""The package's shape, read statically: no import circles, the CLI on top, errors and files at the bottom,
small modules that each open with a docstring saying their job.

Imports are read with `ast` from every module of `llm_irl/`, function-level imports included (a
circle through a deferred import is still a circle, only a hidden one); imports under
`if TYPE_CHECKING:` never run and are left out. An edge goes to the module an import names:
`from llm_irl.metrics import bleu` is an edge to `llm_irl.metrics`, `from llm_irl import cli` one to
`llm_irl.cli`. The parent packages Python initialises on the way are not edges: a package's
`__init__` re-exporting its submodules is its public face, not a layer of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llm_irl"
MAX_LINES = 400
BOTTOM = ("llm_irl.errors", "llm_irl.files")  # everything may import these; they import nothing of ours
TOP = "llm_irl.cli"  # the only top layer: argv parsing and exit statuses


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST):
    """Every Import / ImportFrom below `node`, at any depth, except under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _import_nodes(child)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, modules: dict | None = None) -> list[str]:
    """The modules of ours (of `modules`, by default the package's) that one import statement names."""
    modules = MODULES if modules is None else modules
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = node.module or ""
    if node.level:  # relative: from the importer's package, one level up per extra dot
        package = importer if modules[importer].name == "__init__.py" else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    out = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            out.append(submodule)
        elif base in modules:
            out.append(base)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """{importer: {imported: first line}} over the modules of llm_irl."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, {})
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, name):
                if target != name:
                    edges.setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _where(graph: dict[str, dict[str, int]], a: str, b: str) -> str:
    return f"{MODULES[a].relative_to(PACKAGE.parent)}:{graph[a][b]} imports {b}"


# ---------------------------------------------------------------------------- the checker itself


def test_the_checker_finds_circles_and_deferred_imports(tmp_path):
    source = "import os\n\ndef f():\n    from llm_irl.cli import main\n\nif TYPE_CHECKING:\n    import llm_irl.data\n"
    found = [t for node in _import_nodes(ast.parse(source)) for t in _targets(node, "llm_irl.report")]
    assert found == ["llm_irl.cli"]  # the function-level import counts; the TYPE_CHECKING one does not
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_relative_imports_resolve_to_our_modules():
    node = ast.parse("from .stats import estimate\nfrom .. import errors\n").body
    assert _targets(node[0], "llm_irl.metrics.catalogue") == ["llm_irl.metrics.stats"]
    assert _targets(node[1], "llm_irl.metrics.catalogue") == ["llm_irl.errors"]


# ---------------------------------------------------------------------------- the package


def test_no_import_circles():
    graph = import_graph()
    problems = []
    for component in cycles(graph):
        inside = [_where(graph, a, b) for a in component for b in graph[a] if b in component]
        problems.append(" ⇄ ".join(component) + ": " + "; ".join(inside))
    assert not problems, "import circles:\n" + "\n".join(problems)


def test_only_the_cli_is_the_top_layer():
    graph = import_graph()
    up = [_where(graph, name, TOP) for name in graph if name != TOP and TOP in graph[name]]
    assert not up, "library modules importing the CLI:\n" + "\n".join(up)


def test_errors_and_files_are_the_bottom_layer():
    graph = import_graph()
    up = [_where(graph, name, target) for name in BOTTOM for target in graph[name]]
    assert not up, "the bottom layer imports the package:\n" + "\n".join(up)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small_and_says_its_job(name):
    path = MODULES[name]
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines, more than {MAX_LINES}"
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.strip(), f"{path.relative_to(PACKAGE.parent)}:1: no opening docstring"
