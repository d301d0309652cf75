"""Queries live in ``hookhub/store``: outside it, SQLAlchemy is only named for its types
(a connection, a row) and its exceptions; nothing builds or runs a statement, nothing reads
the schema's tables."""

from __future__ import annotations

import ast
from pathlib import Path

import hookhub

PACKAGE = Path(hookhub.__file__).parent
TYPES_ONLY = {"Connection", "Row", "Engine"}
RUNS_SQL = {"execute", "exec_driver_sql", "executemany"}


def _modules_outside_store() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "store" not in p.relative_to(PACKAGE).parts]


def _violations(path: Path) -> list[str]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "sqlalchemy":
                found += [
                    (node.lineno, f"imports sqlalchemy.{a.name}")
                    for a in node.names
                    if a.name not in TYPES_ONLY
                ]
            elif node.module.startswith("sqlalchemy.") and node.module != "sqlalchemy.exc":
                found.append((node.lineno, f"imports {node.module}"))
            elif node.module == "hookhub.store.schema":
                found.append((node.lineno, "imports the schema's tables"))
        elif isinstance(node, ast.Attribute) and node.attr in RUNS_SQL:
            found.append((node.lineno, f"calls .{node.attr}()"))
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}" for line, what in found]


def test_no_module_outside_store_builds_or_runs_sql() -> None:
    modules = _modules_outside_store()
    assert any(p.name == "importer.py" for p in modules)
    problems = [v for path in modules for v in _violations(path)]
    assert problems == []
