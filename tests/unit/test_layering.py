"""The packages import in one direction only (core <- worker.engine <- worker <- controller), with no
import cycles between modules: the layout promise of the README, checked on the source (pure, no imports)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "controller", "worker")


def _module_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import mod` imports the submodule pkg.mod when there is one
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _allowed(importer: str, imported: str) -> bool:
    if importer.startswith("core"):
        return imported.startswith("core")
    if importer.startswith("worker.engine"):
        return imported.startswith(("core", "worker.engine"))
    if importer.startswith("worker"):
        return not imported.startswith("controller")
    return True


def test_packages_import_in_one_direction_only() -> None:
    graph = _module_graph()
    wrong = sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets if not _allowed(a, b))
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    graph = _module_graph()
    # A package's __init__ importing its own submodules is how packages work, not a cycle of design.
    edges = {
        a: {b for b in bs if not (a == b.rsplit(".", 1)[0] or b == a.rsplit(".", 1)[0])}
        for a, bs in graph.items()
    }
    seen: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges[node]):
            if seen.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for start in sorted(edges):
        if start not in seen:
            visit(start, [start])
    assert cycles == []
