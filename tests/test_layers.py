"""The Python package's modules import each other without a cycle (deferred imports inside
functions included; imports only for type checkers excluded). ``adl/__init__.py`` is the curated
export list and is left out. The Rust core's layers are checked by ``tests/rust/layers.rs``."""

from __future__ import annotations

import ast
from pathlib import Path

import adl

PACKAGE = Path(adl.__file__).parent


def _runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Names of package modules imported anywhere in ``tree`` outside ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "adl":
                found.update(a.name for a in node.names if a.name in modules)
            elif node.module.startswith("adl."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("adl."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & modules


def _graph() -> dict[str, set[str]]:
    files = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules = set(files)
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
    assert {"engine", "cascade", "reporting", "cli"} <= set(graph)
    assert "engine" in graph["cascade"], "the parser no longer sees `from adl.engine import …`"
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_cycle_finder_finds_a_deferred_import_cycle() -> None:
    a = ast.parse("from adl.b import x\n")
    b = ast.parse("def f():\n    from adl import a\n")
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from adl.a import y\n")
    modules = {"a", "b"}
    assert _runtime_imports(typed, modules) == set()
    graph = {"a": _runtime_imports(a, modules), "b": _runtime_imports(b, modules)}
    assert _cycle(graph) == ["a", "b", "a"]
