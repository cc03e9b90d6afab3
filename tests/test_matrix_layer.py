"""Only `matrix/` knows Synapse's APIs: no other module builds a `/_matrix/` or `/_synapse/` path.

The appservice's own routes (`/_matrix/app/v1/...`, which Synapse calls) are the one
exception, and only in the module that serves them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("parta", "foundation", "provisioning", "widgets")
APPSERVICE_ROUTES = ("provisioning/appservice/app.py", "/_matrix/app/v1/")


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the string nodes that are docstrings (they may name paths freely)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def synapse_knowledge(relative: str, source: str) -> list[str]:
    """Where a module builds a Synapse API path or imports the client's path builder."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        from_client = isinstance(node, ast.ImportFrom) and node.module == "matrix.client"
        if from_client and "path" in {alias.name for alias in node.names}:
            found.append(f"{relative}:{node.lineno} imports matrix.client.path")
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docstrings:
            continue
        text = node.value
        if "/_matrix/" not in text and "/_synapse/" not in text:
            continue
        module, prefix = APPSERVICE_ROUTES
        if relative == module and prefix in text:
            continue
        found.append(f"{relative}:{node.lineno} {text[:60]!r}")
    return found


def test_only_matrix_builds_synapse_paths() -> None:
    found: list[str] = []
    for part in PARTS:
        for file in sorted((ROOT / part).rglob("*.py")):
            relative = file.relative_to(ROOT).as_posix()
            found += synapse_knowledge(relative, file.read_text(encoding="utf-8"))
    assert found == []


def test_the_check_sees_a_path_and_the_path_builder() -> None:
    source = (
        '"""Reads `/_matrix/client/v3/sync` in its docstring: allowed."""\n'
        "from matrix.client import path\n"
        'URL = f"/_synapse/admin/v1/users/{1}"\n'
    )
    assert synapse_knowledge("widgets/x.py", source) == [
        "widgets/x.py:2 imports matrix.client.path",
        "widgets/x.py:3 '/_synapse/admin/v1/users/'",
    ]
    route = '@app.put("/_matrix/app/v1/transactions/{txn_id}")\ndef f(): ...\n'
    assert synapse_knowledge("provisioning/appservice/app.py", route) == []
    assert synapse_knowledge("provisioning/api/v1.py", route) != []
