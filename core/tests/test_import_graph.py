"""Core's modules import each other without circles.

A circle of import-time imports breaks as soon as one module moves a line; two modules that
import each other (even lazily, inside a function) are one idea split in two. Imports under
``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import prelabel

ROOT = Path(prelabel.__file__).parent
KNOWN_MUTUAL: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("prelabel", *path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _target(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path, import_time_only: bool) -> set[str]:
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if import_time_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                for alias in child.names:
                    full = f"{child.module}.{alias.name}"
                    names.add(full if full in MODULES else child.module)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {t for t in map(_target, (n for n in names if n.split(".")[0] == "prelabel")) if t}


def graph(import_time_only: bool) -> dict[str, set[str]]:
    return {name: _imports(path, import_time_only) - {name} for name, path in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_the_graph_sees_core_imports():
    edges = graph(import_time_only=True)
    assert "prelabel.backend" in edges["prelabel.runtime"]
    assert "prelabel.compat.hooks" in edges["prelabel.runtime"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_time_circle():
    assert cycles(graph(import_time_only=True)) == []


def test_no_two_modules_import_each_other():
    edges = graph(import_time_only=False)
    mutual = {frozenset({a, b}) for a, targets in edges.items() for b in targets if a in edges.get(b, ())}
    assert mutual <= KNOWN_MUTUAL, sorted(sorted(pair) for pair in mutual - KNOWN_MUTUAL)
