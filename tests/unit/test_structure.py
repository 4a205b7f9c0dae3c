"""The house a newcomer can read (issue 15): real top-level packages, and no import cycle among the project's
modules, counting every import a module can execute (lazy ones inside functions included; typing-only ones not)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("naestro", "graphs", "nodes", "policies", "checkpoints", "mcp_servers", "studio", "inference")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = [pkg, *path.relative_to(REPO / pkg).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, known: dict[str, Path], module: str = "") -> set[str]:
    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            names.update(a.name for a in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)

    Visitor().visit(ast.parse(path.read_text()))
    # Importing ``a.b.c`` from outside package ``a.b`` first runs ``a/__init__`` and ``a/b/__init__``: a package
    # __init__ that imports a module importing ``a.b.c`` is a cycle too (``graphs/__init__`` imported
    # ``graphs.compile``, which imports node modules that import ``graphs.state``: ``import nodes.goal_checks`` on
    # its own failed). A module's own packages are already being imported when it runs, so they add no edge.
    parents = {n.rsplit(".", i)[0] for n in names for i in range(1, n.count(".") + 1)}
    own = {module.rsplit(".", i)[0] for i in range(0, module.count(".") + 1)} if module else set()
    return {n for n in names | (parents - own) if n in known}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_among_the_projects_modules() -> None:
    known = _modules()
    graph = {name: _imports(path, known, name) - {name} for name, path in known.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_top_level_folders_are_real_packages_not_symlinks() -> None:
    for pkg in PACKAGES:
        assert (REPO / pkg / "__init__.py").is_file() and not (REPO / pkg).is_symlink()
    assert not [p.name for p in (REPO / "naestro").iterdir() if p.is_symlink()]
