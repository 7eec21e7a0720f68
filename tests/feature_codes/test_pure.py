"""``feature_codes`` stays pure: parsing and policy only, nothing that does I/O (COORD layering)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "feature_codes").rglob("*.py"))
#: What the package may import besides the standard library's pure modules.
ALLOWED_PROJECT = ("feature_codes", "switch.services.numbering")
FORBIDDEN = {"asyncio", "socket", "time", "datetime", "threading", "sqlalchemy", "asyncpg", "aiosqlite", "sqlite3",
             "aiohttp", "os", "pathlib", "io", "subprocess"}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("feature_codes" if node.level else (node.module or ""))
    return names


def test_the_walk_finds_the_package() -> None:
    assert {p.name for p in MODULES} >= {"__init__.py", "parser.py", "policy.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_feature_codes_import_nothing_with_io(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        if top in ("switch", "provisioning", "feature_codes"):
            assert any(name == a or name.startswith(a + ".") for a in ALLOWED_PROJECT), f"{path.name} imports {name}"
