"""The SIP core stays sans-IO: no event loop, sockets, clocks, threads or databases.

Walks every module under switch/sip/ with ``ast`` (so imports hidden in
functions or behind ``TYPE_CHECKING`` count too) and checks what it imports.
Time enters the core as a ``now: float`` argument; I/O lives in
switch/transport and the services.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIP = ROOT / "switch" / "sip"

FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "datetime",
    "threading",
    "selectors",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite3",
}

MODULES = sorted(SIP.rglob("*.py"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Absolute names of everything ``path`` (module ``module``) imports, with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # "from switch import services": the imported names may be modules themselves
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if target == "switch"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def test_the_walk_finds_the_sip_package() -> None:
    names = {_module_name(p) for p in MODULES}
    assert {"switch.sip", "switch.sip.parser", "switch.sip.message", "switch.sip.uri", "switch.sip.sdp"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sip_core_imports_no_io(path: Path) -> None:
    bad = _offences(_imports(path))
    assert not bad, f"{path.relative_to(ROOT)} imports " + ", ".join(bad)


def _offences(imports: list[tuple[int, str]]) -> list[str]:
    bad = []
    for line, name in imports:
        top = name.split(".")[0]
        if top in FORBIDDEN:
            bad.append(f"line {line}: {name}")
        elif top == "switch" and name != "switch.sip" and not name.startswith("switch.sip."):
            bad.append(f"line {line}: {name} (outside switch.sip)")
    return bad


def test_the_checker_catches_offenders(tmp_path: Path) -> None:
    """The walker itself must see every import form it is meant to forbid."""
    src = tmp_path / "probe.py"
    src.write_text(
        "import asyncio\n"
        "import os, time as t\n"
        "from datetime import datetime\n"
        "from . import uri\n"
        "from ..services import registrar\n"
        "from switch import settings\n"
        "def f():\n"
        "    import socket\n"
        "    from sqlalchemy.orm import Session\n"
        "    return __import__('threading')\n"
    )
    bad = _offences(_imports(src, "switch.sip.probe"))
    assert sorted(b.split(": ", 1)[1] for b in bad) == sorted([
        "asyncio", "time", "datetime", "switch.services (outside switch.sip)", "switch (outside switch.sip)",
        "switch.settings (outside switch.sip)", "socket", "sqlalchemy.orm", "threading",
    ])
