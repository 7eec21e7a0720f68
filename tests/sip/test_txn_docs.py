"""docs/transactions.md is generated from the transition tables and must not drift from them;
the transaction modules stay sans-IO."""

from __future__ import annotations

import ast
from pathlib import Path

from switch.sip.transaction.diagram import MACHINES, render

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"asyncio", "socket", "time", "threading", "selectors", "sqlalchemy", "aiosqlite", "asyncpg", "sqlite3"}


def test_docs_match_the_tables() -> None:
    """Regenerate with: python -m switch.sip.transaction.diagram > docs/transactions.md"""
    assert (ROOT / "docs" / "transactions.md").read_text(encoding="utf-8") == render()


def test_every_transition_appears_in_the_docs() -> None:
    text = render()
    for cls, _ in MACHINES:
        for (state, inp), tr in cls.TABLE.items():
            assert f"| {state.value} | {inp.value} | {tr.doc} | {tr.target.value} |" in text


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_transaction_code_does_no_io() -> None:
    # The sources in the checkout, not __file__: with the compiled core a module's
    # __file__ is the extension module, and mypyc may set it relative to its shared library.
    sip = ROOT / "switch" / "sip"
    files = [sip / "timers.py", sip / "dialog.py", *sorted((sip / "transaction").glob("*.py"))]
    assert len(files) > 5 and all(f.is_file() for f in files)
    for path in files:
        bad = _imports(path) & FORBIDDEN
        assert not bad, f"{path.name} imports {bad}"
        assert "switch" not in _imports(path) or path.name == "__init__.py", f"{path.name}: use relative imports"
