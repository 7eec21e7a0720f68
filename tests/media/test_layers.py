"""switch.media stays sans-IO like switch.sip: its core imports the standard library and
switch.sip only; sockets, the loop and the clock live in udp.py alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT / "switch" / "media"
IO_MODULE = "udp.py"
NO_IO = {"asyncio", "socket", "time", "datetime", "threading", "selectors", "sqlalchemy", "asyncpg", "aiosqlite",
         "sqlite3", "uvloop"}
MODULES = sorted(p for p in MEDIA.glob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_walk_finds_the_package() -> None:
    assert {p.name for p in MODULES} >= {"rtp.py", "stream.py", "g711.py", "answer.py", "udp.py", "catalogue.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_media_imports(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "switch":
            assert name == "switch.sip" or name.startswith("switch.sip."), f"{path.name} imports {name}"
            continue
        assert top in sys.stdlib_module_names, f"{path.name} imports {name}, not in the standard library"
        if path.name != IO_MODULE:
            assert top not in NO_IO, f"{path.name} imports {name}: only {IO_MODULE} may do I/O"
