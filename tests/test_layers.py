"""The Python package's modules import each other without a cycle (deferred imports inside
functions included; imports only for type checkers excluded). ``adl/__init__.py`` (the curated
export list) is the node ``adl``: ``import adl`` and ``from adl import <name>`` lead to it. The Rust
core's layers are checked by ``tests/rust/layers.rs``."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import adl

PACKAGE = Path(adl.__file__).parent


def _is_module(name: str) -> bool:
    """Whether ``adl.<name>`` is a module (the compiled ``_adl`` too), not a name ``__init__`` exports."""
    return importlib.util.find_spec(f"adl.{name}") is not None if not name.startswith("__") else False


def _runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Package modules imported anywhere in ``tree`` outside ``if TYPE_CHECKING:``; ``adl``
    stands for the package's ``__init__``."""
    found: set[str] = set()

    def target(module: str, names: list[str]) -> None:
        if module in ("", "adl"):   # from adl import x / from . import x: a submodule, else the package
            found.update(n if n in modules or _is_module(n) else "adl" for n in names)
        else:
            found.add(module.split(".")[0])

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:                     # relative: from .x import y, from . import x
                target(node.module or "", names)
            elif node.module is not None and (node.module == "adl" or node.module.startswith("adl.")):
                target(node.module[4:] if node.module.startswith("adl.") else "", names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "adl":
                    found.add("adl")
                elif a.name.startswith("adl."):
                    found.add(a.name.split(".")[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & (modules | {"adl"})


def _graph() -> dict[str, set[str]]:
    files = {("adl" if p.stem == "__init__" else p.stem): p for p in PACKAGE.glob("*.py")}
    modules = set(files) - {"adl"}
    return {name: _runtime_imports(ast.parse(path.read_text()), modules) - {name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        if state.get(node) == 1:
            return path[path.index(node):] + [node]
        if state.get(node) == 2:
            return None
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, path + [node])
            if found:
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_package_modules_import_without_a_cycle() -> None:
    graph = _graph()
    assert {"adl", "engine", "cascade", "reporting", "cli"} <= set(graph)
    assert "engine" in graph["cascade"], "the parser no longer sees `from adl.engine import …`"
    assert "adl" in graph["cli"], "the parser no longer sees a deferred `import adl`"
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_cycle_finder_finds_a_deferred_import_cycle() -> None:
    a = ast.parse("from .b import x\n")
    b = ast.parse("def f():\n    from adl import a\n")
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from adl.a import y\n")
    modules = {"a", "b"}
    assert _runtime_imports(typed, modules) == set()
    graph = {"a": _runtime_imports(a, modules), "b": _runtime_imports(b, modules)}
    assert _cycle(graph) == ["a", "b", "a"]
    package = ast.parse("import adl\nfrom adl import Engine\n")
    assert _runtime_imports(package, modules) == {"adl"}
