"""The architecture's arrows that `lint-imports` cannot state: no cycle between any files.

import-linter's `acyclic_siblings` contract (pyproject.toml) finds cycles between sibling
files and packages, but not one that runs through a package's `__init__` and a file inside
it (`provisioning/web/__init__.py` → `web/pages/auth.py` → back). This test looks at every
file of every part of Parta: each strongly connected set of the import graph must be one file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("parta", "foundation", "matrix", "provisioning", "widgets", "school_policy")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import graph's cycles: its strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = []
        index[start] = lowlink[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, sorted(graph.find_modules_directly_imported_by(start))))
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = lowlink[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    lowlink[node] = min(lowlink[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                members: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    cycles.append(sorted(members))
    return cycles


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    modules = str(ROOT / "synapse-config" / "modules")
    if modules not in sys.path:
        sys.path.insert(0, modules)
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_no_file_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_package_init() -> None:
    """The check above is not empty: the shape it exists for is found."""
    graph = grimp.ImportGraph()
    for module in ("web", "web.pages", "web.pages.auth", "web.render"):
        graph.add_module(module)
    graph.add_import(importer="web", imported="web.pages")
    graph.add_import(importer="web.pages", imported="web.pages.auth")
    graph.add_import(importer="web.pages.auth", imported="web")
    graph.add_import(importer="web.pages.auth", imported="web.render")
    assert import_cycles(graph) == [["web", "web.pages", "web.pages.auth"]]
