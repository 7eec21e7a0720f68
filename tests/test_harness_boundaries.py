"""The shared process harness stays outside both the product and the tests.

``harness/`` drives the switch from outside (CLI, sockets, HTTP, SQL) for ``tests/`` and
``bench/`` alike. If it imported the switch's own code, a bug there could hide in both the
thing tested and the tester; if it (or a benchmark) imported ``tests`` or pytest, a
benchmark would need the test extras and break whenever a test changed, which is how it
was before the harness left ``tests/``. Imports are read with ``ast``, so ones hidden in
functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: top-level names each tree may not import, and why
RULES: dict[str, tuple[frozenset[str], str]] = {
    "harness": (frozenset({"tests", "bench", "pytest", "_pytest", "switch", "provisioning", "feature_codes"}),
                "the harness drives the product from outside and serves tests and benchmarks alike"),
    "bench": (frozenset({"tests", "pytest", "_pytest"}),
              "a benchmark must run without the test extras and survive any change to a test"),
}


def _top_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _files(tree: str) -> list[Path]:
    return sorted((ROOT / tree).rglob("*.py"))


def test_both_trees_are_there() -> None:
    assert {p.stem for p in _files("harness")} >= {"__init__", "softswitch", "sipp", "ports", "procs"}
    assert {p.stem for p in _files("bench")} >= {"bench_calls", "bench_register", "_common"}


@pytest.mark.parametrize("tree", sorted(RULES))
def test_imports_stay_inside_the_rules(tree: str) -> None:
    forbidden, why = RULES[tree]
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _files(tree)
        for line, name in _top_level_imports(p)
        if name in forbidden
    ]
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_harness_is_not_shipped() -> None:
    """pyproject's package discovery names the product packages only."""
    text = (ROOT / "pyproject.toml").read_text()
    start = text.index("[tool.setuptools.packages.find]")
    include = text[start:].split("\n\n", 1)[0]
    assert '"switch*"' in include and "harness" not in include, include
