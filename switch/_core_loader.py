"""Choose between the mypyc-compiled SIP core and its pure-Python sources.

``scripts/build_core.py`` compiles ``switch/sip`` in place and writes a stamp
with the hash of every source it compiled. Python would otherwise prefer an
extension module over a ``.py`` file of the same name, even when the source
was edited after the build; so the compiled modules are used only while the
stamp matches the sources. Otherwise (or with ``SOFTSWITCH_PURE_PYTHON=1``) a
finder placed first on ``sys.meta_path`` loads ``switch.sip.*`` from source.
Both paths behave the same; the suite runs on the compiled one, and
tests/test_core_loader.py runs the SIP unit tests again on the pure one.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = [
    "CORE_DIR",
    "EXCLUDE",
    "STAMP",
    "STATE",
    "compiled_modules",
    "core_sources",
    "current_stamp",
    "install",
    "read_stamp",
    "write_stamp",
]

CORE_DIR = Path(__file__).resolve().parent / "sip"
STAMP = CORE_DIR / ".compiled-sources.json"
_EXT = tuple(importlib.machinery.EXTENSION_SUFFIXES)

#: "compiled", or "pure Python (<why>)": logged by `softswitch run`, shown by /health
STATE = "pure Python (not built)"


#: Not compiled: package __init__ files (re-exports) and the exception classes
#: (mypyc's native exceptions cannot carry class-level defaults such as
#: ``ParseError.partial``; they are off the hot path anyway).
EXCLUDE = frozenset({"__init__.py", "errors.py"})


def core_sources() -> list[Path]:
    """Every source scripts/build_core.py compiles: all of switch/sip but ``EXCLUDE``."""
    return sorted(p for p in CORE_DIR.rglob("*.py") if p.name not in EXCLUDE)


def compiled_modules() -> list[Path]:
    return sorted(p for p in CORE_DIR.rglob("*") if p.name.endswith(_EXT))


def current_stamp(sources: Sequence[Path]) -> dict[str, str]:
    """{path relative to switch/sip: sha256 of its bytes} for ``sources``, plus the interpreter's ABI."""
    out = {str(p.relative_to(CORE_DIR)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}
    out["<abi>"] = sys.implementation.cache_tag or ""
    return out


def read_stamp() -> dict[str, str] | None:
    try:
        data = json.loads(STAMP.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_stamp(stamp: dict[str, str]) -> None:
    STAMP.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _stale_reason() -> str | None:
    """None when the compiled modules match their sources, else why not."""
    stamp = read_stamp()
    if stamp is None:
        return "no build stamp"
    if stamp.get("<abi>") != (sys.implementation.cache_tag or ""):
        return "built for another Python"
    for rel, digest in stamp.items():
        if rel == "<abi>":
            continue
        src = CORE_DIR / rel
        try:
            if hashlib.sha256(src.read_bytes()).hexdigest() != digest:
                return f"{rel} changed since the build (run scripts/build_core.py)"
        except OSError:
            return f"{rel} is gone"
    # A module added since the build would run as pure Python beside compiled ones.
    for src in core_sources():
        if str(src.relative_to(CORE_DIR)) not in stamp:
            return f"{src.relative_to(CORE_DIR)} is not in the build (run scripts/build_core.py)"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds ``switch.sip.*`` modules as ``.py`` files, ignoring extension modules beside them."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith("switch.sip.") or fullname.startswith("switch.sip._core"):
            return None
        base = CORE_DIR.joinpath(*fullname.split(".")[2:])
        init = base / "__init__.py"
        if init.is_file():
            return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(base)])
        src = base.with_suffix(".py")
        if src.is_file():
            return importlib.util.spec_from_file_location(fullname, src)
        return None


def install() -> str:
    """Decide once, before anything imports ``switch.sip``; returns and records the decision."""
    global STATE
    if not compiled_modules():
        STATE = "pure Python (not built)"
        return STATE
    if os.environ.get("SOFTSWITCH_PURE_PYTHON", "") not in ("", "0"):
        reason: str | None = "SOFTSWITCH_PURE_PYTHON is set"
    else:
        reason = _stale_reason()
    if reason is None:
        STATE = "compiled"
    else:
        STATE = f"pure Python ({reason})"
        if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceFinder())
    return STATE
