"""The compiled SIP core is used only while it matches its sources, and the pure one behaves the same.

scripts/build_core.py compiles switch/sip with mypyc; switch/_core_loader.py
decides at import which build runs. A stale build must never shadow edited
sources, and the pure-Python fallback (no compiler, SOFTSWITCH_PURE_PYTHON=1)
must pass the same SIP unit tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import switch
from switch import _core_loader

ROOT = Path(__file__).resolve().parents[1]


def _state_in_child(env: dict[str, str]) -> list[str]:
    code = "import switch, switch.sip.parser as p, switch.sip.transaction.layer as l; print(switch._core_loader.STATE); print(p.__file__); print(l.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_built_core_is_current_and_used() -> None:
    """scripts/bootstrap.sh (which installs gcc) compiled the core, it matches the sources, so it is what runs."""
    assert _core_loader.compiled_modules(), "no compiled SIP core: run scripts/build_core.py (bootstrap does)"
    if os.environ.get("SOFTSWITCH_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("SOFTSWITCH_PURE_PYTHON is set for this run: the compiled core is deliberately off")
    assert switch._core_loader.STATE == "compiled", "stale build: run scripts/build_core.py (bootstrap does)"
    state, parser, layer = _state_in_child({})
    assert state == "compiled"
    assert not parser.endswith(".py") and not layer.endswith(".py")


def test_pure_python_can_be_forced() -> None:
    state, parser, layer = _state_in_child({"SOFTSWITCH_PURE_PYTHON": "1"})
    assert state.startswith("pure Python")
    assert parser.endswith("switch/sip/parser.py") and layer.endswith("switch/sip/transaction/layer.py")


def test_stale_build_falls_back_to_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    core = tmp_path / "sip"
    (core / "transaction").mkdir(parents=True)
    a, b = core / "a.py", core / "transaction" / "b.py"
    a.write_text("X = 1\n")
    b.write_text("Y = 2\n")
    monkeypatch.setattr(_core_loader, "CORE_DIR", core)
    monkeypatch.setattr(_core_loader, "STAMP", core / ".compiled-sources.json")
    assert _core_loader._stale_reason() == "no build stamp"
    _core_loader.write_stamp(_core_loader.current_stamp([a, b]))
    assert _core_loader._stale_reason() is None
    b.write_text("Y = 3\n")
    assert "transaction/b.py changed" in (_core_loader._stale_reason() or "")
    b.write_text("Y = 2\n")
    stamp = _core_loader.read_stamp() or {}
    _core_loader.write_stamp({**stamp, "<abi>": "cpython-10"})
    assert _core_loader._stale_reason() == "built for another Python"
    _core_loader.write_stamp(stamp)
    added = core / "transaction" / "c.py"  # a module split off after the build would run uncompiled
    added.write_text("Z = 1\n")
    assert "transaction/c.py is not in the build" in (_core_loader._stale_reason() or "")
    added.unlink()
    assert _core_loader._stale_reason() is None
    a.unlink()
    assert _core_loader._stale_reason() == "a.py is gone"


def test_pure_core_passes_the_sip_unit_tests() -> None:
    """The fallback is the same code: run tests/sip on it (the rest of the suite runs on the build)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/sip", "tests/test_architecture.py"],
        cwd=ROOT, env={**os.environ, "SOFTSWITCH_PURE_PYTHON": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
